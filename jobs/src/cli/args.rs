//! The command line's arguments (clap).

use super::*;

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Warehouse-native customer data platform on Apache DataFusion"
)]
pub(crate) struct Cli {
    /// The project folder (holding tessera.toml).
    #[arg(
        short = 'C',
        long = "project",
        global = true,
        default_value = ".",
        env = "TESSERA_PROJECT"
    )]
    pub(crate) project: PathBuf,
    /// Log as JSON lines on stderr (for schedulers and log collectors).
    #[arg(long, global = true)]
    pub(crate) json_logs: bool,
    /// More logging (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Run queries on this Ballista cluster (`ballista://host:50050`) instead of the project's
    /// `[engine] cluster`; `local` runs them in this process.
    #[arg(long, global = true, env = "TESSERA_CLUSTER", value_name = "URL", value_parser = cluster_url)]
    pub(crate) cluster: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// `--cluster`: `local` or a scheduler's address; a bad one is a usage error (exit 2).
pub(crate) fn cluster_url(text: &str) -> std::result::Result<String, String> {
    match text.trim() {
        "" | "local" => Ok(text.trim().to_string()),
        url => tessera_engine::cluster::ClusterAddress::parse(url)
            .map(|_| url.to_string())
            .map_err(|e| e.to_string()),
    }
}

/// Who a privacy request is about.
#[derive(Debug, clap::Args)]
pub(crate) struct SubjectArgs {
    /// An email address of the person (repeatable).
    #[arg(long)]
    pub(crate) email: Vec<String>,
    /// A phone number of the person, in international form such as +33 6 12 34 56 78 (repeatable).
    #[arg(long)]
    pub(crate) phone: Vec<String>,
    /// A Tessera customer id (repeatable).
    #[arg(long = "customer-id")]
    pub(crate) customer_id: Vec<String>,
    /// A loyalty card number of the person, as printed or typed (repeatable).
    #[arg(long = "loyalty-number")]
    pub(crate) loyalty_number: Vec<String>,
}

