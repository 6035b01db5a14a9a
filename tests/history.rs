//! History across runs, the way an analyst or auditor asks for it: the golden record's slowly
//! changing history (`profiles.customers_history`, valid_from / valid_to), what each run
//! changed, and any Tessera table read as it was at a past version or time
//! (`at_version`, `at_time`, `table_history` in `tessera sql`).

mod common;

use std::path::Path;

use common::{copy_dir, fails, number, ok, query, shared_demo, text};

/// Moves the CRM contact `contact_id` to another city (and makes it the newest update).
fn move_contact(dir: &Path, contact_id: &str, city: &str) {
    let path = dir.join("data/crm/contacts.csv");
    let csv = std::fs::read_to_string(&path).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (city_col, updated_col) = (col("city"), col("updated_at"));
    let mut found = false;
    let out: Vec<String> = csv
        .lines()
        .map(|line| {
            if !line.starts_with(&format!("{contact_id},")) {
                return line.to_string();
            }
            found = true;
            let mut fields: Vec<String> = line.split(',').map(str::to_string).collect();
            fields[city_col] = city.to_string();
            fields[updated_col] = "2026-12-01T00:00:00Z".to_string();
            fields.join(",")
        })
        .collect();
    assert!(found, "contact {contact_id} not in the CSV");
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
}

#[test]
fn golden_record_history_and_time_travel_across_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_dir(shared_demo(), dir);
    ok(dir, &["run", "-s", "+profiles.customers"]);
    let customers = number(
        &query(dir, "select count(*) as n from profiles.customers")[0],
        "n",
    );
    // Run 1: every golden record opens a version.
    let h = &query(
        dir,
        "select count(*) as n, count(valid_to) as closed from profiles.customers_history",
    )[0];
    assert_eq!(number(h, "n"), customers);
    assert_eq!(number(h, "closed"), 0.0);

    // A customer whose address comes from a CRM contact (plain, comma-free line) moves.
    let target = &query(
        dir,
        "select customer_id, city, substr(address_record_key, 14) as contact_id \
         from profiles.customers where address_record_key like 'crm_contacts:%' \
         and city is not null order by customer_id limit 1",
    )[0];
    let (customer, old_city, contact) = (
        text(target, "customer_id"),
        text(target, "city"),
        text(target, "contact_id"),
    );
    let before = chrono::Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    move_contact(dir, &contact, "Springfield");
    ok(dir, &["run", "-s", "+profiles.customers"]);

    // Run 2: the old version is closed, the new one open; nothing else changed.
    let versions = query(
        dir,
        &format!(
            "select city, valid_from, valid_to from profiles.customers_history \
             where customer_id = '{customer}' order by valid_from"
        ),
    );
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(text(&versions[0], "city"), old_city);
    assert!(
        text(&versions[1], "city").eq_ignore_ascii_case("springfield"),
        "{versions:?}"
    );
    assert_eq!(
        text(&versions[0], "valid_to"),
        text(&versions[1], "valid_from")
    );
    assert!(versions[1]["valid_to"].is_null());
    let changes = query(
        dir,
        "select change, customer_id from profiles.customers_changes \
         where run_id = (select max(run_id) from profiles.customers_changes)",
    );
    assert!(
        changes
            .iter()
            .any(|c| text(c, "change") == "update" && text(c, "customer_id") == customer),
        "{changes:?}"
    );
    let h = &query(
        dir,
        "select count(*) as n, count(valid_to) as closed, \
         count(distinct customer_id) as customers from profiles.customers_history",
    )[0];
    // Closed versions are exactly this run's updates and removals.
    let closing = changes
        .iter()
        .filter(|c| text(c, "change") != "add")
        .count();
    assert_eq!(number(h, "closed"), closing as f64, "{changes:?}");

    // Time travel: the table as it was, by version and by time, beside the current one.
    let history = query(
        dir,
        "select version, operation, job from table_history('profiles.customers') order by version",
    );
    assert!(history.len() >= 2, "{history:?}");
    assert_eq!(text(&history[0], "job"), "profiles.customers");
    let then = &query(
        dir,
        &format!(
            "select v0.city as v0_city, t.city as then_city, c.city as now_city \
             from at_version('profiles.customers', 0) v0 \
             join at_time('profiles.customers', '{}') t on t.customer_id = v0.customer_id \
             join profiles.customers c on c.customer_id = v0.customer_id \
             where v0.customer_id = '{customer}'",
            before.to_rfc3339()
        ),
    )[0];
    assert_eq!(text(then, "v0_city"), old_city);
    assert_eq!(text(then, "then_city"), old_city);
    assert!(text(then, "now_city").eq_ignore_ascii_case("springfield"));

    // Asking for what does not exist says what does.
    let e = fails(
        dir,
        &["sql", "select * from at_version('profiles.customers', 99)"],
        1,
    );
    assert!(
        e.contains("version 99 does not exist") && e.contains("versions 0 to"),
        "{e}"
    );
    let e = fails(
        dir,
        &[
            "sql",
            "select * from at_time('profiles.customers', 'last week')",
        ],
        1,
    );
    assert!(e.contains("not a timestamp"), "{e}");
    let e = fails(
        dir,
        &["sql", "select * from table_history('profiles.nope')"],
        1,
    );
    assert!(e.contains("`profiles.nope` is not a table"), "{e}");
}
