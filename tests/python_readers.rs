//! Other tools read what Tessera writes: the Python `deltalake` package and `pyarrow` open a
//! Delta table written by `tessera write` and see the same rows, types and history.

mod common;

use common::{copy_dir, ok, python_json, shared_demo};

const READER: &str = r#"
import json, sys
import pyarrow.parquet as pq
import pyarrow as pa
from deltalake import DeltaTable

path = sys.argv[1]
dt = DeltaTable(path)
table = dt.to_pyarrow_table()
v0 = DeltaTable(path, version=0).to_pyarrow_table()
# pyarrow on its own: read the data files of the current version.
files = dt.file_uris()
direct = pa.concat_tables([pq.read_table(f) for f in files])
schema = {f.name: str(f.type) for f in table.schema}
rows = sorted(table.to_pylist(), key=lambda r: r["contact_id"])
print(json.dumps({
    "version": dt.version(),
    "rows": table.num_rows,
    "rows_v0": v0.num_rows,
    "direct_rows": direct.num_rows,
    "partitions": dt.metadata().partition_columns,
    "schema": schema,
    "sample": {k: (str(v) if v is not None else None) for k, v in rows[0].items()},
    "cities": sorted({r["city"] for r in rows if r["city"] is not None})[:500],
}))
# deltalake's runtime can abort at interpreter teardown (delta-io/delta-rs#2184): the read is
# done and printed, so leave without the teardown.
sys.stdout.flush()
import os
os._exit(0)
"#;

#[test]
fn deltalake_and_pyarrow_read_a_tessera_delta_table() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(shared_demo(), tmp.path());
    let dir = tmp.path();
    let query = "select contact_id, first_name, city, country, \
                 arrow_cast(created_at, 'Timestamp(Microsecond, Some(\"UTC\"))') as created_at, \
                 arrow_cast(length(contact_id), 'Int64') as id_length, \
                 arrow_cast(1.25, 'Decimal128(12, 2)') as amount, \
                 current_date() as loaded_on \
                 from crm_contacts";
    ok(
        dir,
        &[
            "write",
            "export.contacts",
            &format!("{query} where country is null or country not like 'U%'"),
            "--partition-by",
            "country",
        ],
    );
    ok(
        dir,
        &[
            "write",
            "export.contacts",
            &format!("{query} where country like 'U%'"),
            "--mode",
            "append",
        ],
    );

    let table = dir.join("warehouse/export/contacts");
    let report = python_json(dir, READER, &[table.as_os_str()]);

    let total: i64 = ok(
        dir,
        &[
            "sql",
            "select count(*) from crm_contacts",
            "--format",
            "csv",
        ],
    )
    .lines()
    .nth(1)
    .unwrap()
    .parse()
    .unwrap();
    let first: i64 = ok(
        dir,
        &[
            "sql",
            "select count(*) from crm_contacts where country is null or country not like 'U%'",
            "--format",
            "csv",
        ],
    )
    .lines()
    .nth(1)
    .unwrap()
    .parse()
    .unwrap();
    assert_eq!(report["version"], 1);
    assert_eq!(report["rows"].as_i64(), Some(total));
    assert_eq!(report["rows_v0"].as_i64(), Some(first));
    assert_eq!(report["partitions"], serde_json::json!(["country"]));
    // pyarrow alone reads the data files (partition values live in the paths, not the files).
    assert_eq!(report["direct_rows"].as_i64(), Some(total));
    let schema = &report["schema"];
    assert_eq!(schema["created_at"], "timestamp[us, tz=UTC]");
    assert_eq!(schema["id_length"], "int64");
    assert_eq!(schema["amount"], "decimal128(12, 2)");
    assert_eq!(schema["loaded_on"], "date32[day]");
    assert_eq!(report["sample"]["amount"], "1.25");
    // Unicode survives the round trip (German and French city names in the demo).
    let cities: Vec<&str> = report["cities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        cities
            .iter()
            .any(|c| c.contains('ü') || c.contains('é') || c.contains('É')),
        "{cities:?}"
    );
}
