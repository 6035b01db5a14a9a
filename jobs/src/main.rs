//! `tessera`: the command-line interface.
//!
//! Exit codes: 0 success; 1 a query, source, storage or write failed, or a job or data test
//! failed; 2 wrong usage or an invalid project file; 3 another `tessera run` holds the
//! warehouse lock.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tessera_engine::demo::{self, DemoOptions};
use tessera_engine::export::ExportFormat;
use tessera_engine::storage::resolve_location;
use tessera_engine::{SourceFormat, WriteMode};
use tessera_jobs::commands;
use tessera_jobs::demo_project_file;
use tessera_jobs::output::{OutputFormat, print_stream};
use tessera_jobs::project::{PROJECT_FILE, Project, ProjectError};
use tessera_jobs::workspace::Workspace;

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Warehouse-native customer data platform on Apache DataFusion"
)]
struct Cli {
    /// The project folder (holding tessera.toml).
    #[arg(
        short = 'C',
        long = "project",
        global = true,
        default_value = ".",
        env = "TESSERA_PROJECT"
    )]
    project: PathBuf,
    /// Log as JSON lines on stderr (for schedulers and log collectors).
    #[arg(long, global = true)]
    json_logs: bool,
    /// More logging (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Run queries on this Ballista cluster (`ballista://host:50050`) instead of the project's
    /// `[engine] cluster`; `local` runs them in this process.
    #[arg(long, global = true, env = "TESSERA_CLUSTER", value_name = "URL", value_parser = cluster_url)]
    cluster: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// `--cluster`: `local` or a scheduler's address; a bad one is a usage error (exit 2).
fn cluster_url(text: &str) -> std::result::Result<String, String> {
    match text.trim() {
        "" | "local" => Ok(text.trim().to_string()),
        url => tessera_engine::cluster::ClusterAddress::parse(url)
            .map(|_| url.to_string())
            .map_err(|e| e.to_string()),
    }
}

/// `--cluster` / `TESSERA_CLUSTER`, applied to every project this process loads.
static CLUSTER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Who a privacy request is about.
#[derive(Debug, clap::Args)]
struct SubjectArgs {
    /// An email address of the person (repeatable).
    #[arg(long)]
    email: Vec<String>,
    /// A phone number of the person, in international form such as +33 6 12 34 56 78 (repeatable).
    #[arg(long)]
    phone: Vec<String>,
    /// A Tessera customer id (repeatable).
    #[arg(long = "customer-id")]
    customer_id: Vec<String>,
    /// A loyalty card number of the person, as printed or typed (repeatable).
    #[arg(long = "loyalty-number")]
    loyalty_number: Vec<String>,
}

