//! SQL jobs as a data engineer runs them: `tessera run | plan | compile | test | ls` on the demo
//! project and its SQL library, with incremental runs, data tests, failures, selection,
//! concurrency and the run log.

mod common;

use std::path::Path;

use common::{fails, json_rows, ok, run_in, tessera};
use serde_json::Value;

/// A fresh demo project (data + library jobs, nothing run yet).
fn demo_project(people: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    ok(
        tmp.path(),
        &[
            "demo",
            "--people",
            people,
            "--seed",
            "5",
            "--no-query",
            "--no-run",
        ],
    );
    assert!(tmp.path().join("jobs/staging/orders.sql").exists());
    tmp
}

/// `tessera run --json ...`: the job events, by job name.
fn run_json(dir: &Path, extra: &[&str]) -> (Option<i32>, Vec<Value>) {
    let mut args = vec!["run", "--json"];
    args.extend_from_slice(extra);
    let out = run_in(dir, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{stdout}"))
        })
        .collect();
    (out.status.code(), events)
}

fn job_events(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["event"] == "job_finished")
        .map(|e| {
            (
                e["job"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn status_of(events: &[Value], job: &str) -> String {
    job_events(events)
        .into_iter()
        .find(|(j, _)| j == job)
        .unwrap_or_else(|| panic!("{job} not in {events:?}"))
        .1
}

fn csv(dir: &Path, query: &str) -> String {
    ok(dir, &["sql", query, "--format", "csv"])
}

/// Appends to the demo's CRM contacts `take` copies of existing contacts (from the
/// `skip`-th line) under new ids `<prefix>-0`, `<prefix>-1`…: new records, new customers.
fn copy_contacts(dir: &Path, prefix: &str, skip: usize, take: usize) {
    let contacts = dir.join("data/crm/contacts.csv");
    let text = std::fs::read_to_string(&contacts).unwrap();
    let mut more = text.clone();
    for (i, line) in text.lines().skip(skip).take(take).enumerate() {
        let mut fields: Vec<&str> = line.split(',').collect();
        let id = format!("{prefix}-{i}");
        fields[0] = &id;
        more.push_str(&fields.join(","));
        more.push('\n');
    }
    std::fs::write(&contacts, more).unwrap();
}

fn scalar(dir: &Path, query: &str) -> String {
    csv(dir, query)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

fn delta_version(dir: &Path, table: &str) -> u64 {
    let log = dir
        .join("warehouse")
        .join(table.replace('.', "/"))
        .join("_delta_log");
    std::fs::read_dir(&log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json")?.parse::<u64>().ok()
        })
        .max()
        .unwrap()
}

#[test]
fn run_builds_the_dag_in_order_then_skips_what_did_not_change() {
    let project = demo_project("1500");
    let dir = project.path();
    let (code, events) = run_json(dir, &[]);
    assert_eq!(code, Some(0), "{events:?}");
    assert_eq!(events.first().unwrap()["event"], "run_started");
    assert_eq!(events.last().unwrap()["event"], "run_finished");
    let jobs = job_events(&events);
    assert_eq!(jobs.len(), 29, "{jobs:?}");
    assert!(jobs.iter().all(|(_, s)| s == "success"), "{jobs:?}");
    let position = |name: &str| jobs.iter().position(|(j, _)| j == name).unwrap();
    assert!(position("staging.orders") < position("profiles.customer_orders"));
    assert!(position("staging.pos_customers") < position("profiles.customer_orders"));
    assert!(position("staging.web_events") < position("profiles.web_activity"));
    assert!(position("staging.contacts") < position("unify.identity_records"));

    // The outputs are right: revenue per customer adds up to the source's.
    assert_eq!(
        scalar(dir, "select sum(revenue) from profiles.customer_orders"),
        scalar(dir, "select sum(amount) from pos_orders")
    );
    assert_eq!(
        scalar(dir, "select count(*) from profiles.customer_orders"),
        scalar(dir, "select count(*) from pos_customers")
    );
    // A view is not stored.
    assert!(!dir.join("warehouse/staging/web_events").exists());

    // Nothing changed: everything but the views is skipped, and the tables keep their version.
    let (code, events) = run_json(dir, &[]);
    assert_eq!(code, Some(0));
    for (job, status) in job_events(&events) {
        let expected =
            if ["staging.web_events", "profiles.as_of", "segments.sizes"].contains(&job.as_str()) {
                "success"
            } else {
                "skipped"
            };
        assert_eq!(status, expected, "{job}");
    }
    assert_eq!(delta_version(dir, "staging.orders"), 0);
    let plan = ok(dir, &["plan"]);
    assert!(plan.contains("SKIP staging.orders"), "{plan}");
    assert!(plan.contains("unchanged since the last run"), "{plan}");

    // A changed job runs again, and so do the jobs that read it; others stay skipped.
    let file = dir.join("jobs/staging/pos_customers.sql");
    let sql = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        sql.replace("    home_store_id,", "    home_store_id as store,"),
    )
    .unwrap();
    let plan = ok(dir, &["plan"]);
    assert!(plan.contains("RUN  staging.pos_customers"), "{plan}");
    assert!(plan.contains("SQL or settings changed"), "{plan}");
    assert!(plan.contains("RUN  profiles.customer_orders"), "{plan}");
    assert!(plan.contains("SKIP staging.contacts"), "{plan}");
    let (code, events) = run_json(dir, &[]);
    assert_eq!(code, Some(0), "{events:?}");
    assert_eq!(status_of(&events, "staging.pos_customers"), "success");
    assert_eq!(status_of(&events, "profiles.customer_orders"), "success");
    assert_eq!(status_of(&events, "staging.contacts"), "skipped");
    // staging.orders' relationships test reads staging.pos_customers: it re-runs too.
    assert_eq!(status_of(&events, "staging.orders"), "success");

    // A changed single-file source (the CRM's CSV) re-runs the jobs that read it.
    let csv_file = dir.join("data/crm/contacts.csv");
    let mut text = std::fs::read_to_string(&csv_file).unwrap();
    text.push_str("CADDED00001,,Ada,Lovelace,ada@example.org,,,,,,,,,2026-01-01T00:00:00Z,2026-01-01T00:00:00Z\n");
    std::fs::write(&csv_file, text).unwrap();
    let plan = ok(dir, &["plan"]);
    assert!(plan.contains("RUN  staging.contacts"), "{plan}");
    assert!(plan.contains("crm_contacts (files 1"), "{plan}");
    let (code, events) = run_json(dir, &[]);
    assert_eq!(code, Some(0), "{events:?}");
    assert_eq!(status_of(&events, "staging.contacts"), "success");
    assert_eq!(status_of(&events, "staging.pos_customers"), "skipped");
    assert_eq!(
        scalar(
            dir,
            "select count(*) from staging.contacts where contact_id = 'CADDED00001'"
        ),
        "1"
    );

    // --full-refresh runs everything.
    let (code, events) = run_json(dir, &["--full-refresh"]);
    assert_eq!(code, Some(0));
    assert!(job_events(&events).iter().all(|(_, s)| s == "success"));
}

#[test]
fn incremental_job_merges_only_new_rows_and_equals_a_full_refresh() {
    let project = demo_project("1500");
    let dir = project.path();
    let (code, events) = run_json(dir, &[]);
    assert_eq!(code, Some(0), "{events:?}");
    let before: u64 = scalar(dir, "select count(*) from staging.orders")
        .parse()
        .unwrap();

    // The compiled SQL now reads only orders newer than the newest one stored.
    let compiled = ok(dir, &["compile", "-s", "staging.orders"]);
    assert!(compiled.contains("where order_ts > "), "{compiled}");

    // New orders arrive in a new partition: 40 new ones, and one existing order corrected.
    let new_orders = "select 'NEW-' || order_id as order_id, pos_customer_id, store_id, channel, \
         order_ts + interval '4000 days' as order_ts, category, items, amount, currency \
         from pos_orders where order_year = '2024' order by order_id limit 40";
    let corrected = "select order_id, pos_customer_id, store_id, channel, \
         order_ts + interval '4001 days' as order_ts, category, items, \
         cast(1.23 as decimal(12, 2)) as amount, currency \
         from pos_orders order by order_id limit 1";
    let changed_id = scalar(
        dir,
        "select order_id from pos_orders order by order_id limit 1",
    );
    let target = dir.join("data/pos/orders/order_year=2099");
    std::fs::create_dir_all(&target).unwrap();
    ok(
        dir,
        &[
            "export",
            &format!("({new_orders}) union all ({corrected})"),
            target.join("late.parquet").to_str().unwrap(),
        ],
    );

    let plan = ok(dir, &["plan"]);
    assert!(plan.contains("inputs changed: pos_orders"), "{plan}");
    let (code, events) = run_json(dir, &[]);
    assert_eq!(code, Some(0), "{events:?}");
    let orders = events
        .iter()
        .find(|e| e["job"] == "staging.orders")
        .unwrap();
    assert_eq!(orders["status"], "success");
    // Only the 41 new input rows were processed: 40 inserted, 1 updated.
    assert_eq!(orders["rows"], 41, "{orders}");
    assert_eq!(orders["output_version"], 1);
    assert_eq!(status_of(&events, "profiles.customer_orders"), "success");
    assert_eq!(status_of(&events, "staging.contacts"), "skipped");
    let after: u64 = scalar(dir, "select count(*) from staging.orders")
        .parse()
        .unwrap();
    assert_eq!(after, before + 40);
    assert_eq!(
        scalar(
            dir,
            &format!(
                "select cast(amount as varchar) from staging.orders where order_id = '{changed_id}'"
            )
        ),
        "1.23"
    );
    let incremental = csv(dir, "select * from staging.orders order by order_id");

    // The same table rebuilt from scratch is identical.
    let (code, events) = run_json(dir, &["--full-refresh", "-s", "staging.orders"]);
    assert_eq!(code, Some(0), "{events:?}");
    assert_eq!(job_events(&events).len(), 1);
    let full = csv(dir, "select * from staging.orders order by order_id");
    assert_eq!(incremental.lines().count(), full.lines().count());
    assert!(
        incremental == full,
        "incremental result differs from a full refresh"
    );
    // A new file of orders all older than the watermark: the job runs (its input changed),
    // loads nothing, and records that it saw this input, so the next plan skips it and what
    // reads it instead of running them on every run.
    ok(
        dir,
        &[
            "export",
            "select 'OLD-' || order_id as order_id, pos_customer_id, store_id, channel, order_ts, \
             category, items, amount, currency from pos_orders where order_year = '2024' \
             order by order_id limit 5",
            target.join("old.parquet").to_str().unwrap(),
        ],
    );
    let (code, events) = run_json(dir, &["-s", "staging.orders+"]);
    assert_eq!(code, Some(0), "{events:?}");
    let orders = events
        .iter()
        .find(|e| e["job"] == "staging.orders")
        .unwrap();
    assert_eq!(orders["status"], "success", "{orders}");
    assert_eq!(orders["rows"], 0, "{orders}");
    let plan = ok(dir, &["plan", "-s", "staging.orders+"]);
    assert!(plan.contains("SKIP staging.orders"), "{plan}");
    assert!(!plan.contains(" RUN "), "{plan}");
    assert_eq!(
        csv(dir, "select * from staging.orders order by order_id"),
        full
    );
}

#[test]
fn failing_tests_publish_nothing_and_dependents_are_not_run() {
    let project = demo_project("1000");
    let dir = project.path();
    assert_eq!(run_json(dir, &[]).0, Some(0));
    let version = delta_version(dir, "staging.pos_customers");
    let rows = scalar(dir, "select count(*) from staging.pos_customers");

    // A data test that the new output breaks: only US customers are accepted.
    let file = dir.join("jobs/staging/pos_customers.sql");
    let sql = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        sql.replace(
            "accepted_values(country, 'US', 'GB', 'FR', 'DE')",
            "accepted_values(country, 'US')",
        )
        .replace(
            "from pos_customers",
            "from pos_customers where country <> 'DE'",
        ),
    )
    .unwrap();
    let (code, events) = run_json(dir, &[]);
    assert_eq!(code, Some(1));
    let failed = events
        .iter()
        .find(|e| e["job"] == "staging.pos_customers")
        .unwrap();
    assert_eq!(failed["status"], "test_failed");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("jobs/staging/pos_customers.sql"), "{error}");
    assert!(error.contains("accepted_values(country"), "{error}");
    assert!(error.contains("nothing published"), "{error}");
    assert_eq!(
        status_of(&events, "profiles.customer_orders"),
        "upstream_failed"
    );
    assert_eq!(status_of(&events, "staging.orders"), "upstream_failed");
    assert_eq!(status_of(&events, "staging.contacts"), "skipped");
    // The table is still the last good version, with the German customers.
    assert_eq!(delta_version(dir, "staging.pos_customers"), version);
    assert_eq!(
        scalar(dir, "select count(*) from staging.pos_customers"),
        rows
    );
    // `tessera test` reports the same on the published tables (they pass: nothing changed).
    ok(dir, &["test", "-s", "staging.orders"]);

    // A job whose SQL fails keeps its previous version too, and the error names the file.
    std::fs::write(
        &file,
        sql.replace("    home_store_id,", "    no_such_column,"),
    )
    .unwrap();
    let (code, events) = run_json(dir, &[]);
    assert_eq!(code, Some(1));
    let failed = events
        .iter()
        .find(|e| e["job"] == "staging.pos_customers")
        .unwrap();
    assert_eq!(failed["status"], "failed");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("jobs/staging/pos_customers.sql"), "{error}");
    assert!(error.contains("no_such_column"), "{error}");
    assert_eq!(delta_version(dir, "staging.pos_customers"), version);

    // The run log has every run and job with its status and error.
    let log = json_rows(&ok(
        dir,
        &[
            "sql",
            "select run_id, kind, job, status, error, output_version from _tessera.runs \
             where kind = 'job' and job = 'staging.pos_customers' order by started_at",
            "--format",
            "json",
        ],
    ));
    let statuses: Vec<&str> = log.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["success", "test_failed", "failed"]);
    assert_eq!(log[0]["output_version"], 0);
    assert!(log[2]["error"].as_str().unwrap().contains("no_such_column"));
    let runs = csv(
        dir,
        "select status, count(*) as n from _tessera.runs where kind = 'run' group by status order by status",
    );
    assert_eq!(runs, "status,n\nfailed,2\nsuccess,1\n");
}

