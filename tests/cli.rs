//! The `tessera` command as a data engineer uses it: init, demo, sql, tables, write, export, and
//! the errors bad input must give.

mod common;

use common::{copy_dir, fails, json_rows, ok, run_in, shared_demo, tessera};

#[test]
fn init_creates_a_project_that_works_and_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    let out = ok(
        tmp.path(),
        &["init", dir.to_str().unwrap(), "--template", "retail"],
    );
    assert!(out.contains("Created"), "{out}");
    let toml = std::fs::read_to_string(dir.join("tessera.toml")).unwrap();
    assert!(toml.contains("name = \"shop\""));
    assert!(dir.join("jobs").is_dir());
    // An empty project answers queries and lists no tables.
    let out = ok(&dir, &["sql", "select 41 + 1 as answer", "--format", "csv"]);
    assert_eq!(out, "answer\n42\n");
    ok(&dir, &["tables"]);
    let err = fails(tmp.path(), &["init", dir.to_str().unwrap()], 1);
    assert!(err.contains("already exists"), "{err}");
    // The retail template's jobs are in the project; with demo data they run as they are.
    assert!(dir.join("jobs/staging/orders.sql").exists());
    assert!(dir.join("jobs/profiles/customer_orders.sql").exists());
    let listing = ok(&dir, &["ls"]);
    assert!(listing.contains("staging.orders"), "{listing}");
    ok(&dir, &["demo", "--people", "300", "--no-query", "--no-run"]);
    let out = ok(&dir, &["run"]);
    assert!(out.contains("29 ran, 0 skipped"), "{out}");
}

#[test]
fn demo_writes_a_project_and_runs_the_example_query() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(tmp.path(), &["demo", "--people", "800", "--seed", "3"]);
    assert!(out.contains("Generated 800 people"), "{out}");
    assert!(out.contains("Wrote"), "{out}");
    // The SQL library's jobs were installed and run.
    assert!(
        out.contains("done: 29 ran, 0 skipped (unchanged), 0 failed"),
        "{out}"
    );
    assert!(tmp.path().join("jobs/staging/orders.sql").exists());
    assert!(
        tmp.path()
            .join("warehouse/profiles/customer_orders/_delta_log")
            .is_dir()
    );
    // The example query's result table: one row per country.
    assert!(out.contains("| country"), "{out}");
    assert!(out.contains("| US"), "{out}");
    assert!(tmp.path().join("tessera.toml").exists());
    assert!(tmp.path().join("data/crm/contacts.csv").exists());
    assert!(tmp.path().join("data/email/engagement/_delta_log").is_dir());

    // Regenerating with --force rebuilds the warehouse from the new data: no order of the old
    // data survives in the incremental staging table.
    let out = ok(
        tmp.path(),
        &[
            "demo",
            "--people",
            "300",
            "--seed",
            "4",
            "--force",
            "--no-query",
        ],
    );
    assert!(out.contains("0 failed"), "{out}");
    let out = ok(
        tmp.path(),
        &[
            "sql",
            "select (select count(*) from staging.orders) = (select count(*) from pos_orders) as same",
            "--format",
            "csv",
        ],
    );
    assert_eq!(out, "same\ntrue\n");
}