impl SubjectArgs {
    fn request(&self) -> tessera_jobs::privacy::SubjectRequest {
        tessera_jobs::privacy::SubjectRequest {
            emails: self.email.clone(),
            phones: self.phone.clone(),
            customer_ids: self.customer_id.clone(),
            loyalty_numbers: self.loyalty_number.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
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
enum ClusterCommand {
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
    },
}

/// The arguments of `tessera sql`.
#[derive(Debug, clap::Args)]
struct SqlArgs {
    /// The query (several statements may be separated by `;`; each result is printed, only the last with --format json). Read from --file or stdin when absent.
    query: Option<String>,
    /// Read the query from a file.
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    /// Rows shown by the table format.
    #[arg(long, default_value_t = 1000)]
    max_rows: usize,
    /// Open the interactive shell even when stdin is not a terminal (it opens by itself
    /// when no query is given in a terminal).
    #[arg(long, short = 'i')]
    interactive: bool,
}

/// The arguments of `tessera serve`.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free port; the address is printed).
    #[arg(long, short = 'p', default_value_t = 5433)]
    port: u16,
    /// The user name clients log in with when a password is set.
    #[arg(long, default_value = "tessera")]
    user: String,
    /// TLS certificate chain (PEM); with --tls-key, clients may connect with sslmode=require.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM, PKCS#8 / RSA / SEC1).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Let statements other than reads through (session-local views and tables).
    #[arg(long)]
    allow_writes: bool,
    /// Longest a statement may run, in seconds (0: no limit).
    #[arg(long, default_value_t = 300)]
    statement_timeout: u64,
    /// Most rows one result may hold (0: no limit).
    #[arg(long, default_value_t = 1_000_000)]
    max_rows: usize,
    /// How often tables rewritten by `tessera run` are re-read, in seconds.
    #[arg(long, default_value_t = 5)]
    refresh: u64,
    /// Most clients logged in at once (0: no limit); sockets still logging in do not count.
    #[arg(long, default_value_t = 200)]
    max_connections: usize,
    /// Most memory one query may hold (e.g. 512MiB, 4GiB; "none": no limit per query).
    /// Past it, sorts and aggregations spill; a join that does not fit fails, alone.
    #[arg(long, default_value = "2GiB")]
    query_memory: String,
    /// Seconds a new connection has to log in before it is closed.
    #[arg(long, default_value_t = 10)]
    login_timeout: u64,
    /// Allow an address other than loopback without TLS (passwords and rows in clear):
    /// only on a network that is encrypted already.
    #[arg(long)]
    insecure_plaintext: bool,
}

/// The arguments of `tessera evaluate`.
#[derive(Debug, clap::Args)]
struct EvaluateArgs {
    /// `table.column` naming each record's true person (the table has `record_key`, or
    /// `source` and `record_id`), e.g. `truth_records.true_person_id`.
    #[arg(long, conflicts_with = "labels", required_unless_present = "labels")]
    truth: Option<String>,
    /// A CSV file of labelled pairs instead: `record_key_a,record_key_b,is_match`.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Add the `tessera explain` waterfall of each error class's first example.
    #[arg(long)]
    explain: bool,
    /// Print the evaluation as JSON.
    #[arg(long)]
    json: bool,
}

/// The arguments of `tessera forget`.
#[derive(Debug, clap::Args)]
struct ForgetArgs {
    #[command(flatten)]
    who: SubjectArgs,
    /// A CSV file of requests, one person per row, with a header naming some of `email`,
    /// `phone`, `customer_id`, `loyalty_number`.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Report what would be erased; change nothing (the request is still audited).
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The arguments of `tessera export-subject`.
#[derive(Debug, clap::Args)]
struct ExportSubjectArgs {
    #[command(flatten)]
    who: SubjectArgs,
    /// Write the JSON to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The arguments of `tessera plan`.
#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// Selection, as for `run`.
    #[arg(long, short = 's', num_args = 1..)]
    select: Vec<String>,
    /// Plan a full refresh.
    #[arg(long, conflicts_with = "impact")]
    full_refresh: bool,
    /// Run the plan into a sandbox and report its impact (a what-if; exit 4 when a
    /// `--max-*` limit is exceeded, 1 when a job fails).
    #[arg(long)]
    impact: bool,
    /// The impact as one JSON object (for CI checks).
    #[arg(long, requires = "impact")]
    json: bool,
    /// Also write the impact as an HTML page, in the report's style (e.g.
    /// reports/what-if.html).
    #[arg(long, requires = "impact", value_name = "PATH")]
    html: Option<PathBuf>,
    /// Changed identity decisions explained before and after, per direction.
    #[arg(long, requires = "impact", default_value_t = 2)]
    examples: usize,
    /// Fail (exit 4) when more customers than this would merge.
    #[arg(long, requires = "impact")]
    max_merged: Option<i64>,
    /// Fail (exit 4) when more customers than this would split.
    #[arg(long, requires = "impact")]
    max_split: Option<i64>,
    /// Fail (exit 4) when more records than this would change customer.
    #[arg(long, requires = "impact")]
    max_moved_records: Option<i64>,
    /// Fail (exit 4) when an audience would shrink by more than this percent.
    #[arg(long, requires = "impact", value_name = "PERCENT")]
    max_audience_shrink: Option<f64>,
    /// Fail (exit 4) when an audience would grow by more than this percent.
    #[arg(long, requires = "impact", value_name = "PERCENT")]
    max_audience_growth: Option<f64>,
    /// Jobs run at once in the sandbox.
    #[arg(long, requires = "impact", default_value_t = 2)]
    concurrency: usize,
    /// Seconds to wait for a run holding the warehouse lock (then exit 3).
    #[arg(long, requires = "impact", default_value_t = 0)]
    wait: u64,
    /// Keep the sandbox (`_tessera/whatif/<id>/` under the warehouse) to query it.
    #[arg(long, requires = "impact")]
    keep_sandbox: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Mode {
    Overwrite,
    Append,
}

/// How long `forget`, `retention` and `write` wait for a run holding the warehouse lock.
const WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The warehouse lock for a command that writes the warehouse (every one does, not only
/// `run`: an erasure purging files while a run commits would race it).
async fn writer_lock(ws: &Workspace, command: &str) -> Result<tessera_jobs::runner::RunLock> {
    let quick =
        tessera_jobs::runner::RunLock::acquire(ws, command, std::time::Duration::ZERO).await;
    match quick {
        Ok(lock) => Ok(lock),
        Err(e) if e.downcast_ref::<tessera_jobs::runner::LockHeld>().is_some() => {
            eprintln!(
                "waiting for the warehouse lock ({e}), up to {}s",
                WRITER_WAIT.as_secs()
            );
            tessera_jobs::runner::RunLock::acquire(ws, command, WRITER_WAIT).await
        }
        Err(e) => Err(e),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.json_logs, cli.verbose);
    let _ = CLUSTER.set(cli.cluster.clone());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::debug!("{e:?}");
            eprintln!("error: {}", tessera_jobs::errors::error_text(&e));
            if e.downcast_ref::<ProjectError>().is_some()
                || e.downcast_ref::<commands::BadSelection>().is_some()
            {
                ExitCode::from(2)
            } else if e.downcast_ref::<tessera_jobs::runner::LockHeld>().is_some() {
                ExitCode::from(3)
            } else if e
                .downcast_ref::<tessera_jobs::whatif::LimitsExceeded>()
                .is_some()
            {
                ExitCode::from(4)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn init_logging(json: bool, verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| {
        // delta-rs warns about its own internals (merge metrics, timestamp precision it
        // converts as the protocol requires); show them with -vv or TESSERA_LOG.
        let delta = if verbose >= 2 { level } else { "error" };
        tracing_subscriber::EnvFilter::new(format!(
            "{level},tessera={level},deltalake_core={delta}"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.with_target(false).init();
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init {
            dir,
            template,
            from,
        } => {
            // Relative paths are read from the -C folder, as every other command's are.
            let dir = cli.project.join(dir);
            let from: Vec<PathBuf> = from.iter().map(|f| cli.project.join(f)).collect();
            init(&dir, template, &from).await
        }
        Command::Profile { table, format } => {
            let ws = Workspace::open(load_project(&cli.project)?)?;
            profile(&ws, &table, format).await
        }
        Command::Sql(args) => sql_command(&cli.project, args).await,
        Command::Serve(args) => serve_command(&cli.project, args).await,
        Command::Report { out } => {
            let ws = Workspace::open(load_project(&cli.project)?)?;
            let path = out.unwrap_or_else(|| tessera_jobs::report::default_path(&ws));
            let charts = tessera_jobs::report::write(&ws, &path).await?;
            println!("report written to {} ({charts} charts)", path.display());
            Ok(())
        }
        Command::Functions { pattern, format } => functions(pattern.as_deref(), format).await,
        Command::Tables { format, no_count } => {
            let ws = Workspace::open(load_project(&cli.project)?)?;
            tables(&ws, format, !no_count).await
        }
        Command::Write {
            table,
            query,
            mode,
            partition_by,
            to,
        } => {
            let ws = Workspace::open(load_project(&cli.project)?)?;
            let lock = writer_lock(&ws, "write").await?;
            let written = write(&ws, &table, &query, mode, partition_by, to).await;
            lock.release().await;
            written
        }
        Command::Run {
            select,
            full_refresh,
            concurrency,
            json,
            wait,
            no_report,
        } => {
            let ws = Workspace::open(load_project(&cli.project)?)?;
            let args = commands::RunArgs {
                select,
                full_refresh,
                concurrency,
                json,
                wait: std::time::Duration::from_secs(wait),
                report: !no_report,
            };
            commands::run(&ws, &args).await
        }
        Command::Plan(args) => plan_command(&cli.project, args).await,
        Command::Compile {
            select,
            full_refresh,
        } => {
            let ws = Workspace::open(load_project(&cli.project)?)?;
            commands::compile(&ws, &select, full_refresh).await
        }
        Command::Test { select, unit } => {
            let ws = Workspace::open(load_project(&cli.project)?)?;
            commands::test(&ws, &select, unit).await
        }
        Command::Schedule {
            only,
            max_runs,
            json,
            wait,
        } => {
            let project = load_project(&cli.project)?;
            let args = tessera_jobs::schedule::ScheduleArgs {
                only,
                max_runs,
                json,
                wait: std::time::Duration::from_secs(wait),
            };
            tessera_jobs::schedule::schedule(&project, &args).await
        }
        Command::Ls { select } => {
            let ws = Workspace::open(load_project(&cli.project)?)?;
            commands::ls(&ws, &select).await
        }
        Command::Explain {
            records,
            customer,
            model,
        } => {
            let ws = Workspace::open(load_project(&cli.project)?)?;
            if model {
                print!("{}", tessera_jobs::explain::explain_model(&ws).await?);
                return Ok(());
            }
            match (customer, records.as_slice()) {
                (Some(id), _) => tessera_jobs::explain::explain_customer(&ws, &id).await,
                (None, [a, b]) => tessera_jobs::explain::explain_pair(&ws, a, b).await,
                _ => bail!("give two record keys, or --customer <id>"),
            }
        }
        Command::Evaluate(args) => evaluate_command(&cli.project, args).await,
        Command::Forget(args) => forget_command(&cli.project, args).await,
        Command::ExportSubject(args) => export_subject_command(&cli.project, args).await,
        Command::Retention => retention_command(&cli.project).await,
        Command::Export { query, to } => {
            let ws = Workspace::open(load_project(&cli.project)?)?;
            export(&ws, &query, &to).await
        }
        Command::ExportAudience { name, to } => {
            let ws = Workspace::open(load_project(&cli.project)?)?;
            let Some(decl) = ws.project.audiences.get(&name) else {
                let known: Vec<&String> = ws.project.audiences.keys().collect();
                bail!("no audience `{name}` in tessera.toml (audiences: {known:?})");
            };
            let query = tessera_jobs::audience::upload_sql(&name, decl.destination);
            export(&ws, &query, &to).await
        }
        Command::Cluster(command) => cluster_command(&cli.project, command).await,
        Command::Demo {
            people,
            seed,
            out,
            force,
            chunk_size,
            no_query,
            no_run,
        } => {
            let options = DemoOptions {
                people,
                seed,
                chunk_size,
                overwrite: force,
            };
            run_demo(&cli.project, out, options, !no_query, !no_run).await
        }
    }
}

/// `tessera sql`: a query, a file, stdin or the shell; in a project or over files.
async fn sql_command(project: &Path, args: SqlArgs) -> Result<()> {
    let SqlArgs {
        query,
        file,
        format,
        max_rows,
        interactive,
    } = args;
    // Outside a project, an in-memory session over files (as DuckDB's or
    // datafusion-cli's); in one, its tables and the files it names.
    let project = if project.join(PROJECT_FILE).exists() {
        load_project(project)?
    } else {
        Project::default_for(project)?
    };
    let ws = Workspace::open(project)?.allow_file_reads();
    if interactive || (query.is_none() && file.is_none() && std::io::stdin().is_terminal()) {
        return shell(&ws, format, max_rows).await;
    }
    let query = match (query, file) {
        (Some(q), None) => q,
        (None, Some(f)) => {
            std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?
        }
        (Some(_), Some(_)) => {
            bail!("give the query as an argument or with --file, not both")
        }
        // A terminal opened the shell above: this is a pipe or a file.
        (None, None) => std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?,
    };
    sql(&ws, &query, format, max_rows).await
}

/// `tessera serve`: the Postgres endpoint.
async fn serve_command(project: &Path, args: ServeArgs) -> Result<()> {
    let ServeArgs {
        host,
        port,
        user,
        tls_cert,
        tls_key,
        allow_writes,
        statement_timeout,
        max_rows,
        refresh,
        max_connections,
        query_memory,
        login_timeout,
        insecure_plaintext,
    } = args;
    let query_memory = match query_memory.trim() {
        "none" | "0" => None,
        text => Some(tessera_jobs::project::parse_size(text).with_context(|| {
            format!("--query-memory {text:?} is not a size (512MiB, 4GiB, or none)")
        })?),
    };
    let ws = std::sync::Arc::new(Workspace::open(load_project(project)?)?);
    let options = tessera_jobs::serve::ServeOptions {
        host,
        port,
        user,
        password: std::env::var(tessera_jobs::serve::PASSWORD_ENV)
            .ok()
            .filter(|p| !p.is_empty()),
        tls: tls_cert.zip(tls_key),
        allow_writes,
        statement_timeout: (statement_timeout > 0)
            .then(|| std::time::Duration::from_secs(statement_timeout)),
        max_rows: (max_rows > 0).then_some(max_rows),
        refresh: std::time::Duration::from_secs(refresh.max(1)),
        max_connections,
        query_memory,
        login_timeout: std::time::Duration::from_secs(login_timeout.max(1)),
        insecure_plaintext,
    };
    tessera_jobs::serve::serve(ws, options).await
}

/// `tessera evaluate`: the customers against a truth column or labelled pairs.
async fn evaluate_command(project: &Path, args: EvaluateArgs) -> Result<()> {
    let EvaluateArgs {
        truth,
        labels,
        explain,
        json,
    } = args;
    let ws = Workspace::open(load_project(project)?)?;
    let truth = match (truth, labels) {
        (Some(t), _) => tessera_jobs::evaluate::Truth::Column(t),
        (None, Some(l)) => tessera_jobs::evaluate::Truth::Labels(l),
        (None, None) => bail!("give --truth <table.column> or --labels <file.csv>"),
    };
    let evaluation = tessera_jobs::evaluate::evaluate(&ws, &truth, explain).await?;
    if json {
        println!("{}", tessera_jobs::evaluate::to_json(&evaluation));
    } else {
        print!("{}", tessera_jobs::evaluate::render(&evaluation)?);
    }
    Ok(())
}

/// `tessera forget`: erasure (under the warehouse lock), then the report rendered again.
async fn forget_command(project: &Path, args: ForgetArgs) -> Result<()> {
    let ForgetArgs {
        who,
        file,
        dry_run,
        json,
    } = args;
    let ws = Workspace::open(load_project(project)?)?;
    let mut requests = Vec::new();
    if !who.request().is_empty() {
        requests.push(who.request());
    }
    if let Some(file) = &file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        requests.extend(tessera_jobs::privacy::SubjectRequest::from_csv(
            &text,
            &file.display().to_string(),
        )?);
    }
    if requests.is_empty() {
        return Err(commands::BadSelection(
            "say who to forget: --email, --phone, --customer-id, --loyalty-number or --file".into(),
        )
        .into());
    }
    let lock = writer_lock(&ws, "forget").await?;
    let reports = tessera_jobs::privacy::forget(&ws, &requests, dry_run).await;
    lock.release().await;
    let reports = reports?;
    // The report lists customers by id (the largest clusters): render it again from
    // the tables as they are now, or remove it if it cannot be.
    let report = tessera_jobs::report::default_path(&ws);
    if !dry_run
        && report.exists()
        && let Err(e) = tessera_jobs::report::write(&ws, &report).await
    {
        eprintln!(
            "warning: cannot render {} again after the erasure ({e:#}); removed it",
            report.display()
        );
        std::fs::remove_file(&report)
            .with_context(|| format!("cannot remove {} after the erasure", report.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            print!("{}", tessera_jobs::privacy::describe(r));
        }
    }
    Ok(())
}

/// `tessera export-subject`: everything held on a person, as JSON.
async fn export_subject_command(project: &Path, args: ExportSubjectArgs) -> Result<()> {
    let ExportSubjectArgs { who, out } = args;
    let ws = Workspace::open(load_project(project)?)?;
    let request = who.request();
    if request.is_empty() {
        return Err(commands::BadSelection(
            "say whose data to export: --email, --phone, --customer-id or --loyalty-number".into(),
        )
        .into());
    }
    let report = tessera_jobs::privacy::export_subject(&ws, &request).await?;
    if tessera_jobs::privacy::export_is_empty(&report) {
        // Not an empty file that looks like an answer: say so, exit 1 (docs/privacy.md).
        bail!(
            "no data found for this person in the warehouse or the sources (nothing written); \
             check the identifiers, or `tessera sql` for how they are stored"
        );
    }
    let text = serde_json::to_string_pretty(&report)?;
    match out {
        Some(path) => std::fs::write(&path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(())
}

/// `tessera retention`: the `[[privacy.retention]]` rules applied (under the warehouse lock).
async fn retention_command(project: &Path) -> Result<()> {
    let ws = Workspace::open(load_project(project)?)?;
    if ws.project.privacy.retention.is_empty() {
        println!("no [[privacy.retention]] rules in tessera.toml");
    }
    let lock = writer_lock(&ws, "retention").await?;
    let applied = tessera_jobs::privacy::apply_retention(&ws).await;
    lock.release().await;
    for (table, n) in applied? {
        println!("{table}: {n} row(s) past retention deleted, old files purged");
    }
    Ok(())
}

/// `tessera plan`: what a run would do; with `--impact`, what it would change (a what-if).
async fn plan_command(project: &Path, args: PlanArgs) -> Result<()> {
    if !args.impact {
        let ws = Workspace::open(load_project(project)?)?;
        return commands::plan(&ws, &args.select, args.full_refresh).await;
    }
    let PlanArgs {
        select,
        json,
        html,
        examples,
        max_merged,
        max_split,
        max_moved_records,
        max_audience_shrink,
        max_audience_growth,
        concurrency,
        wait,
        keep_sandbox,
        ..
    } = args;
    let ws = Workspace::open(load_project(project)?)?;
    let args = tessera_jobs::whatif::ImpactArgs {
        select,
        examples,
        concurrency,
        wait: std::time::Duration::from_secs(wait),
        keep_sandbox,
        limits: tessera_jobs::whatif::Limits {
            max_merged,
            max_split,
            max_moved_records,
            max_audience_shrink,
            max_audience_growth,
        },
        progress: !json && std::io::stderr().is_terminal(),
    };
    let impact = tessera_jobs::whatif::impact(&ws, &args).await?;
    // The report shows the latest what-if; failing to keep it loses nothing measured.
    if let Err(e) = tessera_jobs::whatif::save_last(&ws, &impact) {
        tracing::warn!("{e:#}");
    }
    if json {
        println!("{}", serde_json::to_string(&impact)?);
    } else {
        print!("{}", tessera_jobs::whatif::render(&impact));
    }
    if let Some(path) = html {
        tessera_jobs::report::write_whatif(&ws, &impact, &path)?;
        if !json {
            println!("what-if page: {}", path.display());
        }
    }
    tessera_jobs::whatif::verdict(&impact)
}

fn load_project(dir: &Path) -> Result<Project> {
    let mut project = Project::load(dir)?;
    if let Some(Some(cluster)) = CLUSTER.get() {
        project.engine.cluster = match cluster.trim() {
            "" | "local" => None,
            url => Some(tessera_engine::cluster::ClusterAddress::parse(url)?),
        };
    }
    Ok(project)
}

/// `tessera cluster scheduler|executor`: runs until stopped.
async fn cluster_command(project: &Path, command: ClusterCommand) -> Result<()> {
    use tessera_engine::cluster::{self, ClusterAddress, ExecutorOptions, SchedulerOptions};
    // The project is optional: it only lends its `[storage]` settings.
    let storage = if project.join(PROJECT_FILE).exists() {
        tessera_engine::Storage::new(load_project(project)?.storage)
    } else {
        tessera_engine::Storage::default()
    };
    match command {
        ClusterCommand::Scheduler { bind, keep_results } => {
            eprintln!("tessera cluster scheduler listening on {bind}");
            cluster::run_scheduler(SchedulerOptions { bind, keep_results }, storage).await?;
        }
        ClusterCommand::Executor {
            scheduler,
            bind,
            grpc_port,
            concurrent_tasks,
            memory_limit,
            work_dir,
        } => {
            let memory_limit = match memory_limit {
                Some(text) => {
                    Some(tessera_jobs::project::parse_size(&text).with_context(|| {
                        format!("--memory-limit `{text}` is not a size such as 4GiB")
                    })?)
                }
                None => None,
            };
            let scheduler = ClusterAddress::parse(&scheduler)?;
            eprintln!("tessera cluster executor on {bind}, scheduler {scheduler}");
            cluster::run_executor(
                ExecutorOptions {
                    scheduler,
                    bind,
                    grpc_port,
                    concurrent_tasks,
                    work_dir,
                    memory_limit,
                },
                storage,
            )
            .await?;
        }
    }
    Ok(())
}

async fn init(
    dir: &Path,
    template: tessera_jobs::scaffold::Template,
    from: &[PathBuf],
) -> Result<()> {
    let created = tessera_jobs::scaffold::init(dir, template, from).await?;
    println!("Created {}:", dir.display());
    for file in &created.files {
        println!("  {}", file.strip_prefix(dir).unwrap_or(file).display());
    }
    for source in &created.sources {
        let mapped = source
            .mapping
            .columns
            .iter()
            .map(|(kind, (column, confidence, _))| {
                format!("{kind} <- {column} ({:.0}%)", confidence * 100.0)
            })
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "source `{}` ({}): {}",
            source.name,
            source.path.display(),
            if mapped.is_empty() {
                "no person columns recognised".into()
            } else {
                mapped
            }
        );
    }
    for (source, why) in &created.unreadable {
        eprintln!("warning: source `{source}` is declared but left out of the identity job: {why}");
    }
    match (template, from.is_empty()) {
        (tessera_jobs::scaffold::Template::Retail, _) => println!(
            "Next: `tessera -C {0} demo` generates the retail data these jobs read.",
            dir.display()
        ),
        (_, true) => println!(
            "Next: declare your sources in tessera.toml (or start again with --from <files>), \
             then `tessera -C {0} run`.",
            dir.display()
        ),
        (_, false) => println!(
            "Next: review jobs/unify/identity_records.sql (`tessera -C {0} profile <source>` shows \
             each column), then `tessera -C {0} run`.",
            dir.display()
        ),
    }
    Ok(())
}

/// Prints `tessera profile`.
async fn profile(ws: &Workspace, table: &str, format: OutputFormat) -> Result<()> {
    use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray, UInt64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let profiles = tessera_jobs::mapping::profile(ws, table).await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("column", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("filled", DataType::Utf8, false),
        Field::new("distinct", DataType::UInt64, false),
        Field::new("max_len", DataType::UInt64, false),
        Field::new("looks_like", DataType::Utf8, true),
        Field::new("confidence", DataType::Float64, true),
        Field::new("examples", DataType::Utf8, false),
    ]));
    let p = &profiles;
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|c| c.column.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|c| c.data_type.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|c| format!("{:.1}%", c.fill_rate * 100.0)),
            )),
            Arc::new(UInt64Array::from_iter_values(p.iter().map(|c| c.distinct))),
            Arc::new(UInt64Array::from_iter_values(
                p.iter().map(|c| c.max_length as u64),
            )),
            Arc::new(StringArray::from_iter(
                p.iter().map(|c| c.kind.map(|k| k.name())),
            )),
            Arc::new(Float64Array::from_iter(
                p.iter().map(|c| c.kind.map(|_| c.confidence)),
            )),
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|c| c.examples.join(" | ")),
            )),
        ],
    )?;
    let rows = p.first().map_or(0, |c| c.rows);
    let stream = ws.engine.ctx().read_batch(batch)?.execute_stream().await?;
    let mut out = std::io::stdout();
    tessera_jobs::output::print_stream(stream, format, usize::MAX, &mut out).await?;
    if format == OutputFormat::Table {
        println!("{rows} rows in `{table}`");
    }
    Ok(())
}

