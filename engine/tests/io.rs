//! Sources and sinks on local folders and `memory://`, through the engine API.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use tessera_engine::datafusion;
use tessera_engine::demo::{self, DemoOptions};
use tessera_engine::export::ExportFormat;
use tessera_engine::storage::resolve_location;
use tessera_engine::{Engine, Error, SourceFormat, SourceSpec, TableVersion, WriteMode};
use url::Url;

async fn scalar_i64(engine: &Engine, sql: &str) -> i64 {
    let batches = engine
        .ctx()
        .sql(sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("an Int64 column")
        .value(0)
}

fn dir_url(dir: &std::path::Path, rel: &str) -> Url {
    resolve_location(rel, dir, true).unwrap()
}

fn file_url(dir: &std::path::Path, rel: &str) -> Url {
    resolve_location(rel, dir, false).unwrap()
}

/// Generates a small demo into `out` and registers every table of it.
async fn demo_engine(out: &Url) -> Engine {
    let engine = Engine::new().unwrap();
    let options = DemoOptions {
        people: 1_500,
        seed: 9,
        chunk_size: 600,
        overwrite: false,
    };
    let summary = demo::generate(&engine, out, &options, |_| {})
        .await
        .unwrap();
    assert_eq!(summary.people, 1_500);
    for (name, format, path) in demo::demo_tables() {
        let url = out.join(path).unwrap();
        let spec = SourceSpec::new(name, url, SourceFormat::parse(format).unwrap());
        engine
            .register_source(&spec)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    engine
}

#[tokio::test]
async fn every_demo_format_reads_back_on_a_local_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = dir_url(tmp.path(), "demo");
    let engine = demo_engine(&out).await;
    assert_eq!(
        scalar_i64(&engine, "select count(*) from truth_people").await,
        1_500
    );
    // CSV with a header, and CRM duplicates: more contacts than people in the CRM.
    let contacts = scalar_i64(&engine, "select count(*) from crm_contacts").await;
    let crm_people = scalar_i64(
        &engine,
        "select count(distinct true_person_id) from truth_records where source = 'crm_contacts'",
    )
    .await;
    assert!(
        contacts > crm_people && crm_people > 900,
        "{contacts} {crm_people}"
    );
    // Hive partitions are discovered and usable as a column.
    let years = scalar_i64(&engine, "select count(distinct order_year) from pos_orders").await;
    assert!(years >= 3, "{years}");
    let in_2025 = scalar_i64(
        &engine,
        "select count(*) from pos_orders where order_year = '2025'",
    )
    .await;
    assert!(in_2025 > 0);
    // JSON folder and single JSON file.
    assert!(
        scalar_i64(
            &engine,
            "select count(*) from web_events where event_type = 'signup'"
        )
        .await
            > 500
    );
    assert!(scalar_i64(&engine, "select count(*) from support_tickets").await > 50);
    // Delta tables converted from the generated Parquet.
    assert!(scalar_i64(&engine, "select count(*) from email_engagement").await > 1_000);
    assert!(
        scalar_i64(
            &engine,
            "select count(*) from consent_records where status = 'withdrawn'"
        )
        .await
            > 0
    );
    // Every truth record points at a real record.
    let orphans = scalar_i64(
        &engine,
        "select count(*) from truth_records t left join crm_contacts c on t.record_id = c.contact_id \
         where t.source = 'crm_contacts' and c.contact_id is null",
    )
    .await;
    assert_eq!(orphans, 0);
}

#[tokio::test]
async fn demo_is_deterministic_and_refuses_to_overwrite_by_accident() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::new().unwrap();
    let options = DemoOptions {
        people: 300,
        seed: 5,
        chunk_size: 100,
        overwrite: false,
    };
    let a = dir_url(tmp.path(), "a");
    let b = dir_url(tmp.path(), "b");
    demo::generate(&engine, &a, &options, |_| {}).await.unwrap();
    demo::generate(&engine, &b, &options, |_| {}).await.unwrap();
    let read = |p: std::path::PathBuf| std::fs::read(p).unwrap();
    assert_eq!(
        read(tmp.path().join("a/crm/contacts.csv")),
        read(tmp.path().join("b/crm/contacts.csv"))
    );
    let err = demo::generate(&engine, &a, &options, |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    let forced = DemoOptions {
        overwrite: true,
        ..options
    };
    demo::generate(&engine, &a, &forced, |_| {}).await.unwrap();
}

fn people_batch(ids: &[i64], names: &[&str]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .unwrap()
}

async fn write_and_read_delta(engine: &Engine, table: Url) {
    engine
        .ctx()
        .register_batch("v1", people_batch(&[1, 2, 3], &["a", "b", "c"]))
        .unwrap();
    engine
        .ctx()
        .register_batch("v2", people_batch(&[4, 5], &["d", "e"]))
        .unwrap();
    let df = engine.ctx().sql("select * from v1").await.unwrap();
    let first = engine.write_delta(df, table.clone()).await.unwrap();
    assert_eq!(first.version, 0);
    assert_eq!(first.rows, Some(3));
    let df = engine.ctx().sql("select * from v2").await.unwrap();
    let second = engine
        .write_delta(df, table.clone())
        .with_mode(WriteMode::Append)
        .await
        .unwrap();
    assert_eq!(second.version, 1);

    let mut spec = SourceSpec::new("t", table.clone(), SourceFormat::Delta);
    engine.register_source(&spec).await.unwrap();
    assert_eq!(scalar_i64(engine, "select count(*) from t").await, 5);
    spec.version = TableVersion::Version(0);
    spec.name = "t0".into();
    let registered = engine.register_source(&spec).await.unwrap();
    assert_eq!(registered.delta_version, Some(0));
    assert_eq!(scalar_i64(engine, "select count(*) from t0").await, 3);
}

#[tokio::test]
async fn delta_write_append_and_time_travel_on_a_local_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::new().unwrap();
    write_and_read_delta(&engine, dir_url(tmp.path(), "wh/people")).await;
    assert!(
        tmp.path()
            .join("wh/people/_delta_log/00000000000000000001.json")
            .exists()
    );
}

