//! Privacy by design: erasure that follows the identity graph and stays erased (`tessera
//! forget`), subject access (`tessera export-subject`), the suppression list every source is
//! read through, retention rules and pseudonymised outputs (`[privacy]` in `tessera.toml`).
//!
//! **How a table names a person.** Columns say it by their names: `customer_id` and
//! `previous_customer_id` (Tessera customer ids), `record_key`, `record_key_a`, `*_record_key`
//! (source records), `web_user_id`, a loyalty card's number (`loyalty_number`, `loyalty_card`...,
//! compared in upper case with letters and digits only), and any text column whose name holds
//! `email` or `phone` (compared in canonical email / E.164 form). A job adds others with `@subject: kind: SQL`
//! (e.g. `@subject: record_key: 'pos_customers:' || pos_customer_id`), a source with
//! `subject = ["kind: SQL"]`. A row is the person's when any of these holds one of their
//! customer ids, record keys, or identifiers no one else holds: an identifier other customers'
//! records hold too (a family mailbox) is not used (it does not erase the other members' rows),
//! and a row of a record the identity graph has not seen yet (staged after the last identity
//! run) is still found by the person's own email, phone or card.
//!
//! **Erasure.** The request's identifiers lead to records in `unify.identity_records`, those
//! to customers in `unify.record_customer`, those to all their records and identifiers. Every
//! row naming them is deleted from every Delta table of the warehouse (one Delta `DELETE` per
//! table, its predicate a function over an in-memory set: no identifier is written into a
//! commit), then each table's history is purged: a vacuum in full mode with **no retention
//! period** (the override of Delta's 7-day default is deliberate: older versions hold the
//! person) and a checkpoint after which older commits are deleted. Time travel before the
//! erasure is no longer possible; the SCD2 `_history` tables keep everyone else's history.
//! Tracked tables (`_changes`) get a `remove` row keeping only the key and hashed columns,
//! so reverse-ETL syncs delete the person at the platform. The person's identifiers go into
//! `privacy.suppression` as salted SHA-256 hashes; sources are read through it on every later
//! run, so a source that still holds the person does not bring them back. Sources are not
//! Tessera's to change: the report lists those still holding the person, with their paths.
//! Every request is written to `privacy.audit_log` (hashes and counts, no identifiers).
//!
//! **The salt** comes from the environment variable named by `[privacy] salt_env`
//! (`TESSERA_SUPPRESSION_SALT` by default) or, when it is unset, from a random salt written
//! once at `<warehouse>/_tessera/suppression_salt`. Losing it makes the list useless, so
//! keep it with the warehouse's backups; the list records a fingerprint of its salt and
//! refuses to run with another one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use crate::errors::{Context, Result};
use crate::{bail, err};
use chrono::Utc;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::prelude::{Expr, SessionContext, col, lit};
use object_store::ObjectStoreExt as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tessera_engine::WriteMode;
use tessera_engine::privacy::{IdentifierKind, IdentifierSet};
use tessera_engine::storage::object_path;

use crate::explain::rows;
use crate::job::Materialized;
use crate::workspace::load_dag;
use crate::workspace::{WarehouseTable, Workspace};

/// The audit log of privacy requests.
pub const AUDIT_TABLE: &str = "privacy.audit_log";
const SUBJECT_FUNCTION: &str = "subject_match";
/// (identity column, value) pairs of the person found in `identity_guard_hits`.
const GUARDED_FUNCTION: &str = "subject_guarded_value";

pub use crate::project::{PrivacyConfig, RetentionRule, parse_keep};
use crate::suppression::salt_id;
pub use crate::suppression::{
    SUPPRESSED_FUNCTION, SUPPRESSION_TABLE, load as load_suppression, predicate_sql,
    subject_columns,
};

use tessera_engine::sql::{ident as quote, literal as sql_literal};

fn parse_predicate(ctx: &SessionContext, schema: &Schema, sql: &str) -> Result<Expr> {
    let df_schema = DFSchema::try_from(schema.clone())?;
    Ok(ctx.parse_sql_expr(sql, &df_schema)?)
}

/// The columns a file of requests may have.
const REQUEST_COLUMNS: [&str; 4] = ["email", "phone", "customer_id", "loyalty_number"];

/// The identifier columns of `unify.identity_records` a person is found and suppressed by (those
/// the table has: a project's own identity SQL may leave some out).
const RECORD_IDENTIFIERS: [(IdentifierKind, &str); 4] = [
    (IdentifierKind::Email, "email"),
    (IdentifierKind::Phone, "phone"),
    (IdentifierKind::WebUserId, "web_user_id"),
    (IdentifierKind::LoyaltyNumber, "loyalty_number"),
];

/// One erasure or access request: identifiers of one person.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SubjectRequest {
    /// Email addresses.
    pub emails: Vec<String>,
    /// Phone numbers, international form.
    pub phones: Vec<String>,
    /// Tessera customer ids.
    pub customer_ids: Vec<String>,
    /// Loyalty card numbers, as typed (spaces, dashes and case do not matter).
    pub loyalty_numbers: Vec<String>,
}

impl SubjectRequest {
    /// True when no identifier is given.
    pub fn is_empty(&self) -> bool {
        self.emails.is_empty()
            && self.phones.is_empty()
            && self.customer_ids.is_empty()
            && self.loyalty_numbers.is_empty()
    }

