//! `tessera serve`: the project's tables and Tessera's SQL functions over the Postgres wire
//! protocol, for `psql`, BI tools (Metabase, Superset, Grafana, DBeaver) and drivers
//! (`psycopg`, JDBC).
//!
//! The protocol, the `pg_catalog` schema BI tools read on connect, and the SQL dialect shims
//! come from `datafusion-postgres`; Tessera adds what a shared data endpoint needs:
//!
//! - every source (read through the suppression list, see [`crate::privacy`]), every warehouse
//!   table, the project's view jobs, and time travel (`at_version`, `at_time`,
//!   `table_history`), kept fresh: tables a later `tessera run` rewrites are re-read;
//! - read-only unless `--allow-writes`, enforced on the statement and on its logical plan:
//!   statements other than queries, `EXPLAIN`, `SHOW`, `SET` and transaction control get
//!   SQLSTATE 25006, and so does any plan holding a write (DML, COPY, DDL such as `SELECT
//!   INTO`) anywhere: inside `EXPLAIN ANALYZE`, a prepared statement, a subquery. The plan
//!   check runs twice: before execution (the error the client sees) and as an analyzer rule
//!   of the server's session (every plan it executes, whatever path planned it). `SET` of an
//!   engine option (any dotted name, however quoted or escaped) is refused: the session is
//!   shared by every client;
//! - SCRAM-SHA-256 password authentication when `TESSERA_SERVE_PASSWORD` is set, TLS with
//!   `--tls-cert`/`--tls-key`, 127.0.0.1 by default (another address needs a password);
//! - a statement timeout and a result row limit, enforced while rows are produced (an
//!   execution-plan node at the root of every plan), so one runaway query cannot hold the
//!   server; a failed query or a client gone mid-result leaves the server serving.

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use crate::bail;
use crate::errors::{Context, Result};
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::config::ConfigOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext as DfTask};
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{ObjectName, Set, Statement};
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use datafusion_postgres::pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use datafusion_postgres::pgwire::api::cancel::DefaultCancelHandler;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ConnectionManager, ErrorHandler, PgWireServerHandlers,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::pgwire::tokio::process_socket;
use datafusion_postgres::pgwire::tokio::tokio_rustls::TlsAcceptor;
use datafusion_postgres::pgwire::tokio::tokio_rustls::rustls;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::{Sink, Stream, StreamExt};
use tokio::net::TcpListener;

use crate::workspace::Workspace;

/// The environment variable holding the password clients must give (SCRAM-SHA-256).
pub const PASSWORD_ENV: &str = "TESSERA_SERVE_PASSWORD";

/// How `tessera serve` listens and what it allows.
#[derive(Clone)]
pub struct ServeOptions {
    /// Address to bind (127.0.0.1 by default).
    pub host: String,
    /// Port (0 picks a free one; the address is printed).
    pub port: u16,
    /// The user name clients log in as when a password is set.
    pub user: String,
    /// The password (from [`PASSWORD_ENV`]); `None` accepts any user without one.
    pub password: Option<String>,
    /// TLS certificate chain and private key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Let statements other than queries through (DDL and DML on the server's session).
    pub allow_writes: bool,
    /// Longest time one statement may run.
    pub statement_timeout: Option<Duration>,
    /// Most rows one result may hold.
    pub max_rows: Option<usize>,
    /// How often tables rewritten by runs are re-read.
    pub refresh: Duration,
    /// Most clients logged in at once (0: no limit). A socket that has not logged in does
    /// not count: it has [`ServeOptions::login_timeout`] to do so.
    pub max_connections: usize,
    /// Most memory one query may hold (hash tables, sort buffers) before it fails (or, for
    /// operators that can, spills); `None`: only the engine's `memory_limit` applies.
    pub query_memory: Option<usize>,
    /// Time a new socket has to complete its login (TLS, startup, password).
    pub login_timeout: Duration,
    /// Serve without TLS on an address other than loopback (passwords and rows in clear).
    pub insecure_plaintext: bool,
}

/// Most sockets in the middle of their login at once (each is a small task until its
/// [`ServeOptions::login_timeout`]); beyond it new sockets are closed at once.
const MAX_PENDING_LOGINS: usize = 1024;

