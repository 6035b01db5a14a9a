//! Encodes generated rows and streams them to the output location, each table in the format a
//! real company's export of it would have.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::json::LineDelimitedWriter;
use deltalake::operations::convert_to_delta::ConvertToDeltaBuilder;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tokio::io::AsyncWriteExt;
use url::Url;

use super::DemoTable;
use super::people::Chunk;
use crate::error::{Error, Result};
use crate::session::Engine;
use crate::storage::object_path;

pub struct TableSpec {
    pub name: &'static str,
    pub format: &'static str,
    pub path: &'static str,
}

pub const TABLES: [TableSpec; 9] = [
    TableSpec {
        name: "crm_contacts",
        format: "csv",
        path: "crm/contacts.csv",
    },
    TableSpec {
        name: "pos_customers",
        format: "parquet",
        path: "pos/customers/",
    },
    TableSpec {
        name: "pos_orders",
        format: "parquet",
        path: "pos/orders/",
    },
    TableSpec {
        name: "web_events",
        format: "json",
        path: "web/events/",
    },
    TableSpec {
        name: "email_engagement",
        format: "delta",
        path: "email/engagement/",
    },
    TableSpec {
        name: "support_tickets",
        format: "json",
        path: "support/tickets.json",
    },
    TableSpec {
        name: "consent_records",
        format: "delta",
        path: "consent/records/",
    },
    TableSpec {
        name: "truth_records",
        format: "parquet",
        path: "_truth/records/",
    },
    TableSpec {
        name: "truth_people",
        format: "parquet",
        path: "_truth/people/",
    },
];

/// Rows per Parquet or JSON file before the next file is started.
const ROWS_PER_FILE: u64 = 2_000_000;

/// Refuses to write over existing data unless asked to, in which case it removes it first.
pub async fn prepare_location(
    store: &Arc<dyn ObjectStore>,
    out: &Url,
    overwrite: bool,
) -> Result<()> {
    let prefix = object_path(out);
    let existing: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    if existing.is_empty() {
        return Ok(());
    }
    if !overwrite {
        return Err(Error::InvalidLocation {
            location: out.to_string(),
            message: format!(
                "{} files are already there; choose an empty location or pass --force to replace them",
                existing.len()
            ),
        });
    }
    for meta in existing {
        store.delete(&meta.location).await?;
    }
    Ok(())
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn ts(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

fn timestamps(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(values).with_timezone("UTC"))
}

struct Batches {
    crm: RecordBatch,
    pos_customers: RecordBatch,
    orders: Vec<(i32, RecordBatch)>,
    web_events: RecordBatch,
    email_events: RecordBatch,
    tickets: RecordBatch,
    consents: RecordBatch,
    truth_records: RecordBatch,
    truth_people: RecordBatch,
}

/// The web events' fields. A JSON line leaves out the fields it has no value for (most events
/// carry no profile traits), so a reader is given this schema rather than guessing it from the
/// first lines.
pub fn web_events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("event_id", false),
        utf8("anonymous_id", false),
        utf8("user_id", true),
        utf8("event_type", false),
        utf8("event_ts", false),
        utf8("page", false),
        utf8("email", true),
        utf8("first_name", true),
        utf8("last_name", true),
        utf8("phone", true),
        utf8("postal_code", true),
        utf8("loyalty_number", true),
        utf8("country", false),
    ]))
}

/// The support tickets' fields (JSON lines, as the web events).
pub fn tickets_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("ticket_id", false),
        utf8("requester_name", true),
        utf8("email", true),
        utf8("phone", true),
        utf8("loyalty_number", true),
        utf8("channel", false),
        utf8("subject", false),
        utf8("status", false),
        Field::new("satisfaction", DataType::Int32, true),
        utf8("created_at", false),
    ]))
}