    /// Requests from a CSV file with a header naming some of `email`, `phone`,
    /// `customer_id`, `loyalty_number`: one person per row.
    pub fn from_csv(text: &str, path: &str) -> Result<Vec<SubjectRequest>> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .with_context(|| format!("{path}: cannot read the header"))?
            .iter()
            .map(str::to_ascii_lowercase)
            .collect();
        if header.iter().all(String::is_empty) {
            bail!("{path}: empty file");
        }
        for h in &header {
            if !REQUEST_COLUMNS.contains(&h.as_str()) {
                bail!(
                    "{path}: unknown column `{h}` (expected {})",
                    REQUEST_COLUMNS.join(", ")
                );
            }
        }
        let mut out = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| match e.position() {
                Some(at) => err!("{path}: line {}: {e}", at.line()),
                None => err!("{path}: {e}"),
            })?;
            let line = record.position().map_or(0, |p| p.line());
            let mut r = SubjectRequest::default();
            for (h, c) in header.iter().zip(record.iter()) {
                if c.is_empty() {
                    continue;
                }
                match h.as_str() {
                    "email" => r.emails.push(c.to_string()),
                    "phone" => r.phones.push(c.to_string()),
                    "loyalty_number" => r.loyalty_numbers.push(c.to_string()),
                    _ => r.customer_ids.push(c.to_string()),
                }
            }
            if r.is_empty() {
                bail!("{path}: line {line}: no identifier");
            }
            out.push(r);
        }
        Ok(out)
    }
}

/// The columns of `<schema>.identity_records`.
async fn identity_record_columns(ws: &Workspace, schema: &str) -> Result<BTreeSet<String>> {
    Ok(
        crate::explain::table_columns(ws, &format!("{schema}.identity_records"))
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect(),
    )
}

/// A person found through the identity graph.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// Their identifiers in clear, for matching (in memory only).
    pub set: Arc<IdentifierSet>,
    /// Customer ids (current and previous).
    pub customers: BTreeSet<String>,
    /// Source records.
    pub records: BTreeSet<String>,
    /// Normalised identifiers by kind (emails, phones, web user ids, record keys).
    pub identifiers: BTreeMap<IdentifierKind, BTreeSet<String>>,
    /// Identifiers also held by records of other customers: not used to find or suppress.
    pub shared: BTreeMap<IdentifierKind, BTreeSet<String>>,
}

