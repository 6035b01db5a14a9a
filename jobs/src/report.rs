//! `tessera report`: one self-contained HTML page about the project's data and runs — charts
//! first (inline SVG: no script, no font, no network fetch), the numbers behind each chart in
//! a table under it. Written by `tessera report` and after every `tessera run`.
//!
//! Sections: records per source; identity links by rule and match rate by source; cluster
//! sizes and the largest clusters (over-merge watch) with guard hits; golden-record
//! completeness; score distributions (RFM segments, churn probability, predicted value);
//! segment sizes over time; audience sizes with identifier coverage per destination; run
//! durations and failures from the run log. A section whose tables do not exist yet says so.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::errors::{Context, Result};
use chrono::Utc;
use datafusion::arrow::datatypes::DataType;

use crate::explain::rows;
use crate::job::quote_ident;
use crate::workspace::Workspace;

/// Where the report goes unless told otherwise: `<project>/reports/report.html`.
pub fn default_path(ws: &Workspace) -> PathBuf {
    ws.project.dir.join("reports").join("report.html")
}

/// Builds the report and writes it to `path`; returns the number of charts drawn.
pub async fn write(ws: &Workspace, path: &Path) -> Result<usize> {
    let report = build(ws).await?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, &report.html)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(report.charts)
}

/// A built report.
#[derive(Debug)]
pub struct Report {
    /// The page.
    pub html: String,
    /// Charts drawn.
    pub charts: usize,
}

/// One section: a chart (or why there is none) and its data.
struct Section {
    id: String,
    title: String,
    note: String,
    charts: Vec<String>,
    /// Lines shown as a list (warnings).
    items: Vec<String>,
    /// Preformatted blocks (explanations).
    blocks: Vec<String>,
    table: Table,
    missing: Option<String>,
}

#[derive(Default)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Section {
    fn new(id: &str, title: &str, note: &str) -> Self {
        Section {
            id: id.to_string(),
            title: title.to_string(),
            note: note.to_string(),
            charts: Vec::new(),
            items: Vec::new(),
            blocks: Vec::new(),
            table: Table::default(),
            missing: None,
        }
    }

    fn missing(mut self, why: impl Into<String>) -> Self {
        self.missing = Some(why.into());
        self
    }
}

/// Builds the report from the warehouse as it is now.
pub async fn build(ws: &Workspace) -> Result<Report> {
    let stats = identity_stats(ws).await;
    let sections = vec![
        sources(&stats),
        identity_links(&stats),
        clusters(&stats),
        completeness(ws).await,
        scores(ws).await,
        segments(ws).await,
        audiences(ws).await,
        warnings(ws).await,
        runs(ws).await,
    ];
    // The latest what-if, when one was measured (`tessera plan --impact`).
    let sections: Vec<Section> = sections.into_iter().chain(whatif_summary(ws)).collect();
    let summary = summary(ws, &stats).await;
    let charts = sections.iter().map(|s| s.charts.len()).sum();
    Ok(Report {
        html: page(ws, "Tessera report", &summary, &sections),
        charts,
    })
}

/// `unify.identity_stats` of the latest identity run: (metric, dimension, value).
type Stats = Result<Vec<(String, String, f64)>, String>;

async fn identity_stats(ws: &Workspace) -> Stats {
    let sql = "select metric, dimension, value from unify.identity_stats \
               where run_at = (select max(run_at) from unify.identity_stats)";
    match rows(ws, sql).await {
        Ok(rows) => Ok(rows
            .into_iter()
            .map(|r| (r.text("metric"), r.text("dimension"), r.number("value")))
            .collect()),
        Err(e) => Err(short_error(&e)),
    }
}

fn metric(stats: &[(String, String, f64)], name: &str) -> Vec<(String, f64)> {
    stats
        .iter()
        .filter(|(m, d, _)| m == name && d != "all")
        .map(|(_, d, v)| (d.clone(), *v))
        .collect()
}

/// Table rows `[measure, key, value]` for a chart's items.
fn measure_rows(measure: &str, items: &[(String, f64)], fmt: Fmt) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|(k, v)| vec![measure.to_string(), k.clone(), fmt.show(*v)])
        .collect()
}

fn short_error(e: &crate::errors::Error) -> String {
    let text = format!("{e:#}");
    let text = text.lines().next().unwrap_or_default();
    // A table no run has written yet: say so in the project's words, not the planner's.
    if let Some(at) = text.find("table '")
        && let Some(len) = text[at + 7..].find("' not found")
    {
        let name = &text[at + 7..at + 7 + len];
        let name = name
            .strip_prefix("datafusion.public.")
            .or_else(|| name.strip_prefix("datafusion."))
            .unwrap_or(name);
        return format!("{name} has not been built yet (`tessera run` builds it)");
    }
    text.chars().take(300).collect()
}

fn sources(stats: &Stats) -> Section {
    let s = Section::new(
        "sources",
        "Records per source",
        "Records fed to identity resolution in the latest run, by source system.",
    );
    let stats = match stats {
        Ok(stats) => stats,
        Err(e) => return s.missing(e.clone()),
    };
    let mut records = metric(stats, "records");
    records.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut s = s;
    s.charts.push(chart(
        "Records per source",
        hbar(&records, Fmt::Count, PALETTE[0]),
    ));
    s.table = Table {
        header: vec!["source".into(), "records".into()],
        rows: records
            .iter()
            .map(|(k, v)| vec![k.clone(), Fmt::Count.show(*v)])
            .collect(),
    };
    s
}