fn encode(chunk: Chunk) -> Result<Batches> {
    let c = &chunk;
    let (crm, pos_customers) = encode_customers(c)?;
    let orders = encode_orders(c)?;
    let (web_events, email_events, tickets, consents) = encode_events(c)?;
    let (truth_records, truth_people) = encode_truth(c)?;
    Ok(Batches {
        crm,
        pos_customers,
        orders,
        web_events,
        email_events,
        tickets,
        consents,
        truth_records,
        truth_people,
    })
}

/// The CRM contacts and the point-of-sale customers.
fn encode_customers(c: &Chunk) -> Result<(RecordBatch, RecordBatch)> {
    let crm_schema = Arc::new(Schema::new(vec![
        utf8("contact_id", false),
        utf8("salutation", true),
        utf8("first_name", true),
        utf8("last_name", true),
        utf8("email", true),
        utf8("phone", true),
        utf8("loyalty_number", true),
        utf8("birth_date", true),
        utf8("street", true),
        utf8("city", true),
        utf8("state", true),
        utf8("postal_code", true),
        utf8("country", true),
        utf8("created_at", false),
        utf8("updated_at", false),
    ]));
    let crm = RecordBatch::try_new(
        crm_schema,
        vec![
            strings(c.crm.iter().map(|r| Some(r.contact_id.as_str()))),
            strings(c.crm.iter().map(|r| r.salutation.as_deref())),
            strings(c.crm.iter().map(|r| r.first_name.as_deref())),
            strings(c.crm.iter().map(|r| r.last_name.as_deref())),
            strings(c.crm.iter().map(|r| r.email.as_deref())),
            strings(c.crm.iter().map(|r| r.phone.as_deref())),
            strings(c.crm.iter().map(|r| r.loyalty_number.as_deref())),
            strings(c.crm.iter().map(|r| r.birth_date.as_deref())),
            strings(c.crm.iter().map(|r| r.street.as_deref())),
            strings(c.crm.iter().map(|r| r.city.as_deref())),
            strings(c.crm.iter().map(|r| r.state.as_deref())),
            strings(c.crm.iter().map(|r| r.postal_code.as_deref())),
            strings(c.crm.iter().map(|r| r.country.as_deref())),
            strings(c.crm.iter().map(|r| Some(r.created_at.as_str()))),
            strings(c.crm.iter().map(|r| Some(r.updated_at.as_str()))),
        ],
    )?;

    let pos_schema = Arc::new(Schema::new(vec![
        utf8("pos_customer_id", false),
        utf8("loyalty_number", false),
        utf8("full_name", true),
        utf8("email", true),
        utf8("phone", true),
        utf8("postal_code", true),
        utf8("country", false),
        utf8("home_store_id", false),
        ts("created_at"),
    ]));
    let p = &c.pos_customers;
    let pos_customers = RecordBatch::try_new(
        pos_schema,
        vec![
            strings(p.iter().map(|r| Some(r.pos_customer_id.as_str()))),
            strings(p.iter().map(|r| Some(r.loyalty_number.as_str()))),
            strings(p.iter().map(|r| r.full_name.as_deref())),
            strings(p.iter().map(|r| r.email.as_deref())),
            strings(p.iter().map(|r| r.phone.as_deref())),
            strings(p.iter().map(|r| r.postal_code.as_deref())),
            strings(p.iter().map(|r| Some(r.country.as_str()))),
            strings(p.iter().map(|r| Some(r.home_store_id.as_str()))),
            timestamps(p.iter().map(|r| r.created_at)),
        ],
    )?;

    Ok((crm, pos_customers))
}