fn in_list(values: &BTreeSet<String>) -> String {
    values
        .iter()
        .map(|v| sql_literal(v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds the person of `request` through the identity graph.
pub async fn find_subject(ws: &Workspace, request: &SubjectRequest) -> Result<Subject> {
    let (seeds, seed_values) = seeds(request)?;
    let ctx = ws.engine.ctx();
    ctx.register_udf(Arc::new(seeds).udf(SUBJECT_FUNCTION));

    let mut subject = Subject::default();
    let (schema, _) = match crate::explain::identity_schema(ws).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!("no identity graph to follow ({e:#}): matching the identifiers given");
            return Ok(given_only(request, seed_values));
        }
    };
    let f = SUBJECT_FUNCTION;
    let held = identity_record_columns(ws, &schema).await?;
    let identifiers: Vec<(IdentifierKind, &str)> = RECORD_IDENTIFIERS
        .into_iter()
        .filter(|(_, column)| held.contains(*column))
        .collect();
    let found_by: String = identifiers
        .iter()
        .map(|(kind, column)| format!("{f}('{}', r.{column}) or ", kind.name()))
        .collect();
    let customers = rows(
        ws,
        &format!(
            "select distinct rc.customer_id from {schema}.identity_records r \
             join {schema}.record_customer rc on rc.record_key = r.record_key \
             where {found_by}{f}('customer_id', rc.customer_id) \
             union select customer_id from {schema}.customer_id_history \
             where {f}('customer_id', previous_customer_id) or {f}('customer_id', customer_id)"
        ),
    )
    .await?;
    subject.customers = customers
        .into_iter()
        .map(|r| r.text("customer_id"))
        .filter(|c| !c.is_empty())
        .collect();
    let mut records = Vec::new();
    if !subject.customers.is_empty() {
        let list = in_list(&subject.customers);
        for r in rows(
            ws,
            &format!(
                "select distinct previous_customer_id from {schema}.customer_id_history \
                 where customer_id in ({list}) and previous_customer_id is not null"
            ),
        )
        .await?
        {
            subject.customers.insert(r.text("previous_customer_id"));
        }
        let selected: String = identifiers
            .iter()
            .map(|(_, column)| format!(", r.{column}"))
            .collect();
        let country = if held.contains("country") {
            ", r.country"
        } else {
            ""
        };
        records = rows(
            ws,
            &format!(
                "select r.record_key{selected}{country} \
                 from {schema}.identity_records r \
                 join {schema}.record_customer rc on rc.record_key = r.record_key \
                 where rc.customer_id in ({list})"
            ),
        )
        .await?;
    }
    let mut ids = seed_values;
    let mut regions = BTreeSet::new();
    for r in &records {
        subject.records.insert(r.text("record_key"));
        for (kind, column) in &identifiers {
            let value = r.text(column);
            if !value.is_empty() {
                ids.entry(*kind).or_default().insert(value);
            }
        }
        let country = if r.has("country") {
            r.text("country")
        } else {
            String::new()
        };
        if !country.is_empty() {
            regions.insert(country);
        }
    }
    // Identifiers other customers' records hold too are not the person's alone.
    subject.shared = shared_identifiers(ws, &schema, &identifiers, &ids, &subject.records).await?;
    let mut set = IdentifierSet::clear();
    for region in &regions {
        set.add_region(region);
    }
    for c in &subject.customers {
        set.insert(IdentifierKind::CustomerId, c);
    }
    for r in &subject.records {
        set.insert(IdentifierKind::RecordKey, r);
    }
    ids.insert(IdentifierKind::RecordKey, subject.records.clone());
    for (kind, values) in ids.iter_mut() {
        if let Some(shared) = subject.shared.get(kind) {
            values.retain(|v| !shared.contains(v));
        }
        for v in values.iter() {
            set.insert(*kind, v);
        }
    }
    subject.identifiers = ids;
    subject.set = Arc::new(set);
    Ok(subject)
}

/// The identifiers a request gives, checked and normalised, as a set (for the subject
/// function) and by kind.
fn seeds(
    request: &SubjectRequest,
) -> Result<(IdentifierSet, BTreeMap<IdentifierKind, BTreeSet<String>>)> {
    let mut seeds = IdentifierSet::clear();
    let mut seed_values: BTreeMap<IdentifierKind, BTreeSet<String>> = BTreeMap::new();
    let given = [
        (IdentifierKind::Email, &request.emails, "an email address"),
        (
            IdentifierKind::Phone,
            &request.phones,
            "a phone number in international form (e.g. +33 6 12 34 56 78)",
        ),
        (
            IdentifierKind::LoyaltyNumber,
            &request.loyalty_numbers,
            "a loyalty card number (no letter or digit)",
        ),
    ];
    for (kind, values, what) in given {
        for raw in values {
            let v = seeds
                .insert(kind, raw)
                .ok_or_else(|| err!("`{raw}` is not {what}"))?;
            seed_values.entry(kind).or_default().insert(v);
        }
    }
    for c in &request.customer_ids {
        seeds.insert(IdentifierKind::CustomerId, c);
    }
    Ok((seeds, seed_values))
}

/// Without an identity graph, the subject is the identifiers the request gives.
fn given_only(
    request: &SubjectRequest,
    seed_values: BTreeMap<IdentifierKind, BTreeSet<String>>,
) -> Subject {
    let mut subject = Subject::default();
    let mut set = IdentifierSet::clear();
    for c in &request.customer_ids {
        set.insert(IdentifierKind::CustomerId, c);
        subject.customers.insert(c.clone());
    }
    for (kind, values) in &seed_values {
        for v in values {
            set.insert(*kind, v);
        }
    }
    subject.identifiers = seed_values;
    subject.set = Arc::new(set);
    subject
}

/// The person's identifier values that records of other customers hold too (not the
/// person's alone), by kind.
async fn shared_identifiers(
    ws: &Workspace,
    schema: &str,
    identifiers: &[(IdentifierKind, &str)],
    ids: &BTreeMap<IdentifierKind, BTreeSet<String>>,
    records: &BTreeSet<String>,
) -> Result<BTreeMap<IdentifierKind, BTreeSet<String>>> {
    let mut shared: BTreeMap<IdentifierKind, BTreeSet<String>> = BTreeMap::new();
    if records.is_empty() {
        return Ok(shared);
    }
    let keys = in_list(records);
    for &(kind, column) in identifiers {
        let Some(values) = ids.get(&kind).filter(|v| !v.is_empty()) else {
            continue;
        };
        let found = rows(
            ws,
            &format!(
                "select distinct {column} as v from {schema}.identity_records \
                 where {column} in ({}) and record_key not in ({keys})",
                in_list(values)
            ),
        )
        .await?;
        for s in found {
            shared.entry(kind).or_default().insert(s.text("v"));
        }
    }
    Ok(shared)
}

/// How each job's rows name a person (`@subject`), and the tracked jobs' keys.
struct JobSubjects {
    declared: BTreeMap<String, Vec<(IdentifierKind, String)>>,
    /// The identity job's schema (its `identity_guard_hits` name values, not people).
    identity: Option<String>,
    /// Tracked table → columns a `remove` change keeps.
    tracked_keep: BTreeMap<String, Vec<String>>,
}

impl JobSubjects {
    /// Registers a warehouse table; returns its schema and the columns naming a person.
    async fn of_table(
        &self,
        ws: &Workspace,
        table: &WarehouseTable,
    ) -> Result<(SchemaRef, Vec<(IdentifierKind, String)>)> {
        ws.register_warehouse_table(table).await?;
        let schema: SchemaRef = ws
            .engine
            .ctx()
            .table(table.reference())
            .await?
            .schema()
            .inner()
            .clone();
        let declared = self
            .declared
            .get(&table.name)
            .map_or(&[][..], Vec::as_slice);
        let columns = subject_columns(&schema, declared, false);
        Ok((schema, columns))
    }
}

async fn job_subjects(ws: &Workspace) -> Result<JobSubjects> {
    let (dag, _) = load_dag(ws).await?;
    let mut declared = BTreeMap::new();
    let mut tracked_keep = BTreeMap::new();
    let mut identity = None;
    for job in &dag.jobs {
        declared.insert(job.name.clone(), job.config.subject.clone());
        if job.config.materialized == Materialized::Identity {
            let schema = job.schema().unwrap_or("unify").to_string();
            // The largest customers are listed by id in the run's statistics.
            declared.insert(
                format!("{schema}.identity_stats"),
                vec![(
                    IdentifierKind::CustomerId,
                    "case when metric = 'largest_cluster' then dimension end".to_string(),
                )],
            );
            identity = Some(schema);
        }
        if job.config.materialized == Materialized::Tracked {
            let mut keep = job.config.unique_key.clone();
            if let Some(aud) = job.name.strip_prefix("audiences.")
                && let Some(decl) = ws.project.audiences.get(aud)
            {
                keep.extend(
                    decl.destination
                        .removal_columns()
                        .iter()
                        .map(|c| c.to_string()),
                );
            }
            tracked_keep.insert(job.name.clone(), keep);
        }
    }
    Ok(JobSubjects {
        declared,
        identity,
        tracked_keep,
    })
}

/// What an erasure did (or would do, on a dry run).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForgetReport {
    /// The request's id in the audit log.
    pub request_id: String,
    /// True when nothing was changed.
    pub dry_run: bool,
    /// Customers erased.
    pub customers: Vec<String>,
    /// Source records erased.
    pub records: usize,
    /// Rows deleted per warehouse table.
    pub tables: BTreeMap<String, u64>,
    /// `remove` changes written per tracked table.
    pub removal_changes: BTreeMap<String, u64>,
    /// Warehouse tables with no column naming a person (not searched).
    pub tables_without_subject: Vec<String>,
    /// Old data files deleted by the history purge.
    pub files_deleted: usize,
    /// Old commit files deleted by the history purge.
    pub log_files_deleted: usize,
    /// Suppression entries added (salted hashes).
    pub suppressed: usize,
    /// Identifiers not suppressed because other customers hold them too, by kind.
    pub shared_identifiers: BTreeMap<String, usize>,
    /// Sources (not Tessera's to change) that still hold the person: name → (location, rows).
    pub sources_holding: BTreeMap<String, SourceHolding>,
}