/// Runs each statement and prints each result that has columns (DDL prints nothing); with
/// `--format json`, whose output is one JSON document, only the last statement's.
async fn sql(ws: &Workspace, query: &str, format: OutputFormat, max_rows: usize) -> Result<()> {
    register_views(ws, query).await?;
    let statements = ws.prepare_for(query).await?;
    if statements.is_empty() {
        bail!("the query is empty");
    }
    let ctx = ws.engine.ctx();
    let last = statements.len() - 1;
    let mut stdout = std::io::stdout().lock();
    for (i, statement) in statements.into_iter().enumerate() {
        let plan = ctx.state().statement_to_plan(statement).await?;
        let df = ctx.execute_logical_plan(plan).await?;
        let stream = df.execute_stream().await;
        let shown = i == last
            || (format != OutputFormat::Json
                && stream
                    .as_ref()
                    .is_ok_and(|s| !s.schema().fields().is_empty()));
        let result = match stream {
            Ok(stream) if shown => print_stream(stream, format, max_rows, &mut stdout).await,
            Ok(stream) => print_stream(stream, OutputFormat::Jsonl, 0, &mut std::io::sink()).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = result {
            return Err(explain_read_error(ws, e).await);
        }
    }
    Ok(())
}

/// `tessera sql` with no query: an interactive shell. Statements end with `;` and may span
/// lines; `\d`, `\d <table>`, `\df [pattern]`, `\timing`, `\format <fmt>`, `\q`; history in
/// `~/.tessera_history` (or `$TESSERA_HISTORY`); Ctrl-C cancels the running statement.
async fn shell(ws: &Workspace, mut format: OutputFormat, max_rows: usize) -> Result<()> {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new().context("cannot open the terminal")?;
    let history = std::env::var_os("TESSERA_HISTORY")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".tessera_history")));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!(
        "Tessera SQL shell on {}: end statements with `;`, \\? for help, \\q to quit.",
        ws.project.warehouse
    );
    let mut buffer = String::new();
    let mut timing = false;
    loop {
        let prompt = if buffer.is_empty() {
            "tessera> "
        } else {
            "      -> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            let mut words = trimmed.split_whitespace();
            let command = words.next().unwrap_or_default();
            let argument = words.next();
            let result = match command {
                "\\q" | "\\quit" => break,
                "\\?" | "\\h" | "\\help" => {
                    println!("{SHELL_HELP}");
                    Ok(())
                }
                "\\d" => match argument {
                    None => tables(ws, format, false).await,
                    Some(table) => sql(ws, &format!("describe {table}"), format, max_rows).await,
                },
                "\\df" => functions(argument, format).await,
                "\\timing" => {
                    timing = !timing;
                    println!("Timing is {}.", if timing { "on" } else { "off" });
                    Ok(())
                }
                "\\format" => match argument.map(|f| {
                    <OutputFormat as clap::ValueEnum>::from_str(f, true)
                        .map_err(|e| anyhow::anyhow!(e))
                }) {
                    Some(Ok(f)) => {
                        format = f;
                        Ok(())
                    }
                    Some(Err(e)) => Err(e),
                    None => Err(anyhow::anyhow!(
                        "\\format needs one of table, csv, json, jsonl"
                    )),
                },
                other => Err(anyhow::anyhow!("unknown command {other} (\\? lists them)")),
            };
            if let Err(e) = result {
                eprintln!("ERROR: {e:#}");
            }
            continue;
        }
        if buffer.is_empty() && trimmed.is_empty() {
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !statement_complete(&buffer) {
            continue;
        }
        let query = std::mem::take(&mut buffer);
        let _ = editor.add_history_entry(query.trim_end());
        let started = Instant::now();
        tokio::select! {
            result = sql(ws, &query, format, max_rows) => {
                if let Err(e) = result {
                    eprintln!("ERROR: {e:#}");
                }
            }
            _ = tokio::signal::ctrl_c() => eprintln!("canceled"),
        }
        if timing {
            println!("Time: {:.3} ms", started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    if let Some(path) = &history
        && let Err(e) = editor.save_history(path)
    {
        eprintln!(
            "warning: cannot save the history to {}: {e}",
            path.display()
        );
    }
    Ok(())
}

const SHELL_HELP: &str = r"Statements end with `;` and may span lines. Every source, warehouse table,
view job and Tessera function is available (time travel: at_version, at_time, table_history).
  \d               list sources and tables
  \d <table>       describe a table's columns
  \df [pattern]    list Tessera functions (\df email_normalize shows one in full)
  \format <fmt>    output as table, csv, json or jsonl
  \timing          show how long each statement takes
  \q               quit (or Ctrl-D); Ctrl-C cancels the running statement";

/// Whether `text` ends with a `;` outside quotes and comments: SQL's own tokenizer (the one
/// DataFusion parses with) reads it; an unterminated string or comment is not complete.
fn statement_complete(text: &str) -> bool {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize() else {
        return false;
    };
    tokens
        .iter()
        .rev()
        .find(|t| !matches!(t, Token::Whitespace(_)))
        .is_some_and(|t| *t == Token::SemiColon)
}

/// Registers the project's view jobs the query names (`profiles.as_of`, `segments.sizes`...):
/// they are not stored, so they are planned over their inputs here, as a run would.
async fn register_views(ws: &Workspace, query: &str) -> Result<()> {
    let Ok(statements) = datafusion::sql::parser::DFParser::parse_sql(query) else {
        return Ok(()); // reported by the query itself
    };
    let state = ws.engine.ctx().state();
    let mut wanted = Vec::new();
    for statement in &statements {
        if let Ok(refs) = state.resolve_table_references(statement) {
            wanted.extend(refs.into_iter().map(|r| r.to_string()));
        }
    }
    commands::register_view_jobs(ws, |name| wanted.iter().any(|w| w == name)).await?;
    Ok(())
}

/// After a failed read, finds which source file is at fault and says so.
async fn explain_read_error(ws: &Workspace, error: anyhow::Error) -> anyhow::Error {
    let text = format!("{error:#}");
    let looks_like_read = [
        "Csv error",
        "Json error",
        "Parquet error",
        "Parser error",
        "incorrect number of fields",
        "External error",
    ]
    .iter()
    .any(|s| text.contains(s));
    if !looks_like_read {
        return error;
    }
    for (name, decl) in &ws.project.sources {
        // Delta tables, and CSV read row by row (its errors name the file and line already).
        if decl.spec.format == SourceFormat::Delta || !decl.spec.rows.is_default_reader() {
            continue;
        }
        if ws.engine.ctx().table_exist(name.as_str()).unwrap_or(false)
            && let Some((file, message)) = ws.engine.locate_read_error(&decl.spec).await
        {
            return error.context(format!("source `{name}`, file {file}: {message}"));
        }
    }
    error
}

/// One line of `tessera tables`: a source, a warehouse table or a view.
struct TableLine {
    name: String,
    kind: &'static str,
    format: String,
    rows: Option<i64>,
    version: Option<u64>,
    location: String,
    /// The description, or why it cannot be read (`unavailable: …`).
    note: Option<String>,
}

async fn tables(ws: &Workspace, format: OutputFormat, count: bool) -> Result<()> {
    let lines = table_lines(ws, count).await?;
    if format == OutputFormat::Table {
        print_table_lines(ws, &lines);
        return Ok(());
    }
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, UInt64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, true),
        Field::new("delta_version", DataType::UInt64, true),
        Field::new("location", DataType::Utf8, false),
        Field::new("note", DataType::Utf8, true),
    ]));
    let strings = |f: &dyn Fn(&TableLine) -> Option<&str>| {
        std::sync::Arc::new(StringArray::from_iter(lines.iter().map(f)))
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            strings(&|l| Some(l.name.as_str())),
            strings(&|l| Some(l.kind)),
            strings(&|l| Some(l.format.as_str())),
            std::sync::Arc::new(Int64Array::from_iter(lines.iter().map(|l| l.rows))),
            std::sync::Arc::new(UInt64Array::from_iter(lines.iter().map(|l| l.version))),
            strings(&|l| Some(l.location.as_str())),
            strings(&|l| l.note.as_deref()),
        ],
    )?;
    let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
        batch.schema(),
        futures::stream::iter(vec![Ok(batch)]),
    );
    print_stream(
        Box::pin(stream),
        format,
        usize::MAX,
        &mut std::io::stdout().lock(),
    )
    .await?;
    Ok(())
}