/// The orders, one batch per year (written under `order_year=YYYY/` folders).
fn encode_orders(c: &Chunk) -> Result<Vec<(i32, RecordBatch)>> {
    // Orders are written under order_year=YYYY/ folders; the year is in the path, not the file.
    let order_schema = Arc::new(Schema::new(vec![
        utf8("order_id", false),
        utf8("pos_customer_id", false),
        utf8("store_id", false),
        utf8("channel", false),
        ts("order_ts"),
        utf8("category", false),
        Field::new("items", DataType::Int32, false),
        Field::new("amount", DataType::Decimal128(12, 2), false),
        utf8("currency", false),
    ]));
    let mut by_year: BTreeMap<i32, Vec<&super::people::OrderRow>> = BTreeMap::new();
    for o in &c.orders {
        by_year.entry(o.order_year).or_default().push(o);
    }
    let mut orders = Vec::new();
    for (year, rows) in by_year {
        let amount = datafusion::arrow::array::Decimal128Array::from_iter_values(
            rows.iter().map(|r| r.amount_cents as i128),
        )
        .with_precision_and_scale(12, 2)?;
        orders.push((
            year,
            RecordBatch::try_new(
                order_schema.clone(),
                vec![
                    strings(rows.iter().map(|r| Some(r.order_id.as_str()))),
                    strings(rows.iter().map(|r| Some(r.pos_customer_id.as_str()))),
                    strings(rows.iter().map(|r| Some(r.store_id.as_str()))),
                    strings(rows.iter().map(|r| Some(r.channel))),
                    timestamps(rows.iter().map(|r| r.order_ts)),
                    strings(rows.iter().map(|r| Some(r.category))),
                    Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.items))),
                    Arc::new(amount),
                    strings(rows.iter().map(|r| Some(r.currency))),
                ],
            )?,
        ));
    }

    Ok(orders)
}

/// Web events, email events, support tickets and consent records.
fn encode_events(c: &Chunk) -> Result<(RecordBatch, RecordBatch, RecordBatch, RecordBatch)> {
    let w = &c.web_events;
    let web_events = RecordBatch::try_new(
        web_events_schema(),
        vec![
            strings(w.iter().map(|r| Some(r.event_id.as_str()))),
            strings(w.iter().map(|r| Some(r.anonymous_id.as_str()))),
            strings(w.iter().map(|r| r.user_id.as_deref())),
            strings(w.iter().map(|r| Some(r.event_type))),
            strings(w.iter().map(|r| Some(r.event_ts.as_str()))),
            strings(w.iter().map(|r| Some(r.page))),
            strings(w.iter().map(|r| r.email.as_deref())),
            strings(w.iter().map(|r| r.first_name.as_deref())),
            strings(w.iter().map(|r| r.last_name.as_deref())),
            strings(w.iter().map(|r| r.phone.as_deref())),
            strings(w.iter().map(|r| r.postal_code.as_deref())),
            strings(w.iter().map(|r| r.loyalty_number.as_deref())),
            strings(w.iter().map(|r| Some(r.country))),
        ],
    )?;

    let e = &c.email_events;
    let email_events = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            utf8("email", false),
            utf8("campaign_id", false),
            utf8("event_type", false),
            ts("event_ts"),
        ])),
        vec![
            strings(e.iter().map(|r| Some(r.email.as_str()))),
            strings(e.iter().map(|r| Some(r.campaign_id.as_str()))),
            strings(e.iter().map(|r| Some(r.event_type))),
            timestamps(e.iter().map(|r| r.event_ts)),
        ],
    )?;

    let t = &c.tickets;
    let tickets = RecordBatch::try_new(
        tickets_schema(),
        vec![
            strings(t.iter().map(|r| Some(r.ticket_id.as_str()))),
            strings(t.iter().map(|r| r.requester_name.as_deref())),
            strings(t.iter().map(|r| r.email.as_deref())),
            strings(t.iter().map(|r| r.phone.as_deref())),
            strings(t.iter().map(|r| r.loyalty_number.as_deref())),
            strings(t.iter().map(|r| Some(r.channel))),
            strings(t.iter().map(|r| Some(r.subject))),
            strings(t.iter().map(|r| Some(r.status))),
            Arc::new(t.iter().map(|r| r.satisfaction).collect::<Int32Array>()),
            strings(t.iter().map(|r| Some(r.created_at.as_str()))),
        ],
    )?;

    let s = &c.consents;
    let consents = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            utf8("consent_id", false),
            utf8("subject_email", true),
            utf8("subject_phone", true),
            utf8("purpose", false),
            utf8("channel", false),
            utf8("status", false),
            ts("recorded_at"),
            utf8("source", false),
        ])),
        vec![
            strings(s.iter().map(|r| Some(r.consent_id.as_str()))),
            strings(s.iter().map(|r| r.subject_email.as_deref())),
            strings(s.iter().map(|r| r.subject_phone.as_deref())),
            strings(s.iter().map(|r| Some(r.purpose))),
            strings(s.iter().map(|r| Some(r.channel))),
            strings(s.iter().map(|r| Some(r.status))),
            timestamps(s.iter().map(|r| r.recorded_at)),
            strings(s.iter().map(|r| Some(r.source))),
        ],
    )?;

    Ok((web_events, email_events, tickets, consents))
}