impl Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("tls", &self.tls)
            .field("allow_writes", &self.allow_writes)
            .field("statement_timeout", &self.statement_timeout)
            .field("max_rows", &self.max_rows)
            .field("refresh", &self.refresh)
            .field("max_connections", &self.max_connections)
            .field("query_memory", &self.query_memory)
            .field("login_timeout", &self.login_timeout)
            .field("insecure_plaintext", &self.insecure_plaintext)
            .finish()
    }
}

/// Starts the server and serves until Ctrl-C or SIGTERM.
pub async fn serve(ws: Arc<Workspace>, options: ServeOptions) -> Result<()> {
    let loopback = options.host == "localhost"
        || options
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback && options.password.is_none() {
        bail!(
            "refusing to serve customer data on {} without a password: set {PASSWORD_ENV} (and --tls-cert/--tls-key), or bind to 127.0.0.1",
            options.host
        );
    }
    if !loopback && options.tls.is_none() && !options.insecure_plaintext {
        bail!(
            "refusing to serve customer data on {} without TLS: the password and every row would cross the network in clear; give --tls-cert and --tls-key (or --insecure-plaintext on a network that is already encrypted)",
            options.host
        );
    }
    let tls = match &options.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };

    let mut catalog = Catalog::default();
    let summary = catalog.load(&ws).await?;
    let ctx = Arc::new(serve_context(&ws, &options)?);
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(TesseraHook {
            ws: ws.clone(),
            allow_writes: options.allow_writes,
        }),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    let connections = Arc::new(ConnectionManager::new());
    let handlers = Arc::new(Handlers {
        service: Arc::new(DfSessionService::new_with_hooks(ctx, hooks)),
        password: options.password.as_deref().map(|p| {
            let salt: [u8; 16] = rand::random();
            Arc::new(PasswordSource {
                user: options.user.clone(),
                salted: gen_salted_password(p, &salt, SCRAM_ITERATIONS),
                salt: salt.to_vec(),
            })
        }),
        connections: connections.clone(),
        cancel: Arc::new(DefaultCancelHandler::new(connections)),
        // With TLS, SCRAM-SHA-256-PLUS binds the login to the TLS channel (libpq uses it).
        certificate: match &options.tls {
            Some((cert, _)) => Some(std::fs::read(cert)?),
            None => None,
        },
    });

    let listener = TcpListener::bind((options.host.as_str(), options.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", options.host, options.port))?;
    let address = listener.local_addr()?;
    println!(
        "tessera serve: {summary} on postgres://{}@{address}/tessera ({}{}, statement timeout {}, row limit {}, query memory {})",
        options.user,
        if options.allow_writes {
            "writes allowed"
        } else {
            "read-only"
        },
        match (&options.password, &tls) {
            (Some(_), Some(_)) => ", password, TLS",
            (Some(_), None) => ", password",
            (None, Some(_)) => ", TLS, no password",
            (None, None) => ", no password",
        },
        options
            .statement_timeout
            .map_or("none".to_string(), |d| format!("{}s", d.as_secs_f64())),
        options
            .max_rows
            .map_or("none".to_string(), |n| n.to_string()),
        options
            .query_memory
            .map_or("no limit".to_string(), |n| format!(
                "{:.0} MiB",
                n as f64 / 1024.0 / 1024.0
            )),
    );
    use std::io::Write;
    std::io::stdout().flush()?;

    let refresher = {
        let ws = ws.clone();
        let every = options.refresh;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match catalog.refresh(&ws).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("re-read {n} tables changed by a run"),
                    Err(e) => tracing::warn!("cannot refresh the tables: {e:#}"),
                }
            }
        })
    };
    let limiter = (options.max_connections > 0)
        .then(|| Arc::new(tokio::sync::Semaphore::new(options.max_connections)));
    let result = accept_loop(listener, tls, handlers, limiter, options.login_timeout).await;
    refresher.abort();
    result
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handlers: Arc<Handlers>,
    limiter: Option<Arc<tokio::sync::Semaphore>>,
    login_timeout: Duration,
) -> Result<()> {
    let shutdown = crate::schedule::shutdown_signal();
    tokio::pin!(shutdown);
    let pending = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_LOGINS));
    loop {
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => {
                eprintln!("tessera serve: stopping");
                return Ok(());
            }
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!("cannot accept a connection: {e}");
                    continue;
                }
            },
        };
        let Ok(pending_login) = pending.clone().try_acquire_owned() else {
            tracing::warn!("closing {peer}: {MAX_PENDING_LOGINS} sockets are already logging in");
            continue;
        };
        let session = Arc::new(SessionSlot {
            limiter: limiter.clone(),
            permit: std::sync::Mutex::new(None),
            logged_in: tokio::sync::Notify::new(),
        });
        let tls = tls.clone();
        let handlers = ConnectionHandlers {
            shared: handlers.clone(),
            session: session.clone(),
        };
        tokio::spawn(async move {
            tracing::debug!("client connected from {peer}");
            let connection = process_socket(socket, tls, handlers);
            tokio::pin!(connection);
            // Until the login completes the socket holds a pending slot, and only for
            // `login_timeout`: idle or slow sockets cannot starve real clients.
            let finished = tokio::select! {
                result = &mut connection => Some(result),
                login = tokio::time::timeout(login_timeout, session.logged_in.notified()) => {
                    if login.is_err() {
                        tracing::info!(
                            "closing {peer}: no login within {}s",
                            login_timeout.as_secs_f64()
                        );
                        return;
                    }
                    None
                }
            };
            drop(pending_login);
            let result = match finished {
                Some(result) => result,
                None => connection.await,
            };
            if let Err(e) = result {
                tracing::info!("client {peer}: {e}");
            }
        });
    }
}