/// A source still holding the person.
#[derive(Debug, Clone, Serialize)]
pub struct SourceHolding {
    /// Where it is.
    pub location: String,
    /// Rows naming the person.
    pub rows: u64,
}

fn request_id(request: &SubjectRequest, salt: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(serde_json::to_vec(request).unwrap_or_default());
    h.update(
        Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .to_le_bytes(),
    );
    let hex: String = h
        .finalize()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("privacy-{}-{hex}", Utc::now().format("%Y%m%dT%H%M%S"))
}

/// Sources holding rows that name the person (read without the suppression filter).
async fn sources_holding(ws: &Workspace) -> Result<(BTreeMap<String, SourceHolding>, Vec<String>)> {
    let mut holding = BTreeMap::new();
    let mut unsearched = Vec::new();
    for (name, decl) in &ws.project.sources {
        let registered = match ws.engine.register_source(&decl.spec).await {
            Ok(r) => r,
            Err(e) => {
                unsearched.push(format!("{name} (unreadable: {e})"));
                continue;
            }
        };
        let columns = subject_columns(&registered.schema, &decl.subject, true);
        if columns.is_empty() {
            unsearched.push(name.clone());
            continue;
        }
        let n = count_where(ws, name, &predicate_sql(SUBJECT_FUNCTION, &columns)).await?;
        if n > 0 {
            holding.insert(
                name.clone(),
                SourceHolding {
                    location: decl.spec.url.to_string(),
                    rows: n,
                },
            );
        }
    }
    Ok((holding, unsearched))
}

async fn count_where(ws: &Workspace, table: &str, predicate: &str) -> Result<u64> {
    let sql = format!("select count(*) as n from {table} where {predicate}");
    let df = ws.engine.ctx().sql(&sql).await?;
    let batches = df.collect().await?;
    Ok(batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .map(|a| a.value(0) as u64)
        })
        .unwrap_or(0))
}

/// Erases the people of `requests` (see the module documentation).
pub async fn forget(
    ws: &Workspace,
    requests: &[SubjectRequest],
    dry_run: bool,
) -> Result<Vec<ForgetReport>> {
    let salt = crate::suppression::salt(&ws.engine, &ws.project, !dry_run)
        .await?
        .unwrap_or_else(|| b"dry-run".to_vec());
    let subjects = job_subjects(ws).await?;
    let warehouse: Vec<WarehouseTable> = ws
        .warehouse_tables()
        .await?
        .into_iter()
        .filter(|t| t.schema.as_deref() != Some("privacy"))
        .collect();
    let ctx = ws.engine.ctx().clone();
    let mut reports = Vec::new();
    for request in requests {
        let subject = find_subject(ws, request).await?;
        let mut report = ForgetReport {
            request_id: request_id(request, &salt),
            dry_run,
            customers: subject.customers.iter().cloned().collect(),
            records: subject.records.len(),
            shared_identifiers: subject
                .shared
                .iter()
                .map(|(k, v)| (k.name().to_string(), v.len()))
                .collect(),
            ..ForgetReport::default()
        };
        ctx.register_udf(subject.set.clone().udf(SUBJECT_FUNCTION));
        let guard_table = subjects
            .identity
            .as_ref()
            .map(|schema| format!("{schema}.identity_guard_hits"));
        if let Some(schema) = &subjects.identity {
            let pairs = guarded_values(ws, schema, &subject.records).await?;
            ctx.register_udf(tessera_engine::privacy::pair_set_udf(
                GUARDED_FUNCTION,
                pairs,
            ));
        }
        // Find (and keep what tracked tables' removals need) before deleting anything.
        let mut matched: Vec<(&WarehouseTable, SchemaRef, String)> = Vec::new();
        let mut removals: Vec<(String, Vec<RecordBatch>)> = Vec::new();
        for table in &warehouse {
            let (schema, columns) = subjects.of_table(ws, table).await?;
            if table.schema.as_deref() == Some(crate::quarantine::SCHEMA) {
                // Rejected rows are text: the person's identifiers are looked for in it.
                let Some(predicate) = quarantine_predicate(request, &subject) else {
                    continue;
                };
                let n = count_where(ws, &table.sql(), &predicate).await?;
                if n > 0 {
                    report.tables.insert(table.name.clone(), n);
                    matched.push((table, schema, predicate));
                }
                continue;
            }
            if columns.is_empty() {
                report.tables_without_subject.push(table.name.clone());
                continue;
            }
            let mut predicate = predicate_sql(SUBJECT_FUNCTION, &columns);
            if guard_table.as_deref() == Some(table.name.as_str()) {
                predicate = format!("({predicate}) or {GUARDED_FUNCTION}(subject, value)");
            }
            let n = count_where(ws, &table.sql(), &predicate).await?;
            if n == 0 {
                continue;
            }
            report.tables.insert(table.name.clone(), n);
            if let Some(keep) = subjects.tracked_keep.get(&table.name) {
                let changes = format!("{}_changes", table.name);
                if let Some(changes_table) = warehouse.iter().find(|t| t.name == changes) {
                    let batches = removal_rows(
                        ws,
                        table,
                        changes_table,
                        keep,
                        &predicate,
                        &report.request_id,
                    )
                    .await?;
                    report.removal_changes.insert(
                        changes.clone(),
                        batches.iter().map(|b| b.num_rows() as u64).sum(),
                    );
                    removals.push((changes, batches));
                }
            }
            matched.push((table, schema, predicate));
        }
        let (holding, _) = sources_holding(ws).await?;
        report.sources_holding = holding;
        if !dry_run {
            let found = Found { matched, removals };
            erase(ws, &warehouse, &subject, &salt, found, &mut report).await?;
        }
        reports.push(report);
    }
    if !dry_run {
        fail_point("forget:before-purge")?;
        let (files, logs) = purge(ws, &warehouse).await?;
        if let Some(last) = reports.last_mut() {
            last.files_deleted = files;
            last.log_files_deleted = logs;
        }
    }
    fail_point("forget:before-audit-done")?;
    for report in &reports {
        audit(ws, "forget", report, &salt).await?;
    }
    Ok(reports)
}