#[test]
fn tables_lists_every_demo_source_with_rows() {
    let dir = shared_demo();
    let rows = json_rows(&ok(dir, &["tables", "--format", "json"]));
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    for expected in [
        "crm_contacts",
        "pos_customers",
        "pos_orders",
        "web_events",
        "email_engagement",
        "support_tickets",
        "consent_records",
        "truth_records",
        "truth_people",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    // View jobs are listed too (planned when read: no count).
    assert!(
        rows.iter()
            .any(|r| r["kind"] == "view" && r["name"] == "segments.sizes"),
        "{rows:?}"
    );
    let text = ok(dir, &["tables", "--no-count"]);
    assert!(text.contains("| view "), "{text}");
    assert!(
        text.contains("| csv ") && text.contains("data/crm/contacts.csv"),
        "{text}"
    );
    let widest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(widest <= 100, "{widest} columns wide:\n{text}");
    for row in rows.iter().filter(|r| r["kind"] != "view") {
        assert!(row["rows"].as_i64().unwrap() > 0, "{row:?}");
        assert!(
            row["note"].is_null() || row["name"].as_str().unwrap().starts_with("truth"),
            "{row:?}"
        );
    }
    let delta = rows
        .iter()
        .find(|r| r["name"] == "email_engagement")
        .unwrap();
    assert_eq!(delta["delta_version"].as_i64(), Some(0));
    let people = rows.iter().find(|r| r["name"] == "truth_people").unwrap();
    assert_eq!(people["rows"].as_i64(), Some(3000));
}

#[test]
fn sql_outputs_table_csv_json_and_reads_several_statements() {
    let dir = shared_demo();
    let q = "select country, count(*) as n from truth_people group by country order by country";
    let table = ok(dir, &["sql", q]);
    assert!(table.contains("| country | n"), "{table}");
    assert!(table.contains("(4 rows)"), "{table}");
    let csv = ok(dir, &["sql", q, "--format", "csv"]);
    assert_eq!(csv.lines().next(), Some("country,n"));
    assert_eq!(csv.lines().count(), 5);
    let rows = json_rows(&ok(dir, &["sql", q, "--format", "json"]));
    let total: i64 = rows.iter().map(|r| r["n"].as_i64().unwrap()).sum();
    assert_eq!(total, 3000);
    // A view defined in one statement is used by the next.
    let out = ok(
        dir,
        &[
            "sql",
            "create view gmail as select * from crm_contacts where lower(email) like '%gmail.com%'; \
             select count(*) > 0 as some from gmail",
            "--format",
            "csv",
        ],
    );
    assert_eq!(out, "some\ntrue\n");
    // Catalog queries see every source.
    let out = ok(
        dir,
        &[
            "sql",
            "select count(*) as n from information_schema.tables where table_schema = 'public'",
            "--format",
            "csv",
        ],
    );
    let n: i64 = out.lines().nth(1).unwrap().parse().unwrap();
    assert!(n >= 9, "{out}");
}

#[test]
fn sql_joins_across_formats() {
    let dir = shared_demo();
    // CSV contacts ⋈ Parquet truth ⋈ Delta engagement ⋈ JSON events, through the truth table.
    let out = ok(
        dir,
        &[
            "sql",
            "select count(distinct t.true_person_id) as people \
             from crm_contacts c \
             join truth_records t on t.record_id = c.contact_id \
             join email_engagement e on e.email = lower(trim(c.email)) \
             join web_events w on w.user_id is not null",
            "--format",
            "csv",
        ],
    );
    let people: i64 = out.lines().nth(1).unwrap().parse().unwrap();
    assert!(people > 100, "{out}");
}

#[test]
fn write_overwrite_append_partition_and_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(shared_demo(), tmp.path());
    let dir = tmp.path();
    let out = ok(
        dir,
        &[
            "write",
            "staging.people",
            "select true_person_id, country from truth_people where country = 'FR'",
            "--partition-by",
            "country",
        ],
    );
    assert!(out.contains("version 0"), "{out}");
    ok(
        dir,
        &[
            "write",
            "staging.people",
            "select true_person_id, country from truth_people where country = 'DE'",
            "--mode",
            "append",
        ],
    );
    assert!(dir.join("warehouse/staging/people/country=DE").is_dir());
    let rows = json_rows(&ok(dir, &["tables", "--format", "json"]));
    let people = rows
        .iter()
        .find(|r| r["name"] == "staging.people")
        .expect("warehouse table listed");
    assert_eq!(people["delta_version"].as_i64(), Some(1));
    assert_eq!(people["kind"], "warehouse");
    let out = ok(
        dir,
        &[
            "sql",
            "select count(distinct country) as c from staging.people",
            "--format",
            "csv",
        ],
    );
    assert_eq!(out, "c\n2\n");
    // An overwrite replaces rows and schema in one new version.
    ok(dir, &["write", "staging.people", "select 1 as one"]);
    let out = ok(
        dir,
        &["sql", "select * from staging.people", "--format", "csv"],
    );
    assert_eq!(out, "one\n1\n");
}

