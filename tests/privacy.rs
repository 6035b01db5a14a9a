//! GDPR operations the way a privacy officer runs them on the demo project: a subject-access
//! export, then an erasure proven by reading every file under the warehouse (old Delta
//! versions' Parquet files and the Delta log included), a following run with the person still
//! in the sources, the audiences' removal changes, the audit log; retention rules and
//! pseudonymised outputs.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{copy_dir, fails, ok, python_json, query, run_in, shared_demo, text};

/// Reads every file under `root`: Parquet files decoded (every value of every column, with
/// pyarrow, ignoring Delta), everything else as bytes; prints the (file, needle) pairs found.
const SCAN: &str = r#"
import json, os, sys
import pyarrow.parquet as pq
root, needles = sys.argv[1], [n.lower() for n in sys.argv[2:]]
hits, files, parquet = [], 0, 0
for d, _, names in os.walk(root):
    for name in names:
        path = os.path.join(d, name)
        files += 1
        texts = [open(path, 'rb').read().decode('utf-8', 'replace').lower()]
        if name.endswith('.parquet'):
            parquet += 1
            texts.append(json.dumps(pq.read_table(path).to_pylist(), default=str).lower())
        for n in needles:
            if any(n in t for t in texts):
                hits.append([os.path.relpath(path, root), n])
print(json.dumps({"files": files, "parquet": parquet, "hits": hits}))
sys.stdout.flush(); os._exit(0)
"#;

