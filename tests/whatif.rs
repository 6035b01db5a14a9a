//! `tessera plan --impact` (issue 29): a change to identity settings or a job's SQL is run
//! into a sandbox and reported — identity, golden records, segments, audiences — and nothing
//! published moves: every file of the warehouse is as it was (checked byte for byte), and the
//! next real run does what the what-if said it would.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// A demo project, run once, in a folder of its own.
fn published_demo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(shared_demo(), dir.path());
    ok(dir.path(), &["run", "--no-report"]);
    dir
}

/// Every file under the warehouse with its length and content digest, except the lock's
/// own objects (a what-if holds the lock like a run) and empty sandbox folders.
fn warehouse_files(dir: &Path) -> BTreeMap<PathBuf, (u64, String)> {
    fn walk(root: &Path, at: &Path, out: &mut BTreeMap<PathBuf, (u64, String)>) {
        for entry in std::fs::read_dir(at).unwrap().flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            let text = relative.to_string_lossy();
            if text.starts_with("_tessera/lock") || text == "_tessera/run.lock" {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                let digest = format!("{:x}", fnv1a(&bytes));
                out.insert(relative, (bytes.len() as u64, digest));
            }
        }
    }
    let root = dir.join("warehouse");
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

/// A 64-bit FNV-1a digest (enough to see a byte change; no crate needed).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

fn assert_untouched(dir: &Path, before: &BTreeMap<PathBuf, (u64, String)>) {
    let after = warehouse_files(dir);
    let changed: Vec<_> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k.display().to_string())
        .chain(
            before
                .keys()
                .filter(|k| !after.contains_key(*k))
                .map(|k| format!("{} (removed)", k.display())),
        )
        .collect();
    assert!(
        changed.is_empty(),
        "the what-if changed the warehouse: {changed:?}"
    );
    let sandboxes = dir.join("warehouse/_tessera/whatif");
    let left: Vec<_> = std::fs::read_dir(&sandboxes)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "sandboxes left behind: {left:?}");
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no `{from}`", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn impact(dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["plan", "--impact", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(dir, &args)).expect("one JSON object")
}

fn int(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer `{key}` in {v}"))
}

fn tracked<'a>(impact: &'a Value, job: &str) -> &'a Value {
    impact["tracked"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["job"] == job)
        .unwrap_or_else(|| panic!("no tracked impact for {job}: {impact}"))
}

/// A text field (`action`, `reason`) of a job in the what-if.
fn job_text<'a>(impact: &'a Value, job: &str, field: &str) -> &'a str {
    impact["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == job)
        .and_then(|j| j[field].as_str())
        .unwrap_or_else(|| panic!("{job} not in the what-if's jobs"))
}

fn action<'a>(impact: &'a Value, job: &str) -> &'a str {
    job_text(impact, job, "action")
}

/// The changes run `run_id` recorded in `table` (a `_changes` table): change → rows.
fn run_changes(dir: &Path, table: &str, run_id: &str) -> BTreeMap<String, i64> {
    query(
        dir,
        &format!(
            "select change, count(*) as n from {table} \
             where run_id = '{run_id}' group by change"
        ),
    )
    .iter()
    .map(|r| (text(r, "change"), number(r, "n") as i64))
    .collect()
}