/// The ground truth: each record's person, and the people.
fn encode_truth(c: &Chunk) -> Result<(RecordBatch, RecordBatch)> {
    let tr = &c.truth_records;
    let truth_records = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            utf8("source", false),
            utf8("record_id", false),
            utf8("true_person_id", false),
        ])),
        vec![
            strings(tr.iter().map(|r| Some(r.source))),
            strings(tr.iter().map(|r| Some(r.record_id.as_str()))),
            strings(tr.iter().map(|r| Some(r.true_person_id.as_str()))),
        ],
    )?;

    let tp = &c.truth_people;
    let truth_people = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            utf8("true_person_id", false),
            utf8("household_id", false),
            utf8("country", false),
            utf8("first_name", false),
            utf8("last_name", false),
            utf8("email", false),
            utf8("phone_e164", false),
            Field::new("birth_date", DataType::Date32, false),
            Field::new("customer_since", DataType::Date32, false),
            Field::new("churned", DataType::Boolean, false),
            Field::new("churn_date", DataType::Date32, true),
            Field::new("engagement", DataType::Float64, false),
        ])),
        vec![
            strings(tp.iter().map(|r| Some(r.true_person_id.as_str()))),
            strings(tp.iter().map(|r| Some(r.household_id.as_str()))),
            strings(tp.iter().map(|r| Some(r.country))),
            strings(tp.iter().map(|r| Some(r.first_name))),
            strings(tp.iter().map(|r| Some(r.last_name))),
            strings(tp.iter().map(|r| Some(r.email.as_str()))),
            strings(tp.iter().map(|r| Some(r.phone_e164.as_str()))),
            Arc::new(Date32Array::from_iter_values(
                tp.iter().map(|r| r.birth_date),
            )),
            Arc::new(Date32Array::from_iter_values(
                tp.iter().map(|r| r.customer_since),
            )),
            Arc::new(tp.iter().map(|r| Some(r.churned)).collect::<BooleanArray>()),
            Arc::new(tp.iter().map(|r| r.churn_date).collect::<Date32Array>()),
            Arc::new(Float64Array::from_iter_values(
                tp.iter().map(|r| r.engagement),
            )),
        ],
    )?;
    Ok((truth_records, truth_people))
}

// ---------------------------------------------------------------------------------------------

/// Parquet files under a folder, a new file every [`ROWS_PER_FILE`] rows.
struct ParquetFiles {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    current: Option<AsyncArrowWriter<BufWriter>>,
    rows_in_file: u64,
    files: u32,
    rows: u64,
}