/// A value as text ("" for NULL, numbers and booleans printed).
fn val(row: &common::Row, key: &str) -> String {
    match &row[key] {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn scan(dir: &Path, needles: &[String]) -> serde_json::Value {
    let mut args: Vec<std::ffi::OsString> = vec![dir.join("warehouse").into()];
    args.extend(needles.iter().map(Into::into));
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    python_json(dir, SCAN, &refs)
}

/// A customer with records from several systems, a phone, a loyalty card no one else holds,
/// and audience memberships.
fn pick_person(dir: &Path) -> (String, String) {
    let row = &query(
        dir,
        "select c.customer_id, c.email from profiles.customers c \
         join (select customer_id, count(*) as n from segments.membership group by 1) m \
           using (customer_id) \
         where c.records >= 3 and c.phone is not null and c.email is not null \
           and c.customer_id in (select rc.customer_id from unify.identity_records r \
                                 join unify.record_customer rc using (record_key) \
                                 where r.loyalty_number in (select loyalty_number \
                                   from unify.identity_records r2 \
                                   join unify.record_customer rc2 using (record_key) \
                                   group by 1 having count(distinct rc2.customer_id) = 1)) \
           and c.customer_id in (select customer_id from audiences.at_risk_email \
                                 union all select customer_id from audiences.champions_uid2) \
         order by c.records desc, m.n desc, c.customer_id limit 1",
    )[0];
    (text(row, "customer_id"), text(row, "email"))
}

/// The customer's loyalty card (as `unify.identity_records` holds it: upper case, no spaces).
fn card_of(dir: &Path, customer: &str) -> String {
    let rows = query(
        dir,
        &format!(
            "select min(r.loyalty_number) as card from unify.identity_records r \
             join unify.record_customer rc using (record_key) where rc.customer_id = '{customer}'"
        ),
    );
    let card = val(&rows[0], "card");
    assert!(card.len() >= 6, "{customer} has no card: {rows:?}");
    card
}

/// Every identifier of the customer: emails, E.164 phones and their national digits, source
/// record ids, web user ids, loyalty cards.
fn identifiers(dir: &Path, customer: &str) -> Vec<String> {
    let rows = query(
        dir,
        &format!(
            "select r.record_id, r.email, r.phone, r.web_user_id, r.loyalty_number \
             from unify.identity_records r \
             join unify.record_customer rc using (record_key) where rc.customer_id = '{customer}'"
        ),
    );
    let mut out = BTreeSet::new();
    for r in &rows {
        out.insert(val(r, "record_id"));
        for k in ["email", "phone", "web_user_id", "loyalty_number"] {
            let v = val(r, k);
            if !v.is_empty() {
                if k == "phone" {
                    // The national number as systems write it (no country code, no +).
                    out.insert(v[v.len() - 9..].to_string());
                }
                out.insert(v);
            }
        }
    }
    out.into_iter().collect()
}

#[test]
fn erasure_is_physical_durable_audited_and_reaches_the_audiences() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_dir(shared_demo(), dir);
    ok(dir, &["run"]);
    // A second version of every table: the person is in old files too.
    ok(dir, &["run", "--full-refresh"]);
    let (customer, email) = pick_person(dir);
    let needles = identifiers(dir, &customer);
    assert!(needles.len() >= 5, "{needles:?}");
    let before = scan(dir, &needles);
    assert!(
        before["hits"].as_array().unwrap().len() > 20,
        "the scan finds the person before: {before}"
    );
    let audiences: Vec<String> = query(
        dir,
        &format!(
            "select 'at_risk_email' as a from audiences.at_risk_email where customer_id = '{customer}' \
             union all select 'champions_uid2' from audiences.champions_uid2 where customer_id = '{customer}'"
        ),
    )
    .iter()
    .map(|r| text(r, "a"))
    .collect();
    assert!(!audiences.is_empty());

    // Subject access first: every source and derived table holding the person.
    let export = dir.join("subject.json");
    ok(
        dir,
        &[
            "export-subject",
            "--email",
            &email.to_uppercase(),
            "--out",
            export.to_str().unwrap(),
        ],
    );
    let export: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    assert_eq!(export["customers"], serde_json::json!([customer]));
    for table in [
        "staging.contacts",
        "unify.identity_records",
        "unify.record_customer",
        "profiles.customers",
        "profiles.customers_history",
        "profiles.customer_360",
        "profiles.customer_consent",
        "scores.rfm",
        "segments.membership",
        &format!("audiences.{}", audiences[0]),
    ] {
        let rows = export["tables"][table]["rows"].as_array();
        assert!(
            rows.is_some_and(|r| !r.is_empty()),
            "{table} missing from the export: {}",
            export["tables"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let sources: BTreeSet<String> = export["sources"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for s in [
        "crm_contacts",
        "web_events",
        "email_engagement",
        "consent_records",
    ] {
        assert!(sources.contains(s), "{s} not in {sources:?}");
    }
    let lineage = export["golden_record_lineage"].as_array().unwrap();
    assert!(lineage.iter().any(|l| {
        l["attribute"] == "email"
            && export["records"]
                .as_array()
                .unwrap()
                .contains(&l["source_record"])
    }));

    // A dry run changes nothing.
    let dry = ok(dir, &["forget", "--email", &email, "--dry-run"]);
    assert!(dry.contains("would delete"), "{dry}");
    assert_eq!(scan(dir, &needles)["hits"], before["hits"]);
    // The loyalty card, typed as a clerk would (lower case, spaced), finds the same person.
    let card = card_of(dir, &customer);
    let typed = format!("{} {}", card[..4].to_lowercase(), &card[4..]);
    let dry = ok(
        dir,
        &["forget", "--loyalty-number", &typed, "--dry-run", "--json"],
    );
    let dry: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(dry[0]["customers"], serde_json::json!([customer]), "{dry}");

    // The erasure.
    let out = ok(dir, &["forget", "--email", &email, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let report = &report[0];
    assert_eq!(report["customers"], serde_json::json!([customer]));
    for table in [
        "profiles.customers",
        "unify.identity_records",
        "staging.contacts",
    ] {
        assert!(report["tables"][table].as_u64().unwrap() >= 1, "{report}");
    }
    assert!(report["files_deleted"].as_u64().unwrap() > 0);
    assert!(report["suppressed"].as_u64().unwrap() >= 3);
    // The sources still hold the person: reported with their location.
    let crm = &report["sources_holding"]["crm_contacts"];
    assert!(
        crm["location"]
            .as_str()
            .unwrap()
            .ends_with("crm/contacts.csv"),
        "{report}"
    );
    assert!(crm["rows"].as_u64().unwrap() >= 1);

    let after = scan(dir, &needles);
    assert!(after["parquet"].as_u64().unwrap() > 50, "{after}");
    assert_eq!(
        after["hits"],
        serde_json::json!([]),
        "identifiers left after the erasure"
    );
    // The audiences' change tables tell the platforms to remove the person, by hash only.
    for a in &audiences {
        let changes = query(
            dir,
            &format!("select * from audiences.{a}_changes where customer_id = '{customer}'"),
        );
        assert_eq!(changes.len(), 1, "{a}: {changes:?}");
        assert_eq!(text(&changes[0], "change"), "remove");
        let hashed = if a == "champions_uid2" {
            "email_hash"
        } else {
            "email_sha256"
        };
        assert!(text(&changes[0], hashed).len() >= 44, "{a}: {changes:?}");
    }
    let audit = query(dir, "select action, status, details from privacy.audit_log");
    assert!(
        audit
            .iter()
            .any(|r| text(r, "action") == "forget" && text(r, "status") == "done")
    );
    assert!(audit.iter().any(|r| text(r, "action") == "export_subject"));
    // Time travel to before the erasure is gone with the old files.
    fails(
        dir,
        &[
            "sql",
            "select count(*) from at_version('profiles.customers', 0)",
        ],
        1,
    );

    // The sources still hold the person; the next runs do not bring them back. Nor does a CRM
    // contact entered afterwards with nothing of theirs but the loyalty card (typed another
    // way); a contact with a card no one was erased by still comes in.
    let csv = dir.join("data/crm/contacts.csv");
    let mut contacts = std::fs::read_to_string(&csv).unwrap();
    let spaced = format!("{}-{}", &card[..4], &card[4..]);
    for (id, card) in [
        ("CERASED0001", spaced.as_str()),
        ("CFRESH0001", "zz 0000 0001"),
    ] {
        contacts.push_str(&format!(
            "{id},,Newname,Newsurname,,,{card},,,,,,,2026-07-01T00:00:00Z,2026-07-02T00:00:00Z\n"
        ));
    }
    std::fs::write(&csv, contacts).unwrap();
    ok(dir, &["run"]);
    ok(dir, &["run", "--full-refresh"]);
    let again = scan(dir, &needles);
    assert_eq!(again["hits"], serde_json::json!([]), "the person came back");
    let seen = query(
        dir,
        &format!(
            "select (select count(*) from crm_contacts where lower(email) = '{email}') as crm, \
                    (select count(*) from profiles.customers where email = '{email}') as golden"
        ),
    );
    assert_eq!(val(&seen[0], "crm"), "0");
    assert_eq!(val(&seen[0], "golden"), "0");
    let added = query(
        dir,
        "select contact_id from crm_contacts where contact_id like 'C%0001' \
           and last_name = 'Newsurname' order by 1",
    );
    assert_eq!(
        added
            .iter()
            .map(|r| text(r, "contact_id"))
            .collect::<Vec<_>>(),
        ["CFRESH0001"],
        "the erased person's card came back through a new contact"
    );
    let held = query(
        dir,
        &format!(
            "select count(*) as n from unify.identity_records where loyalty_number = '{card}'"
        ),
    );
    assert_eq!(val(&held[0], "n"), "0");
    // Everyone else is still there.
    let customers = query(dir, "select count(*) as n from profiles.customers");
    assert!(val(&customers[0], "n").parse::<u64>().unwrap() > 2000);

    // The suppression list only works with its salt.
    let out = common::tessera()
        .current_dir(dir)
        .env("TESSERA_SUPPRESSION_SALT", "another salt")
        .args(["sql", "select count(*) from crm_contacts"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another salt"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn retention_deletes_old_rows_and_their_files_and_outputs_can_be_pseudonymised() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_dir(shared_demo(), dir);
    let mut toml = std::fs::read_to_string(dir.join("tessera.toml")).unwrap();
    toml.push_str(
        "\n[privacy]\npseudonymize = [\"profiles.customer_360\"]\n\n\
         [[privacy.retention]]\ntable = \"staging.orders\"\ncolumn = \"order_ts\"\nkeep = \"2 years\"\n",
    );
    std::fs::write(dir.join("tessera.toml"), toml).unwrap();
    let old = query(
        dir,
        "select order_id from pos_orders where order_ts < now() - interval '2 years' \
         order by order_id limit 5",
    );
    assert_eq!(old.len(), 5, "the demo has orders older than two years");
    let old_ids: Vec<String> = old.iter().map(|r| text(r, "order_id")).collect();

    let out = run_in(dir, &["run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("RETENTION       staging.orders"),
        "{stdout}"
    );
    let left = query(
        dir,
        "select count(*) as n, min(order_ts) as oldest from staging.orders \
         where order_ts < now() - interval '2 years'",
    );
    assert_eq!(val(&left[0], "n"), "0");
    let kept = query(dir, "select count(*) as n from staging.orders");
    assert!(val(&kept[0], "n").parse::<u64>().unwrap() > 1000);
    // Gone from every file, old versions included.
    let found = scan(dir, &old_ids);
    let in_orders: Vec<&serde_json::Value> = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().unwrap().starts_with("staging/orders"))
        .collect();
    assert!(in_orders.is_empty(), "{in_orders:?}");

    // Pseudonymised: only SHA-256 hex of the normalised identifiers in the 360 table.
    let rows = query(
        dir,
        "select email, phone, customer_id from profiles.customer_360 \
         where email is not null and phone is not null limit 20",
    );
    assert_eq!(rows.len(), 20);
    for r in &rows {
        for k in ["email", "phone"] {
            let v = text(r, k);
            assert!(
                v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()),
                "{k} = {v}"
            );
        }
    }
    let check = query(
        dir,
        &format!(
            "select c.email = hash_identifier(g.email, 'email', 'default') as same \
             from profiles.customer_360 c join profiles.customers g using (customer_id) \
             where c.customer_id = '{}'",
            text(&rows[0], "customer_id")
        ),
    );
    assert_eq!(val(&check[0], "same"), "true");

    // A wrong period is an error naming the key.
    let mut toml = std::fs::read_to_string(dir.join("tessera.toml")).unwrap();
    toml = toml.replace("keep = \"2 years\"", "keep = \"forever\"");
    std::fs::write(dir.join("tessera.toml"), toml).unwrap();
    let err = fails(dir, &["retention"], 2);
    assert!(err.contains("privacy.retention[0].keep"), "{err}");
}

/// Issue 25: an erasure is write-ahead. Killed after it audited the request as started and
/// suppressed the person, before deleting any row, the person is already kept out of the
/// next run's tables (the suppression is in place), the audit log shows the interrupted
/// request, and the same request run again completes the erasure. Customer ids in the audit
/// log are salted hashes, not ids in clear.
#[test]
fn an_erasure_killed_midway_is_already_suppressed_and_completes_when_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_dir(shared_demo(), dir);
    ok(dir, &["run", "--no-report"]);
    let (customer, email) = pick_person(dir);
    for point in [
        "forget:before-deletes",
        "forget:between-deletes",
        "forget:before-purge",
    ] {
        let out = common::killed_at(dir, &["forget", "--email", &email], point);
        assert_eq!(
            out.status.code(),
            Some(86),
            "{point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let audit = query(
            dir,
            "select status, count(*) as n from privacy.audit_log where action = 'forget' group by 1",
        );
        assert!(
            audit.iter().any(|r| text(r, "status") == "started"),
            "{point}: {audit:?}"
        );
        let suppressed = query(dir, "select count(*) as n from privacy.suppression");
        assert!(common::number(&suppressed[0], "n") > 0.0, "{point}");
    }
    // The next scheduled run, with the person still in the sources: not back.
    ok(dir, &["run", "--full-refresh", "--no-report"]);
    let back = query(
        dir,
        &format!("select count(*) as n from profiles.customers where email = '{email}'"),
    );
    assert_eq!(common::number(&back[0], "n"), 0.0, "the person came back");
    // The same request again completes it.
    ok(dir, &["forget", "--email", &email]);
    let audit = query(
        dir,
        "select status, details from privacy.audit_log where action = 'forget'",
    );
    assert!(
        audit.iter().any(|r| text(r, "status") == "done"),
        "{audit:?}"
    );
    for r in &audit {
        assert!(
            !text(r, "details").contains(&customer),
            "a customer id in clear in the audit log: {r:?}"
        );
    }
}

/// Issue 25: the identity job's diagnostics name people too — `identity_guard_hits` keeps the
/// values its guards set aside, `identity_stats` and the report list the largest customers by
/// id — and a failed run's error used to quote the source row it could not parse. Erasure
/// reaches the first three; the error never holds the row.
#[test]
fn erasure_reaches_guard_hits_statistics_and_the_report_and_errors_hold_no_row() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_dir(shared_demo(), dir);
    ok(dir, &["run", "--no-report"]);
    // A customer whose email no one else holds, made a guard hit: a blocked value.
    let email = text(
        &query(
            dir,
            "select min(r.email) as e from unify.identity_records r \
             join unify.record_customer rc using (record_key) where r.email in ( \
               select r2.email from unify.identity_records r2 \
               join unify.record_customer rc2 using (record_key) \
               group by 1 having count(distinct rc2.customer_id) = 1)",
        )[0],
        "e",
    );
    let toml = dir.join("tessera.toml");
    let config = std::fs::read_to_string(&toml).unwrap();
    let blocked = config.replacen(
        "blocked_values = [\"test@test.com\"",
        &format!("blocked_values = [\"{email}\", \"test@test.com\""),
        1,
    );
    assert_ne!(config, blocked);
    std::fs::write(&toml, blocked).unwrap();
    ok(dir, &["run"]);
    let guarded = |dir: &Path| {
        query(
            dir,
            &format!("select count(*) as n from unify.identity_guard_hits where value = '{email}'"),
        )[0]["n"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(guarded(dir), 1);
    let largest = text(
        &query(
            dir,
            "select min(dimension) as c from unify.identity_stats where metric = 'largest_cluster'",
        )[0],
        "c",
    );
    let report = dir.join("reports/report.html");
    assert!(std::fs::read_to_string(&report).unwrap().contains(&largest));

    ok(dir, &["forget", "--email", &email]);
    ok(dir, &["forget", "--customer-id", &largest]);
    assert_eq!(guarded(dir), 0, "the guard hit naming the person is gone");
    let listed = query(
        dir,
        &format!("select count(*) as n from unify.identity_stats where dimension = '{largest}'"),
    );
    assert_eq!(listed[0]["n"].as_i64().unwrap(), 0);
    assert!(!std::fs::read_to_string(&report).unwrap().contains(&largest));
    let after = scan(dir, &[largest.clone(), email.clone()]);
    // Only the tracked tables' `remove` changes keep the customer id (reverse-ETL deletes
    // the person at the platform by it); nothing else, and nowhere the email.
    for hit in after["hits"].as_array().unwrap() {
        let (file, needle) = (hit[0].as_str().unwrap(), hit[1].as_str().unwrap());
        let table = file
            .split("/part-")
            .next()
            .unwrap()
            .split("/_delta_log")
            .next()
            .unwrap();
        assert!(
            needle == largest && table.ends_with("_changes"),
            "{file} holds {needle}"
        );
        let kept = query(
            dir,
            &format!(
                "select distinct change from {} where customer_id = '{largest}'",
                table.replace('/', ".")
            ),
        );
        assert_eq!(kept.len(), 1, "{table}: {kept:?}");
        assert_eq!(text(&kept[0], "change"), "remove", "{table}");
    }

    // A source row that cannot be parsed: the error names the place, not the row.
    let csv = dir.join("data/crm/contacts.csv");
    let mut contacts = std::fs::read_to_string(&csv).unwrap();
    contacts.push_str(
        "CBROKEN01,,Secret,Person,secret.person@example.org,,,,,,,,,not-a-date secret.person,2026-07-02T00:00:00Z\n",
    );
    std::fs::write(&csv, contacts).unwrap();
    let out = run_in(dir, &["run", "--no-report", "--json"]);
    assert!(!out.status.success());
    let runs = query(
        dir,
        "select coalesce(error, '') as e from _tessera.runs where status = 'failed'",
    );
    let errors: String = runs.iter().map(|r| text(r, "e")).collect();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(errors.contains("line"), "{errors}");
    for shown in [&errors, &printed] {
        assert!(!shown.contains("secret.person"), "{shown}");
    }
}

/// Issue 25: a warehouse folder another tool wrote, with a name SQL must quote
/// (`raw/Raw-Events/`), made every `forget` fail: table names found by listing folders were
/// spliced into SQL as they are. Now it is searched and erased like any table.
#[test]
fn erasure_reaches_a_table_another_tool_wrote_under_any_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_dir(shared_demo(), dir);
    ok(dir, &["run", "--no-report"]);
    let (_, email) = pick_person(dir);
    let table = dir.join("warehouse/raw/Raw-Events");
    let written = python_json(
        dir,
        r#"
import json, sys
import pyarrow as pa
from deltalake import write_deltalake
write_deltalake(sys.argv[1], pa.table({
    "Event Email": [sys.argv[2], "someone.else@example.org"],
    "email": [sys.argv[2].upper(), "someone.else@example.org"],
    "kind": ["click", "view"],
}))
print(json.dumps({"ok": True}))
"#,
        &[table.as_os_str(), std::ffi::OsStr::new(&email)],
    );
    assert_eq!(written["ok"], true);
    let tables = ok(dir, &["tables"]);
    assert!(tables.contains("raw.Raw-Events"), "{tables}");
    let out = ok(dir, &["forget", "--email", &email, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report[0]["tables"]["raw.Raw-Events"], 1, "{report}");
    let left = query(
        dir,
        r#"select "Event Email" as e, kind from raw."Raw-Events""#,
    );
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(text(&left[0], "kind"), "view");
}

/// Issue 25: retention deletes rows, then purges the files of older versions that still hold
/// them. Stopped between the two, the rows lived on in those files and the next retention
/// found nothing to delete, so it never purged. Now it finishes the purge. And a retention
/// started while a run holds the warehouse waits for it: the old rows are gone afterwards,
/// whichever went first.
#[test]
fn retention_stopped_before_its_purge_purges_next_time_and_waits_for_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_dir(shared_demo(), dir);
    let mut toml = std::fs::read_to_string(dir.join("tessera.toml")).unwrap();
    toml.push_str(
        "\n[[privacy.retention]]\ntable = \"staging.orders\"\ncolumn = \"order_ts\"\nkeep = \"2 years\"\n",
    );
    std::fs::write(dir.join("tessera.toml"), toml).unwrap();
    let old_ids: Vec<String> = query(
        dir,
        "select order_id from pos_orders where order_ts < now() - interval '2 years' \
         order by order_id limit 5",
    )
    .iter()
    .map(|r| text(r, "order_id"))
    .collect();
    let in_orders = |dir: &Path| -> usize {
        scan(dir, &old_ids)["hits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0].as_str().unwrap().starts_with("staging/orders"))
            .count()
    };
    let out = common::killed_at(dir, &["run", "--no-report"], "retention:before-purge");
    assert_eq!(out.status.code(), Some(86));
    let expired = "select count(*) as n from staging.orders \
                   where order_ts < now() - interval '2 years'";
    assert_eq!(val(&query(dir, expired)[0], "n"), "0", "deleted");
    assert!(in_orders(dir) > 0, "the old versions still hold the rows");
    ok(dir, &["retention"]);
    assert_eq!(in_orders(dir), 0, "the next retention purged them");

    // A run and a retention at once: the lock orders them; both succeed.
    let run = common::tessera()
        .arg("-C")
        .arg(dir)
        .args(["run", "--full-refresh", "--no-report"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let retention = run_in(dir, &["retention"]);
    let run = run.wait_with_output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        retention.status.success(),
        "{}",
        String::from_utf8_lossy(&retention.stderr)
    );
    assert_eq!(val(&query(dir, expired)[0], "n"), "0");
    assert_eq!(in_orders(dir), 0);
}

/// Issue 25: a row staged after the last identity run (a new CRM contact of the person, not in
/// the identity graph yet) was searched only by record key, so an erasure left it. It is found
/// by the person's own email now; a family member's rows sharing nothing of theirs stay.
#[test]
fn erasure_reaches_rows_the_identity_graph_has_not_seen_yet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_dir(shared_demo(), dir);
    ok(dir, &["run", "--no-report"]);
    let (_, email) = pick_person(dir);
    let csv = dir.join("data/crm/contacts.csv");
    let mut contacts = std::fs::read_to_string(&csv).unwrap();
    contacts.push_str(&format!(
        "CLATE0001,,Late,Arrival,{email},,,,,,,,,2026-07-01T00:00:00Z,2026-07-02T00:00:00Z\n"
    ));
    std::fs::write(&csv, contacts).unwrap();
    // Only staging runs: the identity graph does not know the new record.
    ok(dir, &["run", "-s", "staging.contacts", "--no-report"]);
    let staged = |dir: &Path| {
        val(
            &query(
                dir,
                "select count(*) as n from staging.contacts where contact_id = 'CLATE0001'",
            )[0],
            "n",
        )
    };
    assert_eq!(staged(dir), "1");
    let total = |dir: &Path| {
        val(
            &query(dir, "select count(*) as n from staging.contacts")[0],
            "n",
        )
    };
    let before: u64 = total(dir).parse().unwrap();
    let out = ok(dir, &["forget", "--email", &email, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(staged(dir), "0", "{report}");
    // Only the person's rows went.
    let deleted = report[0]["tables"]["staging.contacts"].as_u64().unwrap();
    assert_eq!(total(dir).parse::<u64>().unwrap(), before - deleted);
    assert!(deleted <= 4, "{report}");

    // A request file as people write it: quoted values, a comma inside one.
    let requests = dir.join("requests.csv");
    std::fs::write(
        &requests,
        format!("customer_id,email\n\"C-9, north\",\"{email}\"\n"),
    )
    .unwrap();
    let out = ok(
        dir,
        &[
            "forget",
            "--file",
            requests.to_str().unwrap(),
            "--dry-run",
            "--json",
        ],
    );
    let reports: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reports.as_array().unwrap().len(), 1, "{reports}");
}