#[test]
fn a_failed_write_keeps_the_previous_version_readable() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(shared_demo(), tmp.path());
    let dir = tmp.path();
    ok(
        dir,
        &[
            "write",
            "t",
            "select contact_id, birth_date from crm_contacts",
        ],
    );
    // Casting every birth date to a number fails on the first non-numeric one, mid-write.
    let err = fails(
        dir,
        &[
            "write",
            "t",
            "select contact_id, arrow_cast(birth_date, 'Int64') as birth_date from crm_contacts",
        ],
        1,
    );
    assert!(err.contains("previous version is unchanged"), "{err}");
    let rows = json_rows(&ok(dir, &["tables", "--format", "json"]));
    let t = rows.iter().find(|r| r["name"] == "t").unwrap();
    assert_eq!(t["delta_version"].as_i64(), Some(0));
    let out = ok(
        dir,
        &[
            "sql",
            "select count(*) > 0 as ok from t where birth_date like '%-%'",
            "--format",
            "csv",
        ],
    );
    assert_eq!(out, "ok\ntrue\n");
}

#[test]
fn export_parquet_and_csv() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(shared_demo(), tmp.path());
    let dir = tmp.path();
    let out = ok(
        dir,
        &[
            "export",
            "select * from pos_customers",
            "exports/customers.parquet",
        ],
    );
    assert!(out.contains("exported"), "{out}");
    ok(
        dir,
        &[
            "export",
            "select contact_id, email from crm_contacts order by contact_id",
            "exports/contacts.csv",
        ],
    );
    let csv = std::fs::read_to_string(dir.join("exports/contacts.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("contact_id,email"));
    let magic = std::fs::read(dir.join("exports/customers.parquet")).unwrap();
    assert_eq!(&magic[..4], b"PAR1");
    let err = fails(dir, &["export", "select 1", "exports/x.xlsx"], 1);
    assert!(err.contains(".parquet or .csv"), "{err}");
}

#[test]
fn a_wrong_type_in_the_project_file_names_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("tessera.toml"),
        "[project]\nname = \"x\"\n\n[engine]\ntarget_partitions = \"many\"\n",
    )
    .unwrap();
    let err = fails(tmp.path(), &["sql", "select 1"], 2);
    assert!(
        err.contains("target_partitions") && err.contains("line 5"),
        "{err}"
    );
    std::fs::write(
        tmp.path().join("tessera.toml"),
        "[sources.crm]\nurl = \"crm.csv\"\nformat = \"excel\"\n",
    )
    .unwrap();
    let err = fails(tmp.path(), &["tables"], 2);
    assert!(
        err.contains("`sources.crm.format`") && err.contains("excel"),
        "{err}"
    );
}

#[test]
fn a_missing_project_file_is_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(tmp.path(), &["run"], 2);
    assert!(
        err.contains("no tessera.toml") && err.contains("tessera init"),
        "{err}"
    );
    // `sql` needs no project: an in-memory session over files, as DuckDB's.
    let out = ok(tmp.path(), &["sql", "select 1 as one", "--format", "csv"]);
    assert_eq!(out, "one\n1\n");
}

fn project_with(dir: &std::path::Path, sources: &str) {
    std::fs::write(
        dir.join("tessera.toml"),
        format!("[project]\nname = \"bad\"\n{sources}"),
    )
    .unwrap();
}

