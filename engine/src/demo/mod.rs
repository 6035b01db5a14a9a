//! A realistic multi-source retail dataset with known ground truth, for demos, tests and
//! benchmarks.
//!
//! People live in households (shared address, landline, sometimes a family email and a shared
//! tablet) and appear in several systems, each exporting its own way:
//!
//! | table | format | what |
//! |---|---|---|
//! | `crm/contacts.csv` | CSV | CRM contacts, with duplicate entries and the member's loyalty card |
//! | `pos/customers/` | Parquet | point-of-sale loyalty customers |
//! | `pos/orders/` | Parquet, hive-partitioned by `order_year` | orders |
//! | `web/events/` | newline-delimited JSON | web/app events: anonymous devices, logins, signups with the account's profile (name, optional phone, postcode, loyalty card) |
//! | `email/engagement/` | Delta | email sends, opens, clicks, unsubscribes |
//! | `support/tickets.json` | newline-delimited JSON | support tickets, the requester known by the channel's contact (email, caller's number, what is given at the store desk) |
//! | `consent/records/` | Delta | consent grants and withdrawals per purpose |
//! | `_truth/records/`, `_truth/people/` | Parquet | which person is behind each record |
//!
//! Values carry the noise of real exports: typos, nicknames, case and whitespace, phones in
//! national and international formats of four countries, gmail dot and plus variants, missing
//! values, accents dropped by older systems, card numbers spaced and cased as typed. A loyalty
//! member's card is the one identifier the till, the CRM, the web account and the help desk can
//! share; a second till record of the same person is a second card. Generation is
//! deterministic for a seed and streams in chunks, so memory stays flat however many people are
//! asked for.

mod census;
mod people;
mod vocab;
mod write;

use url::Url;

use crate::error::{Error, Result};
use crate::session::Engine;

pub use people::DEMO_NOW;

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Number of people (the ground-truth population).
    pub people: u64,
    /// Seed: the same seed and size give the same bytes.
    pub seed: u64,
    /// People per generated chunk (memory use is proportional to it).
    pub chunk_size: usize,
    /// Remove whatever is at the output location first; without it a non-empty location is
    /// an error.
    pub overwrite: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            people: 10_000,
            seed: 42,
            chunk_size: 20_000,
            overwrite: false,
        }
    }
}

/// One table the generator wrote.
#[derive(Debug, Clone)]
pub struct DemoTable {
    /// The name used for it in the demo project.
    pub name: &'static str,
    /// `csv`, `parquet`, `json` or `delta`.
    pub format: &'static str,
    /// Where it is, relative to the output location.
    pub path: &'static str,
    /// Rows written.
    pub rows: u64,
}

/// What the generator wrote.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    /// The tables, in the order of the table above.
    pub tables: Vec<DemoTable>,
    /// People generated.
    pub people: u64,
}

/// Generates the demo dataset under `out`, calling `progress` with the number of people done.
pub async fn generate(
    engine: &Engine,
    out: &Url,
    options: &DemoOptions,
    progress: impl Fn(u64) + Send + Sync,
) -> Result<DemoSummary> {
    if options.people == 0 {
        return Err(Error::InvalidLocation {
            location: out.to_string(),
            message: "the number of people must be at least 1".into(),
        });
    }
    let out = if out.path().ends_with('/') {
        out.clone()
    } else {
        let mut u = out.clone();
        u.set_path(&format!("{}/", out.path()));
        u
    };
    let store = engine.store_for(&out)?;
    write::prepare_location(&store, &out, options.overwrite).await?;

    let mut sinks = write::Sinks::new(store.clone(), &out);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<people::Chunk>>(2);
    let opts = options.clone();
    // Generation is sequential (emails must be unique across the population, deterministically)
    // and runs on its own thread while this task encodes and writes the previous chunk.
    let generator = tokio::task::spawn_blocking(move || {
        let mut generator = people::Generator::new(opts.seed);
        let mut done = 0u64;
        while done < opts.people {
            let n = (opts.people - done).min(opts.chunk_size.max(1) as u64);
            let chunk = generator.chunk(n);
            done += n;
            if tx.blocking_send(chunk).is_err() {
                break;
            }
        }
    });
    let mut people = 0u64;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk?;
        people += chunk.people;
        sinks.write_chunk(chunk).await?;
        progress(people);
    }
    generator.await.map_err(|e| Error::Write {
        target: out.to_string(),
        source: Box::new(e),
    })?;
    let tables = sinks.finish(engine).await?;
    Ok(DemoSummary { tables, people })
}

/// The schema a project declares for a demo table whose files do not carry one (JSON lines
/// leave out absent fields), as `(column, SQL type)`; `None` for self-describing formats and CSV.
pub fn demo_table_columns(table: &str) -> Option<Vec<(String, &'static str)>> {
    use datafusion::arrow::datatypes::DataType;
    let schema = match table {
        "web_events" => write::web_events_schema(),
        "support_tickets" => write::tickets_schema(),
        _ => return None,
    };
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let ty = match f.data_type() {
                DataType::Int32 => "int",
                DataType::Int64 => "bigint",
                DataType::Float64 => "double",
                DataType::Boolean => "boolean",
                DataType::Date32 => "date",
                DataType::Timestamp(_, _) => "timestamptz",
                _ => "string",
            };
            (f.name().clone(), ty)
        })
        .collect();
    Some(columns)
}

/// The demo tables as `(name, format, path)`, for writing a project file that reads them.
pub fn demo_tables() -> Vec<(&'static str, &'static str, &'static str)> {
    write::TABLES
        .iter()
        .map(|t| (t.name, t.format, t.path))
        .collect()
}