/// The tables holding a person, each with its schema and the predicate naming the person,
/// and the `remove` rows of tracked tables' change logs, found before anything is deleted.
struct Found<'a> {
    matched: Vec<(&'a WarehouseTable, SchemaRef, String)>,
    removals: Vec<(String, Vec<RecordBatch>)>,
}

/// Erases a person found in `found`. Write-ahead: the request is audited as started, and the
/// person suppressed, before any row goes. A kill from there on leaves a trace in the audit
/// log, and the next run cannot bring the person back from the sources; the same request run
/// again completes the erasure (every step is idempotent).
async fn erase(
    ws: &Workspace,
    warehouse: &[WarehouseTable],
    subject: &Subject,
    salt: &[u8],
    found: Found<'_>,
    report: &mut ForgetReport,
) -> Result<()> {
    let ctx = ws.engine.ctx();
    fail_point("forget:before-audit-started")?;
    audit_status(ws, "forget", report, salt, "started").await?;
    fail_point("forget:before-suppression")?;
    report.suppressed = suppress(ws, subject, salt, &report.request_id).await?;
    fail_point("forget:before-deletes")?;
    // The removals first: a failure here leaves every table as it was.
    for (changes, batches) in found.removals {
        let table = warehouse
            .iter()
            .find(|t| t.name == changes)
            .expect("found above");
        if batches.iter().all(|b| b.num_rows() == 0) {
            continue;
        }
        let df = ctx.read_batches(batches)?;
        ws.engine
            .write_delta(df, table.url.clone())
            .with_mode(WriteMode::Append)
            .with_commit_metadata("tessera.request_id", report.request_id.clone().into())
            .await
            .with_context(|| format!("cannot record the removal in {changes}"))?;
    }
    // An interrupted erasure is completed by the same request run again.
    for (table, schema, predicate) in &found.matched {
        let predicate = if report.removal_changes.contains_key(&table.name) {
            format!(
                "({predicate}) and run_id <> {}",
                sql_literal(&report.request_id)
            )
        } else {
            predicate.clone()
        };
        let expr = parse_predicate(ctx, schema, &predicate)?;
        ws.engine
            .delete_rows(&table.url, expr)
            .await
            .with_context(|| format!("cannot delete from {}", table.name))?;
        fail_point("forget:between-deletes")?;
    }
    Ok(())
}

/// Older versions of every table may hold the people erased: purges them all, with the
/// staged copies of job outputs (kept when their tests failed) and the what-if sandboxes
/// left by a killed `tessera plan --impact`. Returns the data and log files deleted.
async fn purge(ws: &Workspace, warehouse: &[WarehouseTable]) -> Result<(usize, usize)> {
    let mut files = 0;
    let mut logs = 0;
    for table in warehouse {
        let purged = ws
            .engine
            .purge_history(&table.url)
            .await
            .with_context(|| format!("cannot purge the history of {}", table.name))?;
        files += purged.files_deleted;
        logs += purged.log_files_deleted;
    }
    files += ws
        .engine
        .remove_all(&ws.project.warehouse.join("_tessera/staging/")?)
        .await?;
    files += ws
        .engine
        .remove_all(&ws.project.warehouse.join(crate::warehouse::SANDBOX_DIR)?)
        .await?;
    Ok((files, logs))
}

/// The values the person's records alone hold in the identity columns `identity_guard_hits`
/// reports on, as (column, value): the guard rows naming them go with the person. (A value
/// other customers hold too stays, as it does in their records.)
async fn guarded_values(
    ws: &Workspace,
    schema: &str,
    records: &BTreeSet<String>,
) -> Result<std::collections::HashSet<(String, String)>> {
    let mut pairs = std::collections::HashSet::new();
    if records.is_empty() {
        return Ok(pairs);
    }
    let Ok(subjects) = rows(
        ws,
        &format!(
            "select distinct subject from {schema}.identity_guard_hits where value is not null"
        ),
    )
    .await
    else {
        return Ok(pairs);
    };
    let held = identity_record_columns(ws, schema).await?;
    let keys = in_list(records);
    for s in subjects {
        let column = &s.text("subject");
        if !held.contains(column) {
            continue;
        }
        let c = quote(column);
        for r in rows(
            ws,
            &format!(
                "select distinct cast({c} as varchar) as v from {schema}.identity_records \
                 where record_key in ({keys}) and {c} is not null \
                 except select cast({c} as varchar) from {schema}.identity_records \
                 where record_key not in ({keys}) and {c} is not null"
            ),
        )
        .await?
        {
            pairs.insert((column.clone(), r.text("v")));
        }
    }
    Ok(pairs)
}