#[test]
fn broken_job_files_are_reported_by_file_and_the_rest_still_runs() {
    let project = demo_project("500");
    let dir = project.path();
    let jobs = dir.join("jobs");
    std::fs::create_dir_all(jobs.join("broken")).unwrap();
    std::fs::write(jobs.join("broken/a.sql"), "select * from broken.b").unwrap();
    std::fs::write(jobs.join("broken/b.sql"), "select * from broken.a").unwrap();
    std::fs::write(
        jobs.join("broken/orphan.sql"),
        "select * from nowhere.to_be_found",
    )
    .unwrap();
    std::fs::write(
        jobs.join("broken/header.sql"),
        "-- @materialised: table\nselect 1 as x",
    )
    .unwrap();
    std::fs::write(jobs.join("broken/syntax.sql"), "select (1 from t").unwrap();
    std::fs::write(
        jobs.join("broken/types.sql"),
        "select sum(first_name) as total from staging.contacts",
    )
    .unwrap();
    let out = run_in(dir, &["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("jobs/broken/a.sql"), "{stdout}");
    assert!(stdout.contains("jobs/broken/b.sql"), "{stdout}");
    assert!(stdout.contains("cycle"), "{stdout}");
    assert!(stdout.contains("jobs/broken/orphan.sql"), "{stdout}");
    assert!(stdout.contains("nowhere.to_be_found"), "{stdout}");
    assert!(stdout.contains("jobs/broken/header.sql:1"), "{stdout}");
    assert!(stdout.contains("materialised"), "{stdout}");
    assert!(stdout.contains("jobs/broken/syntax.sql"), "{stdout}");
    // A type error is found when the job is planned, after what it reads has run.
    let types = stdout
        .lines()
        .find(|l| l.contains("broken.types"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        types.contains("FAILED") && types.contains("jobs/broken/types.sql"),
        "{types}"
    );
    assert!(types.to_lowercase().contains("sum"), "{types}");
    // The valid jobs ran.
    assert!(
        dir.join("warehouse/profiles/customer_orders/_delta_log")
            .is_dir()
    );
    let out = run_in(dir, &["ls"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn selection_picks_jobs_by_name_tag_path_and_lineage() {
    let project = demo_project("500");
    let dir = project.path();
    let names = |selector: &[&str]| -> Vec<String> {
        let mut args = vec!["plan", "-s"];
        args.extend_from_slice(selector);
        ok(dir, &args)
            .lines()
            .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&["staging.orders"]), ["staging.orders"]);
    assert_eq!(
        names(&["staging.orders+"]),
        [
            "staging.orders",
            "profiles.customer_orders",
            "profiles.as_of",
            "scores.clv_features",
            "scores.clv_model",
            "scores.clv",
            "profiles.customer_360",
            "scores.churn_features",
            "scores.churn_model",
            "scores.churn",
            "scores.rfm",
            "segments.lifecycle",
            "segments.membership",
            "audiences.at_risk_email",
            "audiences.cart_abandoners_tiktok",
            "audiences.champions_linkedin",
            "audiences.champions_uid2",
            "audiences.high_value_google",
            "audiences.high_value_meta",
            "audiences.sync_report",
            "segments.sizes"
        ]
    );
    assert_eq!(
        names(&["+profiles.customer_orders"]),
        [
            "staging.pos_customers",
            "staging.orders",
            "profiles.customer_orders"
        ]
    );
    assert_eq!(
        names(&["tag:web"]),
        ["staging.web_events", "profiles.web_activity"]
    );
    assert_eq!(
        names(&["path:jobs/profiles"]),
        [
            "profiles.customer_orders",
            "profiles.as_of",
            "profiles.web_activity",
            "profiles.customers",
            "profiles.customer_consent",
            "profiles.customer_360"
        ]
    );
    // The golden record reads tables the identity job writes beside its own (record_customer,
    // identity_guard_hits): lineage follows them to the identity job and its inputs.
    let mut lineage = names(&["+profiles.customers"]);
    assert_eq!(
        lineage.last().map(String::as_str),
        Some("profiles.customers")
    );
    lineage.sort();
    assert_eq!(
        lineage,
        [
            "profiles.customers",
            "staging.contacts",
            "staging.pos_customers",
            "staging.web_events",
            "unify.identity_records"
        ]
    );
    assert_eq!(
        names(&["staging.contacts", "tag:web"]),
        [
            "staging.contacts",
            "staging.web_events",
            "profiles.web_activity"
        ]
    );
    let err = fails(dir, &["plan", "-s", "staging.nope"], 2);
    assert!(err.contains("staging.nope"), "{err}");

    // Running a selection runs only it; a job whose input table is missing fails clearly.
    let (code, events) = run_json(dir, &["-s", "profiles.customer_orders"]);
    assert_eq!(code, Some(1));
    let error = events
        .iter()
        .find(|e| e["job"] == "profiles.customer_orders")
        .unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("has no table yet"), "{error}");
    let (code, events) = run_json(dir, &["-s", "+profiles.customer_orders"]);
    assert_eq!(code, Some(0), "{events:?}");
    assert_eq!(job_events(&events).len(), 3);
    assert!(!dir.join("warehouse/staging/contacts").exists());
    let listing = ok(dir, &["ls", "-s", "tag:pos"]);
    assert!(
        listing.contains("staging.orders") && listing.contains("incremental"),
        "{listing}"
    );
    assert!(!listing.contains("staging.contacts"), "{listing}");
}

#[test]
fn a_second_run_waits_for_or_refuses_the_warehouse_lock() {
    let project = demo_project("800");
    let dir = project.path();
    // A lock held by a run on another machine: refused with exit code 3 after the wait.
    let lock = dir.join("warehouse/_tessera/run.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(
        &lock,
        r#"{"run_id":"other","host":"another-host","pid":1,"started_at":"2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = fails(dir, &["run", "--wait", "1"], 3);
    assert!(started.elapsed().as_secs_f64() >= 1.0);
    assert!(err.contains("another-host"), "{err}");
    assert!(!dir.join("warehouse/staging").exists());
    // A lock left by a process of this machine that died is taken over.
    std::fs::write(
        &lock,
        format!(
            r#"{{"run_id":"dead","host":"{}","pid":4000000,"started_at":"2026-01-01T00:00:00Z"}}"#,
            tessera_jobs::lock::hostname()
        ),
    )
    .unwrap();
    ok(dir, &["run"]);
    assert!(!lock.exists(), "the lock is released after a run");

    // Two runs started together: the second waits for the first; both succeed, nothing corrupt.
    let spawn = |args: &[&str]| {
        tessera()
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn(&["run", "--full-refresh", "--wait", "120"]);
    let b = spawn(&["run", "--full-refresh", "--wait", "120"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert_eq!(delta_version(dir, "staging.orders"), 2);
    assert_eq!(
        scalar(dir, "select count(*) from staging.orders"),
        scalar(dir, "select count(*) from pos_orders")
    );
    let runs = scalar(
        dir,
        "select count(distinct run_id) from _tessera.runs where kind = 'run'",
    );
    assert_eq!(runs, "3");
}

#[test]
fn a_killed_run_leaves_every_table_readable_and_the_next_run_recovers() {
    let project = demo_project("3000");
    let dir = project.path();
    ok(dir, &["run"]);
    let rows = scalar(dir, "select count(*) from staging.orders");
    for delay_ms in [150u64, 400, 900] {
        let mut child = tessera()
            .arg("-C")
            .arg(dir)
            .args(["run", "--full-refresh"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        // Every table reads, and holds either the old or the new complete result.
        assert_eq!(scalar(dir, "select count(*) from staging.orders"), rows);
        ok(
            dir,
            &["sql", "select count(*) from profiles.customer_orders"],
        );
    }
    // The dead run's lock is taken over; the run completes.
    ok(dir, &["run"]);
    assert_eq!(scalar(dir, "select count(*) from staging.orders"), rows);
}

#[test]
fn given_expect_unit_tests_need_no_data_and_block_a_run_when_they_fail() {
    let project = demo_project("300");
    let dir = project.path();
    let out = ok(dir, &["test", "--unit", "-s", "staging.orders"]);
    assert!(out.contains("PASS  staging.orders"), "{out}");
    // Break the job's logic: corrected orders are no longer de-duplicated.
    let file = dir.join("jobs/staging/orders.sql");
    let sql = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        sql.replace("where version_rank = 1", "where version_rank >= 1"),
    )
    .unwrap();
    let out = run_in(dir, &["test", "--unit"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the latest version of a corrected order wins"),
        "{stdout}"
    );
    assert!(stdout.contains("unexpected [o1 | c1 | 10.00]"), "{stdout}");
    let (code, events) = run_json(dir, &["-s", "+staging.orders"]);
    assert_eq!(code, Some(1));
    assert_eq!(status_of(&events, "staging.orders"), "test_failed");
    assert!(!dir.join("warehouse/staging/orders").exists());
    // A unit-test file with a mistake is reported with its file and line.
    std::fs::write(&file, sql).unwrap();
    std::fs::write(
        dir.join("jobs/staging/contacts.tests.toml"),
        "[[unit]]\nname = \"x\"\nexpect = \"select 1\"\ngiven_rows = 3\n",
    )
    .unwrap();
    let out = run_in(dir, &["test", "--unit"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("jobs/staging/contacts.tests.toml:4"),
        "{stderr}"
    );
    assert!(stderr.contains("given_rows"), "{stderr}");
}

#[test]
fn job_settings_and_schedules_come_from_the_project_file() {
    let project = demo_project("300");
    let dir = project.path();
    let file = dir.join("tessera.toml");
    let base = std::fs::read_to_string(&file).unwrap();
    // Settings in tessera.toml win over the header; tests add up.
    std::fs::write(
        &file,
        format!(
            "{base}\n[jobs.\"staging.contacts\"]\nmaterialized = \"view\"\ntags = [\"crm\", \"nightly\"]\n\
             tests = [\"row_count(min = 1, max = 2)\"]\n"
        ),
    )
    .unwrap();
    let listing = ok(dir, &["ls", "-s", "tag:nightly"]);
    assert!(
        listing.contains("staging.contacts") && listing.contains("view"),
        "{listing}"
    );
    let out = run_in(dir, &["test", "-s", "staging.contacts"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAIL  staging.contacts"), "{stdout}");
    assert!(stdout.contains("row_count(min = 1, max = 2)"), "{stdout}");
    assert!(stdout.contains("3 tests, 1 failed"), "{stdout}");
    // A setting for a job that does not exist, or an unknown setting, is an error.
    std::fs::write(
        &file,
        format!("{base}\n[jobs.\"staging.nope\"]\ntags = \"x\"\n"),
    )
    .unwrap();
    let out = run_in(dir, &["ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("staging.nope"));
    std::fs::write(
        &file,
        format!("{base}\n[jobs.\"staging.contacts\"]\nmaterialised = \"view\"\n"),
    )
    .unwrap();
    let err = fails(dir, &["ls"], 2);
    assert!(
        err.contains("jobs.\"staging.contacts\".materialised"),
        "{err}"
    );
    std::fs::write(
        &file,
        format!("{base}\n[schedules.nightly]\ncron = \"61 * * * *\"\n"),
    )
    .unwrap();
    let err = fails(dir, &["schedule"], 2);
    assert!(err.contains("schedules.nightly.cron"), "{err}");

    // Two schedules every second; the scheduler stops after three runs, each a real run.
    std::fs::write(
        &file,
        format!(
            "{base}\n[schedules.crm]\ncron = \"* * * * * *\"\nselect = [\"staging.contacts\"]\n\
             \n[schedules.pos]\ncron = \"*/2 * * * * *\"\nselect = [\"tag:pos\"]\n"
        ),
    )
    .unwrap();
    let out = ok(dir, &["schedule", "--max-runs", "3", "--json"]);
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "schedule_run_finished")
        .collect();
    assert_eq!(finished.len(), 3, "{out}");
    assert!(finished.iter().all(|e| e["exit_code"] == 0), "{out}");
    // The runs' own JSON events are in the stream, and every run is in the run log.
    assert!(events.iter().any(|e| e["event"] == "job_finished"), "{out}");
    let runs = scalar(
        dir,
        "select count(distinct run_id) from _tessera.runs where kind = 'run'",
    );
    assert_eq!(runs, "3");
    assert!(dir.join("warehouse/staging/contacts/_delta_log").is_dir());
}

/// Issue 25: the lock is a lease. A holder on another machine whose heartbeat stopped is taken
/// over once the lease lapses (before, a foreign lock blocked every run forever); two waiters
/// racing to take over the same dead lock both end up running, one after the other; and
/// `forget` (not only `run`) waits for the lock.
#[test]
fn the_warehouse_lock_is_a_lease_every_writer_takes() {
    let project = demo_project("800");
    let dir = project.path();
    ok(dir, &["run", "--no-report"]);
    let lock = dir.join("warehouse/_tessera/run.lock");
    let foreign = r#"{"token":"foreign","command":"run x","host":"another-host","pid":1,"started_at":"2026-01-01T00:00:00Z"}"#;
    std::fs::write(&lock, foreign).unwrap();
    // Within the lease: refused (exit 3), the holder named.
    let err = fails(dir, &["run", "--wait", "1"], 3);
    assert!(err.contains("another-host"), "{err}");
    // Two waiters, the lease lapses while both wait: both run, serialised, nothing corrupt.
    let runs_before: u64 = scalar(
        dir,
        "select count(distinct run_id) from _tessera.runs where kind = 'run'",
    )
    .parse()
    .unwrap();
    let spawn = || {
        tessera()
            .arg("-C")
            .arg(dir)
            .args(["run", "--full-refresh", "--no-report", "--wait", "120"])
            .env("TESSERA_LOCK_LEASE_MS", "1500")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let started = std::time::Instant::now();
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        started.elapsed().as_secs_f64() >= 1.5,
        "the lease was honoured"
    );
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let took_over = [&a, &b]
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stderr).contains("taking over"))
        .count();
    assert_eq!(took_over, 1, "exactly one waiter takes the dead lock over");
    let runs: u64 = scalar(
        dir,
        "select count(distinct run_id) from _tessera.runs where kind = 'run'",
    )
    .parse()
    .unwrap();
    assert_eq!(runs, runs_before + 2);
    assert_eq!(
        scalar(dir, "select count(*) from staging.orders"),
        scalar(dir, "select count(*) from pos_orders")
    );
    assert!(!lock.exists(), "released");

    // `forget` waits for the lock like a run would, then erases.
    std::fs::write(&lock, foreign).unwrap();
    let email = scalar(
        dir,
        "select min(email) from profiles.customers where email is not null",
    );
    let mut forget = tessera()
        .arg("-C")
        .arg(dir)
        .args(["forget", "--email", &email])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        forget.try_wait().unwrap().is_none(),
        "forget waits while another command holds the lock"
    );
    std::fs::remove_file(&lock).unwrap();
    let out = forget.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiting for the warehouse lock"));
    assert_eq!(
        scalar(
            dir,
            &format!("select count(*) from profiles.customers where email = '{email}'")
        ),
        "0"
    );
}

/// Issue 25: identity publishes its tables in several commits. Killed after the identity
/// tables and before the records table, the next run must not skip the job as unchanged
/// (the records table carries the fingerprint and is committed last): it resolves again, and
/// every identity table then agrees with the records.
#[test]
fn identity_killed_between_its_commits_is_published_again_by_the_next_run() {
    let project = demo_project("800");
    let dir = project.path();
    ok(dir, &["run", "--no-report"]);
    // A new contact arrives.
    let contacts = dir.join("data/crm/contacts.csv");
    let text = std::fs::read_to_string(&contacts).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let mut row: Vec<String> = text
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    let id = header.iter().position(|h| *h == "contact_id").unwrap();
    row[id] = "C-NEW-1".into();
    std::fs::write(&contacts, format!("{text}{}\n", row.join(","))).unwrap();
    let out = common::killed_at(
        dir,
        &["run", "--no-report"],
        "identity:before-records-commit",
    );
    assert_eq!(
        out.status.code(),
        Some(86),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The half-published state: record_customer has the new record, the records table not.
    assert_eq!(
        scalar(
            dir,
            "select count(*) from unify.record_customer where record_key = 'crm_contacts:C-NEW-1'"
        ),
        "1"
    );
    let (_, events) = run_json(dir, &["--no-report"]);
    assert_eq!(status_of(&events, "unify.identity_records"), "success");
    let stale = scalar(
        dir,
        "select count(*) from unify.identity_records i full join unify.record_customer r \
         on i.record_key = r.record_key where i.record_key is null or r.record_key is null",
    );
    assert_eq!(stale, "0", "record_customer agrees with the records");
    // And the run after that skips it: the publish is complete.
    let (_, events) = run_json(dir, &["--no-report"]);
    assert_eq!(status_of(&events, "unify.identity_records"), "skipped");
}

/// Issue 25: a tracked job whose merge changes nothing made no commit, so its new fingerprint
/// was never recorded: every later `tessera run` ran it again and wrote new versions of
/// everything downstream ("14 ran" for ever). Now the run records it, and the run after the
/// next one (which carries the version bump downstream once) skips everything.
#[test]
fn a_tracked_job_that_changes_nothing_does_not_run_again_and_again() {
    let project = demo_project("800");
    let dir = project.path();
    ok(dir, &["run", "--no-report"]);
    ok(
        dir,
        &[
            "run",
            "-s",
            "staging.contacts",
            "--full-refresh",
            "--no-report",
        ],
    );
    ok(dir, &["run", "--no-report"]);
    ok(dir, &["run", "--no-report"]);
    let (code, events) = run_json(dir, &["--no-report"]);
    assert_eq!(code, Some(0));
    // Views are planned inline on every run; nothing may publish a version.
    let published: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "job_finished" && e["status"] == "success")
        .filter(|e| !e["output_version"].is_null())
        .map(|e| e["job"].as_str().unwrap())
        .collect();
    assert!(
        published.is_empty(),
        "jobs published again with nothing changed: {published:?}"
    );
}

/// Issue 25: a tracked job writes its change log, its history and its table in three commits.
/// A run killed after the first or the second used to leave change rows the next run wrote
/// again (every change twice for the reverse-ETL tools reading them) and a history with the
/// versions closed twice. Now the next run undoes the partial publish first: the change logs
/// and histories end up exactly as after an uninterrupted run.
#[test]
fn a_tracked_job_killed_between_its_commits_records_each_change_once() {
    let project = demo_project("800");
    let base = project.path();
    ok(base, &["run", "--no-report"]);
    // New contacts: new customers, so the tracked tables change.
    copy_contacts(base, "C-KILL", 1, 3);
    let tracked: Vec<String> = ["profiles", "segments", "audiences"]
        .iter()
        .flat_map(|schema| {
            std::fs::read_dir(base.join("warehouse").join(schema))
                .unwrap()
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.strip_suffix("_changes")
                        .map(|t| format!("{schema}.{t}"))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(tracked.len() >= 3, "{tracked:?}");
    let state = |dir: &Path| -> Vec<String> {
        tracked
            .iter()
            .map(|t| {
                format!(
                    "{t}: {} | {}",
                    csv(
                        dir,
                        &format!("select change, count(*) as n from {t}_changes group by 1 order by 1")
                    ),
                    csv(
                        dir,
                        &format!(
                            "select count(*) as versions, count(valid_to) as closed from {t}_history"
                        )
                    )
                )
            })
            .collect()
    };
    let control = tempfile::tempdir().unwrap();
    common::copy_dir(base, control.path());
    ok(control.path(), &["run", "--no-report"]);
    let expected = state(control.path());
    for point in ["tracked:after-changes", "tracked:after-history"] {
        let killed = tempfile::tempdir().unwrap();
        let dir = killed.path();
        common::copy_dir(base, dir);
        let out = common::killed_at(dir, &["run", "--no-report"], point);
        assert_eq!(out.status.code(), Some(86), "{point}");
        ok(dir, &["run", "--no-report"]);
        assert_eq!(state(dir), expected, "after a kill at {point}");
        // And nothing is left to undo: the run after that changes nothing.
        ok(dir, &["run", "--no-report"]);
        assert_eq!(state(dir), expected, "the run after the recovery, {point}");
    }
}

/// Issue 25: an append-only incremental job (`@watermark` without `@unique_key`) read rows
/// `> max(watermark)`: a late row with the same timestamp as the newest stored one was never
/// loaded, and rows without a watermark vanished silently. Now rows at the watermark that are
/// not stored yet are loaded (those stored are not loaded twice), and rows without one are
/// reported.
#[test]
fn incremental_watermark_loads_late_rows_at_the_same_time_and_reports_null_ones() {
    let project = demo_project("300");
    let dir = project.path();
    let mut toml = std::fs::read_to_string(dir.join("tessera.toml")).unwrap();
    toml.push_str(
        "\n[sources.clicks]\nurl = \"data/clicks/\"\nformat = \"csv\"\ncolumns = [\"id: string\", \"ts: string\"]\n",
    );
    std::fs::write(dir.join("tessera.toml"), toml).unwrap();
    std::fs::write(
        dir.join("jobs/staging/clicks.sql"),
        "-- @materialized: incremental\n-- @watermark: ts\n\
         select id, cast(nullif(ts, '') as timestamp) as ts from clicks\n",
    )
    .unwrap();
    let clicks = dir.join("data/clicks");
    std::fs::create_dir_all(&clicks).unwrap();
    std::fs::write(
        clicks.join("a.csv"),
        "id,ts\n1,2026-01-01T10:00:00\n2,2026-01-01T11:00:00\n",
    )
    .unwrap();
    ok(dir, &["run", "-s", "staging.clicks", "--no-report"]);
    let ids = |dir: &Path| csv(dir, "select id from staging.clicks order by id");
    assert_eq!(ids(dir), "id\n1\n2\n");
    std::fs::write(
        clicks.join("b.csv"),
        "id,ts\n3,2026-01-01T11:00:00\n4,2026-01-01T12:00:00\n5,\n",
    )
    .unwrap();
    let (code, events) = run_json(dir, &["-s", "staging.clicks", "--no-report"]);
    assert_eq!(code, Some(0), "{events:?}");
    assert_eq!(
        ids(dir),
        "id\n1\n2\n3\n4\n",
        "late row 3 loaded, row 2 once"
    );
    let finished = events
        .iter()
        .find(|e| e["job"] == "staging.clicks" && e["event"] == "job_finished")
        .unwrap();
    let warnings = finished["warnings"].to_string();
    assert!(
        warnings.contains("1 input rows have a NULL `ts`"),
        "{finished}"
    );
    std::fs::write(clicks.join("c.csv"), "id,ts\n6,2026-01-01T12:00:00\n").unwrap();
    ok(dir, &["run", "-s", "staging.clicks", "--no-report"]);
    assert_eq!(ids(dir), "id\n1\n2\n3\n4\n6\n");
}

/// Issue 25: a run killed between any two of its commits — after a job's output, inside the
/// identity job's publish, between a tracked job's commits, before the run log, before the
/// retention rules — leaves every table readable, and the next run converges to exactly what
/// an uninterrupted run produces.
#[test]
fn a_run_killed_at_any_commit_converges_on_the_next_run() {
    let project = demo_project("800");
    let base = project.path();
    ok(base, &["run", "--no-report"]);
    copy_contacts(base, "C-CONVERGE", 5, 4);
    let tables = [
        "staging.contacts",
        "unify.identity_records",
        "unify.record_customer",
        "profiles.customers",
        "profiles.customers_changes",
        "segments.membership",
        "segments.membership_changes",
        "audiences.at_risk_email",
    ];
    let state = |dir: &Path| -> Vec<String> {
        tables
            .iter()
            .map(|t| format!("{t}: {}", scalar(dir, &format!("select count(*) from {t}"))))
            .collect()
    };
    let control = tempfile::tempdir().unwrap();
    common::copy_dir(base, control.path());
    ok(control.path(), &["run", "--no-report"]);
    let expected = state(control.path());
    for point in [
        "job:staging.contacts:after-commit",
        "identity:before-records-commit",
        "job:profiles.customers:after-commit",
        "tracked:after-history",
        "run:before-log",
    ] {
        let killed = tempfile::tempdir().unwrap();
        let dir = killed.path();
        common::copy_dir(base, dir);
        let out = common::killed_at(dir, &["run", "--no-report"], point);
        assert_eq!(
            out.status.code(),
            Some(86),
            "{point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Readable at once, at a committed version.
        for t in tables {
            ok(dir, &["sql", &format!("select count(*) from {t}")]);
        }
        let (code, events) = run_json(dir, &["--no-report"]);
        assert_eq!(code, Some(0), "{point}: {events:?}");
        assert_eq!(state(dir), expected, "after a kill at {point}");
    }
}

/// Issue 25: two schedulers started on one project by mistake (two hosts, a deploy that
/// overlapped) fire the same schedule at the same second. The warehouse lock serialises their
/// runs: every run succeeds, the run log has each, and the tables stay readable.
#[test]
fn two_schedulers_on_one_warehouse_take_turns() {
    let project = demo_project("300");
    let dir = project.path();
    ok(dir, &["run", "--no-report"]);
    let file = dir.join("tessera.toml");
    let mut toml = std::fs::read_to_string(&file).unwrap();
    toml.push_str(
        "\n[schedules.often]\ncron = \"* * * * * *\"\nselect = [\"staging.contacts+\"]\n",
    );
    std::fs::write(&file, toml).unwrap();
    let before = scalar(
        dir,
        "select count(distinct run_id) from _tessera.runs where kind = 'run'",
    );
    let spawn = || {
        tessera()
            .arg("-C")
            .arg(dir)
            .args(["schedule", "--max-runs", "2", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let finished: Vec<Value> = stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] == "schedule_run_finished")
            .collect();
        assert_eq!(finished.len(), 2, "{stdout}");
        assert!(finished.iter().all(|e| e["exit_code"] == 0), "{stdout}");
    }
    let after = scalar(
        dir,
        "select count(distinct run_id) from _tessera.runs where kind = 'run'",
    );
    assert_eq!(
        after.parse::<u64>().unwrap(),
        before.parse::<u64>().unwrap() + 4
    );
    assert_ne!(scalar(dir, "select count(*) from profiles.customers"), "0");
}

/// Issue 27: a tracked job whose query gains a column (the golden record gets a display name)
/// failed every run after ("number of fields does not match"), even with `--full-refresh`. Its
/// change log now gains the column (earlier rows NULL), and a column the query drops stays in
/// the history with its old values: nothing recorded is rewritten or lost.
#[test]
fn a_tracked_job_gains_and_loses_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["init", "."]);
    let toml = std::fs::read_to_string(dir.join("tessera.toml")).unwrap();
    std::fs::write(
        dir.join("tessera.toml"),
        format!("{toml}\n[sources.people]\nurl = \"people.csv\"\nformat = \"csv\"\n"),
    )
    .unwrap();
    let people = |rows: &str| std::fs::write(dir.join("people.csv"), rows).unwrap();
    let job = |select: &str| {
        std::fs::create_dir_all(dir.join("jobs/p")).unwrap();
        std::fs::write(
            dir.join("jobs/p/people.sql"),
            format!("-- @materialized: tracked\n-- @unique_key: id\n{select}\n"),
        )
        .unwrap();
    };
    people("id,name,city\n1,Ann,Paris\n2,Bob,Lyon\n");
    job("select id, name from people");
    ok(dir, &["run", "--no-report"]);
    // The query gains `city` (typed: a string, not a NULL literal's type).
    job("select id, name, city from people");
    ok(dir, &["run", "--no-report"]);
    // The named columns of each row, space-separated (NULL as `null`).
    let lines = |sql: &str, keys: &[&str]| -> Vec<String> {
        json_rows(&ok(dir, &["sql", sql, "--format", "json"]))
            .iter()
            .map(|r| {
                keys.iter()
                    .map(|k| match &r[*k] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let seen = lines(
        "select change, id, name, city from p.people_changes order by changed_at, id",
        &["change", "id", "name", "city"],
    );
    assert_eq!(
        seen,
        [
            "add 1 Ann null",
            "add 2 Bob null",
            "update 1 Ann Paris",
            "update 2 Bob Lyon"
        ],
        "{seen:?}"
    );
    // Then it drops `name`, and a row changes: the history keeps Ann's name in her closed
    // versions; the table and the log follow the query.
    people("id,name,city\n1,Ann,Rome\n2,Bob,Lyon\n");
    job("select id, city from people");
    ok(dir, &["run", "--no-report"]);
    ok(dir, &["run", "--full-refresh", "--no-report"]);
    let seen = lines(
        "select name, city, valid_to is null as open from p.people_history where id = 1 order by valid_from",
        &["name", "city", "open"],
    );
    assert_eq!(
        seen,
        ["Ann null false", "Ann Paris false", "null Rome true"],
        "{seen:?}"
    );
    let table = common::query(dir, "select * from p.people order by id");
    assert_eq!(table.len(), 2);
    assert!(!table[0].contains_key("name"), "{table:?}");
    assert_eq!(common::text(&table[0], "city"), "Rome");
}
