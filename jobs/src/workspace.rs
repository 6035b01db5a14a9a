//! A project opened for querying: its engine, with sources and warehouse tables registered.

use std::sync::Arc;

use crate::errors::{Context, Result};
use datafusion::common::TableReference;
use datafusion::sql::parser::{DFParser, Statement};
use tessera_engine::{Engine, RegisteredSource};

use crate::project::Project;

pub use crate::warehouse::{WarehouseTable, table_url};

/// An open project.
#[derive(Debug)]
pub struct Workspace {
    /// The project definition.
    pub project: Project,
    /// The engine running it.
    pub engine: Engine,
    /// The suppression list, read once (see [`crate::privacy`]).
    suppression: std::sync::Mutex<Option<Arc<tessera_engine::privacy::IdentifierSet>>>,
    /// Whether queries may read files and URLs by name (`read_parquet('x')`, `from 'x.csv'`):
    /// the local CLI, never `tessera serve`.
    read_files: bool,
}

impl Workspace {
    /// Builds the engine for `project`; nothing is registered yet.
    pub fn open(project: Project) -> Result<Self> {
        let engine = project.engine().context("cannot start the engine")?;
        Ok(Self {
            project,
            engine,
            suppression: std::sync::Mutex::new(None),
            read_files: false,
        })
    }

    /// Lets queries read files, folders, globs and URLs by name (`tessera sql`, the shell):
    /// with the user's own rights, on their machine. `tessera serve` never does.
    pub fn allow_file_reads(mut self) -> Self {
        self.read_files = true;
        self
    }

    /// The suppression list (read from the warehouse on first use; `is_suppressed` is
    /// registered in the engine with it).
    pub async fn suppression(&self) -> Result<Arc<tessera_engine::privacy::IdentifierSet>> {
        if let Some(set) = self.suppression.lock().expect("not poisoned").clone() {
            return Ok(set);
        }
        let set = Arc::new(crate::suppression::load(&self.engine, &self.project).await?);
        self.engine
            .ctx()
            .register_udf(set.clone().udf(crate::suppression::SUPPRESSED_FUNCTION));
        *self.suppression.lock().expect("not poisoned") = Some(set.clone());
        Ok(set)
    }

    /// Reads the suppression list again (after `tessera forget` in another process) and
    /// registers every source through it again: a long-lived reader (`tessera serve`) stops
    /// showing an erased person without a restart.
    pub async fn reload_suppression(&self) -> Result<usize> {
        *self.suppression.lock().expect("not poisoned") = None;
        self.suppression().await?;
        let mut sources = 0;
        for name in self.project.sources.keys() {
            match self.register_source(name).await {
                Ok(_) => sources += 1,
                Err(e) => tracing::warn!("source `{name}` is not available: {e:#}"),
            }
        }
        Ok(sources)
    }

    /// Registers one source by name.
    pub async fn register_source(&self, name: &str) -> Result<RegisteredSource> {
        let decl = self
            .project
            .sources
            .get(name)
            .with_context(|| format!("no source named `{name}`"))?;
        let registered = self.engine.register_source(&decl.spec).await?;
        // People erased with `tessera forget` stay out: the source is read through the
        // suppression list.
        let suppression = self.suppression().await?;
        if !suppression.is_empty()
            && let Some(keep) = crate::suppression::filter(&registered.schema, &decl.subject)
        {
            let ctx = self.engine.ctx();
            let df = ctx.table(name).await?;
            let predicate = ctx.parse_sql_expr(&keep, df.schema())?;
            let view = df.filter(predicate)?.into_view();
            ctx.deregister_table(name)?;
            ctx.register_table(name, view)?;
        }
        Ok(registered)
    }

    /// Lists the Delta tables under the warehouse: `<table>/` and `<schema>/<table>/`.
    pub async fn warehouse_tables(&self) -> Result<Vec<WarehouseTable>> {
        crate::warehouse::list(&self.engine, &self.project.warehouse).await
    }

    /// Registers a warehouse table under its name (creating its schema if needed).
    pub async fn register_warehouse_table(&self, table: &WarehouseTable) -> Result<u64> {
        crate::warehouse::register(&self.engine, table).await
    }

    /// Registers a warehouse table at the version `delta` was opened at.
    pub async fn register_opened_table(
        &self,
        table: &WarehouseTable,
        delta: &deltalake::DeltaTable,
    ) -> Result<u64> {
        crate::warehouse::register_opened(&self.engine, table, delta).await
    }

    /// Registers what `sql` needs: the sources and warehouse tables it names, or everything
    /// when it reads `information_schema` (so that catalog queries see every table).
    pub async fn prepare_for(&self, sql: &str) -> Result<Vec<Statement>> {
        let mut statements: Vec<Statement> = DFParser::parse_sql(sql)
            .context("cannot parse the SQL")?
            .into_iter()
            .collect();
        // at_version(...), at_time(...), table_history(...): read before planning.
        let files = self.read_files.then_some(self.project.dir.as_path());
        crate::time_travel::resolve(
            &self.engine,
            &self.project.warehouse,
            files,
            &mut statements,
        )
        .await?;
        let state = self.engine.ctx().state();
        let mut wanted: Vec<TableReference> = Vec::new();
        for statement in &statements {
            wanted.extend(state.resolve_table_references(statement)?);
        }
        let everything = wanted.iter().any(|t| {
            t.schema() == Some("information_schema") || t.table().starts_with("information_schema")
        });
        let warehouse = self.warehouse_tables().await?;
        for table in &warehouse {
            let named = wanted.iter().any(|w| match (&table.schema, w.schema()) {
                (Some(s), Some(ws)) => s == ws && table.table == w.table(),
                (None, None) => table.table == w.table(),
                _ => false,
            });
            if everything || named {
                self.register_warehouse_table(table)
                    .await
                    .with_context(|| format!("cannot open warehouse table {}", table.name))?;
            }
        }
        for name in self.project.sources.keys() {
            let named = wanted
                .iter()
                .any(|w| w.schema().is_none() && w.table() == name);
            if named {
                self.register_source(name).await?;
            } else if everything && let Err(e) = self.register_source(name).await {
                tracing::warn!("source `{name}` is not available: {e:#}");
            }
        }
        Ok(statements)
    }
}

/// Loads the project's jobs and their graph. Errors in job files are returned beside the
/// graph of the valid jobs.
pub async fn load_dag(ws: &Workspace) -> Result<(crate::dag::Dag, Vec<crate::job::JobError>)> {
    use crate::dag::{Dag, Input};
    use crate::job::{JobError, discover_with};
    let (mut jobs, mut errors) = discover_with(&ws.project.dir, &ws.project.jobs);
    let (audiences, audience_errors) = crate::audience::audience_jobs(&ws.project.audiences);
    errors.extend(audience_errors);
    for job in audiences {
        if let Some(file) = jobs.iter().find(|j| j.name == job.name) {
            errors.push(JobError {
                path: job.path.clone(),
                line: None,
                message: format!(
                    "audience `{}` is also defined by {}",
                    job.name,
                    file.path.display()
                ),
            });
        } else {
            jobs.push(job);
        }
    }
    let warehouse: Vec<String> = ws
        .warehouse_tables()
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    let sources: Vec<String> = ws.project.sources.keys().cloned().collect();
    let (dag, more) = Dag::build(jobs, |name| {
        if sources.iter().any(|s| s == name) {
            Some(Input::Source(name.to_string()))
        } else if warehouse.iter().any(|w| w == name) {
            Some(Input::Warehouse(name.to_string()))
        } else {
            None
        }
    });
    errors.extend(more);
    Ok((dag, errors))
}