impl ParquetFiles {
    fn new(store: Arc<dyn ObjectStore>, dir: Path) -> Self {
        Self {
            store,
            dir,
            current: None,
            rows_in_file: 0,
            files: 0,
            rows: 0,
        }
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.rows_in_file >= ROWS_PER_FILE
            && let Some(writer) = self.current.take()
        {
            writer.close().await?;
        }
        if self.current.is_none() {
            let path = self
                .dir
                .clone()
                .join(format!("part-{:05}.parquet", self.files).as_str());
            self.files += 1;
            self.rows_in_file = 0;
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
                .build();
            let writer = BufWriter::new(self.store.clone(), path);
            self.current = Some(AsyncArrowWriter::try_new(
                writer,
                batch.schema(),
                Some(props),
            )?);
        }
        let writer = self.current.as_mut().expect("writer opened above");
        writer.write(batch).await?;
        self.rows_in_file += batch.num_rows() as u64;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    async fn finish(mut self, schema_if_empty: Option<SchemaRef>) -> Result<u64> {
        if self.current.is_none()
            && let Some(schema) = schema_if_empty
        {
            // A table with no rows still gets one (empty) file carrying its schema.
            let path = self.dir.clone().join("part-00000.parquet");
            let writer = BufWriter::new(self.store.clone(), path);
            self.current = Some(AsyncArrowWriter::try_new(writer, schema, None)?);
        }
        if let Some(writer) = self.current.take() {
            writer.close().await?;
        }
        Ok(self.rows)
    }
}

/// Text files (CSV or newline-delimited JSON) streamed through multipart uploads.
struct TextFiles {
    store: Arc<dyn ObjectStore>,
    /// A single file, or a folder when `rotate` is set.
    path: Path,
    rotate: bool,
    csv: bool,
    current: Option<BufWriter>,
    rows_in_file: u64,
    files: u32,
    rows: u64,
}

impl TextFiles {
    fn new(store: Arc<dyn ObjectStore>, path: Path, rotate: bool, csv: bool) -> Self {
        Self {
            store,
            path,
            rotate,
            csv,
            current: None,
            rows_in_file: 0,
            files: 0,
            rows: 0,
        }
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.rotate
            && self.rows_in_file >= ROWS_PER_FILE
            && let Some(mut writer) = self.current.take()
        {
            writer.shutdown().await.map_err(|e| self.io_err(e))?;
        }
        let new_file = self.current.is_none();
        if new_file {
            let path = if self.rotate {
                let ext = if self.csv { "csv" } else { "json" };
                self.path
                    .clone()
                    .join(format!("part-{:05}.{ext}", self.files).as_str())
            } else {
                self.path.clone()
            };
            self.files += 1;
            self.rows_in_file = 0;
            self.current = Some(BufWriter::new(self.store.clone(), path));
        }
        let mut bytes = Vec::with_capacity(batch.get_array_memory_size());
        if self.csv {
            let mut writer = CsvWriterBuilder::new()
                .with_header(new_file)
                .build(&mut bytes);
            writer.write(batch)?;
        } else {
            let mut writer = LineDelimitedWriter::new(&mut bytes);
            writer.write(batch)?;
            writer.finish()?;
        }
        let writer = self.current.as_mut().expect("writer opened above");
        writer.write_all(&bytes).await.map_err(|e| Error::Io {
            path: self.path.as_ref().into(),
            source: e,
        })?;
        self.rows_in_file += batch.num_rows() as u64;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn io_err(&self, e: std::io::Error) -> Error {
        Error::Io {
            path: self.path.as_ref().into(),
            source: e,
        }
    }

    async fn finish(mut self) -> Result<u64> {
        if let Some(mut writer) = self.current.take() {
            writer.shutdown().await.map_err(|e| self.io_err(e))?;
        }
        Ok(self.rows)
    }
}

/// All the demo's outputs, open while chunks stream in.
pub struct Sinks {
    out: Url,
    crm: TextFiles,
    pos_customers: ParquetFiles,
    orders: BTreeMap<i32, ParquetFiles>,
    web_events: TextFiles,
    email_events: ParquetFiles,
    tickets: TextFiles,
    consents: ParquetFiles,
    truth_records: ParquetFiles,
    truth_people: ParquetFiles,
    store: Arc<dyn ObjectStore>,
    schemas: BTreeMap<&'static str, SchemaRef>,
}

impl Sinks {
    pub fn new(store: Arc<dyn ObjectStore>, out: &Url) -> Self {
        let base = object_path(out);
        let at = |rel: &str| -> Path {
            let mut p = base.clone();
            for part in rel.split('/').filter(|s| !s.is_empty()) {
                p = p.join(part);
            }
            p
        };
        let pq = |rel: &str| ParquetFiles::new(store.clone(), at(rel));
        Self {
            out: out.clone(),
            crm: TextFiles::new(store.clone(), at(TABLES[0].path), false, true),
            pos_customers: pq(TABLES[1].path),
            orders: BTreeMap::new(),
            web_events: TextFiles::new(store.clone(), at(TABLES[3].path), true, false),
            email_events: pq(TABLES[4].path),
            tickets: TextFiles::new(store.clone(), at(TABLES[5].path), false, false),
            consents: pq(TABLES[6].path),
            truth_records: pq(TABLES[7].path),
            truth_people: pq(TABLES[8].path),
            store,
            schemas: BTreeMap::new(),
        }
    }

