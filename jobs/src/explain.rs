//! `tessera explain`: why two records are (or are not) one customer, and how a customer formed.
//! Everything is read back from the tables the identity job wrote (`match_pairs`,
//! `match_model`, `record_customer`...), so the explanation is of the run that decided.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

use crate::errors::{Context, Result};
use crate::{bail, err};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::logical_expr::LogicalPlan;
use tessera_engine::identity::IdentityConfig;
use tessera_engine::identity::sql::literal;

use crate::job::Materialized;
use crate::rows::Row;
use crate::workspace::Workspace;
use crate::workspace::load_dag;

/// A result's rows, read by column with their types ([`Row`]).
pub(crate) type Rows = Vec<Row>;

/// The plan of one statement, its tables registered first.
async fn plan(ws: &Workspace, sql: &str) -> Result<LogicalPlan> {
    let mut statements = ws.prepare_for(sql).await?;
    let statement = statements.pop().ok_or_else(|| err!("empty query"))?;
    Ok(ws.engine.ctx().state().statement_to_plan(statement).await?)
}

pub(crate) async fn query(ws: &Workspace, sql: &str) -> Result<Vec<RecordBatch>> {
    let plan = plan(ws, sql).await?;
    Ok(ws
        .engine
        .ctx()
        .execute_logical_plan(plan)
        .await?
        .collect()
        .await?)
}

/// The columns of `table` with their types (planned, not read).
pub(crate) async fn table_columns(ws: &Workspace, table: &str) -> Result<Vec<(String, DataType)>> {
    Ok(plan(ws, &format!("select * from {table}"))
        .await?
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect())
}

pub(crate) async fn rows(ws: &Workspace, sql: &str) -> Result<Rows> {
    Ok(crate::rows::rows(&query(ws, sql).await?))
}

/// The schema the identity job writes to, and the project's identity settings.
pub(crate) async fn identity_schema(ws: &Workspace) -> Result<(String, IdentityConfig)> {
    let config = ws.project.identity.clone().ok_or_else(|| {
        err!("the project has no [identity] section (`tessera init` writes the default one)")
    })?;
    let (dag, _) = load_dag(ws).await?;
    let job = dag
        .jobs
        .iter()
        .find(|j| j.config.materialized == Materialized::Identity)
        .ok_or_else(|| {
            err!("no job is `@materialized: identity` (see sql/unify/identity_records.sql)")
        })?;
    let schema = job.schema().unwrap_or("unify").to_string();
    let probe = format!("select count(*) from {schema}.record_customer");
    query(ws, &probe).await.with_context(|| {
        format!("{schema}.record_customer has no table yet: run `tessera run` first")
    })?;
    Ok((schema, config))
}

/// The value of `column` as people read it ("" for NULL, or when the result has no such
/// column: a record table without one of the compared columns).
fn get(row: &Row, column: &str) -> String {
    if row.has(column) {
        row.text(column)
    } else {
        String::new()
    }
}

fn or_null(value: String) -> String {
    if value.is_empty() {
        "NULL".into()
    } else {
        value
    }
}

/// `tessera explain <a> <b>`.
pub async fn explain_pair(ws: &Workspace, a: &str, b: &str) -> Result<()> {
    print!("{}", pair_explanation(ws, a, b).await?);
    Ok(())
}