/// One connection's place among the logged-in sessions: taken when its startup message
/// arrives (refused with SQLSTATE 53300 past `--max-connections`), given back when it ends.
struct SessionSlot {
    limiter: Option<Arc<tokio::sync::Semaphore>>,
    permit: std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
    logged_in: tokio::sync::Notify,
}

impl SessionSlot {
    fn take(&self) -> PgWireResult<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let mut permit = self.permit.lock().unwrap_or_else(|e| e.into_inner());
        if permit.is_none() {
            *permit = Some(limiter.clone().try_acquire_owned().map_err(|_| {
                PgWireError::UserError(Box::new(ErrorInfo::new(
                    "FATAL".to_string(),
                    "53300".to_string(),
                    "sorry, too many clients already (tessera serve --max-connections)".to_string(),
                )))
            })?);
        }
        Ok(())
    }
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| crate::err!("cannot read the TLS certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| crate::err!("cannot read the TLS key {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(crate::errors::Error::other)
    .context("TLS setup")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(crate::errors::Error::other)
    .context("the TLS certificate and key do not go together")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The server's session: the workspace's (same catalog, functions, storage) with the
/// `pg_catalog` schema and the serving limits.
fn serve_context(ws: &Workspace, options: &ServeOptions) -> Result<SessionContext> {
    let mut state = SessionStateBuilder::new_from_existing(ws.engine.ctx().state())
        .with_physical_optimizer_rule(Arc::new(ServeLimits {
            timeout: options.statement_timeout,
            max_rows: options.max_rows,
            memory: options.query_memory,
        }));
    if !options.allow_writes {
        state = state.with_analyzer_rule(Arc::new(ReadOnlyPlans));
    }
    let state = state.build();
    let ctx = SessionContext::new_with_state(state);
    setup_pg_catalog(
        &ctx,
        "datafusion",
        Arc::new(datafusion_postgres::auth::AuthManager::new()),
    )
    .map_err(|e| crate::err!("cannot set up pg_catalog: {e}"))?;
    Ok(ctx)
}

/// What is registered, with the Delta version each warehouse table was read at.
#[derive(Debug, Default)]
struct Catalog {
    versions: HashMap<String, u64>,
    /// True during the first load (the suppression list was just read).
    loading: bool,
}

impl Catalog {
    /// Registers every source, warehouse table and view job; returns a one-line summary.
    async fn load(&mut self, ws: &Workspace) -> Result<String> {
        // Read once so `is_suppressed` exists before the server's session is derived.
        ws.suppression().await?;
        self.loading = true;
        let mut sources = 0;
        for name in ws.project.sources.keys() {
            match ws.register_source(name).await {
                Ok(_) => sources += 1,
                Err(e) => eprintln!("tessera serve: source `{name}` is not served: {e:#}"),
            }
        }
        self.refresh(ws).await?;
        self.loading = false;
        let views = register_views(ws).await;
        Ok(format!(
            "{} tables, {sources} sources, {views} views",
            self.versions.len()
        ))
    }

    /// Re-reads the warehouse tables whose latest version changed (and new ones); the view
    /// jobs are planned again when any did. Returns how many tables changed.
    async fn refresh(&mut self, ws: &Workspace) -> Result<usize> {
        let mut changed = 0;
        for table in ws.warehouse_tables().await? {
            let delta = match ws
                .engine
                .open_delta(&table.url, tessera_engine::TableVersion::Latest)
                .await
            {
                Ok(delta) => delta,
                Err(e) => {
                    tracing::warn!("table {} is not served: {e:#}", table.name);
                    continue;
                }
            };
            let version = delta.version().unwrap_or_default();
            if self.versions.get(&table.name) == Some(&version) {
                continue;
            }
            ws.register_opened_table(&table, &delta).await?;
            let first = self.versions.insert(table.name.clone(), version).is_none();
            changed += 1;
            // An erasure since: the sources are read through the new list at once.
            if table.name == crate::privacy::SUPPRESSION_TABLE && !(first && self.loading) {
                ws.reload_suppression().await?;
            }
        }
        if changed > 0 && !self.versions.is_empty() {
            register_views(ws).await;
        }
        Ok(changed)
    }
}

/// Plans the project's view jobs over their inputs; returns how many are served.
async fn register_views(ws: &Workspace) -> usize {
    match crate::runner::register_view_jobs(ws, |_| true).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("the view jobs are not served: {e:#}");
            0
        }
    }
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message,
    )))
}