#[tokio::test]
async fn delta_write_and_parquet_read_on_memory_storage() {
    let engine = Engine::new().unwrap();
    write_and_read_delta(&engine, Url::parse("memory:///wh/people/").unwrap()).await;

    // A Parquet export in memory, read back as a source.
    let df = engine
        .ctx()
        .sql("select * from t where id > 1")
        .await
        .unwrap();
    let file = Url::parse("memory:///exports/people.parquet").unwrap();
    assert_eq!(
        engine
            .export(df, &file, ExportFormat::Parquet)
            .await
            .unwrap(),
        4
    );
    let spec = SourceSpec::new("exported", file, SourceFormat::Parquet);
    engine.register_source(&spec).await.unwrap();
    assert_eq!(
        scalar_i64(&engine, "select count(*) from exported").await,
        4
    );
}

#[tokio::test]
async fn a_failed_overwrite_leaves_the_previous_version() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::new().unwrap();
    let table = dir_url(tmp.path(), "wh/t");
    engine
        .ctx()
        .register_batch("v1", people_batch(&[1, 2, 3], &["1", "2", "x"]))
        .unwrap();
    let df = engine.ctx().sql("select * from v1").await.unwrap();
    engine.write_delta(df, table.clone()).await.unwrap();

    // Fails at run time, on the third row, after the first rows were produced.
    let df = engine
        .ctx()
        .sql("select id, arrow_cast(name, 'Int64') as name from v1")
        .await
        .unwrap();
    let err = engine.write_delta(df, table.clone()).await.unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
    assert!(
        err.to_string().contains("previous version is unchanged"),
        "{err}"
    );

    let t = engine
        .open_delta(&table, TableVersion::Latest)
        .await
        .unwrap();
    assert_eq!(t.version(), Some(0));
    let spec = SourceSpec::new("t", table, SourceFormat::Delta);
    engine.register_source(&spec).await.unwrap();
    assert_eq!(
        scalar_i64(&engine, "select count(*) from t where name = 'x'").await,
        1
    );
}

#[tokio::test]
async fn partitioned_delta_and_csv_export() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::new().unwrap();
    engine
        .ctx()
        .register_batch("v", people_batch(&[1, 2, 3, 4], &["fr", "fr", "de", "us"]))
        .unwrap();
    let table = dir_url(tmp.path(), "wh/by_country");
    let df = engine.ctx().sql("select * from v").await.unwrap();
    engine
        .write_delta(df, table.clone())
        .with_partition_columns(["name"])
        .await
        .unwrap();
    assert!(tmp.path().join("wh/by_country/name=fr").is_dir());
    let spec = SourceSpec::new("p", table, SourceFormat::Delta);
    engine.register_source(&spec).await.unwrap();
    assert_eq!(
        scalar_i64(&engine, "select count(*) from p where name = 'fr'").await,
        2
    );

    let df = engine
        .ctx()
        .sql("select id, name from v order by id")
        .await
        .unwrap();
    let csv = file_url(tmp.path(), "out/people.csv");
    engine.export(df, &csv, ExportFormat::Csv).await.unwrap();
    let text = std::fs::read_to_string(tmp.path().join("out/people.csv")).unwrap();
    assert_eq!(text.lines().next(), Some("id,name"));
    assert_eq!(text.lines().count(), 5);
}