/// Why records `a` and `b` are (or are not) one customer, as `tessera explain` prints it.
pub async fn pair_explanation(ws: &Workspace, a: &str, b: &str) -> Result<String> {
    let (schema, config) = identity_schema(ws).await?;
    let mut out = String::new();
    let records = rows(
        ws,
        &format!(
            "select i.*, r.customer_id, r.linked_by as customer_linked_by from {schema}.identity_records i \
             join {schema}.record_customer r on r.record_key = i.record_key \
             where i.record_key in ({}, {})",
            literal(a),
            literal(b)
        ),
    )
    .await?;
    let find = |key: &str| {
        records
            .iter()
            .find(|r| get(r, "record_key") == key)
            .ok_or_else(|| err!("record `{key}` is not in {schema}.record_customer (record keys look like `crm_contacts:C123`)"))
    };
    let (ra, rb) = (find(a)?, find(b)?);
    let (ca, cb) = (get(ra, "customer_id"), get(rb, "customer_id"));
    if ca == cb {
        writeln!(out, "{a} and {b}: the same customer, {ca}")?;
    } else {
        writeln!(out, "{a} and {b}: different customers ({ca} and {cb})")?;
    }
    // The values side by side.
    let mut columns: Vec<&str> = vec![];
    for c in config
        .comparisons
        .iter()
        .filter_map(|c| c.column.as_deref())
    {
        if !columns.contains(&c) {
            columns.push(c);
        }
    }
    for rule in config.rules.iter().chain(&config.blocking) {
        for c in &rule.on {
            if !columns.contains(&c.as_str()) {
                columns.push(c);
            }
        }
    }
    writeln!(out, "\n{:<20} {:<36} {:<36}", "column", a, b)?;
    for c in &columns {
        writeln!(
            out,
            "{:<20} {:<36} {:<36}",
            c,
            or_null(get(ra, c)),
            or_null(get(rb, c))
        )?;
    }

    // The direct decision, if the pair was compared or linked.
    let pair = crate::rows::rows(
        &query(
            ws,
            &format!(
                "select * from {schema}.match_pairs where (record_key_a = {la} and record_key_b = {lb}) \
                 or (record_key_a = {lb} and record_key_b = {la})",
                la = literal(a),
                lb = literal(b)
            ),
        )
        .await?,
    );
    let guards = rows(
        ws,
        &format!(
            "select guard, subject, value from {schema}.identity_guard_hits where value is not null"
        ),
    )
    .await?;
    let guarded: HashMap<(String, String), String> = guards
        .iter()
        .map(|g| {
            (
                (get(g, "subject").to_string(), get(g, "value").to_string()),
                get(g, "guard").to_string(),
            )
        })
        .collect();
    writeln!(out)?;
    for rule in &config.rules {
        let equal = rule
            .on
            .iter()
            .all(|c| !get(ra, c).is_empty() && get(ra, c) == get(rb, c));
        if equal {
            let set_aside: Vec<String> = rule
                .on
                .iter()
                .filter_map(|c| {
                    guarded
                        .get(&(c.clone(), get(ra, c).to_string()))
                        .map(|g| format!("{c} ({g})"))
                })
                .collect();
            if set_aside.is_empty() {
                writeln!(
                    out,
                    "deterministic rule `{}` holds: equal {}",
                    rule.name,
                    rule.on.join(", ")
                )?;
            } else {
                writeln!(
                    out,
                    "deterministic rule `{}` would hold, but a guard set aside {}",
                    rule.name,
                    set_aside.join(", ")
                )?;
            }
        }
    }
    match pair.iter().find(|p| p.text("linked_by") == "probabilistic") {
        Some(p) => waterfall(ws, &schema, &config, p, &mut out).await?,
        None => {
            if let Some(p) = pair.first() {
                writeln!(out, "linked directly by {}", p.text("linked_by"))?;
            } else {
                writeln!(out, "not compared: no blocking rule puts them together")?;
                for rule in &config.blocking {
                    let values: Vec<String> = rule
                        .on
                        .iter()
                        .map(|c| format!("{c}: {} / {}", or_null(get(ra, c)), or_null(get(rb, c))))
                        .collect();
                    writeln!(out, "  {:<32} {}", rule.name, values.join("; "))?;
                }
            }
        }
    }
    if ca == cb && pair.iter().all(|p| !p.flag("accepted")) {
        let path = link_path(ws, &schema, &ca, a, b).await?;
        if !path.is_empty() {
            writeln!(out, "\njoined through other records of the customer:")?;
            for step in path {
                writeln!(out, "  {step}")?;
            }
        }
    }
    Ok(out)
}