/// Whether a statement only reads (or sets session state).
fn is_read_only(statement: &Statement) -> bool {
    // `EXPLAIN ANALYZE` (or `EXPLAIN (ANALYZE)`) runs what it explains.
    if let Statement::Explain { statement, .. } = statement {
        return is_read_only(statement);
    }
    matches!(
        statement,
        Statement::Query(_)
            | Statement::Explain { .. }
            | Statement::ExplainTable { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ShowCreate { .. }
            | Statement::Set(_)
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::Discard { .. }
            | Statement::Deallocate { .. }
    )
}

/// Whether a `SET` changes the engine's options: the session is shared by every client, so
/// that would be a write to the server (per-client settings such as `statement_timeout`,
/// `search_path` or the time zone are kept per connection). Decided on the parsed name, its
/// parts unquoted and unescaped: engine options are dotted (`datafusion.execution.…`), so any
/// dotted name is refused, as is one naming the engine.
fn changes_shared_config(statement: &Statement) -> bool {
    fn engine_option(name: &ObjectName) -> bool {
        let mut parts = Vec::new();
        for part in &name.0 {
            match part.as_ident() {
                Some(ident) => parts.push(ident.value.to_lowercase()),
                None => return true,
            }
        }
        let name = parts.join(".");
        name.contains('.') || name.starts_with("datafusion")
    }
    match statement {
        Statement::Set(Set::SingleAssignment { variable, .. }) => engine_option(variable),
        Statement::Set(Set::ParenthesizedAssignments { variables, .. }) => {
            variables.iter().any(engine_option)
        }
        Statement::Set(Set::MultipleAssignments { assignments }) => {
            assignments.iter().any(|a| engine_option(&a.name))
        }
        _ => false,
    }
}

/// Refuses a plan that writes anywhere in it: DML (also under `EXPLAIN ANALYZE`, in a prepared
/// statement's body, in a subquery), `COPY`, DDL (`CREATE`, `DROP`, `SELECT INTO`).
fn verify_read_only(plan: &LogicalPlan) -> datafusion::error::Result<()> {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(true)
        .verify_plan(plan)
}

/// The server session's last line of defence: every plan it executes, however planned (simple
/// or extended protocol, a prepared statement executed later), is checked by
/// [`verify_read_only`] before it runs.
#[derive(Debug)]
struct ReadOnlyPlans;

impl AnalyzerRule for ReadOnlyPlans {
    fn analyze(
        &self,
        plan: LogicalPlan,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<LogicalPlan> {
        verify_read_only(&plan).map_err(|e| {
            DataFusionError::Plan(format!(
                "tessera serve is read-only: {}",
                e.strip_backtrace()
            ))
        })?;
        Ok(plan)
    }

    fn name(&self) -> &str {
        "tessera_read_only"
    }
}

fn read_only_error(e: &DataFusionError) -> PgWireError {
    user_error(
        "25006",
        format!(
            "cannot execute: tessera serve is read-only ({}); tables change through `tessera run`",
            e.strip_backtrace()
        ),
    )
}

fn uses_time_travel(statement: &Statement) -> bool {
    let text = statement.to_string().to_ascii_lowercase();
    ["at_version", "at_time", "table_history"]
        .iter()
        .any(|f| text.contains(f))
}

/// Read-only guard and time travel, ahead of datafusion-postgres' own handling.
struct TesseraHook {
    ws: Arc<Workspace>,
    allow_writes: bool,
}

impl TesseraHook {
    fn check(&self, statement: &Statement) -> PgWireResult<()> {
        if !self.allow_writes && changes_shared_config(statement) {
            return Err(user_error(
                "25006",
                "cannot SET datafusion.* options: they would change the server's configuration for every client (start the server with --allow-writes to permit it)".into(),
            ));
        }
        if self.allow_writes || is_read_only(statement) {
            return Ok(());
        }
        let kind = statement.to_string();
        let kind: String = kind
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        Err(user_error(
            "25006",
            format!(
                "cannot execute {kind}: tessera serve is read-only (tables change through `tessera run`; start the server with --allow-writes for session-local objects)"
            ),
        ))
    }

    /// Plans the statement and refuses it when its plan writes anywhere (see
    /// [`verify_read_only`]). A statement DataFusion cannot plan as it is (one
    /// datafusion-postgres rewrites first) is left to it: the analyzer rule still checks the
    /// plan it executes.
    async fn check_plan(&self, statement: &Statement, ctx: &SessionContext) -> PgWireResult<()> {
        if self.allow_writes || matches!(statement, Statement::Set(_)) {
            return Ok(());
        }
        let planned = ctx
            .state()
            .statement_to_plan(DfStatement::Statement(Box::new(statement.clone())))
            .await;
        match planned {
            Ok(plan) => verify_read_only(&plan).map_err(|e| read_only_error(&e)),
            Err(_) => Ok(()),
        }
    }

    /// Plans a statement that reads past versions (registering what it reads).
    async fn plan_time_travel(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
    ) -> PgWireResult<LogicalPlan> {
        let mut statements = vec![DfStatement::Statement(Box::new(statement.clone()))];
        // No file reads by name here: a client reads the project's tables, not the server's disk.
        let registered = crate::time_travel::resolve(
            &self.ws.engine,
            &self.ws.project.warehouse,
            None,
            &mut statements,
        )
        .await
        .map_err(|e| user_error("42P01", format!("{e:#}")))?;
        let statement = statements.pop().expect("one statement");
        let plan = ctx.state().statement_to_plan(statement).await;
        // The plan holds the past versions it reads: their names can go (no catalog clutter).
        for name in registered {
            let _ = ctx.deregister_table(name.as_str());
        }
        plan.map_err(|e| PgWireError::ApiError(Box::new(e)))
    }
}

#[async_trait]
impl QueryHook for TesseraHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Err(e) = self.check(statement) {
            return Some(Err(e));
        }
        if !uses_time_travel(statement) {
            return self.check_plan(statement, ctx).await.err().map(Err);
        }
        let result = async {
            let plan = self.plan_time_travel(statement, ctx).await?;
            if !self.allow_writes {
                verify_read_only(&plan).map_err(|e| read_only_error(&e))?;
            }
            let df = ctx
                .execute_logical_plan(plan)
                .await
                .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            let format = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
            let response = encode_dataframe(df, &Format::UnifiedText, Some(format)).await?;
            Ok(Response::Query(response))
        }
        .await;
        Some(result)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if let Err(e) = self.check(statement) {
            return Some(Err(e));
        }
        if !uses_time_travel(statement) {
            return self.check_plan(statement, ctx).await.err().map(Err);
        }
        Some(
            self.plan_time_travel(statement, ctx)
                .await
                .and_then(|plan| {
                    if !self.allow_writes {
                        verify_read_only(&plan).map_err(|e| read_only_error(&e))?;
                    }
                    Ok(plan)
                }),
        )
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        None
    }
}

