//! One function per command that is more than a call into the library.

use super::*;

/// `tessera sql`: a query, a file, stdin or the shell; in a project or over files.
pub(crate) async fn sql_command(project: &Path, args: SqlArgs) -> Result<()> {
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
pub(crate) async fn serve_command(project: &Path, args: ServeArgs) -> Result<()> {
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
pub(crate) async fn evaluate_command(project: &Path, args: EvaluateArgs) -> Result<()> {
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
pub(crate) async fn forget_command(project: &Path, args: ForgetArgs) -> Result<()> {
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
        return Err(tessera_jobs::dag::BadSelection(
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
pub(crate) async fn export_subject_command(project: &Path, args: ExportSubjectArgs) -> Result<()> {
    let ExportSubjectArgs { who, out } = args;
    let ws = Workspace::open(load_project(project)?)?;
    let request = who.request();
    if request.is_empty() {
        return Err(tessera_jobs::dag::BadSelection(
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
pub(crate) async fn retention_command(project: &Path) -> Result<()> {
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
pub(crate) async fn plan_command(project: &Path, args: PlanArgs) -> Result<()> {
    if !args.impact {
        let ws = Workspace::open(load_project(project)?)?;
        return super::jobs::plan(&ws, &args.select, args.full_refresh).await;
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

/// `tessera cluster scheduler|executor`: runs until stopped.
pub(crate) async fn cluster_command(project: &Path, command: ClusterCommand) -> Result<()> {
    use tessera_engine::cluster::{self, ClusterAddress, ExecutorOptions, SchedulerOptions};
    // The project is optional: it only lends its `[storage]` settings.
    let storage = if project.join(PROJECT_FILE).exists() {
        tessera_engine::Storage::new(load_project(project)?.storage)
    } else {
        tessera_engine::Storage::default()
    };
    match command {
        ClusterCommand::Scheduler {
            bind,
            keep_results,
            executor_timeout,
        } => {
            eprintln!("tessera cluster scheduler listening on {bind}");
            cluster::run_scheduler(
                SchedulerOptions {
                    bind,
                    keep_results,
                    executor_timeout,
                },
                storage,
            )
            .await?;
        }
        ClusterCommand::Executor {
            scheduler,
            bind,
            grpc_port,
            concurrent_tasks,
            memory_limit,
            work_dir,
            stop_timeout,
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
            let stopped = cluster::run_executor(
                ExecutorOptions {
                    scheduler,
                    bind,
                    grpc_port,
                    concurrent_tasks,
                    work_dir,
                    memory_limit,
                    stop_timeout,
                },
                storage,
            )
            .await?;
            if stopped == cluster::Stopped::TimedOut {
                // Leaving now: dropping the runtime would wait for the tasks still running.
                eprintln!(
                    "tessera cluster executor: asked to stop and still running tasks (after \
                     --stop-timeout {}, or asked twice); exiting, their work runs again on the \
                     other executors",
                    humantime::format_duration(stop_timeout)
                );
                std::process::exit(0);
            }
        }
    }
    Ok(())
}

pub(crate) async fn init(
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
