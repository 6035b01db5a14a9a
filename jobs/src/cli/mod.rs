//! The command line: arguments (`args`), dispatch of each command to the library (this
//! module), and rendering (`jobs` for the pipeline's progress, `shell`, `tables`, `data`).

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tessera_engine::demo::{self, DemoOptions};
use tessera_engine::export::ExportFormat;
use tessera_engine::sql::ident as quote_ident;
use tessera_engine::storage::resolve_location;
use tessera_engine::{SourceFormat, WriteMode};
use tessera_jobs::bail;
use tessera_jobs::demo_project_file;
use tessera_jobs::errors::{Context, ErrorKind, Result};
use tessera_jobs::output::{OutputFormat, print_stream};
use tessera_jobs::project::{PROJECT_FILE, Project};
use tessera_jobs::workspace::Workspace;

mod args;
mod commands;
mod data;
mod jobs;
mod shell;
mod tables;

pub(crate) use args::*;
use commands::*;
use data::*;
use shell::*;
use tables::*;

/// `--cluster` / `TESSERA_CLUSTER`, applied to every project this process loads.
pub(crate) static CLUSTER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// How long `forget`, `retention` and `write` wait for a run holding the warehouse lock.
pub(crate) const WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The warehouse lock for a command that writes the warehouse (every one does, not only
/// `run`: an erasure purging files while a run commits would race it).
pub(crate) async fn writer_lock(
    ws: &Workspace,
    command: &str,
) -> Result<tessera_jobs::runner::RunLock> {
    let quick =
        tessera_jobs::runner::RunLock::acquire(ws, command, std::time::Duration::ZERO).await;
    match quick {
        Ok(lock) => Ok(lock),
        Err(e) if e.kind() == ErrorKind::Busy => {
            eprintln!(
                "waiting for the warehouse lock ({e}), up to {}s",
                WRITER_WAIT.as_secs()
            );
            tessera_jobs::runner::RunLock::acquire(ws, command, WRITER_WAIT).await
        }
        Err(e) => Err(e),
    }
}

pub(crate) async fn run(cli: Cli) -> Result<()> {
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
            let args = tessera_jobs::pipeline::RunArgs {
                select,
                full_refresh,
                concurrency,
                wait: std::time::Duration::from_secs(wait),
                report: !no_report,
            };
            jobs::run(&ws, &args, json).await
        }
        Command::Plan(args) => plan_command(&cli.project, args).await,
        Command::Compile {
            select,
            full_refresh,
        } => {
            let ws = Workspace::open(load_project(&cli.project)?)?;
            jobs::compile(&ws, &select, full_refresh).await
        }
        Command::Test { select, unit } => {
            let ws = Workspace::open(load_project(&cli.project)?)?;
            jobs::test(&ws, &select, unit).await
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
            jobs::ls(&ws, &select).await
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

pub(crate) fn load_project(dir: &Path) -> Result<Project> {
    let mut project = Project::load(dir)?;
    if let Some(Some(cluster)) = CLUSTER.get() {
        project.engine.cluster = match cluster.trim() {
            "" | "local" => None,
            url => Some(tessera_engine::cluster::ClusterAddress::parse(url)?),
        };
    }
    Ok(project)
}