fn identity_links(stats: &Stats) -> Section {
    let mut s = Section::new(
        "identity",
        "Identity: links by rule, match rate by source",
        "Links each deterministic rule made and pairs the probabilistic model accepted; the share of each source's records whose customer also has records from another source.",
    );
    let stats = match stats {
        Ok(stats) => stats,
        Err(e) => return s.missing(e.clone()),
    };
    let mut links: Vec<(String, f64)> = metric(stats, "deterministic_links")
        .into_iter()
        .map(|(rule, v)| (format!("rule {rule}"), v))
        .collect();
    links.extend(
        metric(stats, "accepted_pairs")
            .into_iter()
            .map(|(kind, v)| (format!("{kind} (accepted pairs)"), v)),
    );
    let compared = metric(stats, "compared_pairs");
    let mut rates = metric(stats, "match_rate");
    rates.sort_by(|a, b| b.1.total_cmp(&a.1));
    s.charts
        .push(chart("Links by rule", hbar(&links, Fmt::Count, PALETTE[1])));
    s.charts.push(chart(
        "Match rate by source",
        hbar(&rates, Fmt::Percent, PALETTE[2]),
    ));
    let compared: Vec<(String, f64)> = compared
        .into_iter()
        .map(|(k, v)| (format!("blocking {k}"), v))
        .collect();
    let mut rows = measure_rows("links", &links, Fmt::Count);
    rows.extend(measure_rows("compared pairs", &compared, Fmt::Count));
    rows.extend(measure_rows("match rate", &rates, Fmt::Percent));
    // What the run that trained the match model warned about (see `tessera explain --model`).
    let warnings = metric(stats, "model_warning");
    if !warnings.is_empty() {
        s.note.push_str(&format!(
            " Model warnings ({}): {}",
            warnings.len(),
            warnings
                .iter()
                .map(|(w, _)| w.as_str())
                .collect::<Vec<_>>()
                .join(" · ")
        ));
        rows.extend(
            warnings
                .iter()
                .map(|(w, _)| vec!["model warning".to_string(), w.clone(), String::new()]),
        );
    }
    s.table = Table {
        header: vec!["measure".into(), "rule or source".into(), "value".into()],
        rows,
    };
    s
}

fn clusters(stats: &Stats) -> Section {
    let mut s = Section::new(
        "clusters",
        "Cluster sizes and the largest clusters",
        "How many customers have 1, 2, 3… records (log scale), the ten largest customers — the first place an over-merge shows — and links the guards refused.",
    );
    let stats = match stats {
        Ok(stats) => stats,
        Err(e) => return s.missing(e.clone()),
    };
    let mut sizes = metric(stats, "cluster_size");
    sizes.sort_by_key(|(k, _)| k.parse::<u64>().unwrap_or(u64::MAX));
    let largest = metric(stats, "largest_cluster");
    let mut guards = metric(stats, "refused_links");
    guards.extend(metric(stats, "guard_values"));
    s.charts.push(chart(
        "Customers by number of records",
        columns(&sizes, Fmt::Count, PALETTE[3], true),
    ));
    s.charts.push(chart(
        "Largest clusters (records)",
        hbar(&largest, Fmt::Count, PALETTE[4]),
    ));
    if !guards.is_empty() {
        s.charts
            .push(chart("Guard hits", hbar(&guards, Fmt::Count, PALETTE[6])));
    }
    let mut rows = measure_rows("customers with this many records", &sizes, Fmt::Count);
    rows.extend(measure_rows(
        "largest cluster (records)",
        &largest,
        Fmt::Count,
    ));
    rows.extend(measure_rows("guard hit", &guards, Fmt::Count));
    s.table = Table {
        header: vec!["measure".into(), "key".into(), "value".into()],
        rows,
    };
    s
}

/// Share of rows with a value (not NULL, and not empty text) per column of `table`, and its
/// row count.
async fn coverage(ws: &Workspace, table: &str, skip: &[&str]) -> Result<(f64, Vec<(String, f64)>)> {
    let columns: Vec<(String, DataType)> = crate::explain::table_columns(ws, table)
        .await?
        .into_iter()
        .filter(|(c, _)| !skip.contains(&c.as_str()))
        .collect();
    let mut select = String::from("select count(*) as \"__n\"");
    for (i, (name, data_type)) in columns.iter().enumerate() {
        let q = quote_ident(name);
        let filled = match data_type {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                format!("count(case when {q} <> '' then 1 end)")
            }
            _ => format!("count({q})"),
        };
        let _ = write!(select, ", {filled} as \"c{i}\"");
    }
    let _ = write!(select, " from {table}");
    let row = rows(ws, &select).await?.into_iter().next();
    let cell = |column: &str| row.as_ref().map_or(0.0, |r| r.number(column));
    let n = cell("__n");
    let shares = columns
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let filled = cell(&format!("c{i}"));
            (name.clone(), if n > 0.0 { filled / n } else { 0.0 })
        })
        .collect();
    Ok((n, shares))
}

async fn completeness(ws: &Workspace) -> Section {
    let mut s = Section::new(
        "completeness",
        "Golden-record completeness",
        "Share of customers in profiles.customers with a value in each attribute.",
    );
    let (n, mut shares) = match coverage(ws, "profiles.customers", &[]).await {
        Ok(c) => c,
        Err(e) => return s.missing(short_error(&e)),
    };
    shares.retain(|(name, _)| !name.ends_with("_record_key") && !name.ends_with("_source"));
    shares.sort_by(|a, b| b.1.total_cmp(&a.1));
    s.note = format!("{} ({} customers).", s.note, Fmt::Count.show(n));
    s.charts.push(chart(
        "Attributes filled",
        hbar(&shares, Fmt::Percent, PALETTE[5]),
    ));
    s.table = Table {
        header: vec!["attribute".into(), "filled".into()],
        rows: shares
            .iter()
            .map(|(k, v)| vec![k.clone(), Fmt::Percent.show(*v)])
            .collect(),
    };
    s
}

/// `(label, count)` pairs from a two-column query.
async fn pairs(ws: &Workspace, sql: &str) -> Result<Vec<(String, f64)>> {
    Ok(rows(ws, sql)
        .await?
        .into_iter()
        .map(|r| (r.text("k"), r.number("v")))
        .collect())
}

/// Ten equal-width buckets of a numeric column: `(range label, count)`.
async fn histogram(
    ws: &Workspace,
    table: &str,
    column: &str,
    fmt: Fmt,
) -> Result<Vec<(String, f64)>> {
    let sql = format!(
        "with b as (select min({column}) as lo, max({column}) as hi from {table}) \
         select least(cast(floor(({column} - lo) / nullif(hi - lo, 0) * 10) as int), 9) as k, \
                count(*) as v, min(lo) as lo, min(hi) as hi \
         from {table}, b where {column} is not null group by 1 order by 1"
    );
    let rows = rows(ws, &sql).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (lo, hi) = (r.number("lo"), r.number("hi"));
            let k = r.number("k");
            let width = (hi - lo) / 10.0;
            let from = lo + k * width;
            (
                format!("{}–{}", fmt.show(from), fmt.show(from + width)),
                r.number("v"),
            )
        })
        .collect())
}