/// The `remove` changes of a tracked table for the person's current rows: the run id, time,
/// `remove`, and only the key and hashed columns (the others NULL).
async fn removal_rows(
    ws: &Workspace,
    table: &WarehouseTable,
    changes: &WarehouseTable,
    keep: &[String],
    predicate: &str,
    request_id: &str,
) -> Result<Vec<RecordBatch>> {
    ws.register_warehouse_table(changes).await?;
    let ctx = ws.engine.ctx();
    let target = ctx
        .table(changes.reference())
        .await?
        .schema()
        .inner()
        .clone();
    let df = ctx
        .sql(&format!("select * from {} where {predicate}", table.sql()))
        .await?;
    let source = df.schema().clone();
    let mut exprs = Vec::new();
    for field in target.fields() {
        let name = field.name().as_str();
        let value: Expr = match name {
            "run_id" => lit(request_id),
            "changed_at" => lit(ScalarValue::TimestampMicrosecond(
                Some(Utc::now().timestamp_micros()),
                None,
            )),
            "change" => lit("remove"),
            c if keep.iter().any(|k| k == c) && source.has_column_with_unqualified_name(c) => {
                col(quote(c))
            }
            // Everything else goes; a column that may not be NULL gets its type's empty
            // value ('', 0, false, the epoch, an empty list).
            _ if field.is_nullable() => lit(ScalarValue::try_from(field.data_type())?),
            _ => lit(ScalarValue::new_default(field.data_type())?),
        };
        exprs.push(datafusion::logical_expr::cast(value, field.data_type().clone()).alias(name));
    }
    Ok(df.select(exprs)?.collect().await?)
}

/// Adds the person's identifiers to the suppression list; returns the entries added.
async fn suppress(
    ws: &Workspace,
    subject: &Subject,
    salt: &[u8],
    request_id: &str,
) -> Result<usize> {
    let set = IdentifierSet::salted(salt.to_vec());
    let mut kinds = Vec::new();
    let mut hashes = Vec::new();
    let mut regions: Vec<Option<String>> = Vec::new();
    for (kind, values) in &subject.identifiers {
        if *kind == IdentifierKind::CustomerId {
            continue;
        }
        for v in values {
            kinds.push(kind.name().to_string());
            hashes.push(set.key(*kind, v));
            regions.push(if *kind == IdentifierKind::Phone {
                tessera_engine::udfs::phone::country(v, None)
            } else {
                None
            });
        }
    }
    if hashes.is_empty() {
        return Ok(0);
    }
    let n = hashes.len();
    let now = Utc::now().to_rfc3339();
    let schema = Arc::new(Schema::new(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("value_hash", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("request_id", DataType::Utf8, false),
        Field::new("suppressed_at", DataType::Utf8, false),
        Field::new("salt_id", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(kinds)),
        Arc::new(StringArray::from(hashes)),
        Arc::new(StringArray::from(regions)),
        Arc::new(StringArray::from(vec![request_id; n])),
        Arc::new(StringArray::from(vec![now.as_str(); n])),
        Arc::new(StringArray::from(vec![salt_id(salt); n])),
    ];
    append_batch(
        ws,
        SUPPRESSION_TABLE,
        RecordBatch::try_new(schema, columns)?,
    )
    .await?;
    Ok(n)
}

async fn append_batch(ws: &Workspace, table: &str, batch: RecordBatch) -> Result<()> {
    let url = crate::workspace::table_url(&ws.project.warehouse, table)?;
    let df = ws.engine.ctx().read_batch(batch)?;
    ws.engine
        .write_delta(df, url)
        .with_mode(WriteMode::Append)
        .await
        .with_context(|| format!("cannot write {table}"))?;
    Ok(())
}

/// Writes one request to the audit log: what was asked (salted hashes), what was done
/// (counts, tables, sources still holding the person). No identifier in clear.
async fn audit<T: Serialize>(ws: &Workspace, action: &str, report: &T, salt: &[u8]) -> Result<()> {
    let dry = serde_json::to_value(report)?["dry_run"].as_bool() == Some(true);
    audit_status(
        ws,
        action,
        report,
        salt,
        if dry { "dry_run" } else { "done" },
    )
    .await
}

/// Appends one audit-log entry with `status` (`started`, `done`, `dry_run`). Customer ids are
/// kept as salted hashes (the log outlives the erasure; an id in clear would name the person
/// to anyone holding an old export).
async fn audit_status<T: Serialize>(
    ws: &Workspace,
    action: &str,
    report: &T,
    salt: &[u8],
    status: &str,
) -> Result<()> {
    let mut details = serde_json::to_value(report)?;
    let request_id = details["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some(map) = details.as_object_mut() {
        map.remove("request_id");
        map.remove("dry_run");
        if let Some(serde_json::Value::Array(ids)) = map.get_mut("customers") {
            let set = IdentifierSet::salted(salt.to_vec());
            for id in ids.iter_mut() {
                if let Some(text) = id.as_str() {
                    *id = serde_json::Value::String(set.key(IdentifierKind::CustomerId, text));
                }
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("request_id", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("requested_at", DataType::Utf8, false),
        Field::new("requested_by", DataType::Utf8, true),
        Field::new("salt_id", DataType::Utf8, false),
        Field::new("details", DataType::Utf8, false),
    ]));
    let user = std::env::var("USER").ok();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![request_id])),
        Arc::new(StringArray::from(vec![action])),
        Arc::new(StringArray::from(vec![status])),
        Arc::new(StringArray::from(vec![Utc::now().to_rfc3339()])),
        Arc::new(StringArray::from(vec![user])),
        Arc::new(StringArray::from(vec![salt_id(salt)])),
        Arc::new(StringArray::from(vec![details.to_string()])),
    ];
    append_batch(ws, AUDIT_TABLE, RecordBatch::try_new(schema, columns)?).await
}

/// A named point where tests inject a failure (`TESSERA_FAILPOINTS=forget:before-deletes`, a
/// comma-separated list; `name=exit` ends the process there, as a kill would). Costs one
/// environment read when unset.
pub fn fail_point(name: &str) -> Result<()> {
    crate::failpoint::check(name)
}

