//! Benchmarks whose figures go into BENCHMARKS.md. Each measures Tessera and a baseline in the
//! same run, on the same data and machine.
//!
//! ```sh
//! cargo run --release --bin tessera-bench -- demo --people 1000000
//! cargo run --release --bin tessera-bench -- scan --people 1000000
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
    }
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
        "import pyarrow.dataset as ds\n\
         t = ds.dataset('{}', format='parquet', partitioning='hive').to_table(columns=['currency','channel','amount','items'])\n\
         r = t.group_by(['currency','channel']).aggregate([('amount','count'),('amount','sum'),('items','mean')])\n",
        project.join("data/pos/orders").display()
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let t_pyarrow = best_of(runs, || {
        let out = Command::new(&python).args(["-c", &script]).output()?;
        if !out.status.success() {
            bail!("{}", String::from_utf8_lossy(&out.stderr));
        }
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
    println!("  ratio tessera/pyarrow time: {:.2}", t_tessera / t_pyarrow);
    Ok(())
}