/// The first part of a `from–to` label (ticks show where each band starts).
fn band_start(label: &str) -> &str {
    label.split('–').next().unwrap_or(label)
}

async fn scores(ws: &Workspace) -> Section {
    let mut s = Section::new(
        "scores",
        "Score distributions",
        "Customers per RFM segment, churn probability and predicted 365-day value (ten equal-width bands each).",
    );
    let mut rows_out = Vec::new();
    let mut missing = Vec::new();
    match pairs(
        ws,
        "select rfm_segment as k, count(*) as v from scores.rfm group by 1 order by 2 desc",
    )
    .await
    {
        Ok(p) => {
            s.charts.push(chart(
                "Customers per RFM segment",
                hbar(&p, Fmt::Count, PALETTE[0]),
            ));
            rows_out.extend(measure_rows("RFM segment", &p, Fmt::Count));
        }
        Err(e) => missing.push(format!("scores.rfm: {}", short_error(&e))),
    }
    for (table, column, label, fmt, color) in [
        (
            "scores.churn",
            "churn_probability",
            "churn probability",
            Fmt::Percent,
            PALETTE[6],
        ),
        (
            "scores.clv",
            "predicted_value_365d",
            "predicted 365-day value",
            Fmt::Decimal,
            PALETTE[2],
        ),
    ] {
        match histogram(ws, table, column, fmt).await {
            Ok(h) => {
                s.charts.push(chart(
                    &format!("Customers by {label}"),
                    columns(&h, Fmt::Count, color, false),
                ));
                rows_out.extend(measure_rows(label, &h, Fmt::Count));
            }
            Err(e) => missing.push(format!("{table}: {}", short_error(&e))),
        }
    }
    s.table = Table {
        header: vec!["score".into(), "band".into(), "customers".into()],
        rows: rows_out,
    };
    if s.charts.is_empty() {
        return s.missing(missing.join("; "));
    }
    s
}

async fn segments(ws: &Workspace) -> Section {
    let mut s = Section::new(
        "segments",
        "Segment sizes over time",
        "Members per segment at each change of segments.membership (from its history).",
    );
    let _ = crate::runner::register_view_jobs(ws, |name| name == "segments.sizes").await;
    let data = match rows(
        ws,
        "select cast(at as varchar) as at, segment, members from segments.sizes order by at, segment",
    )
    .await
    {
        Ok(rows) => rows,
        Err(e) => return s.missing(short_error(&e)),
    };
    let mut series: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    for r in &data {
        let point = (
            r.text("at").chars().take(16).collect::<String>(),
            r.number("members"),
        );
        match series
            .iter_mut()
            .find(|(name, _)| name == &r.text("segment"))
        {
            Some((_, points)) => points.push(point),
            None => series.push((r.text("segment"), vec![point])),
        }
    }
    let moments = data
        .iter()
        .map(|r| r.text("at"))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if moments > 1 {
        s.charts
            .push(chart("Members per segment over time", lines(&series)));
    }
    // Sizes now (the last point of each series).
    let mut now: Vec<(String, f64)> = series
        .iter()
        .filter_map(|(name, points)| points.last().map(|p| (name.clone(), p.1)))
        .collect();
    now.sort_by(|a, b| b.1.total_cmp(&a.1));
    s.charts.push(chart(
        "Members per segment now",
        hbar(&now, Fmt::Count, PALETTE[0]),
    ));
    s.table = Table {
        header: vec!["at".into(), "segment".into(), "members".into()],
        rows: data
            .iter()
            .map(|r| vec![r.text("at"), r.text("segment"), r.text("members")])
            .collect(),
    };
    s
}

async fn audiences(ws: &Workspace) -> Section {
    let mut s = Section::new(
        "audiences",
        "Audiences: size and identifier coverage per destination",
        "Members of each audience table (consented, hashed per the destination's rules) and the share of members carrying each identifier the destination matches on.",
    );
    if ws.project.audiences.is_empty() {
        return s.missing("the project declares no [audiences.*]");
    }
    let mut sizes = Vec::new();
    let mut cover = Vec::new();
    let mut rows_out = Vec::new();
    let mut errors = Vec::new();
    let mut unfilled: Vec<String> = Vec::new();
    for (name, decl) in &ws.project.audiences {
        let table = format!("audiences.{name}");
        match coverage(ws, &table, &["customer_id"]).await {
            Ok((n, shares)) => {
                let destination = format!("{:?}", decl.destination).to_lowercase();
                sizes.push((format!("{name} ({destination})"), n));
                rows_out.push(vec![
                    name.clone(),
                    destination.clone(),
                    "members".into(),
                    Fmt::Count.show(n),
                ]);
                for (column, share) in shares {
                    // A column the destination accepts that no member has (the project maps
                    // nothing to it): listed once in the note, not drawn as an empty bar.
                    if share == 0.0 && n > 0.0 {
                        unfilled.push(format!("{name} · {column}"));
                    } else {
                        cover.push((format!("{name} · {column}"), share));
                    }
                    rows_out.push(vec![
                        name.clone(),
                        destination.clone(),
                        column,
                        Fmt::Percent.show(share),
                    ]);
                }
            }
            Err(e) => errors.push(format!("{table}: {}", short_error(&e))),
        }
    }
    if sizes.is_empty() {
        return s.missing(errors.join("; "));
    }
    if !unfilled.is_empty() {
        s.note = format!(
            "{} Columns the destination accepts that no member has (nothing in the project fills them; map them in the audience's job to send them): {}.",
            s.note,
            unfilled.join(", ")
        );
    }
    if !errors.is_empty() {
        s.note = format!("{} Not shown: {}.", s.note, errors.join("; "));
    }
    s.charts.push(chart(
        "Members per audience",
        hbar(&sizes, Fmt::Count, PALETTE[1]),
    ));
    s.charts.push(chart(
        "Identifier coverage per audience",
        hbar(&cover, Fmt::Percent, PALETTE[4]),
    ));
    s.table = Table {
        header: vec![
            "audience".into(),
            "destination".into(),
            "measure".into(),
            "value".into(),
        ],
        rows: rows_out,
    };
    s
}