#[test]
fn a_lower_threshold_is_measured_before_it_merges_anyone_and_the_run_then_does_exactly_that() {
    let project = published_demo();
    let dir = project.path();
    let before = warehouse_files(dir);
    edit(
        &dir.join("tessera.toml"),
        "threshold = 0.95 ",
        "threshold = 0.5 ",
    );
    let html = dir.join("reports/what-if.html");
    let impact = impact(dir, &["--html", html.to_str().unwrap()]);
    assert_untouched(dir, &before);

    let identity = &impact["identity"][0];
    assert_eq!(identity["job"], "unify.identity_records");
    assert!(int(identity, "merged") > 0, "{identity}");
    assert_eq!(int(identity, "links_lost"), 0, "{identity}");
    assert!(int(identity, "links_gained") > 0);
    assert!(int(identity, "records_moved") > 0);
    assert_eq!(
        int(identity, "customers_before") - int(identity, "customers_after"),
        int(identity, "ids_retired") - int(identity, "ids_created"),
        "{identity}"
    );
    assert!(int(identity, "unchanged") < int(identity, "customers_after"));
    // Changed decisions come with both explanations: the published one with the threshold
    // that made it, the sandbox's with the new one.
    let decision = &identity["decisions"][0];
    assert_eq!(decision["change"], "linked", "{decision}");
    let before_text = decision["before"].as_str().unwrap();
    let after_text = decision["after"].as_str().unwrap();
    assert!(before_text.contains("threshold 0.95"), "{before_text}");
    assert!(before_text.contains("different customers"), "{before_text}");
    assert!(after_text.contains("threshold 0.5"), "{after_text}");
    assert!(after_text.contains("the same customer"), "{after_text}");
    // Downstream: golden records lose the merged ids, audiences say what they would send.
    let customers = tracked(&impact, "profiles.customers");
    assert_eq!(int(customers, "removed"), int(identity, "ids_retired"));
    assert!(int(customers, "updated") > 0);
    assert!(
        customers["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["column"] == "records"),
        "{customers}"
    );
    let meta = tracked(&impact, "audiences.high_value_meta");
    assert_eq!(meta["destination"], "meta");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Tessera what-if"));
    assert!(page.contains("Identity: unify.identity_records"));
    assert!(page.contains("what the next sync sends"));
    // The project's report shows the latest what-if in a section of its own.
    ok(dir, &["report"]);
    let report = std::fs::read_to_string(dir.join("reports/report.html")).unwrap();
    assert!(
        report.contains(r#"<section id="what-if""#),
        "no what-if section"
    );
    assert!(report.contains(impact["id"].as_str().unwrap()));
    assert!(report.contains("Rows the next run would add, remove and update"));

    // A limit turns it into a failing check (exit 4), still publishing nothing.
    let stderr = fails(dir, &["plan", "--impact", "--max-merged", "0"], 4);
    assert!(stderr.contains("customers would merge"), "{stderr}");
    assert_untouched(dir, &before);

    // The real run then does what the what-if said.
    let events = ok(dir, &["run", "--no-report", "--json"]);
    let started: Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    let run_id = started["run_id"].as_str().unwrap().to_string();
    let customers_now = query(
        dir,
        "select count(distinct customer_id) as n from unify.record_customer",
    );
    assert_eq!(
        number(&customers_now[0], "n") as i64,
        int(identity, "customers_after")
    );
    for job in [
        "profiles.customers",
        "segments.membership",
        "audiences.high_value_meta",
        "audiences.champions_uid2",
    ] {
        let predicted = tracked(&impact, job);
        let recorded = run_changes(dir, &format!("{job}_changes"), &run_id);
        for (change, key) in [
            ("add", "added"),
            ("remove", "removed"),
            ("update", "updated"),
        ] {
            assert_eq!(
                recorded.get(change).copied().unwrap_or(0),
                int(predicted, key),
                "{job}: {change}s recorded by the run vs predicted ({predicted})"
            );
        }
    }
}

fn reason<'a>(impact: &'a Value, job: &str) -> &'a str {
    job_text(impact, job, "reason")
}