/// The Fellegi–Sunter waterfall of one compared pair: the prior, then each comparison's level
/// and weight, summing to the match weight and probability.
async fn waterfall(
    ws: &Workspace,
    schema: &str,
    config: &IdentityConfig,
    pair: &crate::rows::Row,
    out: &mut String,
) -> Result<()> {
    let model =
        crate::rows::rows(&query(ws, &format!("select * from {schema}.match_model")).await?);
    let level = |comparison: &str, index: i64| {
        model
            .iter()
            .find(|m| m.text("comparison") == comparison && m.int("level_index") == index)
    };
    let prior = level("prior", -1).ok_or_else(|| err!("{schema}.match_model has no prior"))?;
    writeln!(
        out,
        "compared (blocking rule `{}`): match weight {:.2}, probability {:.4}, threshold {} → {}",
        pair.text("blocking_rule"),
        pair.float("match_weight"),
        pair.float("match_probability"),
        config.threshold,
        if pair.flag("accepted") {
            "accepted".to_string()
        } else if !pair.is_null("refused_reason") {
            format!("refused: {}", pair.text("refused_reason"))
        } else {
            "below the threshold".to_string()
        }
    )?;
    writeln!(
        out,
        "\n{:<16} {:<24} {:>10} {:>10} {:>8} {:>9}",
        "comparison", "level", "m", "u", "weight", "total"
    )?;
    let mut total = prior.float("match_weight");
    writeln!(
        out,
        "{:<16} {:<24} {:>10} {:>10} {:>8.2} {:>9.2}",
        "prior", "", "", "", total, total
    )?;
    for c in &config.comparisons {
        let gamma_column = format!("gamma_{}", c.name);
        if pair.is_null(&gamma_column) {
            writeln!(
                out,
                "{:<16} {:<24} {:>10} {:>10} {:>8.2} {:>9.2}",
                c.name, "NULL: no evidence", "", "", 0.0, total
            )?;
            continue;
        }
        let gamma = pair.int(&gamma_column);
        let row = level(&c.name, gamma)
            .ok_or_else(|| err!("{schema}.match_model has no level {gamma} of {}", c.name))?;
        let (m, u) = (row.float("m_probability"), row.float("u_probability"));
        let tf_column = format!("tf_{}", c.name);
        let tf = if pair.has(&tf_column) {
            pair.float(&tf_column)
        } else {
            f64::NAN
        };
        let (u_used, note) = if gamma == 0 && tf.is_finite() && tf > 0.0 {
            (tf.max(1e-6), " (tf)")
        } else {
            (u, "")
        };
        let weight = (m / u_used).log2();
        total += weight;
        writeln!(
            out,
            "{:<16} {:<24} {:>10.6} {:>10.6} {:>8.2} {:>9.2}",
            c.name,
            format!("{}{note}", row.text("level")),
            m,
            u_used,
            weight,
            total
        )?;
    }
    writeln!(
        out,
        "{:<16} {:<24} {:>10} {:>10} {:>8} {:>9.4}",
        "probability",
        "",
        "",
        "",
        "",
        1.0 / (1.0 + (-total).exp2())
    )?;
    Ok(())
}

/// The chain of accepted links joining `a` to `b` inside one customer.
async fn link_path(
    ws: &Workspace,
    schema: &str,
    customer: &str,
    a: &str,
    b: &str,
) -> Result<Vec<String>> {
    let links = customer_links(ws, schema, customer).await?;
    let links: Vec<(String, String, String)> = links
        .iter()
        .map(|l| {
            (
                get(l, "record_key_a"),
                get(l, "record_key_b"),
                describe_link(l),
            )
        })
        .collect();
    let mut next: HashMap<&str, Vec<(&str, String)>> = HashMap::new();
    for (x, y, how) in &links {
        next.entry(x).or_default().push((y, how.clone()));
        next.entry(y).or_default().push((x, how.clone()));
    }
    let mut came: HashMap<&str, (&str, String)> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::from([a]);
    let mut queue = VecDeque::from([a]);
    while let Some(x) = queue.pop_front() {
        if x == b {
            break;
        }
        for (y, how) in next.get(x).into_iter().flatten() {
            if seen.insert(y) {
                came.insert(y, (x, how.clone()));
                queue.push_back(y);
            }
        }
    }
    let mut path = Vec::new();
    let mut at = b;
    while let Some((from, how)) = came.get(at) {
        path.push(format!("{from} — {at}: {how}"));
        at = from;
    }
    path.reverse();
    Ok(path)
}

fn describe_link(l: &Row) -> String {
    match get(l, "linked_by").as_str() {
        "probabilistic" if !l.is_null("match_probability") => {
            format!("probabilistic, p = {:.4}", l.float("match_probability"))
        }
        other => other.to_string(),
    }
}

/// Links that hold a customer together: accepted comparisons, rules and overrides.
async fn customer_links(ws: &Workspace, schema: &str, customer: &str) -> Result<Rows> {
    rows(
        ws,
        &format!(
            "with members as (select record_key from {schema}.record_customer where customer_id = {c}) \
             select p.record_key_a, p.record_key_b, p.linked_by, p.match_probability from {schema}.match_pairs p \
             where p.accepted and p.record_key_a in (select record_key from members) \
             and p.record_key_b in (select record_key from members) \
             order by p.record_key_a, p.record_key_b",
            c = literal(customer)
        ),
    )
    .await
}