/// The project's sources, warehouse tables and views, with their rows when `count`.
async fn table_lines(ws: &Workspace, count: bool) -> Result<Vec<TableLine>> {
    use datafusion::arrow::array::Int64Array;
    let ctx = ws.engine.ctx();
    let count_rows = |name: String| async move {
        if !count {
            return Ok::<_, anyhow::Error>(None);
        }
        let df = ctx.sql(&format!("select count(*) from {name}")).await?;
        let batches = df.collect().await?;
        Ok(batches.first().and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .map(|a| a.value(0))
        }))
    };
    let mut lines = Vec::new();
    for (name, decl) in &ws.project.sources {
        let mut line = TableLine {
            name: name.clone(),
            kind: "source",
            format: decl.spec.format.name().to_string(),
            rows: None,
            version: None,
            location: decl.spec.url.to_string(),
            note: decl.description.clone(),
        };
        match ws.register_source(name).await {
            Ok(registered) => {
                line.version = registered.delta_version;
                match count_rows(quote_ident(name)).await {
                    Ok(n) => line.rows = n,
                    Err(e) => line.note = Some(format!("{e:#}")),
                }
            }
            Err(e) => line.note = Some(format!("unavailable: {e:#}")),
        }
        lines.push(line);
    }
    for table in ws.warehouse_tables().await? {
        let mut line = TableLine {
            name: table.name.clone(),
            kind: "warehouse",
            format: "delta".into(),
            rows: None,
            version: None,
            location: table.url.to_string(),
            note: None,
        };
        match ws.register_warehouse_table(&table).await {
            Ok(version) => {
                line.version = Some(version);
                line.rows = count_rows(table.sql()).await.unwrap_or(None);
            }
            Err(e) => line.note = Some(format!("unavailable: {e:#}")),
        }
        lines.push(line);
    }
    // View jobs: planned when read, so listed without a count.
    let (jobs, _) = tessera_jobs::job::discover_with(&ws.project.dir, &ws.project.jobs);
    for job in jobs
        .iter()
        .filter(|j| j.config.materialized == tessera_jobs::job::Materialized::View)
    {
        lines.push(TableLine {
            name: job.name.clone(),
            kind: "view",
            format: "sql".into(),
            rows: None,
            version: None,
            location: job.path.display().to_string(),
            note: job.config.description.clone(),
        });
    }
    Ok(lines)
}

