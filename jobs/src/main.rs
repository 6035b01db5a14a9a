//! `tessera`: the command-line interface. The command line itself lives in `cli/` (arguments,
//! dispatch, rendering); everything it runs is the `tessera_jobs` library.
//!
//! Exit codes come from the kind of the error ([`tessera_jobs::errors::ErrorKind`]): 0 success;
//! 1 a query, source, storage or write failed, or a job or data test failed; 2 wrong usage or an
//! invalid project file; 3 another command holds the warehouse lock; 4 a what-if's change
//! exceeds the limits set.

use std::process::ExitCode;

use clap::Parser;

mod cli;

use cli::{CLUSTER, Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.json_logs, cli.verbose);
    let _ = CLUSTER.set(cli.cluster.clone());
    // Worker threads get the main thread's usual 8 MiB of stack, not tokio's 2 MiB: planning,
    // optimising and (on a cluster) decoding a plan recurse once per plan node, and a deep
    // generated query must not overflow a worker where the main thread would not.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
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
            eprintln!("error: {e:#}");
            ExitCode::from(e.kind().exit_code())
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