const SCRAM_ITERATIONS: usize = 4096;

/// The one user and password `tessera serve` accepts (SCRAM: only the salted password is kept).
#[derive(Debug)]
struct PasswordSource {
    user: String,
    salt: Vec<u8>,
    salted: Vec<u8>,
}

impl AuthSource for PasswordSource {
    // Written out (not `async fn` under `#[async_trait]`): the trait's `&LoginInfo` has an
    // elided inner lifetime that an edition-2024 `async fn` cannot name. Nothing is awaited.
    fn get_password<'life0, 'life1, 'async_trait>(
        &'life0 self,
        login: &'life1 LoginInfo<'_>,
    ) -> Pin<Box<dyn Future<Output = PgWireResult<Password>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let result = if login.user() == Some(self.user.as_str()) {
            Ok(Password::new(Some(self.salt.clone()), self.salted.clone()))
        } else {
            Err(PgWireError::InvalidPassword(
                login.user().unwrap_or_default().to_string(),
            ))
        };
        Box::pin(std::future::ready(result))
    }
}

/// Startup without authentication.
struct OpenStartup {
    connections: Arc<ConnectionManager>,
}

impl NoopStartupHandler for OpenStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }
}

/// Startup: open, or SCRAM-SHA-256 (one handler per connection: it holds the exchange's
/// state), counting the connection among the logged-in sessions.
struct Startup {
    kind: StartupKind,
    session: Arc<SessionSlot>,
}

