//! `tessera evaluate`: how good the identity job's customers are against a ground truth a user
//! has (a column naming each record's true person, or a file of labelled record pairs), the
//! way Splink's `accuracy_analysis_from_labels_column` does, and why it errs.
//!
//! Read back from the tables the identity job wrote (`record_customer`, `identity_records`,
//! `match_pairs`, `identity_guard_hits`): pairwise precision, recall and F1; B-cubed precision
//! and recall; persons split across customers and customers merging persons; the evidence
//! ceiling (the share of true pairs reachable through the blocking and rule keys, the best
//! recall the settings allow); the shared-value guard's precision and the true pairs guarded
//! values cost; the error classes with example pairs and their `explain` waterfalls.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use crate::errors::{Context, Result};
use crate::{bail, err};
use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::MemTable;
use serde::Serialize;
use serde_json::json;
use tessera_engine::identity::sql::ident;

use crate::explain::{identity_schema, pair_explanation, query, table_columns};
use crate::workspace::Workspace;

/// What the truth is.
#[derive(Debug, Clone)]
pub enum Truth {
    /// `table.column`: each record's true person (the table has `record_key`, or `source` and
    /// `record_id` as the identity records build the key from).
    Column(String),
    /// A CSV file of labelled pairs: `record_key_a`, `record_key_b`, `is_match`.
    Labels(std::path::PathBuf),
}

/// Pairwise and cluster metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    /// Records evaluated (those the truth names).
    pub records: usize,
    /// True pairs (same person).
    pub true_pairs: u64,
    /// Predicted pairs (same customer).
    pub predicted_pairs: u64,
    /// Pairs both.
    pub true_positives: u64,
    /// Pairwise precision.
    pub precision: f64,
    /// Pairwise recall.
    pub recall: f64,
    /// Pairwise F1.
    pub f1: f64,
    /// B-cubed precision (per record, the share of its customer that is its person).
    pub b_cubed_precision: Option<f64>,
    /// B-cubed recall (per record, the share of its person in its customer).
    pub b_cubed_recall: Option<f64>,
    /// Persons.
    pub persons: Option<usize>,
    /// Customers.
    pub customers: Option<usize>,
    /// Persons split across customers: the extra customers they are in.
    pub splits: Option<usize>,
    /// Customers holding more than one person: the extra persons they hold.
    pub merges: Option<usize>,
    /// The share of true pairs reachable through blocking and rule keys (transitively).
    pub evidence_ceiling: Option<f64>,
}

/// The shared-value guard against the truth.
#[derive(Debug, Clone, Serialize)]
pub struct GuardQuality {
    /// The identifier column.
    pub column: String,
    /// Values flagged shared.
    pub flagged: usize,
    /// Of them, held by two or more persons.
    pub truly_shared: usize,
    /// `truly_shared / flagged`.
    pub precision: Option<f64>,
    /// True pairs holding a value a guard set aside or split that ended in two customers.
    pub true_pairs_lost: u64,
}

/// One kind of error, with examples.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorClass {
    /// `missed` (a true pair in two customers) or `wrong` (two persons in one customer).
    pub kind: &'static str,
    /// Why, as `match_pairs` tells.
    pub class: String,
    /// Pairs of the sample in this class.
    pub pairs: usize,
    /// Example record-key pairs.
    pub examples: Vec<(String, String)>,
    /// `tessera explain` of the first example (when asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The metrics.
    pub metrics: Metrics,
    /// Per guarded identifier.
    pub guards: Vec<GuardQuality>,
    /// Error classes, most frequent first.
    pub errors: Vec<ErrorClass>,
    /// Error pairs classified (a sample when there are more).
    pub classified_pairs: usize,
}

/// Error pairs classified at most (the metrics count all).
const MAX_CLASSIFIED: usize = 100_000;

fn strings(batches: &[RecordBatch], column: &str) -> Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    for b in batches {
        let array = b
            .column_by_name(column)
            .ok_or_else(|| err!("internal: no column {column}"))?;
        let array = cast(array, &DataType::Utf8)?;
        let array = array.as_any().downcast_ref::<StringArray>().expect("utf8");
        out.extend((0..array.len()).map(|r| array.is_valid(r).then(|| array.value(r).to_string())));
    }
    Ok(out)
}