#[test]
fn a_missing_source_file_names_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    project_with(
        tmp.path(),
        "[sources.crm]\nurl = \"data/nope.csv\"\nformat = \"csv\"\n",
    );
    let err = fails(tmp.path(), &["sql", "select * from crm"], 1);
    assert!(
        err.contains("source `crm`") && err.contains("nope.csv") && err.contains("does not exist"),
        "{err}"
    );
    // `tables` still lists it, with the reason.
    let rows = json_rows(&ok(tmp.path(), &["tables", "--format", "json"]));
    assert!(rows[0]["note"].as_str().unwrap().contains("does not exist"));
}

#[test]
fn a_corrupt_parquet_file_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("data/orders")).unwrap();
    let src = shared_demo().join("data/_truth/people/part-00000.parquet");
    std::fs::copy(src, tmp.path().join("data/orders/a.parquet")).unwrap();
    std::fs::write(
        tmp.path().join("data/orders/b.parquet"),
        b"PAR1 garbage, not a parquet file",
    )
    .unwrap();
    project_with(
        tmp.path(),
        "[sources.orders]\nurl = \"data/orders/\"\nformat = \"parquet\"\n",
    );
    let err = fails(tmp.path(), &["sql", "select count(*) from orders"], 1);
    assert!(
        err.contains("source `orders`") && err.contains("b.parquet"),
        "{err}"
    );
}

#[test]
fn a_ragged_csv_row_names_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    let mut text = String::from("id,name\n");
    for i in 0..3000 {
        text.push_str(&format!("{i},name {i}\n"));
    }
    text.push_str("3000,name,unexpected\n");
    std::fs::write(tmp.path().join("data/contacts.csv"), text).unwrap();
    project_with(
        tmp.path(),
        "[sources.crm]\nurl = \"data/contacts.csv\"\nformat = \"csv\"\n",
    );
    let err = fails(tmp.path(), &["sql", "select count(*) from crm"], 1);
    assert!(
        err.contains("source `crm`") && err.contains("contacts.csv"),
        "{err}"
    );
    assert!(err.contains("3002") || err.contains("line"), "{err}");
}

#[test]
fn a_missing_delta_version_says_which_exist() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(shared_demo(), tmp.path());
    let toml = std::fs::read_to_string(tmp.path().join("tessera.toml")).unwrap();
    let toml = toml.replace(
        "[sources.email_engagement]\nurl = \"data/email/engagement/\"\nformat = \"delta\"\n",
        "[sources.email_engagement]\nurl = \"data/email/engagement/\"\nformat = \"delta\"\nversion = 5\n",
    );
    assert!(toml.contains("version = 5"), "{toml}");
    std::fs::write(tmp.path().join("tessera.toml"), toml).unwrap();
    let err = fails(
        tmp.path(),
        &["sql", "select count(*) from email_engagement"],
        1,
    );
    assert!(
        err.contains("source `email_engagement`") && err.contains("version 5 does not exist"),
        "{err}"
    );
    assert!(err.contains("0 to 0"), "{err}");
}