#[tokio::test]
async fn missing_sources_and_versions_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::new().unwrap();
    let spec = SourceSpec::new("crm", file_url(tmp.path(), "nope.csv"), SourceFormat::Csv);
    let err = engine.register_source(&spec).await.unwrap_err().to_string();
    assert!(
        err.contains("source `crm`") && err.contains("does not exist"),
        "{err}"
    );

    let spec = SourceSpec::new(
        "mail",
        dir_url(tmp.path(), "not_delta"),
        SourceFormat::Delta,
    );
    let err = engine.register_source(&spec).await.unwrap_err().to_string();
    assert!(
        err.contains("source `mail`") && err.contains("no Delta table"),
        "{err}"
    );

    let table = dir_url(tmp.path(), "wh/t");
    engine
        .ctx()
        .register_batch("v", people_batch(&[1], &["a"]))
        .unwrap();
    let df = engine.ctx().sql("select * from v").await.unwrap();
    engine.write_delta(df, table.clone()).await.unwrap();
    let mut spec = SourceSpec::new("t", table, SourceFormat::Delta);
    spec.version = TableVersion::Version(7);
    let err = engine.register_source(&spec).await.unwrap_err().to_string();
    assert!(
        err.contains("version 7 does not exist") && err.contains("0 to 0"),
        "{err}"
    );
}

#[tokio::test]
async fn a_corrupt_parquet_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::new().unwrap();
    std::fs::create_dir_all(tmp.path().join("pq")).unwrap();
    engine
        .ctx()
        .register_batch("v", people_batch(&[1, 2], &["a", "b"]))
        .unwrap();
    let df = engine.ctx().sql("select * from v").await.unwrap();
    engine
        .export(
            df,
            &file_url(tmp.path(), "pq/good.parquet"),
            ExportFormat::Parquet,
        )
        .await
        .unwrap();
    std::fs::write(
        tmp.path().join("pq/bad.parquet"),
        b"PAR1 this is not parquet",
    )
    .unwrap();
    let spec = SourceSpec::new("orders", dir_url(tmp.path(), "pq"), SourceFormat::Parquet);
    let err = engine.register_source(&spec).await.unwrap_err().to_string();
    assert!(
        err.contains("source `orders`") && err.contains("bad.parquet"),
        "{err}"
    );
}

#[tokio::test]
async fn a_ragged_csv_row_is_located() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::new().unwrap();
    std::fs::create_dir_all(tmp.path().join("csv")).unwrap();
    std::fs::write(tmp.path().join("csv/a.csv"), "id,name\n1,a\n2,b\n").unwrap();
    let mut text = String::from("id,name\n");
    for i in 0..2000 {
        text.push_str(&format!("{i},n{i}\n"));
    }
    text.push_str("2001,x,extra\n");
    std::fs::write(tmp.path().join("csv/b.csv"), text).unwrap();
    let spec = SourceSpec::new("crm", dir_url(tmp.path(), "csv"), SourceFormat::Csv);
    engine.register_source(&spec).await.unwrap();
    let err = engine
        .ctx()
        .sql("select count(*) from crm")
        .await
        .unwrap()
        .collect()
        .await;
    assert!(err.is_err());
    let (file, message) = engine
        .locate_read_error(&spec)
        .await
        .expect("the bad file is found");
    assert!(file.ends_with("b.csv"), "{file}");
    assert!(
        message.contains("2002") || message.contains("line"),
        "{message}"
    );
}

#[tokio::test]
async fn file_urls_and_globs_read_like_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::new().unwrap();
    std::fs::create_dir_all(tmp.path().join("csv")).unwrap();
    std::fs::write(tmp.path().join("csv/a.csv"), "id;name\n1;a\n2;b\n").unwrap();
    std::fs::write(tmp.path().join("csv/b.csv"), "id;name\n3;c\n").unwrap();
    std::fs::write(tmp.path().join("csv/notes.txt"), "not data").unwrap();
    let url = Url::parse(&format!("file://{}/csv/*.csv", tmp.path().display())).unwrap();
    let mut spec = SourceSpec::new("glob", url, SourceFormat::Csv);
    spec.csv.delimiter = b';';
    engine.register_source(&spec).await.unwrap();
    assert_eq!(scalar_i64(&engine, "select count(*) from glob").await, 3);
    assert_eq!(scalar_i64(&engine, "select sum(id) from glob").await, 6);
}

#[test]
fn cloud_stores_build_from_options_without_network() {
    use std::collections::BTreeMap;
    use tessera_engine::Storage;
    let mut options = BTreeMap::new();
    options.insert("azure_storage_account_name".to_string(), "acct".to_string());
    options.insert("azure_storage_account_key".to_string(), "a2V5".to_string());
    options.insert("google_service_account_key".to_string(), "{}".to_string());
    let storage = Storage::new(options);
    storage
        .store_for(&Url::parse("az://container/path").unwrap())
        .unwrap();
    storage
        .store_for(&Url::parse("s3://bucket/path").unwrap())
        .unwrap();
    // The same store instance serves every path of one bucket.
    let a = storage
        .store_for(&Url::parse("memory:///a/x").unwrap())
        .unwrap();
    let b = storage
        .store_for(&Url::parse("memory:///b/y").unwrap())
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b));
}