fn choose2(n: usize) -> u64 {
    (n as u64) * (n as u64).saturating_sub(1) / 2
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

/// Union-find over record indexes.
struct Sets(Vec<usize>);

impl Sets {
    fn find(&mut self, x: usize) -> usize {
        let mut r = x;
        while self.0[r] != r {
            r = self.0[r];
        }
        let mut x = x;
        while self.0[x] != r {
            let next = self.0[x];
            self.0[x] = r;
            x = next;
        }
        r
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.0[a.max(b)] = a.min(b);
        }
    }
}

/// Evaluates the published customers against `truth`; `explain` adds the waterfall of each
/// error class's first example.
pub async fn evaluate(ws: &Workspace, truth: &Truth, explain: bool) -> Result<Evaluation> {
    let (schema, config) = identity_schema(ws).await?;
    let mut evaluation = match truth {
        Truth::Labels(path) => labelled(ws, &schema, path).await?,
        Truth::Column(spec) => by_column(ws, &schema, &config, spec).await?,
    };
    if explain {
        for class in &mut evaluation.errors {
            if let Some((a, b)) = class.examples.first() {
                class.explanation = Some(pair_explanation(ws, a, b).await?);
            }
        }
    }
    Ok(evaluation)
}

async fn by_column(
    ws: &Workspace,
    schema: &str,
    config: &tessera_engine::identity::IdentityConfig,
    spec: &str,
) -> Result<Evaluation> {
    let (table, column) = spec.rsplit_once('.').ok_or_else(|| {
        err!("--truth `{spec}`: expected <table>.<column>, e.g. truth_records.person_id")
    })?;
    let columns = table_columns(ws, table)
        .await
        .with_context(|| format!("--truth `{spec}`: cannot read `{table}`"))?;
    let has = |c: &str| columns.iter().any(|(n, _)| n == c);
    if !has(column) {
        bail!(
            "--truth `{spec}`: `{table}` has no column `{column}` (it has {})",
            columns
                .iter()
                .map(|c| c.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let key = if has("record_key") {
        "cast(record_key as varchar)".to_string()
    } else if has("source") && has("record_id") {
        "cast(source as varchar) || ':' || cast(record_id as varchar)".to_string()
    } else {
        bail!(
            "--truth `{spec}`: `{table}` needs a `record_key` column, or `source` and `record_id` (the record key is `source:record_id`)"
        );
    };
    // The records the truth knows, numbered, with their customer and person and the columns
    // the ceiling and the guards read (not every column: at millions of records the rest is
    // gigabytes). Held once as Arrow arrays; every measure below is a query over them, so
    // nothing holds a string per record (10M records did not fit in 24 GB before).
    let mut read: Vec<&str> = config
        .blocking
        .iter()
        .chain(&config.rules)
        .flat_map(|r| r.on.iter().map(String::as_str))
        .chain(config.identifiers.iter().map(|i| i.column.as_str()))
        .collect();
    read.sort_unstable();
    read.dedup();
    let read_list: String = read.iter().map(|c| format!(", i.{}", ident(c))).collect();
    if ws.project.engine.memory_limit.is_some() {
        // Under a memory limit the joins of millions of records must spill: a hash join's
        // build side cannot (10M records asked 3 GB more than 8 GiB allowed), a sort-merge
        // join's sorts can.
        ws.engine
            .ctx()
            .sql("set datafusion.optimizer.prefer_hash_join = false")
            .await?;
    }
    let batches = query(
        ws,
        &format!(
            "select cast(row_number() over () - 1 as bigint) as __rid, \
             cast(i.record_key as varchar) as __key, cast(c.customer_id as varchar) as __customer, \
             t.person as __person{read_list} from {schema}.identity_records i \
             join {schema}.record_customer c on c.record_key = i.record_key \
             join (select {key} as record_key, cast({col} as varchar) as person from {table} \
                   where {col} is not null) t \
             on t.record_key = cast(i.record_key as varchar)",
            col = ident(column)
        ),
    )
    .await?;
    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
    if n == 0 {
        bail!("--truth `{spec}`: no identity record has a value there (do the record keys match?)");
    }
    let ctx = ws.engine.ctx();
    let known = "__tessera_evaluate_known";
    let _ = ctx.deregister_table(known);
    let schema_ref = batches[0].schema();
    ctx.register_table(
        known,
        Arc::new(MemTable::try_new(schema_ref, vec![batches])?),
    )?;
    let measured = measure(ws, schema, config, known, n).await;
    let _ = ctx.deregister_table(known);
    measured
}

/// The measures of `by_column` over the numbered known records (`known`, `n` of them).
async fn measure(
    ws: &Workspace,
    schema: &str,
    config: &tessera_engine::identity::IdentityConfig,
    known: &str,
    n: usize,
) -> Result<Evaluation> {
    let run = |sql: String| async move { query(ws, &sql).await };
    let c2 = |x: &str| format!("coalesce(sum(cast({x} as double) * ({x} - 1) / 2), 0)");
    let totals = run(format!(
        "with b as (select __customer, __person, count(*) as k from {known} group by 1, 2), \
         sc as (select __customer, count(*) as s from {known} group by 1), \
         sp as (select __person, count(*) as s from {known} group by 1) \
         select (select {tp} from b) as tp, (select {pp} from sc) as pp, \
         (select {tpairs} from sp) as tpairs, \
         (select sum(cast(b.k * b.k as double) / sc.s) from b join sc on sc.__customer = b.__customer) as b3p, \
         (select sum(cast(b.k * b.k as double) / sp.s) from b join sp on sp.__person = b.__person) as b3r, \
         (select count(*) from sc) as nc, (select count(*) from sp) as np, (select count(*) from b) as nb",
        tp = c2("k"),
        pp = c2("s"),
        tpairs = c2("s"),
    ))
    .await?;
    let value = |name: &str| -> Result<f64> { first_f64(&totals, name) };
    let (tp, pp, tpairs) = (
        value("tp")? as u64,
        value("pp")? as u64,
        value("tpairs")? as u64,
    );
    let (nc, np, nb) = (
        value("nc")? as usize,
        value("np")? as usize,
        value("nb")? as usize,
    );
    let (precision, recall) = (ratio(tp, pp), ratio(tp, tpairs));
    // The evidence ceiling: records of one person joined by any blocking or rule key, through
    // a union-find over the records' numbers (each key group joined to its smallest).
    let mut sets = Sets((0..n).collect());
    for rule in config.blocking.iter().chain(&config.rules) {
        let on: Vec<String> = rule.on.iter().map(|c| ident(c)).collect();
        let edges = run(format!(
            "select __rid, min(__rid) over (partition by __person, {list}) as __root \
             from {known} where {not_null}",
            list = on.join(", "),
            not_null = on
                .iter()
                .map(|c| format!("{c} is not null"))
                .collect::<Vec<_>>()
                .join(" and ")
        ))
        .await
        .with_context(|| format!("the evidence ceiling of `{}`", rule.name))?;
        for b in &edges {
            let (rid, root) = (int64s(b, "__rid")?, int64s(b, "__root")?);
            for r in 0..b.num_rows() {
                sets.union(rid.value(r) as usize, root.value(r) as usize);
            }
        }
    }
    let mut reach = vec![0usize; n];
    for i in 0..n {
        reach[sets.find(i)] += 1;
    }
    let reachable: u64 = reach.iter().map(|&k| choose2(k)).sum();
    let metrics = Metrics {
        records: n,
        true_pairs: tpairs,
        predicted_pairs: pp,
        true_positives: tp,
        precision,
        recall,
        f1: f1(precision, recall),
        b_cubed_precision: Some(value("b3p")? / n as f64),
        b_cubed_recall: Some(value("b3r")? / n as f64),
        persons: Some(np),
        customers: Some(nc),
        splits: Some(nb - np),
        merges: Some(nb - nc),
        evidence_ceiling: Some(ratio(reachable, tpairs)),
    };

    // The guards: values flagged shared that two persons really hold; true pairs holding a
    // guarded value that ended apart.
    let mut guards = Vec::new();
    // Registered up front: the table is read inside scalar subqueries below.
    run(format!(
        "select value from {schema}.identity_guard_hits limit 0"
    ))
    .await?;
    for id in &config.identifiers {
        let subject = tessera_engine::identity::sql::literal(&id.column);
        let hits = |filter: &str| {
            format!(
                "select distinct cast(value as varchar) as v from {schema}.identity_guard_hits \
                 where value is not null and subject = {subject}{filter}"
            )
        };
        let c = ident(&id.column);
        let counts = run(format!(
            "with held as (select cast(k.{c} as varchar) as v, k.__person, k.__customer \
               from {known} k join ({any}) g on cast(k.{c} as varchar) = g.v), \
             a as (select v, __person, count(*) as n from held group by 1, 2), \
             pc as (select v, __person, __customer, count(*) as n from held group by 1, 2, 3) \
             select (select count(*) from ({any})) as any_hits, \
             (select count(*) from ({flagged})) as flagged, \
             (select count(*) from (select h.v from held h join ({flagged}) f on f.v = h.v \
                group by h.v having count(distinct h.__person) > 1)) as truly_shared, \
             (select {pairs} from a) - (select {pairs} from pc) as lost",
            any = hits(""),
            flagged = hits(" and guard = 'shared_value'"),
            pairs = c2("n"),
        ))
        .await
        .with_context(|| format!("the guard on `{}`", id.column))?;
        if first_f64(&counts, "any_hits")? == 0.0 {
            continue;
        }
        let flagged = first_f64(&counts, "flagged")? as usize;
        let truly_shared = first_f64(&counts, "truly_shared")? as usize;
        guards.push(GuardQuality {
            column: id.column.clone(),
            flagged,
            truly_shared,
            precision: (flagged > 0).then(|| truly_shared as f64 / flagged as f64),
            true_pairs_lost: first_f64(&counts, "lost")? as u64,
        });
    }

    // Error pairs: a true pair in two customers (missed), two persons in one customer (wrong),
    // up to the cap.
    let pairs = |same: &str, differ: &str| {
        format!(
            "select a.__key as a, b.__key as b from {known} a join {known} b \
             on a.{same} = b.{same} and a.__key < b.__key and a.{differ} <> b.{differ} \
             order by a.__key, b.__key limit {MAX_CLASSIFIED}"
        )
    };
    let key_pairs = |batches: &[RecordBatch]| -> Result<Vec<(String, String)>> {
        let (a, b) = (strings(batches, "a")?, strings(batches, "b")?);
        Ok(a.into_iter()
            .zip(b)
            .map(|(a, b)| (a.unwrap_or_default(), b.unwrap_or_default()))
            .collect())
    };
    let missed = key_pairs(&run(pairs("__person", "__customer")).await?)?;
    let wrong = key_pairs(&run(pairs("__customer", "__person")).await?)?;
    let errors = classify(ws, schema, &missed, &wrong).await?;
    Ok(Evaluation {
        metrics,
        guards,
        classified_pairs: missed.len() + wrong.len(),
        errors,
    })
}

/// The first row's `column` of `batches` as a number (0 when NULL).
fn first_f64(batches: &[RecordBatch], column: &str) -> Result<f64> {
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(0.0);
    };
    let array = b
        .column_by_name(column)
        .ok_or_else(|| err!("internal: no column {column}"))?;
    let array = cast(array, &DataType::Float64)?;
    let array = array
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Float64Array>()
        .expect("float64");
    Ok(if array.is_null(0) {
        0.0
    } else {
        array.value(0)
    })
}

/// `column` of a batch as 64-bit integers.
fn int64s(b: &RecordBatch, column: &str) -> Result<datafusion::arrow::array::Int64Array> {
    let array = b
        .column_by_name(column)
        .ok_or_else(|| err!("internal: no column {column}"))?;
    let array = cast(array, &DataType::Int64)?;
    Ok(array
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .expect("int64")
        .clone())
}

/// Puts each error pair in a class by what `match_pairs` says of it (an equi-join: the
/// identity job writes each pair with `record_key_a < record_key_b`, as the pairs here are).
async fn classify(
    ws: &Workspace,
    schema: &str,
    missed: &[(String, String)],
    wrong: &[(String, String)],
) -> Result<Vec<ErrorClass>> {
    let pairs: Vec<(&'static str, String, String)> = missed
        .iter()
        .map(|(a, b)| ("missed", a.clone(), b.clone()))
        .chain(wrong.iter().map(|(a, b)| ("wrong", a.clone(), b.clone())))
        .map(|(k, a, b)| if a <= b { (k, a, b) } else { (k, b, a) })
        .collect();
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let schema_ref = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        datafusion::arrow::datatypes::Field::new("a", DataType::Utf8, false),
        datafusion::arrow::datatypes::Field::new("b", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema_ref.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                pairs.iter().map(|p| p.1.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                pairs.iter().map(|p| p.2.as_str()),
            )),
        ],
    )?;
    let ctx = ws.engine.ctx();
    let name = "__tessera_evaluate_pairs";
    ctx.register_table(
        name,
        Arc::new(MemTable::try_new(schema_ref, vec![vec![batch]])?),
    )?;
    let result = query(
        ws,
        &format!(
            "select e.a, e.b, cast(p.linked_by as varchar) as linked_by, p.accepted, \
             cast(p.refused_reason as varchar) as refused_reason, \
             cast(p.blocking_rule as varchar) as blocking_rule from {name} e \
             join {schema}.match_pairs p on p.record_key_a = e.a and p.record_key_b = e.b"
        ),
    )
    .await;
    let _ = ctx.deregister_table(name);
    let result = result?;
    let (a, b, linked, accepted, refused, rule) = (
        strings(&result, "a")?,
        strings(&result, "b")?,
        strings(&result, "linked_by")?,
        strings(&result, "accepted")?,
        strings(&result, "refused_reason")?,
        strings(&result, "blocking_rule")?,
    );
    // (a, b) -> what match_pairs says (the probabilistic row first).
    let mut said: HashMap<(String, String), String> = HashMap::new();
    for r in 0..a.len() {
        let pair = (
            a[r].clone().unwrap_or_default(),
            b[r].clone().unwrap_or_default(),
        );
        let how = match (
            linked[r].as_deref(),
            accepted[r].as_deref(),
            refused[r].as_deref(),
        ) {
            (_, _, Some(reason)) if !reason.is_empty() => format!("refused: {reason}"),
            (Some("probabilistic"), Some("true"), _) => "linked: probabilistic".to_string(),
            (Some("probabilistic"), _, _) => format!(
                "compared (blocking rule `{}`), below the threshold",
                rule[r].as_deref().unwrap_or_default()
            ),
            (Some(other), _, _) => format!("linked: {other}"),
            _ => "compared".to_string(),
        };
        let entry = said.entry(pair).or_insert_with(|| how.clone());
        if how.starts_with("compared") || how.starts_with("refused") {
            *entry = how;
        }
    }
    let mut classes: BTreeMap<(&'static str, String), ErrorClass> = BTreeMap::new();
    for (kind, a, b) in pairs {
        let class = match said.get(&(a.clone(), b.clone())) {
            Some(how) if kind == "missed" => how.clone(),
            Some(how) => how.clone(),
            None if kind == "missed" => {
                "never compared: no blocking rule puts them together".into()
            }
            None => "joined through other records (no direct link)".into(),
        };
        let entry = classes.entry((kind, class.clone())).or_insert(ErrorClass {
            kind,
            class,
            pairs: 0,
            examples: Vec::new(),
            explanation: None,
        });
        entry.pairs += 1;
        if entry.examples.len() < 3 {
            entry.examples.push((a, b));
        }
    }
    let mut errors: Vec<ErrorClass> = classes.into_values().collect();
    errors.sort_by(|x, y| y.pairs.cmp(&x.pairs).then_with(|| x.class.cmp(&y.class)));
    Ok(errors)
}

/// Metrics over labelled pairs only: each labelled pair predicted a match when its records are
/// one customer.
async fn labelled(ws: &Workspace, schema: &str, path: &std::path::Path) -> Result<Evaluation> {
    let ctx = ws.engine.ctx();
    let name = "__tessera_evaluate_labels";
    let file = path.display().to_string();
    ctx.register_csv(name, &file, datafusion::prelude::CsvReadOptions::new())
        .await
        .with_context(|| format!("--labels {file}: cannot read it as CSV"))?;
    let result = query(
        ws,
        &format!(
            "select cast(l.record_key_a as varchar) as a, cast(l.record_key_b as varchar) as b, \
             lower(cast(l.is_match as varchar)) in ('true', '1', 't', 'yes') as label, \
             ca.customer_id is not null and ca.customer_id = cb.customer_id as predicted, \
             ca.customer_id is not null and cb.customer_id is not null as known \
             from {name} l \
             left join {schema}.record_customer ca on ca.record_key = cast(l.record_key_a as varchar) \
             left join {schema}.record_customer cb on cb.record_key = cast(l.record_key_b as varchar)"
        ),
    )
    .await;
    let _ = ctx.deregister_table(name);
    let result = result.with_context(|| {
        format!("--labels {file}: expected the columns record_key_a, record_key_b, is_match")
    })?;
    let (a, b, label, predicted, known) = (
        strings(&result, "a")?,
        strings(&result, "b")?,
        strings(&result, "label")?,
        strings(&result, "predicted")?,
        strings(&result, "known")?,
    );
    let yes = |v: &Option<String>| v.as_deref() == Some("true");
    let (mut tp, mut fp, mut fneg, mut records) = (0u64, 0u64, 0u64, 0usize);
    let mut unknown = Vec::new();
    for r in 0..a.len() {
        if !yes(&known[r]) {
            unknown.push(format!(
                "{} / {}",
                a[r].clone().unwrap_or_default(),
                b[r].clone().unwrap_or_default()
            ));
            continue;
        }
        records += 1;
        match (yes(&label[r]), yes(&predicted[r])) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fneg += 1,
            _ => {}
        }
    }
    if let Some(first) = unknown.first() {
        bail!(
            "--labels {file}: {} labelled pair(s) name a record that is not in {schema}.record_customer, e.g. {first}",
            unknown.len()
        );
    }
    let (precision, recall) = (ratio(tp, tp + fp), ratio(tp, tp + fneg));
    Ok(Evaluation {
        metrics: Metrics {
            records,
            true_pairs: tp + fneg,
            predicted_pairs: tp + fp,
            true_positives: tp,
            precision,
            recall,
            f1: f1(precision, recall),
            b_cubed_precision: None,
            b_cubed_recall: None,
            persons: None,
            customers: None,
            splits: None,
            merges: None,
            evidence_ceiling: None,
        },
        guards: Vec::new(),
        errors: Vec::new(),
        classified_pairs: 0,
    })
}

/// The evaluation as the terminal shows it.
pub fn render(e: &Evaluation) -> Result<String> {
    let mut out = String::new();
    let m = &e.metrics;
    writeln!(
        out,
        "pairwise   precision {:.4}  recall {:.4}  F1 {:.4}   ({} true pairs, {} predicted, {} both; {} records)",
        m.precision, m.recall, m.f1, m.true_pairs, m.predicted_pairs, m.true_positives, m.records
    )?;
    if let (Some(p), Some(r)) = (m.b_cubed_precision, m.b_cubed_recall) {
        writeln!(out, "B-cubed    precision {p:.4}  recall {r:.4}")?;
    }
    if let (Some(persons), Some(customers), Some(splits), Some(merges)) =
        (m.persons, m.customers, m.splits, m.merges)
    {
        writeln!(
            out,
            "clusters   {persons} persons, {customers} customers: {splits} splits, {merges} merges"
        )?;
    }
    if let Some(c) = m.evidence_ceiling {
        writeln!(
            out,
            "ceiling    {c:.4} of the true pairs share a blocking or rule key (the best recall these settings allow); recall is {:.1}% of it",
            100.0 * m.recall / c.max(f64::MIN_POSITIVE)
        )?;
    }
    for g in &e.guards {
        writeln!(
            out,
            "guard      {}: {} values flagged shared, {} held by two persons or more{}; {} true pairs holding a guarded value ended apart",
            g.column,
            g.flagged,
            g.truly_shared,
            g.precision
                .map(|p| format!(" (precision {p:.3})"))
                .unwrap_or_default(),
            g.true_pairs_lost
        )?;
    }
    if !e.errors.is_empty() {
        writeln!(out, "\nerrors ({} pairs classified)", e.classified_pairs)?;
        for c in &e.errors {
            let examples: Vec<String> = c
                .examples
                .iter()
                .map(|(a, b)| format!("{a} / {b}"))
                .collect();
            writeln!(
                out,
                "  {:<7} {:>8}  {}   e.g. {}",
                c.kind,
                c.pairs,
                c.class,
                examples.join(", ")
            )?;
        }
        for c in e.errors.iter().filter(|c| c.explanation.is_some()) {
            writeln!(out, "\n--- {} / {}", c.kind, c.class)?;
            out.push_str(c.explanation.as_deref().unwrap_or_default());
        }
    }
    Ok(out)
}

/// The evaluation as JSON.
pub fn to_json(e: &Evaluation) -> serde_json::Value {
    json!(e)
}