/// `tessera explain --customer <id>`.
pub async fn explain_customer(ws: &Workspace, customer: &str) -> Result<()> {
    let (schema, config) = identity_schema(ws).await?;
    let c = literal(customer);
    let mut columns = vec!["r.record_key".to_string(), "r.linked_by".to_string()];
    for col in config
        .identifiers
        .iter()
        .map(|i| i.column.as_str())
        .chain(["first_name", "last_name"])
    {
        let q = format!("i.{}", tessera_engine::identity::sql::ident(col));
        if !columns.contains(&q) && ws_has_column(ws, &schema, col).await {
            columns.push(q);
        }
    }
    let members = query(
        ws,
        &format!(
            "select {} from {schema}.record_customer r join {schema}.identity_records i using (record_key) \
             where r.customer_id = {c} order by r.record_key",
            columns.join(", ")
        ),
    )
    .await?;
    let n: usize = members.iter().map(|b| b.num_rows()).sum();
    let history = query(
        ws,
        &format!(
            "select run_id, event, customer_id, previous_customer_id, records from {schema}.customer_id_history \
             where customer_id = {c} or previous_customer_id = {c} order by changed_at"
        ),
    )
    .await?;
    if n == 0 {
        // A retired id: say where it went.
        if history.iter().all(|b| b.num_rows() == 0) {
            bail!("customer `{customer}` is not in {schema}.record_customer or its id history");
        }
        println!("{customer} holds no records now; its id history:");
        println!("{}", pretty_format_batches(&history)?);
        return Ok(());
    }
    println!("{customer}: {n} records");
    println!("{}", pretty_format_batches(&members)?);
    let links = customer_links(ws, &schema, customer).await?;
    println!("\nlinks that formed it ({}):", links.len());
    for l in &links {
        println!(
            "  {} — {}: {}",
            get(l, "record_key_a"),
            get(l, "record_key_b"),
            describe_link(l)
        );
    }
    let refused = query(
        ws,
        &format!(
            "with members as (select record_key from {schema}.record_customer where customer_id = {c}) \
             select guard, subject, record_key_a, record_key_b from {schema}.identity_guard_hits \
             where record_key_a in (select record_key from members) or record_key_b in (select record_key from members)"
        ),
    )
    .await?;
    if refused.iter().any(|b| b.num_rows() > 0) {
        println!("\nlinks refused by guards:");
        println!("{}", pretty_format_batches(&refused)?);
    }
    println!("\nid history:");
    println!("{}", pretty_format_batches(&history)?);
    Ok(())
}

async fn ws_has_column(ws: &Workspace, schema: &str, column: &str) -> bool {
    query(
        ws,
        &format!(
            "select {} from {schema}.identity_records limit 0",
            tessera_engine::identity::sql::ident(column)
        ),
    )
    .await
    .is_ok()
}

/// `tessera explain --model`: the stored match model, per comparison and level its m, u and
/// match weight with a bar (as Splink's match-weights chart), and the warnings the training
/// run gave.
pub async fn explain_model(ws: &Workspace) -> Result<String> {
    let (schema, config) = identity_schema(ws).await?;
    let model = crate::rows::rows(
        &query(
            ws,
            &format!(
                "select comparison, level_index, level, m_probability, u_probability, \
                 match_weight, trained_run_id, trained_records from {schema}.match_model"
            ),
        )
        .await?,
    );
    if model.is_empty() {
        bail!("{schema}.match_model is empty: run the identity job first");
    }
    let mut out = String::new();
    let trained = model[0].text("trained_run_id");
    writeln!(
        out,
        "match model trained by run {trained} on {} records",
        model[0].int("trained_records")
    )?;
    // Bars: one character per bit of weight, around a centre line.
    const HALF: usize = 20;
    let bar = |w: f64| -> String {
        let n = (w.abs().round() as usize).min(HALF);
        if w < 0.0 {
            format!("{:>HALF$}|{:HALF$}", "█".repeat(n), "")
        } else {
            format!("{:>HALF$}|{:<HALF$}", "", "█".repeat(n))
        }
    };
    writeln!(
        out,
        "\n{:<16} {:<24} {:>10} {:>10} {:>8}  {:^41}",
        "comparison", "level", "m", "u", "weight", "← against a match | for a match →"
    )?;
    let mut order: Vec<&str> = vec!["prior"];
    order.extend(config.comparisons.iter().map(|c| c.name.as_str()));
    for name in order {
        let mut levels: Vec<&crate::rows::Row> = model
            .iter()
            .filter(|r| r.text("comparison") == name)
            .collect();
        levels.sort_by_key(|r| r.int("level_index"));
        for (i, r) in levels.iter().enumerate() {
            let w = r.float("match_weight");
            let level = if name == "prior" {
                String::new()
            } else {
                r.text("level")
            };
            writeln!(
                out,
                "{:<16} {:<24} {:>10.6} {:>10.6} {:>8.2}  {}",
                if i == 0 { name } else { "" },
                level,
                r.float("m_probability"),
                r.float("u_probability"),
                w,
                bar(w)
            )?;
        }
    }
    let warnings = rows(
        ws,
        &format!(
            "select dimension from {schema}.identity_stats where metric = 'model_warning' \
             and run_id = {}",
            literal(&trained)
        ),
    )
    .await?;
    if warnings.is_empty() {
        writeln!(out, "\nno model warnings")?;
    } else {
        writeln!(out, "\nwarnings of the training run:")?;
        for w in &warnings {
            writeln!(out, "  {}", get(w, "dimension"))?;
        }
    }
    Ok(out)
}