enum StartupKind {
    Open(OpenStartup),
    Password(Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>),
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if matches!(message, PgWireFrontendMessage::Startup(_)) {
            self.session.take()?;
        }
        match &self.kind {
            StartupKind::Open(h) => h.on_startup(client, message).await?,
            StartupKind::Password(h) => h.on_startup(client, message).await?,
        }
        if matches!(
            client.state(),
            datafusion_postgres::pgwire::api::PgWireConnectionState::ReadyForQuery
        ) {
            self.session.logged_in.notify_one();
        }
        Ok(())
    }
}

struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        tracing::info!("query failed: {error}");
    }
}

struct Handlers {
    service: Arc<DfSessionService>,
    password: Option<Arc<PasswordSource>>,
    connections: Arc<ConnectionManager>,
    cancel: Arc<DefaultCancelHandler>,
    certificate: Option<Vec<u8>>,
}

/// The server's handlers as one connection sees them (its own session slot).
struct ConnectionHandlers {
    shared: Arc<Handlers>,
    session: Arc<SessionSlot>,
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(
        &self,
    ) -> Arc<impl datafusion_postgres::pgwire::api::query::SimpleQueryHandler> {
        self.shared.service.clone()
    }

    fn extended_query_handler(
        &self,
    ) -> Arc<impl datafusion_postgres::pgwire::api::query::ExtendedQueryHandler> {
        self.shared.service.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        let shared = &self.shared;
        let kind = match &shared.password {
            None => StartupKind::Open(OpenStartup {
                connections: shared.connections.clone(),
            }),
            Some(source) => {
                let mut scram = ScramAuth::new(source.clone());
                scram.set_iterations(SCRAM_ITERATIONS);
                if let Some(pem) = &shared.certificate
                    && let Err(e) = scram.configure_certificate(pem)
                {
                    tracing::warn!("SCRAM channel binding is off: {e}");
                }
                StartupKind::Password(Box::new(
                    SASLAuthStartupHandler::new(
                        Arc::new(DefaultServerParameterProvider::default()),
                    )
                    .with_scram(scram)
                    .with_connection_manager(shared.connections.clone()),
                ))
            }
        };
        Arc::new(Startup {
            kind,
            session: self.session.clone(),
        })
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }

    fn cancel_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::cancel::CancelHandler> {
        self.shared.cancel.clone()
    }
}

/// Puts [`LimitsExec`] at the root of every plan the server runs.
#[derive(Debug)]
struct ServeLimits {
    timeout: Option<Duration>,
    max_rows: Option<usize>,
    memory: Option<usize>,
}