/// `tessera tables` for people, in 100 columns: the sources (format, rows, location under
/// the project relative to it), then the warehouse's tables and the views (kind, rows,
/// version); notes only in `--format json`, except why a table cannot be read (on stderr).
fn print_table_lines(ws: &Workspace, lines: &[TableLine]) {
    let root = url::Url::from_directory_path(&ws.project.dir).ok();
    let dir_prefix = format!("{}/", ws.project.dir.display());
    let relative = |location: &str| -> String {
        root.as_ref()
            .and_then(|r| location.strip_prefix(r.as_str()))
            .or_else(|| location.strip_prefix(&dir_prefix))
            .unwrap_or(location)
            .to_string()
    };
    let shown = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    let mut sources = comfy_table::Table::new();
    sources.load_style(comfy_table::presets::ASCII_MARKDOWN);
    sources.set_header(["source", "format", "rows", "location"]);
    let mut tables = comfy_table::Table::new();
    tables.load_style(comfy_table::presets::ASCII_MARKDOWN);
    tables.set_header(["table", "kind", "rows", "version"]);
    for l in lines {
        match l.kind {
            "source" => {
                sources.add_row([
                    l.name.clone(),
                    l.format.clone(),
                    shown(l.rows),
                    relative(&l.location),
                ]);
            }
            kind => {
                tables.add_row([
                    l.name.clone(),
                    if kind == "warehouse" { "table" } else { kind }.to_string(),
                    shown(l.rows),
                    l.version.map(|v| v.to_string()).unwrap_or_default(),
                ]);
            }
        }
    }
    if !sources.is_empty() {
        println!("{sources}");
    }
    if !tables.is_empty() {
        if !sources.is_empty() {
            println!();
        }
        println!("{tables}");
    }
    // What cannot be read is said, not left as an empty cell.
    for l in lines {
        if let Some(why) = l
            .note
            .as_deref()
            .and_then(|n| n.strip_prefix("unavailable: "))
        {
            eprintln!("warning: {} is unavailable: {why}", l.name);
        }
    }
}