    pub async fn write_chunk(&mut self, chunk: Chunk) -> Result<()> {
        let b = tokio::task::spawn_blocking(move || encode(chunk))
            .await
            .map_err(|e| Error::Write {
                target: self.out.to_string(),
                source: Box::new(e),
            })??;
        self.schemas.insert("email", b.email_events.schema());
        self.schemas.insert("consent", b.consents.schema());
        self.crm.write(&b.crm).await?;
        self.pos_customers.write(&b.pos_customers).await?;
        for (year, batch) in &b.orders {
            let base = object_path(&self.out);
            let store = self.store.clone();
            let files = self.orders.entry(*year).or_insert_with(|| {
                let dir = base
                    .join("pos")
                    .join("orders")
                    .join(format!("order_year={year}").as_str());
                ParquetFiles::new(store, dir)
            });
            files.write(batch).await?;
        }
        self.web_events.write(&b.web_events).await?;
        self.email_events.write(&b.email_events).await?;
        self.tickets.write(&b.tickets).await?;
        self.consents.write(&b.consents).await?;
        self.truth_records.write(&b.truth_records).await?;
        self.truth_people.write(&b.truth_people).await?;
        Ok(())
    }

    pub async fn finish(self, engine: &Engine) -> Result<Vec<DemoTable>> {
        let mut order_rows = 0;
        for (_, files) in self.orders {
            order_rows += files.finish(None).await?;
        }
        let rows = [
            self.crm.finish().await?,
            self.pos_customers.finish(None).await?,
            order_rows,
            self.web_events.finish().await?,
            self.email_events
                .finish(self.schemas.get("email").cloned())
                .await?,
            self.tickets.finish().await?,
            self.consents
                .finish(self.schemas.get("consent").cloned())
                .await?,
            self.truth_records.finish(None).await?,
            self.truth_people.finish(None).await?,
        ];
        // The Delta exports: Parquet files already in place, committed as version 0.
        for spec in TABLES.iter().filter(|t| t.format == "delta") {
            let url = self
                .out
                .join(spec.path)
                .map_err(|e| Error::InvalidLocation {
                    location: spec.path.into(),
                    message: e.to_string(),
                })?;
            let log_store = engine.delta_log_store(&url)?;
            ConvertToDeltaBuilder::new()
                .with_log_store(log_store)
                .with_table_name(spec.name)
                .await
                .map_err(|e| Error::delta(&url, e))?;
        }
        Ok(TABLES
            .iter()
            .zip(rows)
            .map(|(spec, rows)| DemoTable {
                name: spec.name,
                format: spec.format,
                path: spec.path,
                rows,
            })
            .collect())
    }
}