impl SubjectArgs {
    pub(crate) fn request(&self) -> tessera_jobs::privacy::SubjectRequest {
        tessera_jobs::privacy::SubjectRequest {
            emails: self.email.clone(),
            phones: self.phone.clone(),
            customer_ids: self.customer_id.clone(),
            loyalty_numbers: self.loyalty_number.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a new project: a commented tessera.toml (and, with --from, sources and jobs mapped from your files).
    Init {
        /// The folder to create.
        dir: PathBuf,
        /// What to start from: `minimal` (settings only; runs green before any source exists) or `retail` (the demo's 24 jobs and 6 audiences).
        #[arg(long, value_enum, default_value = "minimal")]
        template: tessera_jobs::scaffold::Template,
        /// Files or folders of your data (CSV, Parquet, JSON): each file becomes a source, is profiled, and jobs/unify/identity_records.sql and jobs/profiles/customers.sql are written from what its columns hold, for you to review (repeatable).
        #[arg(long, value_name = "PATH")]
        from: Vec<PathBuf>,
    },
    /// Show what each column of a source (or table) holds: type, fill rate, distinct values, examples, and the kind it looks like (email, phone, name, date of birth...).
    Profile {
        /// A source or warehouse table (`crm`, `unify.identity_records`).
        table: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Run SQL over the project's sources and warehouse tables.
    Sql(SqlArgs),
    /// Serve the project's tables and Tessera's SQL functions over the Postgres wire protocol
    /// (psql, Metabase, Superset, Grafana, DBeaver, psycopg). Set TESSERA_SERVE_PASSWORD to
    /// require a password (SCRAM-SHA-256).
    Serve(ServeArgs),
    /// Write the HTML report (charts of sources, identity, clusters, completeness, scores,
    /// segments, audiences and runs; one self-contained file). Also written after each run.
    Report {
        /// Where to write it (default: reports/report.html in the project).
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
    },
    /// List the project's sources and warehouse tables, with row counts and Delta versions.
    Tables {
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        /// Skip counting rows (faster on big sources).
        #[arg(long)]
        no_count: bool,
    },
    /// List Tessera's SQL functions with their documentation (`tessera functions email_normalize`
    /// shows one in full).
    Functions {
        /// A function name, or part of one, to filter by.
        pattern: Option<String>,
        /// Output format of the list.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Write a query's result as a Delta table in the warehouse (or at --to).
    Write {
        /// Table name in the warehouse: `schema.table` or `table`.
        table: String,
        /// The query whose result is written.
        query: String,
        /// Overwrite (default) or append.
        #[arg(long, value_enum, default_value = "overwrite")]
        mode: Mode,
        /// Partition the table's files by these columns.
        #[arg(long = "partition-by", value_delimiter = ',')]
        partition_by: Vec<String>,
        /// Write to this URL instead of the warehouse.
        #[arg(long)]
        to: Option<String>,
    },
    /// Export a query's result to one Parquet or CSV file.
    Export {
        /// The query.
        query: String,
        /// Target file (path or URL) ending in .parquet or .csv.
        to: String,
    },
    /// Write an audience's upload file for its platform (the platform's columns, hashed as
    /// the table holds them; the customer_id sync key only for generic destinations).
    ExportAudience {
        /// The audience's name (`[audiences.<name>]` in tessera.toml).
        name: String,
        /// Target file (path or URL) ending in .csv (or .parquet).
        to: String,
    },
    /// Run the project's SQL jobs (all, or a selection) in dependency order.
    Run {
        /// Jobs to run: `name`, `tag:x`, `path:jobs/profiles`, `name+` (and dependents),
        /// `+name` (and ancestors); several separated by spaces or commas.
        #[arg(long, short = 's', num_args = 1..)]
        select: Vec<String>,
        /// Rebuild incremental jobs from scratch and run unchanged jobs too.
        #[arg(long)]
        full_refresh: bool,
        /// Jobs run at once.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// One JSON object per line on stdout (for schedulers).
        #[arg(long)]
        json: bool,
        /// Seconds to wait for another run holding the warehouse lock (then exit 3).
        #[arg(long, default_value_t = 0)]
        wait: u64,
        /// Do not write the HTML report (reports/report.html) after the run.
        #[arg(long)]
        no_report: bool,
    },
    /// Show what `tessera run` would do, in order, and why; with `--impact`, what it would
    /// change: the jobs run into a sandbox and are compared with the published tables
    /// (customers merged and split, links, golden-record fields, segment entries and exits,
    /// audience adds and removes); nothing is published.
    Plan(PlanArgs),
    /// Print the exact SQL each job will execute.
    Compile {
        /// Selection, as for `run`.
        #[arg(long, short = 's', num_args = 1..)]
        select: Vec<String>,
        /// Compile for a full refresh (no incremental filter).
        #[arg(long)]
        full_refresh: bool,
    },
    /// Run the jobs' given/expect unit tests and their data tests against the published tables.
    Test {
        /// Selection, as for `run`.
        #[arg(long, short = 's', num_args = 1..)]
        select: Vec<String>,
        /// Only the unit tests (`<job>.tests.toml`): no warehouse or source data needed.
        #[arg(long)]
        unit: bool,
    },
    /// Run selections on the cron expressions of `[schedules.<name>]` until stopped (Ctrl-C).
    Schedule {
        /// Only these schedules.
        #[arg(long, num_args = 1..)]
        only: Vec<String>,
        /// Stop after this many runs in total.
        #[arg(long)]
        max_runs: Option<usize>,
        /// JSON lines on stdout (the runs' own events included).
        #[arg(long)]
        json: bool,
        /// Seconds a run waits for the warehouse lock held by another run.
        #[arg(long, default_value_t = 3600)]
        wait: u64,
    },
    /// List the project's jobs in run order.
    Ls {
        /// Selection, as for `run`.
        #[arg(long, short = 's', num_args = 1..)]
        select: Vec<String>,
    },
    /// Why two records are (or are not) one customer, or how a customer formed: rules,
    /// comparison levels and weights (a waterfall), guards, id history.
    Explain {
        /// Two record keys (`source:id`, as in unify.record_customer).
        #[arg(num_args = 0..=2)]
        records: Vec<String>,
        /// A customer id instead: its records, the links that joined them, its id history.
        #[arg(long, conflicts_with = "records")]
        customer: Option<String>,
        /// The match model instead: m, u and the weight of every comparison level, as a chart,
        /// with the warnings of the run that trained it.
        #[arg(long, conflicts_with_all = ["records", "customer"])]
        model: bool,
    },
    /// How good the customers are against a ground truth you have: pairwise precision, recall
    /// and F1, B-cubed, splits and merges, the evidence ceiling the settings allow, the guard's
    /// precision, and the error classes with examples (and their explanations with --explain).
    Evaluate(EvaluateArgs),
    /// Erase people (GDPR art. 17): every row naming them in every warehouse table, through the
    /// identity graph; the tables' old versions purged; a salted-hash suppression entry so
    /// sources still holding them are filtered on later runs; an audit-log entry. Sources
    /// still holding them are listed with their paths.
    Forget(ForgetArgs),
    /// Everything held on a person (GDPR art. 15) as JSON: their rows in every source and every
    /// warehouse table, and the source record behind each golden-record value.
    ExportSubject(ExportSubjectArgs),
    /// Apply the `[[privacy.retention]]` rules: delete rows older than each rule's period and
    /// purge the files that held them.
    Retention,
    /// Generate the retail demo dataset (CRM, POS, web, email, support, consent, ground truth).
    Demo {
        /// Number of people.
        #[arg(long, default_value_t = 10_000)]
        people: u64,
        /// Random seed: the same seed gives the same data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Where to write (path or URL); `<project>/data` by default.
        #[arg(long)]
        out: Option<String>,
        /// Replace data already at the output location, and the library jobs in `jobs/`.
        #[arg(long)]
        force: bool,
        /// People generated per chunk (memory use is proportional).
        #[arg(long, default_value_t = 20_000)]
        chunk_size: usize,
        /// Do not run the example query afterwards.
        #[arg(long)]
        no_query: bool,
        /// Do not run the project's jobs afterwards.
        #[arg(long)]
        no_run: bool,
    },
    /// Start a process of an Apache DataFusion Ballista cluster (scheduler or executor) with
    /// every Tessera function; projects run on it with `[engine] cluster` or `--cluster`.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

/// `tessera cluster ...`: the processes of a Ballista cluster. Object-store credentials come
/// from the project's `[storage]` (with -C) and the process's environment.
#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Run a scheduler: it plans the queries clients send into stages and hands their tasks
    /// to executors.
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: std::net::SocketAddr,
        /// How long a finished query's results stay on the executors if the client that ran
        /// it never says it has read them (a Tessera coordinator frees them as soon as it has;
        /// this only bounds what a killed coordinator leaves behind), such as 6h.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        keep_results: std::time::Duration,
        /// How long an executor may go without a heartbeat (executors send one every 2 s)
        /// before it counts as lost and its tasks, and the results it held, are run again on
        /// the others, such as 1m.
        #[arg(long, default_value = "20s", value_parser = executor_timeout)]
        executor_timeout: std::time::Duration,
    },
    /// Run an executor: it registers with the scheduler and runs tasks.
    Executor {
        /// The scheduler (`ballista://host:port`).
        #[arg(long, default_value = "ballista://127.0.0.1:50050")]
        scheduler: String,
        /// Address of the executor's Arrow Flight service (shuffle data and results).
        #[arg(long, default_value = "127.0.0.1:50051")]
        bind: std::net::SocketAddr,
        /// Port of the executor's gRPC service.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks run at once (default: the number of cores).
        #[arg(long)]
        concurrent_tasks: Option<usize>,
        /// Memory all running tasks may hold before spilling, such as 4GiB (default: a share
        /// of the machine's memory).
        #[arg(long)]
        memory_limit: Option<String>,
        /// Folder for shuffle and spill files (default: under the system temp folder).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Once asked to stop (SIGTERM, ctrl-c), how long running tasks may finish before the
        /// executor exits anyway (their work is redone on the other executors); a second
        /// signal exits at once. Such as 5m.
        #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
        stop_timeout: std::time::Duration,
    },
}

/// `--executor-timeout`: a duration of at least three heartbeats, so that a busy executor is
/// not taken for a lost one.
fn executor_timeout(text: &str) -> Result<std::time::Duration, String> {
    let timeout = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    let least = 3 * tessera_engine::cluster::EXECUTOR_HEARTBEAT;
    if timeout < least {
        return Err(format!(
            "at least {} (executors send a heartbeat every {})",
            humantime::format_duration(least),
            humantime::format_duration(tessera_engine::cluster::EXECUTOR_HEARTBEAT)
        ));
    }
    Ok(timeout)
}

/// The arguments of `tessera sql`.
#[derive(Debug, clap::Args)]
pub(crate) struct SqlArgs {
    /// The query (several statements may be separated by `;`; each result is printed, only the last with --format json). Read from --file or stdin when absent.
    pub(crate) query: Option<String>,
    /// Read the query from a file.
    #[arg(long, short = 'f')]
    pub(crate) file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub(crate) format: OutputFormat,
    /// Rows shown by the table format.
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_rows: usize,
    /// Open the interactive shell even when stdin is not a terminal (it opens by itself
    /// when no query is given in a terminal).
    #[arg(long, short = 'i')]
    pub(crate) interactive: bool,
}

/// The arguments of `tessera serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Port to listen on (0 picks a free port; the address is printed).
    #[arg(long, short = 'p', default_value_t = 5433)]
    pub(crate) port: u16,
    /// The user name clients log in with when a password is set.
    #[arg(long, default_value = "tessera")]
    pub(crate) user: String,
    /// TLS certificate chain (PEM); with --tls-key, clients may connect with sslmode=require.
    #[arg(long, requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// TLS private key (PEM, PKCS#8 / RSA / SEC1).
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Let statements other than reads through (session-local views and tables).
    #[arg(long)]
    pub(crate) allow_writes: bool,
    /// Longest a statement may run, in seconds (0: no limit).
    #[arg(long, default_value_t = 300)]
    pub(crate) statement_timeout: u64,
    /// Most rows one result may hold (0: no limit).
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) max_rows: usize,
    /// How often tables rewritten by `tessera run` are re-read, in seconds.
    #[arg(long, default_value_t = 5)]
    pub(crate) refresh: u64,
    /// Most clients logged in at once (0: no limit); sockets still logging in do not count.
    #[arg(long, default_value_t = 200)]
    pub(crate) max_connections: usize,
    /// Most memory one query may hold (e.g. 512MiB, 4GiB; "none": no limit per query).
    /// Past it, sorts and aggregations spill; a join that does not fit fails, alone.
    #[arg(long, default_value = "2GiB")]
    pub(crate) query_memory: String,
    /// Seconds a new connection has to log in before it is closed.
    #[arg(long, default_value_t = 10)]
    pub(crate) login_timeout: u64,
    /// Allow an address other than loopback without TLS (passwords and rows in clear):
    /// only on a network that is encrypted already.
    #[arg(long)]
    pub(crate) insecure_plaintext: bool,
}

/// The arguments of `tessera evaluate`.
#[derive(Debug, clap::Args)]
pub(crate) struct EvaluateArgs {
    /// `table.column` naming each record's true person (the table has `record_key`, or
    /// `source` and `record_id`), e.g. `truth_records.true_person_id`.
    #[arg(long, conflicts_with = "labels", required_unless_present = "labels")]
    pub(crate) truth: Option<String>,
    /// A CSV file of labelled pairs instead: `record_key_a,record_key_b,is_match`.
    #[arg(long)]
    pub(crate) labels: Option<PathBuf>,
    /// Add the `tessera explain` waterfall of each error class's first example.
    #[arg(long)]
    pub(crate) explain: bool,
    /// Print the evaluation as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The arguments of `tessera forget`.
#[derive(Debug, clap::Args)]
pub(crate) struct ForgetArgs {
    #[command(flatten)]
    pub(crate) who: SubjectArgs,
    /// A CSV file of requests, one person per row, with a header naming some of `email`,
    /// `phone`, `customer_id`, `loyalty_number`.
    #[arg(long)]
    pub(crate) file: Option<PathBuf>,
    /// Report what would be erased; change nothing (the request is still audited).
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The arguments of `tessera export-subject`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportSubjectArgs {
    #[command(flatten)]
    pub(crate) who: SubjectArgs,
    /// Write the JSON to this file instead of standard output.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

/// The arguments of `tessera plan`.
#[derive(Debug, clap::Args)]
pub(crate) struct PlanArgs {
    /// Selection, as for `run`.
    #[arg(long, short = 's', num_args = 1..)]
    pub(crate) select: Vec<String>,
    /// Plan a full refresh.
    #[arg(long, conflicts_with = "impact")]
    pub(crate) full_refresh: bool,
    /// Run the plan into a sandbox and report its impact (a what-if; exit 4 when a
    /// `--max-*` limit is exceeded, 1 when a job fails).
    #[arg(long)]
    pub(crate) impact: bool,
    /// The impact as one JSON object (for CI checks).
    #[arg(long, requires = "impact")]
    pub(crate) json: bool,
    /// Also write the impact as an HTML page, in the report's style (e.g.
    /// reports/what-if.html).
    #[arg(long, requires = "impact", value_name = "PATH")]
    pub(crate) html: Option<PathBuf>,
    /// Changed identity decisions explained before and after, per direction.
    #[arg(long, requires = "impact", default_value_t = 2)]
    pub(crate) examples: usize,
    /// Fail (exit 4) when more customers than this would merge.
    #[arg(long, requires = "impact")]
    pub(crate) max_merged: Option<i64>,
    /// Fail (exit 4) when more customers than this would split.
    #[arg(long, requires = "impact")]
    pub(crate) max_split: Option<i64>,
    /// Fail (exit 4) when more records than this would change customer.
    #[arg(long, requires = "impact")]
    pub(crate) max_moved_records: Option<i64>,
    /// Fail (exit 4) when an audience would shrink by more than this percent.
    #[arg(long, requires = "impact", value_name = "PERCENT")]
    pub(crate) max_audience_shrink: Option<f64>,
    /// Fail (exit 4) when an audience would grow by more than this percent.
    #[arg(long, requires = "impact", value_name = "PERCENT")]
    pub(crate) max_audience_growth: Option<f64>,
    /// Jobs run at once in the sandbox.
    #[arg(long, requires = "impact", default_value_t = 2)]
    pub(crate) concurrency: usize,
    /// Seconds to wait for a run holding the warehouse lock (then exit 3).
    #[arg(long, requires = "impact", default_value_t = 0)]
    pub(crate) wait: u64,
    /// Keep the sandbox (`_tessera/whatif/<id>/` under the warehouse) to query it.
    #[arg(long, requires = "impact")]
    pub(crate) keep_sandbox: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Mode {
    Overwrite,
    Append,
}