/// The warnings of each job's latest run (records' quality, the match model, quarantined
/// rows): what a reader should look at before trusting the figures above.
async fn warnings(ws: &Workspace) -> Section {
    let mut s = Section::new(
        "warnings",
        "Warnings of the latest runs",
        "Data quality (an identifier column that emptied, a fill rate that fell, a value too long), the match model and rows set aside, from each job's latest run in _tessera.runs.",
    );
    let latest = match rows(
        ws,
        "select job, cast(started_at as varchar) as started_at, reason from ( \
           select job, started_at, reason, \
             row_number() over (partition by job order by started_at desc) as latest \
           from _tessera.runs where kind = 'job') \
         where latest = 1 and reason like '%warnings: %' order by job",
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return s.missing(short_error(&e)),
    };
    for r in &latest {
        let reason = r.text("reason");
        let Some((_, list)) = reason.split_once("warnings: ") else {
            continue;
        };
        for w in list.split("; ").filter(|w| !w.trim().is_empty()) {
            s.items.push(format!("{}: {w}", r.text("job")));
            s.table.rows.push(vec![
                r.text("job"),
                r.text("started_at").chars().take(16).collect(),
                w.to_string(),
            ]);
        }
    }
    if s.items.is_empty() {
        s.items
            .push("None: every job's latest run was clean.".into());
    }
    s.table.header = vec!["job".into(), "run started".into(), "warning".into()];
    s
}

async fn runs(ws: &Workspace) -> Section {
    let mut s = Section::new(
        "runs",
        "Runs: durations and failures",
        "The last 30 runs from _tessera.runs (failed runs in red), the slowest jobs of the latest run, and recent failures.",
    );
    let recent = match rows(
        ws,
        "select run_id, cast(started_at as varchar) as started_at, duration_ms, status, reason \
         from _tessera.runs where kind = 'run' order by started_at desc limit 30",
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return s.missing(short_error(&e)),
    };
    let chronological: Vec<(String, f64, bool)> = recent
        .iter()
        .rev()
        .map(|r| {
            (
                // `MM-DD HH:MM`: the year is the report's, the seconds are noise.
                r.text("started_at")
                    .chars()
                    .skip(5)
                    .take(11)
                    .map(|c| if c == 'T' { ' ' } else { c })
                    .collect(),
                r.number("duration_ms") / 1000.0,
                r.text("status") != "success",
            )
        })
        .collect();
    s.charts.push(chart(
        "Run duration (seconds; failed runs in red)",
        run_columns(&chronological),
    ));
    if let Some(last) = recent.first() {
        let jobs = pairs(
            ws,
            &format!(
                "select job as k, duration_ms / 1000.0 as v from _tessera.runs \
                 where kind = 'job' and run_id = {} order by duration_ms desc limit 15",
                tessera_engine::sql::literal(&last.text("run_id"))
            ),
        )
        .await
        .unwrap_or_default();
        if !jobs.is_empty() {
            s.charts.push(chart(
                "Slowest jobs of the latest run",
                hbar(&jobs, Fmt::Seconds, PALETTE[3]),
            ));
        }
    }
    let failures = rows(
        ws,
        "select cast(started_at as varchar) as started_at, coalesce(job, '(run)') as job, \
                coalesce(error, reason) as error \
         from _tessera.runs where status = 'failed' order by started_at desc limit 20",
    )
    .await
    .unwrap_or_default();
    let mut table_rows: Vec<Vec<String>> = recent
        .iter()
        .map(|r| {
            vec![
                r.text("started_at"),
                r.text("status"),
                Fmt::Seconds.show(r.number("duration_ms") / 1000.0),
                r.text("reason"),
            ]
        })
        .collect();
    table_rows.extend(failures.iter().map(|r| {
        vec![
            r.text("started_at"),
            format!("failed: {}", r.text("job")),
            String::new(),
            r.text("error").chars().take(300).collect(),
        ]
    }));
    s.table = Table {
        header: vec![
            "started".into(),
            "status".into(),
            "duration".into(),
            "detail".into(),
        ],
        rows: table_rows,
    };
    s
}

/// Headline figures.
async fn summary(ws: &Workspace, stats: &Stats) -> Vec<(String, String)> {
    let mut cards = Vec::new();
    if let Ok(stats) = stats {
        for (m, label) in [("customers", "customers"), ("records", "records")] {
            if let Some((_, _, v)) = stats.iter().find(|(mm, d, _)| mm == m && d == "all") {
                cards.push((label.to_string(), Fmt::Count.show(*v)));
            }
        }
    }
    cards.push(("sources".into(), ws.project.sources.len().to_string()));
    if let Ok(last) = rows(
        ws,
        "select cast(started_at as varchar) as at, status from _tessera.runs \
         where kind = 'run' order by started_at desc limit 1",
    )
    .await
        && let Some(r) = last.first()
    {
        cards.push((
            "last run".into(),
            format!(
                "{} · {}",
                r.text("status"),
                r.text("at").chars().take(16).collect::<String>()
            ),
        ));
    }
    cards
}

// ---- HTML and SVG ----

const PALETTE: [&str; 7] = [
    "#2f6db5", "#3c9d5d", "#d08a1e", "#7b5cb8", "#c2495b", "#2a9aa0", "#8c6d3f",
];

#[derive(Debug, Clone, Copy)]
enum Fmt {
    Count,
    Percent,
    Decimal,
    Seconds,
}

impl Fmt {
    fn show(self, v: f64) -> String {
        match self {
            Fmt::Count => {
                if v.fract() != 0.0 {
                    return format!("{v:.2}");
                }
                crate::output::grouped(v as i64)
            }
            Fmt::Percent => format!("{:.1}%", v * 100.0),
            Fmt::Decimal => format!("{v:.0}"),
            Fmt::Seconds => format!("{v:.1} s"),
        }
    }
}