#[test]
fn an_unreachable_s3_endpoint_fails_fast_and_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens, connections are refused at once.
    project_with(
        tmp.path(),
        "[storage]\naws_endpoint = \"http://127.0.0.1:9\"\naws_region = \"us-east-1\"\nallow_http = true\n\
         aws_access_key_id = \"x\"\naws_secret_access_key = \"y\"\nmax_retries = 1\nretry_timeout = \"3s\"\n\n\
         [sources.orders]\nurl = \"s3://lake/orders/\"\nformat = \"parquet\"\n",
    );
    let started = std::time::Instant::now();
    let err = fails(tmp.path(), &["sql", "select count(*) from orders"], 1);
    assert!(
        err.contains("source `orders`") && err.contains("s3://lake/orders/"),
        "{err}"
    );
    assert!(
        started.elapsed().as_secs() < 60,
        "gave up after {:?}",
        started.elapsed()
    );
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_in(tmp.path(), &["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn functions_are_listed_documented_and_in_information_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(tmp.path(), &["functions", "--format", "json"]);
    let rows = json_rows(&out);
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["function"].as_str().unwrap())
        .collect();
    for f in [
        "email_normalize",
        "hash_identifier",
        "jaro_winkler",
        "double_metaphone",
        "soundex",
    ] {
        assert!(names.contains(&f), "{f} missing: {names:?}");
    }
    assert!(
        rows.iter()
            .all(|r| !r["description"].as_str().unwrap().is_empty())
    );
    let one = ok(tmp.path(), &["functions", "hash_identifier"]);
    assert!(
        one.contains("Syntax: hash_identifier(value, kind, platform)"),
        "{one}"
    );
    assert!(one.contains("```sql"), "{one}");
    let err = fails(tmp.path(), &["functions", "no_such_function"], 1);
    assert!(err.contains("no_such_function"), "{err}");
    // Documented in information_schema.routines for BI tools and `tessera sql`.
    let out = ok(
        shared_demo(),
        &[
            "sql",
            "select count(distinct routine_name) as n from information_schema.routines \
             where routine_name in ('email_normalize', 'jaro_winkler') and description is not null",
            "--format",
            "csv",
        ],
    );
    assert_eq!(out, "n\n2\n");
}

/// Issue 26: the command-line and SQL-function references in `docs/` are generated from the
/// binary, so they cannot drift from it: this test fails when they differ from what it prints.
/// Regenerate them with `TESSERA_UPDATE_DOCS=1 cargo test --workspace --test cli references`.
#[test]
fn the_cli_and_function_references_are_generated_from_the_binary() {
    let help = |args: &[&str]| -> String {
        let out = tessera().args(args).env("COLUMNS", "100").output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    };
    let subcommands = |text: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .filter(|c| c != "help")
            .collect()
    };
    let top = help(&["--help"]);
    let mut commands: Vec<String> = Vec::new();
    for command in subcommands(&top) {
        // Commands with commands of their own (`cluster scheduler`) get a section each.
        let nested = subcommands(&help(&[command.as_str(), "--help"]));
        commands.push(command.clone());
        commands.extend(nested.into_iter().map(|n| format!("{command} {n}")));
    }
    assert!(commands.len() >= 20, "{top}");
    let mut cli = String::from(
        "# Command-line reference\n\nGenerated from `tessera --help` by a test \
         (`the_cli_and_function_references_are_generated_from_the_binary`); do not edit.\n\n\
         ## tessera\n\n```text\n",
    );
    cli.push_str(&top);
    cli.push_str("\n```\n");
    for command in &commands {
        cli.push_str(&format!(
            "\n## tessera {command}\n\n```text\n{}\n```\n",
            help(&command.split(' ').chain(["--help"]).collect::<Vec<_>>())
        ));
    }
    let listing = help(&["functions", "--format", "csv"]);
    let names: Vec<String> = listing
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next().map(str::to_string))
        .collect();
    assert!(names.len() >= 40, "{listing}");
    let mut functions = String::from(
        "# SQL function reference\n\nGenerated from `tessera functions` by a test \
         (`the_cli_and_function_references_are_generated_from_the_binary`); do not edit.\n",
    );
    for name in &names {
        functions.push_str(&format!(
            "\n## `{name}`\n\n{}\n",
            help(&["functions", name])
        ));
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (path, text) in [
        ("docs/cli-reference.md", cli),
        ("docs/functions-reference.md", functions),
    ] {
        let file = root.join(path);
        if std::env::var_os("TESSERA_UPDATE_DOCS").is_some() {
            std::fs::write(&file, &text).unwrap();
        }
        let written = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            written == text,
            "{path} differs from what the binary prints: run \
             TESSERA_UPDATE_DOCS=1 cargo test --workspace --test cli references"
        );
    }
}