use tessera_engine::sql::ident as quote_ident;

async fn write(
    ws: &Workspace,
    table: &str,
    query: &str,
    mode: Mode,
    partition_by: Vec<String>,
    to: Option<String>,
) -> Result<()> {
    let url = match to {
        Some(to) => resolve_location(&to, &ws.project.dir, true)?,
        None => {
            let parts: Vec<&str> = table.split('.').collect();
            if parts.is_empty()
                || parts.len() > 2
                || parts.iter().any(|p| {
                    p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
            {
                bail!(
                    "`{table}` is not a table name (use `schema.table` or `table`, letters, digits and _)"
                );
            }
            ws.project
                .warehouse
                .join(&format!("{}/", parts.join("/")))?
        }
    };
    let statements = ws.prepare_for(query).await?;
    if statements.len() != 1 {
        bail!("write takes exactly one query, found {}", statements.len());
    }
    let ctx = ws.engine.ctx();
    let plan = ctx
        .state()
        .statement_to_plan(statements.into_iter().next().expect("one statement"))
        .await?;
    let df = ctx.execute_logical_plan(plan).await?;
    let started = Instant::now();
    let outcome = ws
        .engine
        .write_delta(df, url.clone())
        .with_mode(match mode {
            Mode::Overwrite => WriteMode::Overwrite,
            Mode::Append => WriteMode::Append,
        })
        .with_partition_columns(partition_by)
        .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return Err(explain_read_error(ws, e.into()).await),
    };
    println!(
        "wrote {} rows to {table} ({url}) as version {} in {:.2}s",
        outcome
            .rows
            .map(|r| r.to_string())
            .unwrap_or_else(|| "?".into()),
        outcome.version,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn export(ws: &Workspace, query: &str, to: &str) -> Result<()> {
    let format = ExportFormat::from_path(to)
        .with_context(|| format!("`{to}`: the file name must end in .parquet or .csv"))?;
    let url = resolve_location(to, &ws.project.dir, false)?;
    let statements = ws.prepare_for(query).await?;
    if statements.len() != 1 {
        bail!("export takes exactly one query, found {}", statements.len());
    }
    let ctx = ws.engine.ctx();
    let plan = ctx
        .state()
        .statement_to_plan(statements.into_iter().next().expect("one statement"))
        .await?;
    let df = ctx.execute_logical_plan(plan).await?;
    let rows = match ws.engine.export(df, &url, format).await {
        Ok(rows) => rows,
        Err(e) => return Err(explain_read_error(ws, e.into()).await),
    };
    println!("exported {rows} rows to {url}");
    Ok(())
}

async fn run_demo(
    project_dir: &Path,
    out: Option<String>,
    options: DemoOptions,
    query: bool,
    run_jobs: bool,
) -> Result<()> {
    let project_file = project_dir.join(PROJECT_FILE);
    let project = if project_file.exists() {
        Project::load(project_dir)?
    } else {
        // A folder that is neither a project nor empty is someone's: scaffolding the demo in
        // it needs --force.
        let occupied = std::fs::read_dir(project_dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .any(|e| !e.file_name().to_string_lossy().starts_with('.'))
            })
            .unwrap_or(false);
        if occupied && !options.overwrite {
            return Err(commands::BadSelection(format!(
                "{} holds files but no {PROJECT_FILE}: `tessera demo` writes a project there only \
                 with --force (or run it in an empty folder, or in a project)",
                project_dir.display()
            ))
            .into());
        }
        Project::default_for(project_dir)?
    };
    let out_text = out.unwrap_or_else(|| "data".to_string());
    let out_url = resolve_location(&out_text, &project.dir, true)?;
    let engine = project.engine()?;

    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(options.people);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} generating people {pos}/{len} [{bar:30}] {per_sec} eta {eta}",
            )
            .expect("valid template"),
        );
        Some(bar)
    } else {
        None
    };
    let started = Instant::now();
    let summary = demo::generate(&engine, &out_url, &options, |done| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        } else {
            tracing::info!(people = done, "generated");
        }
    })
    .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "Generated {} people in {:.1}s ({:.0} people/s) at {out_url}",
        summary.people,
        secs,
        summary.people as f64 / secs.max(1e-9)
    );
    for t in &summary.tables {
        println!(
            "  {:<18} {:<8} {:>12} rows  {}",
            t.name, t.format, t.rows, t.path
        );
    }

    if !project_file.exists() {
        std::fs::create_dir_all(&project.dir)?;
        std::fs::write(&project_file, demo_project_file(&project.name, &out_text))
            .with_context(|| format!("cannot write {}", project_file.display()))?;
        println!(
            "Wrote {} with a source per demo table",
            project_file.display()
        );
    }
    let has_jobs = !tessera_jobs::job::discover(&project.dir).0.is_empty();
    if !has_jobs || options.overwrite {
        let written = tessera_jobs::library::install(&project.dir, options.overwrite)
            .with_context(|| format!("cannot write jobs under {}", project.dir.display()))?;
        if !written.is_empty() {
            println!(
                "Wrote {} job files from the SQL library under {}",
                written.len(),
                project.dir.join(tessera_jobs::job::JOBS_DIR).display()
            );
        }
    }
    if run_jobs {
        let ws = Workspace::open(Project::load(project_dir)?)?;
        println!();
        // Replaced data invalidates what incremental jobs merged from the old data (newer-only
        // loads would keep the old orders): rebuild everything.
        commands::run(
            &ws,
            &commands::RunArgs {
                concurrency: 2,
                full_refresh: options.overwrite,
                report: true,
                ..Default::default()
            },
        )
        .await?;
    }
    if query {
        let project = Project::load(project_dir)?;
        let ws = Workspace::open(project)?;
        let q = "select c.country, count(distinct c.pos_customer_id) as customers, \
                 count(o.order_id) as orders, sum(o.amount) as revenue, min(o.currency) as currency \
                 from pos_customers c left join pos_orders o on o.pos_customer_id = c.pos_customer_id \
                 group by c.country order by customers desc";
        println!("\n{q}\n");
        sql(&ws, q, OutputFormat::Table, 20).await?;
    }
    Ok(())
}