impl PhysicalOptimizerRule for ServeLimits {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let already = (plan.as_ref() as &dyn Any).downcast_ref::<LimitsExec>();
        let limits = self.timeout.is_some() || self.max_rows.is_some() || self.memory.is_some();
        if !limits || already.is_some() {
            return Ok(plan);
        }
        // One output stream, so the row count is the result's.
        let input: Arc<dyn ExecutionPlan> = if plan.output_partitioning().partition_count() > 1 {
            Arc::new(CoalescePartitionsExec::new(plan))
        } else {
            plan
        };
        Ok(Arc::new(LimitsExec::new(
            input,
            self.timeout,
            self.max_rows,
            self.memory,
        )))
    }

    fn name(&self) -> &str {
        "tessera_serve_limits"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Fails the query once it has run longer than the statement timeout or produced more rows
/// than the limit (dropping the rest of the plan, which stops its work), and runs it with its
/// own memory budget ([`QueryMemory`]).
#[derive(Debug)]
struct LimitsExec {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    timeout: Option<Duration>,
    max_rows: Option<usize>,
    memory: Option<usize>,
}

impl LimitsExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        timeout: Option<Duration>,
        max_rows: Option<usize>,
        memory: Option<usize>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::clone(input.properties()));
        Self {
            input,
            properties,
            timeout,
            max_rows,
            memory,
        }
    }
}

/// One query's memory budget: every reservation its operators make is counted here against
/// `limit` and passed on to the server's pool (so `[engine] memory_limit` still bounds all
/// queries together). Past the budget, operators that can spill do; the others (a hash
/// join's build side) fail the query with "Resources exhausted", and only that query.
#[derive(Debug)]
struct QueryMemory {
    parent: Arc<dyn datafusion::execution::memory_pool::MemoryPool>,
    limit: usize,
    used: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Display for QueryMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tessera serve query memory ({} bytes)", self.limit)
    }
}

impl datafusion::execution::memory_pool::MemoryPool for QueryMemory {
    fn name(&self) -> &str {
        "tessera_query_memory"
    }

    fn register(&self, consumer: &datafusion::execution::memory_pool::MemoryConsumer) {
        self.parent.register(consumer)
    }

    fn unregister(&self, consumer: &datafusion::execution::memory_pool::MemoryConsumer) {
        self.parent.unregister(consumer)
    }

    fn grow(
        &self,
        reservation: &datafusion::execution::memory_pool::MemoryReservation,
        additional: usize,
    ) {
        self.used
            .fetch_add(additional, std::sync::atomic::Ordering::Relaxed);
        self.parent.grow(reservation, additional)
    }

    fn shrink(
        &self,
        reservation: &datafusion::execution::memory_pool::MemoryReservation,
        shrink: usize,
    ) {
        self.used
            .fetch_sub(shrink, std::sync::atomic::Ordering::Relaxed);
        self.parent.shrink(reservation, shrink)
    }

    fn try_grow(
        &self,
        reservation: &datafusion::execution::memory_pool::MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        use std::sync::atomic::Ordering;
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used + additional <= self.limit).then_some(used + additional)
            })
            .map_err(|used| {
                DataFusionError::ResourcesExhausted(format!(
                    "the query needs more than {} MiB of memory, the server's limit per query (tessera serve --query-memory); {} MiB held, {} more asked by {}",
                    self.limit / 1024 / 1024,
                    used / 1024 / 1024,
                    additional.div_ceil(1024 * 1024),
                    reservation.consumer().name()
                ))
            })?;
        if let Err(e) = self.parent.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn memory_limit(&self) -> datafusion::execution::memory_pool::MemoryLimit {
        datafusion::execution::memory_pool::MemoryLimit::Finite(self.limit)
    }
}

impl DisplayAs for LimitsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TesseraServeLimitsExec: timeout={:?}, max_rows={:?}",
            self.timeout, self.max_rows
        )
    }
}