/// A chart with its caption.
fn chart(caption: &str, svg: String) -> String {
    format!(
        "<figure><figcaption>{}</figcaption>{svg}</figure>",
        esc(caption)
    )
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Every chart's width in pixels: two side by side on a wide screen.
const CHART_W: f64 = 640.0;

fn empty_chart(message: &str) -> String {
    format!(
        r#"<svg class="chart" role="img" viewBox="0 0 640 40" width="640" height="40"><text x="0" y="24" class="muted">{}</text></svg>"#,
        esc(message)
    )
}

/// Horizontal bars, labels on the left, values on the right.
fn hbar(items: &[(String, f64)], fmt: Fmt, color: &str) -> String {
    if items.is_empty() {
        return empty_chart("no data");
    }
    // The label column is as wide as the longest label needs (up to a limit past which labels
    // end in "…", the whole label in the tooltip); the bars take the rest of a fixed width.
    const CHAR_W: f64 = 7.4;
    let longest = items.iter().map(|i| i.0.chars().count()).max().unwrap_or(0);
    let label_w = (longest as f64 * CHAR_W + 14.0).clamp(60.0, 300.0);
    let fits = ((label_w - 14.0) / CHAR_W) as usize;
    let (width, row_h) = (CHART_W, 24.0);
    let bar_w = width - label_w - 64.0;
    let max = match fmt {
        Fmt::Percent => 1.0f64.max(items.iter().map(|i| i.1).fold(0.0, f64::max)),
        _ => items
            .iter()
            .map(|i| i.1)
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE),
    };
    let height = row_h * items.len() as f64 + 8.0;
    let mut svg = format!(
        r#"<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">"#
    );
    for (i, (label, value)) in items.iter().enumerate() {
        let y = i as f64 * row_h + 4.0;
        let w = (value / max * bar_w).max(if *value > 0.0 { 1.0 } else { 0.0 });
        let short: String = if label.chars().count() > fits {
            label
                .chars()
                .take(fits.saturating_sub(1))
                .chain(['…'])
                .collect()
        } else {
            label.clone()
        };
        let _ = write!(
            svg,
            r#"<g><title>{title}: {shown}</title><text x="{lx}" y="{ty}" text-anchor="end">{short}</text><rect x="{x}" y="{y}" width="{w:.1}" height="{h}" rx="2" fill="{color}"/><text x="{vx:.1}" y="{ty}" class="value">{shown}</text></g>"#,
            title = esc(label),
            shown = fmt.show(*value),
            lx = label_w - 8.0,
            ty = y + row_h * 0.62,
            short = esc(&short),
            x = label_w,
            h = row_h - 6.0,
            vx = label_w + w + 6.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Vertical columns (histograms), optionally on a log scale.
fn columns(items: &[(String, f64)], fmt: Fmt, color: &str, log: bool) -> String {
    if items.is_empty() {
        return empty_chart("no data");
    }
    let (width, height, left, bottom, top) = (CHART_W, 240.0, 60.0, 40.0, 14.0);
    let scale = |v: f64| {
        if log {
            (v.max(0.0) + 1.0).log10()
        } else {
            v.max(0.0)
        }
    };
    let max = items
        .iter()
        .map(|i| scale(i.1))
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let slot = (width - left - 10.0) / items.len() as f64;
    let plot_h = height - bottom - top;
    let mut svg = format!(
        r#"<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}"><line x1="{left}" y1="{base}" x2="{right}" y2="{base}" class="axis"/>"#,
        base = height - bottom,
        right = width - 10.0,
    );
    // A tick label every so many columns that labels never overlap.
    let label_chars = items
        .iter()
        .map(|i| band_start(&i.0).chars().count().min(14))
        .max()
        .unwrap_or(1);
    let every = ((label_chars as f64 * 6.4 + 8.0) / slot).ceil().max(1.0) as usize;
    for (i, (label, value)) in items.iter().enumerate() {
        let h = scale(*value) / max * plot_h;
        let x = left + i as f64 * slot;
        let _ = write!(
            svg,
            r#"<g><title>{title}: {shown}</title><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{color}"/></g>"#,
            title = esc(label),
            shown = fmt.show(*value),
            y = height - bottom - h,
            w = (slot * 0.8).clamp(1.0, 60.0),
        );
        if i % every == 0 {
            let short: String = band_start(label).chars().take(14).collect();
            let _ = write!(
                svg,
                r#"<text x="{cx:.1}" y="{ly}" text-anchor="middle" class="tick">{}</text>"#,
                esc(&short),
                cx = x + slot * 0.4,
                ly = height - bottom + 16.0,
            );
        }
    }
    let top_value = items.iter().map(|i| i.1).fold(0.0, f64::max);
    let _ = write!(
        svg,
        r#"<text x="{tx}" y="{ty}" text-anchor="end" class="tick">{}</text><text x="{tx}" y="{by}" text-anchor="end" class="tick">0</text>{}</svg>"#,
        fmt.show(top_value),
        if log {
            r#"<text x="100%" y="12" text-anchor="end" class="tick">log scale</text>"#
        } else {
            ""
        },
        tx = left - 6.0,
        ty = top + 8.0,
        by = height - bottom,
    );
    svg
}

/// Run durations over time, failed runs in red.
fn run_columns(runs: &[(String, f64, bool)]) -> String {
    let items: Vec<(String, f64)> = runs.iter().map(|(t, d, _)| (t.clone(), *d)).collect();
    let mut svg = columns(&items, Fmt::Seconds, PALETTE[0], false);
    // Recolour failed runs: the n-th <rect> is the n-th run.
    for (i, (_, _, failed)) in runs.iter().enumerate() {
        if *failed {
            let marker = format!("<g><title>{}: ", esc(&runs[i].0));
            if let Some(at) = svg.find(&marker)
                && let Some(fill) = svg[at..].find(PALETTE[0])
            {
                let start = at + fill;
                svg.replace_range(start..start + PALETTE[0].len(), "#d0312d");
            }
        }
    }
    svg
}

/// One line per series over shared x labels.
fn lines(series: &[(String, Vec<(String, f64)>)]) -> String {
    let mut xs: Vec<String> = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.0.clone()))
        .collect();
    xs.sort();
    xs.dedup();
    if xs.is_empty() {
        return empty_chart("no data");
    }
    let (width, height, left, bottom, top, legend) = (CHART_W, 260.0, 60.0, 40.0, 14.0, 170.0);
    let plot_w = width - left - legend;
    let plot_h = height - bottom - top;
    let max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(0.0, f64::max)
        .max(1.0);
    let x_of = |label: &str| {
        let i = xs.iter().position(|x| x == label).unwrap_or(0) as f64;
        left + if xs.len() > 1 {
            i / (xs.len() - 1) as f64 * plot_w
        } else {
            plot_w / 2.0
        }
    };
    let y_of = |v: f64| height - bottom - v / max * plot_h;
    let mut svg = format!(
        r#"<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}"><line x1="{left}" y1="{base}" x2="{right}" y2="{base}" class="axis"/><text x="{tx}" y="{ty}" text-anchor="end" class="tick">{top_label}</text><text x="{tx}" y="{base}" text-anchor="end" class="tick">0</text>"#,
        base = height - bottom,
        right = left + plot_w,
        tx = left - 6.0,
        ty = top + 8.0,
        top_label = Fmt::Count.show(max),
    );
    for (i, x) in [0, xs.len() - 1].iter().enumerate() {
        if i == 1 && xs.len() == 1 {
            break;
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="{}" class="tick">{}</text>"#,
            x_of(&xs[*x]),
            height - bottom + 16.0,
            if i == 0 { "start" } else { "end" },
            esc(&xs[*x])
        );
    }
    for (n, (name, points)) in series.iter().enumerate() {
        let color = PALETTE[n % PALETTE.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(x, v)| format!("{:.1},{:.1}", x_of(x), y_of(*v)))
            .collect();
        let _ = write!(
            svg,
            r#"<g><title>{title}</title><polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" "),
            title = esc(name),
        );
        for (x, v) in points {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{} {}: {}</title></circle>"#,
                x_of(x),
                y_of(*v),
                esc(name),
                esc(x),
                Fmt::Count.show(*v)
            );
        }
        let ly = top + 4.0 + n as f64 * 18.0;
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="{ly}" width="10" height="10" fill="{color}"/><text x="{tx}" y="{ty}">{}</text></g>"#,
            esc(&name.chars().take(22).collect::<String>()),
            lx = width - legend + 14.0,
            tx = width - legend + 30.0,
            ty = ly + 9.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
header { background: #1d2330; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 4px 0 0; color: #b9c0cc; }
nav { padding: 8px 32px; background: #e8ebf0; }
nav a { margin-right: 14px; color: #2f6db5; text-decoration: none; }
main { padding: 8px 32px 40px; max-width: 1500px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 0 32px; align-items: start; }
ul.warnings { margin: 4px 0 10px; padding-left: 20px; }
ul.warnings li { margin: 2px 0; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 16px 0; }
.card { background: #fff; border-radius: 6px; padding: 10px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.card b { display: block; font-size: 20px; }
.card span { color: #5b6475; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
section { background: #fff; border-radius: 6px; padding: 14px 20px; margin: 16px 0; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
section h2 { font-size: 16px; margin: 0 0 4px; }
section p.note { color: #5b6475; margin: 0 0 10px; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 8px 0 14px; font-size: 12px; }
svg.chart text { fill: #1d2330; }
svg.chart text.value, svg.chart text.tick, svg.chart text.muted { fill: #5b6475; font-size: 11px; }
svg.chart line.axis { stroke: #aab1bd; }
figure { margin: 10px 0 0; }
figcaption { font-weight: 600; font-size: 13px; color: #3a4252; }
details summary { cursor: pointer; color: #2f6db5; }
table { border-collapse: collapse; margin-top: 8px; font-size: 12px; }
th, td { text-align: left; padding: 3px 10px 3px 0; border-bottom: 1px solid #eceef2; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.missing { color: #8a5a00; background: #fff6e0; padding: 8px 12px; border-radius: 4px; }
"#;

fn page(ws: &Workspace, title: &str, cards: &[(String, String)], sections: &[Section]) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"><title>{title} — {name}</title><style>{STYLE}</style></head><body><header><h1>{title} — {name}</h1><p>Warehouse {warehouse} · generated {at} UTC</p></header><nav>"#,
        title = esc(title),
        name = esc(&ws.project.name),
        warehouse = esc(ws.project.warehouse.as_str()),
        at = Utc::now().format("%Y-%m-%d %H:%M"),
    );
    for s in sections {
        let _ = write!(html, r##"<a href="#{}">{}</a>"##, s.id, esc(&s.title));
    }
    html.push_str(r#"</nav><main><div class="cards">"#);
    for (label, value) in cards {
        let _ = write!(
            html,
            r#"<div class="card"><b>{}</b><span>{}</span></div>"#,
            esc(value),
            esc(label)
        );
    }
    html.push_str("</div>");
    for s in sections {
        let _ = write!(
            html,
            r#"<section id="{}" data-charts="{}"><h2>{}</h2><p class="note">{}</p>"#,
            s.id,
            s.charts.len(),
            esc(&s.title),
            esc(&s.note)
        );
        if let Some(why) = &s.missing {
            let _ = write!(
                html,
                r#"<p class="missing">Not available yet: {}</p>"#,
                esc(why)
            );
        }
        if !s.items.is_empty() {
            html.push_str(r#"<ul class="warnings">"#);
            for item in &s.items {
                let _ = write!(html, "<li>{}</li>", esc(item));
            }
            html.push_str("</ul>");
        }
        for block in &s.blocks {
            let (first, rest) = block.split_once('\n').unwrap_or((block, ""));
            let _ = write!(
                html,
                "<details><summary>{}</summary><pre>{}</pre></details>",
                esc(first),
                esc(rest)
            );
        }
        if !s.charts.is_empty() {
            html.push_str(r#"<div class="charts">"#);
            for chart in &s.charts {
                html.push_str(chart);
            }
            html.push_str("</div>");
        }
        if !s.table.rows.is_empty() {
            html.push_str("<details><summary>Data</summary><table><thead><tr>");
            for h in &s.table.header {
                let _ = write!(html, "<th>{}</th>", esc(h));
            }
            html.push_str("</tr></thead><tbody>");
            for row in &s.table.rows {
                html.push_str("<tr>");
                for cell in row {
                    let numeric = !cell.is_empty()
                        && cell
                            .chars()
                            .all(|c| c.is_ascii_digit() || ",.% s-".contains(c));
                    let _ = write!(
                        html,
                        "<td{}>{}</td>",
                        if numeric { r#" class="num""# } else { "" },
                        esc(cell)
                    );
                }
                html.push_str("</tr>");
            }
            html.push_str("</tbody></table></details>");
        }
        html.push_str("</section>");
    }
    html.push_str("</main></body></html>\n");
    html
}

/// The latest what-if (`tessera plan --impact`), in one section: what it ran, what identity,
/// the tracked tables and the audiences would become, the limits.
fn whatif_summary(ws: &Workspace) -> Option<Section> {
    let impact = crate::whatif::load_last(ws)?;
    let mut s = Section::new(
        "what-if",
        "What-if: the latest change measured before publishing",
        "tessera plan --impact runs the jobs a change affects into a sandbox and compares them with the published tables; nothing is published. Measured against the tables published then: a run since makes it stale.",
    );
    let count = |v: i64| Fmt::Count.show(v as f64);
    s.note = format!(
        "{} Latest: {} at {} — {} jobs run in the sandbox, {} reused, {:.1} s.",
        s.note,
        impact.id,
        impact.measured_at,
        impact.jobs.iter().filter(|j| j.action == "run").count(),
        impact.jobs.iter().filter(|j| j.action == "reuse").count(),
        impact.seconds
    );
    for j in impact.failed() {
        s.items.push(format!(
            "{} failed: {}",
            j.name,
            j.error.as_deref().unwrap_or("")
        ));
    }
    for i in &impact.identity {
        s.items.push(format!(
            "{}: customers {} → {}, {} merged, {} split; {} records change customer; links +{} −{}",
            i.job,
            count(i.customers_before),
            count(i.customers_after),
            count(i.merged),
            count(i.split),
            count(i.records_moved),
            count(i.links_gained),
            count(i.links_lost)
        ));
    }
    s.items.extend(
        impact
            .breaches
            .iter()
            .map(|b| format!("limit exceeded: {b}")),
    );
    let mut changes = Vec::new();
    for t in &impact.tracked {
        let name = t.job.clone();
        if t.added > 0 {
            changes.push((format!("{name} · added"), t.added as f64));
        }
        if t.removed > 0 {
            changes.push((format!("{name} · removed"), t.removed as f64));
        }
        if t.updated > 0 {
            changes.push((format!("{name} · updated"), t.updated as f64));
        }
    }
    if !changes.is_empty() {
        s.charts.push(chart(
            "Rows the next run would add, remove and update",
            hbar(&changes, Fmt::Count, PALETTE[2]),
        ));
    }
    s.table = Table {
        header: vec![
            "table".into(),
            "destination".into(),
            "rows now → after".into(),
            "added".into(),
            "removed".into(),
            "updated".into(),
        ],
        rows: impact
            .tracked
            .iter()
            .map(|t| {
                vec![
                    t.job.clone(),
                    t.destination.clone().unwrap_or_default(),
                    format!("{} → {}", count(t.rows_before), count(t.rows_after)),
                    count(t.added),
                    count(t.removed),
                    count(t.updated),
                ]
            })
            .collect(),
    };
    Some(s)
}

/// Writes a what-if's impact (`tessera plan --impact --html`) as a page in the report's style.
pub fn write_whatif(ws: &Workspace, impact: &crate::whatif::Impact, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, whatif_page(ws, impact))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The what-if page: the jobs, then identity, tracked tables, audiences and limits.
pub fn whatif_page(ws: &Workspace, impact: &crate::whatif::Impact) -> String {
    let mut cards = vec![(
        "jobs run in the sandbox / reused".to_string(),
        format!(
            "{} / {}",
            impact.jobs.iter().filter(|j| j.action == "run").count(),
            impact.jobs.iter().filter(|j| j.action == "reuse").count()
        ),
    )];
    let mut sections = Vec::new();
    let mut jobs = Section::new(
        "jobs",
        "Jobs",
        "What the plan runs into the sandbox (changed, or downstream of a change) and what it reads as published. Nothing was published.",
    );
    jobs.items = impact
        .failed()
        .iter()
        .map(|j| format!("{} failed: {}", j.name, j.error.as_deref().unwrap_or("")))
        .collect();
    jobs.table = Table {
        header: vec!["job".into(), "kind".into(), "action".into(), "why".into()],
        rows: impact
            .jobs
            .iter()
            .map(|j| {
                vec![
                    j.name.clone(),
                    j.materialized.clone(),
                    j.action.clone(),
                    j.error.clone().unwrap_or_else(|| j.reason.clone()),
                ]
            })
            .collect(),
    };
    sections.push(jobs);
    for i in &impact.identity {
        sections.push(identity_impact_section(i, &mut cards));
    }
    for t in &impact.tracked {
        sections.push(tracked_impact_section(t, &mut cards));
    }
    let mut limits = Section::new(
        "limits",
        "Limits",
        "The --max-* limits given to the what-if; an exceeded one makes it exit with code 4.",
    );
    limits.items = if impact.breaches.is_empty() {
        vec!["none exceeded".into()]
    } else {
        impact.breaches.clone()
    };
    sections.push(limits);
    page(ws, "Tessera what-if", &cards, &sections)
}

/// The what-if page's section for an identity job (and its headline cards).
fn identity_impact_section(
    i: &crate::whatif::IdentityImpact,
    cards: &mut Vec<(String, String)>,
) -> Section {
    let count = |v: i64| Fmt::Count.show(v as f64);
    cards.push((
        "customers now → after".into(),
        format!(
            "{} → {}",
            count(i.customers_before),
            count(i.customers_after)
        ),
    ));
    cards.push((
        "customers merged / split".into(),
        format!("{} / {}", count(i.merged), count(i.split)),
    ));
    cards.push(("records changing customer".into(), count(i.records_moved)));
    let mut s = Section::new(
        &format!("identity-{}", i.job.replace('.', "-")),
        &format!("Identity: {}", i.job),
        "Customers merged (an after-customer holding records of two customers of now), split and unchanged; records changing customer; stable ids; accepted links gained and lost by rule and by comparison level.",
    );
    s.items = vec![
        format!(
            "customers {} → {}: {} merged, {} split, {} unchanged",
            count(i.customers_before),
            count(i.customers_after),
            count(i.merged),
            count(i.split),
            count(i.unchanged)
        ),
        format!(
            "records changing customer: {} of {} ({} new, {} gone)",
            count(i.records_moved),
            count(i.records),
            count(i.records_new),
            count(i.records_gone)
        ),
        format!(
            "stable ids: {} retired, {} created",
            count(i.ids_retired),
            count(i.ids_created)
        ),
        format!(
            "accepted links: +{} −{}",
            count(i.links_gained),
            count(i.links_lost)
        ),
    ];
    let by = |list: &[crate::whatif::LinkChange], gained: bool| -> Vec<(String, f64)> {
        list.iter()
            .map(|l| (l.key.clone(), if gained { l.gained } else { l.lost } as f64))
            .filter(|(_, v)| *v > 0.0)
            .take(12)
            .collect()
    };
    for (caption, items, color) in [
        (
            "Links gained by rule",
            by(&i.links_by_rule, true),
            PALETTE[1],
        ),
        (
            "Links lost by rule",
            by(&i.links_by_rule, false),
            PALETTE[3],
        ),
        (
            "Links gained by comparison level",
            by(&i.links_by_level, true),
            PALETTE[1],
        ),
        (
            "Links lost by comparison level",
            by(&i.links_by_level, false),
            PALETTE[3],
        ),
    ] {
        if !items.is_empty() {
            s.charts
                .push(chart(caption, hbar(&items, Fmt::Count, color)));
        }
    }
    let mut rows: Vec<Vec<String>> = i
        .links_by_rule
        .iter()
        .chain(&i.links_by_level)
        .map(|l| vec![l.key.clone(), count(l.gained), count(l.lost)])
        .collect();
    for r in &i.match_rate {
        rows.push(vec![
            format!("{} linked (share of its records)", r.source),
            Fmt::Percent.show(r.linked_after),
            Fmt::Percent.show(r.linked_before),
        ]);
    }
    s.table = Table {
        header: vec![
            "links / source".into(),
            "gained (after)".into(),
            "lost (now)".into(),
        ],
        rows,
    };
    for d in &i.decisions {
        s.blocks.push(format!(
            "{} {} and {}\n\n— now —\n{}\n— after the change —\n{}",
            d.change, d.a, d.b, d.before, d.after
        ));
    }
    s
}

/// The what-if page's section for a tracked job (golden records, segments, audiences).
fn tracked_impact_section(
    t: &crate::whatif::TrackedImpact,
    cards: &mut Vec<(String, String)>,
) -> Section {
    let count = |v: i64| Fmt::Count.show(v as f64);
    let title = match &t.destination {
        Some(d) => format!("Audience {} ({d}): what the next sync sends", t.job),
        None => format!("{} (keyed on {})", t.job, t.key.join(", ")),
    };
    let mut s = Section::new(
        &t.job.replace('.', "-"),
        &title,
        "Rows the next run would add, remove and update in this tracked table (its _changes), by group of its key and by column.",
    );
    s.items.push(format!(
        "{} → {} rows: {} added, {} removed, {} updated",
        count(t.rows_before),
        count(t.rows_after),
        count(t.added),
        count(t.removed),
        count(t.updated)
    ));
    if t.destination.is_some() {
        cards.push((
            format!("{} adds / removes", t.job.trim_start_matches("audiences.")),
            format!("+{} −{}", count(t.added), count(t.removed)),
        ));
    }
    let entered: Vec<(String, f64)> = t
        .groups
        .iter()
        .filter(|g| g.entered > 0)
        .map(|g| (g.group.clone(), g.entered as f64))
        .collect();
    let exited: Vec<(String, f64)> = t
        .groups
        .iter()
        .filter(|g| g.exited > 0)
        .map(|g| (g.group.clone(), g.exited as f64))
        .collect();
    if !entered.is_empty() {
        s.charts
            .push(chart("Entering", hbar(&entered, Fmt::Count, PALETTE[1])));
    }
    if !exited.is_empty() {
        s.charts
            .push(chart("Exiting", hbar(&exited, Fmt::Count, PALETTE[3])));
    }
    let fields: Vec<(String, f64)> = t
        .fields
        .iter()
        .map(|f| (f.column.clone(), f.changed as f64))
        .collect();
    if !fields.is_empty() {
        s.charts.push(chart(
            "Fields that change",
            hbar(&fields, Fmt::Count, PALETTE[2]),
        ));
    }
    let mut rows: Vec<Vec<String>> = t
        .groups
        .iter()
        .map(|g| {
            vec![
                g.group.clone(),
                count(g.entered),
                count(g.exited),
                String::new(),
            ]
        })
        .collect();
    rows.extend(t.fields.iter().map(|f| {
        vec![
            f.column.clone(),
            count(f.changed),
            String::new(),
            f.example
                .as_ref()
                .map_or(String::new(), |(k, b, a)| format!("{k}: {b} → {a}")),
        ]
    }));
    s.table = Table {
        header: vec![
            "group / column".into(),
            "enter / changed".into(),
            "exit".into(),
            "example".into(),
        ],
        rows,
    };
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_shown_for_people() {
        assert_eq!(Fmt::Count.show(1234567.0), "1,234,567");
        assert_eq!(Fmt::Count.show(12.0), "12");
        assert_eq!(Fmt::Percent.show(0.9876), "98.8%");
        assert_eq!(Fmt::Seconds.show(2.25), "2.2 s");
    }

    #[test]
    fn a_table_not_built_yet_is_named_in_the_projects_words() {
        let e = crate::err!("Error during planning: table 'datafusion.scores.rfm' not found");
        assert_eq!(
            short_error(&e),
            "scores.rfm has not been built yet (`tessera run` builds it)"
        );
        let e = crate::err!("something else");
        assert_eq!(short_error(&e), "something else");
    }

    #[test]
    fn charts_escape_labels_and_scale_to_the_largest_value() {
        let svg = hbar(
            &[("<script>".into(), 10.0), ("b".into(), 5.0)],
            Fmt::Count,
            PALETTE[0],
        );
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        // The label column fits "<script>" (8 characters); the bars take the rest.
        assert!(svg.contains(r#"width="502.8""#), "{svg}");
        assert!(svg.contains(r#"width="251.4""#), "{svg}");
        // A label past the limit ends in "…", whole in its tooltip.
        let long = "x".repeat(80);
        let svg = hbar(&[(long.clone(), 1.0)], Fmt::Count, PALETTE[0]);
        assert!(svg.contains(&format!("<title>{long}: 1</title>")), "{svg}");
        assert!(
            svg.contains(&format!(">{}…</text>", "x".repeat(37))),
            "{svg}"
        );
        let runs = run_columns(&[("a".into(), 1.0, false), ("b".into(), 2.0, true)]);
        assert_eq!(runs.matches("#d0312d").count(), 1);
        assert!(lines(&[]).contains("no data"));
    }
}