/// `tessera functions`: the library's functions and their documentation.
async fn functions(pattern: Option<&str>, format: OutputFormat) -> Result<()> {
    use datafusion::arrow::array::{RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::Documentation;

    let mut all: Vec<(String, Option<Documentation>)> = tessera_engine::udfs::scalar_functions()
        .iter()
        .map(|f| (f.name().to_string(), f.documentation().cloned()))
        .collect();
    all.extend(
        tessera_engine::udfs::aggregate_functions()
            .iter()
            .map(|f| (f.name().to_string(), f.documentation().cloned())),
    );
    let pattern = pattern.map(str::to_lowercase);
    let chosen: Vec<&(String, Option<Documentation>)> = all
        .iter()
        .filter(|(name, _)| pattern.as_deref().is_none_or(|p| name.contains(p)))
        .collect();
    if let (Some(p), [(name, doc)]) = (&pattern, chosen.as_slice())
        && name == p
    {
        let doc = doc.as_ref().context("no documentation")?;
        println!("{name}  ({})\n", doc.doc_section.label);
        println!("{}\n", doc.description);
        println!("Syntax: {}\n", doc.syntax_example);
        if let Some(args) = &doc.arguments {
            println!("Arguments:");
            for (arg, text) in args {
                println!("  {arg}: {text}");
            }
            println!();
        }
        if let Some(example) = &doc.sql_example {
            println!("{example}");
        }
        return Ok(());
    }
    if chosen.is_empty() {
        bail!(
            "no Tessera function matches `{}`",
            pattern.unwrap_or_default()
        );
    }
    let column = |f: &dyn Fn(&str, Option<&Documentation>) -> String| {
        std::sync::Arc::new(StringArray::from(
            chosen
                .iter()
                .map(|(name, doc)| f(name, doc.as_ref()))
                .collect::<Vec<_>>(),
        )) as datafusion::arrow::array::ArrayRef
    };
    let batch = RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(vec![
            Field::new("function", DataType::Utf8, false),
            Field::new("section", DataType::Utf8, false),
            Field::new("syntax", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, false),
        ])),
        vec![
            column(&|name, _| name.to_string()),
            column(&|_, d| {
                d.map(|d| d.doc_section.label.to_string())
                    .unwrap_or_default()
            }),
            column(&|_, d| d.map(|d| d.syntax_example.clone()).unwrap_or_default()),
            column(&|_, d| {
                d.map(|d| {
                    let first = d.description.split(". ").next().unwrap_or_default();
                    first.trim_end_matches('.').to_string()
                })
                .unwrap_or_default()
            }),
        ],
    )?;
    let ctx = datafusion::prelude::SessionContext::new();
    let stream = ctx.read_batch(batch)?.execute_stream().await?;
    print_stream(stream, format, usize::MAX, &mut std::io::stdout()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::statement_complete;

    #[test]
    fn a_statement_ends_at_a_semicolon_outside_quotes_and_comments() {
        assert!(statement_complete("select 1;"));
        assert!(statement_complete("select 1\n  from t ;  \n"));
        assert!(statement_complete("select 'a;b';"));
        assert!(statement_complete("select 'it''s';"));
        assert!(statement_complete("select 1; -- done\n"));
        assert!(!statement_complete("select 1"));
        assert!(!statement_complete("select 'a;"));
        assert!(!statement_complete("select 1 -- ;\n"));
        assert!(!statement_complete("select 1 /* ; */"));
        assert!(!statement_complete("select \"odd;\" from t"));
        assert!(!statement_complete("select 1 /* unfinished ;"));
    }
}