/// A change of `[identity]` that leaves blocking rules as they were: those rules are not
/// blocked again, their published compared pairs are read (in the what-if and in the run),
/// and the run decides exactly as one that blocks and compares again — the same project,
/// published the same way, with its published pairs removed.
fn decides_as_blocking_again(change: impl Fn(&Path), reused_reason: &str, rules_reused: i64) {
    let project = published_demo();
    let dir = project.path();
    let fresh = published_demo();
    std::fs::remove_dir_all(fresh.path().join("warehouse/unify/match_pairs")).unwrap();
    let latest_stat = "select count(*) as n from unify.identity_stats \
         where metric = 'published_pairs_reused' \
         and run_id = (select max(run_id) from unify.identity_stats)";
    let mut decisions = Vec::new();
    for (d, reused) in [(dir, true), (fresh.path(), false)] {
        change(d);
        let impact = impact(d, &[]);
        let why = reason(&impact, "unify.identity_records");
        assert!(why.contains("published records are reused"), "{why}");
        assert_eq!(why.contains(reused_reason), reused, "{why}");
        ok(d, &["run", "--no-report", "-s", "unify.identity_records"]);
        let stat = query(d, latest_stat);
        let expected = if reused { rules_reused } else { 0 };
        assert_eq!(number(&stat[0], "n") as i64, expected);
        decisions.push((
            query(
                d,
                "select record_key, customer_id, linked_by from unify.record_customer \
                 order by record_key",
            ),
            // Weights to the last bit: a retrained model sums the same pairs in the same
            // order whatever order blocking or the published table gave them.
            query(
                d,
                "select record_key_a, record_key_b, linked_by, blocking_rule, \
                 match_weight, match_probability, accepted, \
                 refused_reason, gamma_email, gamma_first_name, tf_first_name \
                 from unify.match_pairs order by record_key_a, record_key_b, linked_by",
            ),
        ));
    }
    let (reused, fresh) = (&decisions[0], &decisions[1]);
    assert!(reused.1.len() > 1000, "{} pairs", reused.1.len());
    assert_eq!(reused.0.len(), fresh.0.len());
    assert!(
        reused.0 == fresh.0,
        "the customers differ from blocking again"
    );
    assert_eq!(reused.1.len(), fresh.1.len());
    assert!(reused.1 == fresh.1, "the pairs differ from blocking again");
}

/// A threshold: every rule's pairs are read, and the stored model scores them.
#[test]
fn a_threshold_change_reads_the_published_pairs_and_decides_as_blocking_again_would() {
    decides_as_blocking_again(
        |d| {
            edit(
                &d.join("tessera.toml"),
                "threshold = 0.95 ",
                "threshold = 0.8 ",
            )
        },
        "compared pairs of 6 of its 6 blocking rules",
        6,
    );
}

/// A blocking rule added after the others: theirs are read, the new one blocks, and the model
/// retrains (its settings changed) with the same term frequencies.
#[test]
fn an_added_blocking_rule_blocks_alone_and_decides_as_blocking_again_would() {
    decides_as_blocking_again(
        |d| {
            edit(
                &d.join("tessera.toml"),
                "# Comparisons: levels strongest first",
                "[[identity.blocking]]\nname = \"last_name_and_postal_code\"\n\
                 on = [\"last_name\", \"postal_code\"]\n\n\
                 # Comparisons: levels strongest first",
            )
        },
        "compared pairs of 6 of its 7 blocking rules",
        6,
    );
}