impl ExecutionPlan for LimitsExec {
    fn name(&self) -> &str {
        "TesseraServeLimitsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> datafusion::error::Result<TreeNodeRecursion>,
    ) -> datafusion::error::Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(
                "TesseraServeLimitsExec has one input".into(),
            ));
        }
        Ok(Arc::new(LimitsExec::new(
            children.swap_remove(0),
            self.timeout,
            self.max_rows,
            self.memory,
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<DfTask>,
    ) -> datafusion::error::Result<SendableRecordBatchStream> {
        let context = match self.memory {
            Some(limit) => {
                let mut runtime =
                    datafusion::execution::runtime_env::RuntimeEnv::clone(&context.runtime_env());
                runtime.memory_pool = Arc::new(QueryMemory {
                    parent: runtime.memory_pool.clone(),
                    limit,
                    used: Default::default(),
                });
                Arc::new(DfTask::new(
                    context.task_id(),
                    context.session_id(),
                    context.session_config().clone(),
                    context.scalar_functions().clone(),
                    context.higher_order_functions().clone(),
                    context.aggregate_functions().clone(),
                    context.window_functions().clone(),
                    Arc::new(runtime),
                ))
            }
            None => context,
        };
        let inner = self.input.execute(partition, context)?;
        Ok(Box::pin(LimitsStream {
            deadline: self.timeout.map(|t| Box::pin(tokio::time::sleep(t))),
            timeout: self.timeout.unwrap_or_default(),
            max_rows: self.max_rows,
            rows: 0,
            done: false,
            inner,
        }))
    }
}

struct LimitsStream {
    inner: SendableRecordBatchStream,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
    max_rows: Option<usize>,
    rows: usize,
    done: bool,
}

impl Stream for LimitsStream {
    type Item = datafusion::error::Result<datafusion::arrow::array::RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            self.done = true;
            let seconds = self.timeout.as_secs_f64();
            return Poll::Ready(Some(Err(DataFusionError::Execution(format!(
                "canceling statement due to statement timeout ({seconds}s; tessera serve --statement-timeout)"
            )))));
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(batch))) => {
                self.rows += batch.num_rows();
                if let Some(max) = self.max_rows
                    && self.rows > max
                {
                    self.done = true;
                    return Poll::Ready(Some(Err(DataFusionError::Execution(format!(
                        "the result has more than {max} rows, the server's limit (tessera serve --max-rows); add a LIMIT or aggregate"
                    )))));
                }
                Poll::Ready(Some(Ok(batch)))
            }
            other => other,
        }
    }
}

impl RecordBatchStream for LimitsStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

/// The address a `tessera serve` line printed, for tests and scripts.
pub fn parse_address(line: &str) -> Option<SocketAddr> {
    let rest = line.split('@').nth(1)?;
    rest.split('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn statement(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap()
    }

    #[test]
    fn only_reads_pass_the_read_only_guard() {
        for sql in [
            "select 1",
            "with a as (select 1) select * from a",
            "explain select 1",
            "show timezone",
            "set statement_timeout = 1000",
            "begin",
            "commit",
        ] {
            assert!(is_read_only(&statement(sql)), "{sql}");
        }
        for sql in [
            "insert into t values (1)",
            "create table t (a int)",
            "create view v as select 1",
            "drop table profiles.customers",
            "delete from t",
            "update t set a = 1",
            "copy t from '/etc/passwd'",
            "explain analyze insert into t values (1)",
            "explain (analyze) insert into t select * from t",
            "explain analyze copy (select 1 as a) to '/tmp/x.csv'",
        ] {
            assert!(!is_read_only(&statement(sql)), "{sql}");
        }
    }

    #[test]
    fn engine_options_are_not_set_by_clients() {
        assert!(changes_shared_config(&statement(
            "set datafusion.execution.target_partitions = 1"
        )));
        assert!(!changes_shared_config(&statement(
            "set statement_timeout = 1000"
        )));
        assert!(!changes_shared_config(&statement("select 'datafusion.x'")));
        // However the name is quoted or escaped (issue 25: the substring check let these by).
        for sql in [
            r#"set "datafusion".execution.batch_size = 1"#,
            r#"set "datafusion.execution.batch_size" = 1"#,
            r#"set DataFusion.Execution.Batch_Size = 1"#,
            r#"set U&"d\0061tafusion".execution.batch_size = 1"#,
            "set datafusion = 1",
        ] {
            let parsed = Parser::parse_sql(&PostgreSqlDialect {}, sql);
            if let Ok(mut s) = parsed {
                assert!(changes_shared_config(&s.pop().unwrap()), "{sql}");
            }
        }
        assert!(!changes_shared_config(&statement(
            "set search_path = public"
        )));
    }

    #[test]
    fn the_printed_address_is_read_back() {
        let line = "tessera serve: 3 tables, 1 sources, 0 views on postgres://tessera@127.0.0.1:54321/tessera (read-only)";
        assert_eq!(
            parse_address(line),
            Some("127.0.0.1:54321".parse().unwrap())
        );
    }
}