/// The report of `tessera forget`, for people.
pub fn describe(report: &ForgetReport) -> String {
    let mut out = String::new();
    let verb = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let _ = writeln!(
        out,
        "{}: {} customer(s), {} source record(s){}",
        report.request_id,
        report.customers.len(),
        report.records,
        if report.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    for (table, n) in &report.tables {
        let _ = writeln!(out, "  {verb} {n:>6} row(s) from {table}");
    }
    for (table, n) in &report.removal_changes {
        let verb = if report.dry_run {
            "would record"
        } else {
            "recorded"
        };
        let _ = writeln!(out, "  {verb} {n} removal(s) in {table}");
    }
    if !report.dry_run {
        let _ = writeln!(
            out,
            "  purged history: {} old data file(s), {} old commit file(s); {} suppression entr{}",
            report.files_deleted,
            report.log_files_deleted,
            report.suppressed,
            if report.suppressed == 1 { "y" } else { "ies" }
        );
    }
    for (kind, n) in &report.shared_identifiers {
        let _ = writeln!(
            out,
            "  {n} {kind}(s) also held by other customers: not suppressed"
        );
    }
    if report.sources_holding.is_empty() {
        let _ = writeln!(out, "  no source holds the person any more");
    } else {
        let _ = writeln!(
            out,
            "  sources Tessera does not own still hold the person (delete there; Tessera \
             filters them out meanwhile):"
        );
        for (name, h) in &report.sources_holding {
            let _ = writeln!(out, "    {name}: {} row(s) at {}", h.rows, h.location);
        }
    }
    out
}

pub use tessera_engine::privacy::pseudonymize;

/// Retention: deletes rows older than each rule's period, then purges the table's history.
/// Returns (table, rows deleted).
pub async fn apply_retention(ws: &Workspace) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let warehouse = ws.warehouse_tables().await?;
    for rule in &ws.project.privacy.retention {
        let (n, unit) = parse_keep(&rule.keep).expect("validated with the project");
        let Some(table) = warehouse.iter().find(|t| t.name == rule.table) else {
            tracing::warn!("retention: no table {} yet", rule.table);
            continue;
        };
        ws.register_warehouse_table(table).await?;
        let ctx = ws.engine.ctx();
        let schema = ctx.table(table.reference()).await?.schema().inner().clone();
        if schema.field_with_name(&rule.column).is_err() {
            bail!(
                "[privacy.retention] {}: no column `{}` (columns: {})",
                rule.table,
                rule.column,
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let predicate = format!(
            "cast({} as timestamp) < now() - interval '{n} {unit}'",
            quote(&rule.column)
        );
        let old = count_where(ws, &table.sql(), &predicate).await?;
        // A marker spans the delete and the purge: the deleted rows live on in older versions'
        // files until the purge, so a retention stopped in between purges on its next run.
        let marker = ws
            .project
            .warehouse
            .join(&format!("_tessera/retention/{}.pending", table.name))?;
        let store = ws.engine.store_for(&marker)?;
        let marker_path = object_path(&marker);
        let interrupted = store.head(&marker_path).await.is_ok();
        if old > 0 || interrupted {
            store
                .put(&marker_path, b"purge pending".to_vec().into())
                .await?;
            if old > 0 {
                let expr = parse_predicate(ctx, &schema, &predicate)?;
                ws.engine.delete_rows(&table.url, expr).await?;
                fail_point("retention:before-purge")?;
            }
            ws.engine.purge_history(&table.url).await?;
            store.delete(&marker_path).await?;
        }
        out.push((table.name.clone(), old));
    }
    Ok(out)
}

/// True when an export found nothing: no customer, no record, no row anywhere.
pub fn export_is_empty(report: &serde_json::Value) -> bool {
    let empty = |key: &str| {
        report[key]
            .as_array()
            .map(Vec::is_empty)
            .or_else(|| report[key].as_object().map(serde_json::Map::is_empty))
            .unwrap_or(true)
    };
    ["customers", "records", "sources", "tables"]
        .iter()
        .all(|k| empty(k))
}

/// Everything the warehouse and the sources hold on the person of `request`, as JSON:
/// per table, its rows naming them (all columns), and for golden-record values the source
/// record they came from.
pub async fn export_subject(ws: &Workspace, request: &SubjectRequest) -> Result<serde_json::Value> {
    let subject = find_subject(ws, request).await?;
    let ctx = ws.engine.ctx().clone();
    ctx.register_udf(subject.set.clone().udf(SUBJECT_FUNCTION));
    let subjects = job_subjects(ws).await?;
    let mut tables = serde_json::Map::new();
    for table in ws.warehouse_tables().await? {
        if table.schema.as_deref() == Some("privacy") {
            continue;
        }
        if table.schema.as_deref() == Some(crate::quarantine::SCHEMA) {
            if let Some(predicate) = quarantine_predicate(request, &subject) {
                ws.register_warehouse_table(&table).await?;
                let rows = json_rows(
                    ws,
                    &format!("select * from {} where {predicate}", table.sql()),
                )
                .await?;
                if !rows.is_empty() {
                    tables.insert(
                        table.name.clone(),
                        serde_json::json!({ "location": table.url.to_string(), "rows": rows }),
                    );
                }
            }
            continue;
        }
        let (_, columns) = subjects.of_table(ws, &table).await?;
        if columns.is_empty() {
            continue;
        }
        let rows = json_rows(
            ws,
            &format!(
                "select * from {} where {}",
                table.sql(),
                predicate_sql(SUBJECT_FUNCTION, &columns)
            ),
        )
        .await?;
        if !rows.is_empty() {
            tables.insert(
                table.name.clone(),
                serde_json::json!({ "location": table.url.to_string(), "rows": rows }),
            );
        }
    }
    let mut sources = serde_json::Map::new();
    for (name, decl) in &ws.project.sources {
        let Ok(registered) = ws.engine.register_source(&decl.spec).await else {
            continue;
        };
        let columns = subject_columns(&registered.schema, &decl.subject, true);
        if columns.is_empty() {
            continue;
        }
        let rows = json_rows(
            ws,
            &format!(
                "select * from {name} where {}",
                predicate_sql(SUBJECT_FUNCTION, &columns)
            ),
        )
        .await?;
        if !rows.is_empty() {
            sources.insert(
                name.clone(),
                serde_json::json!({ "location": decl.spec.url.to_string(), "rows": rows }),
            );
        }
    }
    let lineage = golden_lineage(&tables);
    let report = serde_json::json!({
        "request_id": request_id(request, b"export"),
        "generated_at": Utc::now().to_rfc3339(),
        "customers": subject.customers,
        "records": subject.records,
        "sources": sources,
        "tables": tables,
        "golden_record_lineage": lineage,
    });
    let salt = crate::suppression::salt(&ws.engine, &ws.project, false)
        .await?
        .unwrap_or_default();
    let summary = serde_json::json!({
        "request_id": report["request_id"],
        "dry_run": false,
        "customers": subject.customers.len(),
        "records": subject.records.len(),
        "tables": tables.iter().map(|(k, v)| (k.clone(), v["rows"].as_array().map_or(0, Vec::len))).collect::<BTreeMap<_, _>>(),
        "sources": sources.keys().collect::<Vec<_>>(),
    });
    audit(ws, "export_subject", &summary, &salt).await?;
    Ok(report)
}

/// For each golden-record value of `profiles.customers`, the source record it came from
/// (`<group>_record_key` columns).
fn golden_lineage(tables: &serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    let Some(customers) = tables
        .get("profiles.customers")
        .and_then(|t| t["rows"].as_array())
    else {
        return serde_json::Value::Array(Vec::new());
    };
    let groups: [(&str, &[&str]); 6] = [
        ("name_record_key", &["first_name", "last_name"]),
        ("display_name_record_key", &["display_name"]),
        ("email_record_key", &["email"]),
        ("phone_record_key", &["phone"]),
        ("birth_date_record_key", &["birth_date"]),
        ("address_record_key", &["postal_code", "city", "country"]),
    ];
    let mut out = Vec::new();
    for row in customers {
        for (key, fields) in groups {
            let Some(record) = row.get(key).and_then(|v| v.as_str()) else {
                continue;
            };
            for f in fields {
                if let Some(v) = row.get(*f).filter(|v| !v.is_null()) {
                    out.push(serde_json::json!({
                        "customer_id": row["customer_id"],
                        "attribute": f,
                        "value": v,
                        "source_record": record,
                        "source": record.split(':').next(),
                    }));
                }
            }
        }
    }
    serde_json::Value::Array(out)
}

async fn json_rows(ws: &Workspace, sql: &str) -> Result<Vec<serde_json::Value>> {
    let batches = ws.engine.ctx().sql(sql).await?.collect().await?;
    let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    for b in &batches {
        writer.write(b)?;
    }
    writer.finish()?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// Rows of a quarantine table naming the person: their text holds one of the person's emails
/// (as asked and in canonical form, any case) or phone numbers (the last nine digits, whatever
/// the punctuation). `None` when there is nothing to look for.
fn quarantine_predicate(request: &SubjectRequest, subject: &Subject) -> Option<String> {
    use tessera_engine::privacy::IdentifierKind;
    let mut emails: std::collections::BTreeSet<String> = request
        .emails
        .iter()
        .map(|e| e.trim().to_lowercase())
        .collect();
    let mut phones: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for (kind, values) in &subject.identifiers {
        match kind {
            IdentifierKind::Email => emails.extend(values.iter().map(|e| e.to_lowercase())),
            IdentifierKind::Phone => {
                phones.extend(values.iter().filter_map(|p| tessera_udfs::phone::key(p)));
            }
            _ => {}
        }
    }
    phones.extend(
        request
            .phones
            .iter()
            .filter_map(|p| tessera_udfs::phone::key(p)),
    );
    emails.retain(|e| e.contains('@'));
    let mut terms: Vec<String> = emails
        .iter()
        .map(|e| {
            format!(
                "strpos(lower(record), {}) > 0",
                tessera_engine::sql::literal(e)
            )
        })
        .collect();
    terms.extend(phones.iter().map(|k| {
        format!(
            "strpos(regexp_replace(record, '[^0-9]', '', 'g'), {}) > 0",
            tessera_engine::sql::literal(k)
        )
    }));
    (!terms.is_empty()).then(|| terms.join(" or "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_files_name_people_by_any_identifier_kind() {
        let text = "Email,phone,customer_id,loyalty_number\n\
                    ann@example.com,,,\n\
                    ,,,ly 0042-1337\n\
                    \n\
                    ,+33612345678,C-1,\n";
        let requests = SubjectRequest::from_csv(text, "requests.csv").unwrap();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].emails, ["ann@example.com"]);
        assert_eq!(requests[1].loyalty_numbers, ["ly 0042-1337"]);
        assert!(requests[1].emails.is_empty() && !requests[1].is_empty());
        assert_eq!(requests[2].phones, ["+33612345678"]);
        assert_eq!(requests[2].customer_ids, ["C-1"]);

        let err = SubjectRequest::from_csv("email,card\na,b\n", "r.csv").unwrap_err();
        assert!(
            err.to_string().contains("r.csv: unknown column `card`")
                && err.to_string().contains("loyalty_number"),
            "{err}"
        );
        let err = SubjectRequest::from_csv("email,loyalty_number\nann@example.com,\n,\n", "r.csv")
            .unwrap_err();
        assert_eq!(err.to_string(), "r.csv: line 3: no identifier");
        // Quoted values keep their commas (the file was split on every comma before).
        let requests =
            SubjectRequest::from_csv("customer_id,email\n\"C-9, north\",\"a@b.org\"\n", "r.csv")
                .unwrap();
        assert_eq!(requests[0].customer_ids, ["C-9, north"]);
        assert_eq!(requests[0].emails, ["a@b.org"]);
        let err = SubjectRequest::from_csv("email,phone\na@b.org,1,2\n", "r.csv").unwrap_err();
        assert!(err.to_string().starts_with("r.csv: line 2:"), "{err}");
    }
}