#[test]
fn a_guard_and_a_comparison_level_are_measured_on_identity() {
    let project = published_demo();
    let dir = project.path();
    let before = warehouse_files(dir);
    let toml = dir.join("tessera.toml");
    let original = std::fs::read_to_string(&toml).unwrap();

    // The guard on shared mailboxes, removed: households' mailboxes link their people.
    let at = original.find("column = \"email\"").unwrap();
    let guard = original[at..].find("shared_when").unwrap() + at;
    let end = original[guard..].find('\n').unwrap() + guard + 1;
    std::fs::write(&toml, format!("{}{}", &original[..guard], &original[end..])).unwrap();
    let impact_guard = impact(dir, &[]);
    assert_untouched(dir, &before);
    let identity = &impact_guard["identity"][0];
    assert!(int(identity, "merged") > 0, "{identity}");
    assert!(
        identity["links_by_level"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["key"] == "email: exact" && l["gained"].as_i64() > Some(0)),
        "{identity}"
    );
    let reason = reason(&impact_guard, "unify.identity_records").to_string();
    assert!(reason.contains("[identity]"), "{reason}");
    // The guard changes the keys blocking reads: the pairs are blocked and compared again.
    assert!(!reason.contains("compared pairs"), "{reason}");

    // One comparison level removed (nicknames): the links it made are lost, named by the
    // published settings' level.
    std::fs::write(
        &toml,
        original
            .lines()
            .filter(|l| !l.contains("{ name = \"nickname\""))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let impact_level = impact(dir, &[]);
    assert_untouched(dir, &before);
    let identity = &impact_level["identity"][0];
    assert!(int(identity, "links_lost") > 0, "{identity}");
    assert!(int(identity, "split") > 0, "{identity}");
    assert!(
        identity["links_by_level"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["key"] == "first_name: nickname" && l["lost"].as_i64() > Some(0)),
        "{identity}"
    );
}

#[test]
fn a_segment_change_is_measured_without_touching_identity_and_a_broken_one_fails() {
    let project = published_demo();
    let dir = project.path();
    let before = warehouse_files(dir);
    let segment_sql = dir.join("jobs/segments/membership.sql");
    edit(&segment_sql, "revenue_365d >= 1000", "revenue_365d >= 500");
    let impact_segment = impact(dir, &[]);
    assert_untouched(dir, &before);
    assert!(impact_segment["identity"].as_array().unwrap().is_empty());
    assert_eq!(action(&impact_segment, "unify.identity_records"), "reuse");
    assert_eq!(action(&impact_segment, "profiles.customer_360"), "reuse");
    assert_eq!(action(&impact_segment, "segments.membership"), "run");
    let membership = tracked(&impact_segment, "segments.membership");
    let groups = membership["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{membership}");
    assert_eq!(groups[0]["group"], "segment=high_value");
    assert!(int(&groups[0], "entered") > 0);
    assert_eq!(int(&groups[0], "exited"), 0);
    let meta = tracked(&impact_segment, "audiences.high_value_meta");
    assert!(int(meta, "added") > 0, "{meta}");
    assert_eq!(int(meta, "removed"), 0);
    let stderr = fails(dir, &["plan", "--impact", "--max-audience-growth", "10"], 4);
    assert!(stderr.contains("audience would grow"), "{stderr}");

    // A change that breaks a job: the what-if says so (exit 1) and publishes nothing.
    edit(
        &segment_sql,
        "revenue_365d >= 500",
        "revenue_in_365_days >= 500",
    );
    let stderr = fails(dir, &["plan", "--impact"], 1);
    assert!(stderr.contains("failed in the sandbox"), "{stderr}");
    assert!(stderr.contains("segments.membership"), "{stderr}");
    assert_untouched(dir, &before);
}

#[test]
fn a_killed_what_if_leaves_the_published_tables_and_the_next_one_clears_its_sandbox() {
    let project = published_demo();
    let dir = project.path();
    let before = warehouse_files(dir);
    edit(
        &dir.join("jobs/segments/membership.sql"),
        "revenue_365d >= 1000",
        "revenue_365d >= 500",
    );
    let out = killed_at(
        dir,
        &["plan", "--impact"],
        "job:segments.membership:after-commit",
    );
    assert_eq!(out.status.code(), Some(86), "{out:?}");
    // Killed with its sandbox on disk: nothing published moved.
    let left = std::fs::read_dir(dir.join("warehouse/_tessera/whatif"))
        .unwrap()
        .count();
    assert_eq!(left, 1, "the killed what-if's sandbox");
    let after = warehouse_files(dir);
    for (path, meta) in &before {
        assert_eq!(after.get(path), Some(meta), "{} changed", path.display());
    }
    // The next what-if (once the dead holder's lease is over) removes it and measures.
    let out = tessera()
        .arg("-C")
        .arg(dir)
        .args(["plan", "--impact", "--json", "--wait", "10"])
        .env("TESSERA_LOCK_LEASE_MS", "500")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_untouched(dir, &before);
}

#[test]
fn a_project_never_run_is_measured_as_everything_new_and_stays_unpublished() {
    let project = tempfile::tempdir().unwrap();
    let dir = project.path();
    copy_dir(shared_demo(), dir);
    let impact = impact(dir, &[]);
    let identity = &impact["identity"][0];
    assert_eq!(int(identity, "customers_before"), 0, "{identity}");
    assert!(int(identity, "customers_after") > 0);
    assert_eq!(
        int(identity, "ids_created"),
        int(identity, "customers_after")
    );
    assert_eq!(int(identity, "records_new"), int(identity, "records"));
    let meta = tracked(&impact, "audiences.high_value_meta");
    assert_eq!(int(meta, "rows_before"), 0);
    assert_eq!(int(meta, "added"), int(meta, "rows_after"));
    // Still nothing published: no table in the warehouse.
    let tables: Vec<_> = json_rows(&ok(dir, &["tables", "--format", "json", "--no-count"]))
        .into_iter()
        .filter(|r| r["kind"] != "view" && r["kind"] != "source")
        .collect();
    assert!(tables.is_empty(), "{tables:?}");
}
