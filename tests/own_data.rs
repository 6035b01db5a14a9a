//! Day one with your own data (docs/your-own-data.md, executed): two messy CSV exports this test
//! writes, `tessera init --from`, `profile`, `run`, the quarantine table, `evaluate` against a
//! truth column and the golden record's display names — only through the CLI. Plus the bad-row
//! settings of CSV sources one by one.

mod common;

use std::fmt::Write as _;
use std::path::Path;

use common::{fails, json_rows, number, ok, query, text};

struct Person {
    first: &'static str,
    last: &'static str,
    email: String,
    phone: String,
    birth: (u32, u32, u32),
}

const FIRST: [&str; 20] = [
    "Jessica",
    "Jean-Luc",
    "Anna",
    "Robert",
    "María",
    "Zoé",
    "François",
    "Liam",
    "Olivia",
    "Noah",
    "Emma",
    "Lucas",
    "Mia",
    "Ethan",
    "Sophia",
    "Mason",
    "Isabella",
    "Logan",
    "Ava",
    "Elijah",
];
const LAST: [&str; 25] = [
    "Müller",
    "Picard",
    "Smith",
    "Jones",
    "García",
    "Dubois",
    "Brown",
    "Taylor",
    "Wilson",
    "Martin",
    "Lefèvre",
    "Schmidt",
    "Rossi",
    "Novak",
    "Kowalski",
    "Nguyen",
    "Kim",
    "Silva",
    "Costa",
    "Moreau",
    "Fischer",
    "Weber",
    "Andersen",
    "O'Brien",
    "Hernández",
];

/// 200 people; each in the CRM, 60% of them also in the shop, 15% twice in the CRM with a typo.
fn people() -> Vec<Person> {
    (0..200u32)
        .map(|i| {
            let first = FIRST[(i * 7 % 20) as usize];
            let last = LAST[(i * 11 % 25) as usize];
            let plain = |s: &str| {
                s.to_lowercase()
                    .replace(['ü'], "u")
                    .replace(['é', 'è'], "e")
                    .replace(['í'], "i")
                    .replace(['á'], "a")
                    .replace(['ç'], "c")
                    .replace(['\'', ' '], "")
            };
            Person {
                first,
                last,
                email: format!("{}.{}{}@example.com", plain(first), plain(last), i),
                phone: format!("415555{:04}", 1000 + i),
                birth: (1950 + i % 50, 1 + i % 12, 1 + i % 28),
            }
        })
        .collect()
}

/// Writes `exports/crm.csv` (Windows-1252, `;`, a broken row), `exports/shop.csv` (UTF-8) and
/// `labels/truth.csv`.
fn write_exports(root: &Path) {
    let people = people();
    std::fs::create_dir_all(root.join("exports")).unwrap();
    std::fs::create_dir_all(root.join("labels")).unwrap();
    let mut crm = String::from("Contact ID;First Name;Last Name;E-Mail;Phone;Date of Birth;Zip\n");
    let mut shop = String::from("customer_no,name,email,tel,city\n");
    let mut truth = String::from("record_key,person_id\n");
    let mut crm_id = 0;
    for (i, p) in people.iter().enumerate() {
        let (y, m, d) = p.birth;
        // Three date formats, five phone formats, some blanks.
        let birth = match i % 10 {
            0 => String::new(),
            1..=4 => format!("{y}-{m:02}-{d:02}"),
            5..=7 => format!("{m:02}/{d:02}/{y}"),
            _ => format!("{y}/{m:02}/{d:02}"),
        };
        let digits = &p.phone;
        let phone = match i % 5 {
            0 => format!("({}) {}-{}", &digits[..3], &digits[3..6], &digits[6..]),
            1 => format!("+1 {} {} {}", &digits[..3], &digits[3..6], &digits[6..]),
            2 => format!("{}-{}-{}", &digits[..3], &digits[3..6], &digits[6..]),
            3 => format!("001{digits}"),
            _ => digits.clone(),
        };
        crm_id += 1;
        let _ = writeln!(
            crm,
            "C{crm_id};{};{};{};{phone};{birth};{:05}",
            p.first,
            p.last,
            if i % 3 == 0 {
                p.email.to_uppercase()
            } else {
                p.email.clone()
            },
            94000 + i
        );
        let _ = writeln!(truth, "crm:C{crm_id},P{i}");
        if i % 7 == 3 {
            // The same person entered again, a typo in the last name, no email.
            crm_id += 1;
            let typo: String = p.last.chars().take(p.last.chars().count() - 1).collect();
            let _ = writeln!(
                crm,
                "C{crm_id};{};{typo};;{phone};{birth};{:05}",
                p.first,
                94000 + i
            );
            let _ = writeln!(truth, "crm:C{crm_id},P{i}");
        }
        if i == 117 {
            crm.push_str("C9999;Broken;Row;broken.row@example.com\n");
        }
        if i % 5 < 3 {
            let name = if i % 2 == 0 {
                format!("\"{}, {}\"", p.last.to_uppercase(), p.first)
            } else {
                format!("{} {}", p.first, p.last)
            };
            let shop_phone = if i % 4 == 0 {
                format!("+1{digits}")
            } else {
                digits.clone()
            };
            let _ = writeln!(shop, "S{i},{name},{},{shop_phone},San Francisco", p.email);
            let _ = writeln!(truth, "shop:S{i},P{i}");
        }
    }
    let (latin1, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&crm);
    assert!(!unmappable);
    std::fs::write(root.join("exports/crm.csv"), latin1).unwrap();
    std::fs::write(root.join("exports/shop.csv"), shop).unwrap();
    std::fs::write(root.join("labels/truth.csv"), truth).unwrap();
}

#[test]
fn from_two_messy_exports_to_golden_records_with_the_cli_only() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_exports(root);

    // 1. tessera init shop --from exports/
    let out = ok(root, &["init", "shop", "--from", "exports"]);
    assert!(out.contains("source `crm`"), "{out}");
    let project = root.join("shop");
    let toml = std::fs::read_to_string(project.join("tessera.toml")).unwrap();
    assert!(toml.contains("delimiter = \";\""), "{toml}");
    assert!(toml.contains("encoding = \"windows-1252\""), "{toml}");
    assert!(toml.contains("on_error = \"quarantine\""), "{toml}");
    let sql = std::fs::read_to_string(project.join("jobs/unify/identity_records.sql")).unwrap();
    for expected in [
        "email_canonical(\"E-Mail\")",
        "phone_e164(\"Phone\"",
        "parse_date(\"Date of Birth\"",
        "name_part(name, 'first')",
        "phone_e164(tel",
        "cast(\"Contact ID\" as varchar) as record_id",
        "cast(customer_no as varchar) as record_id",
    ] {
        assert!(sql.contains(expected), "{expected} missing from\n{sql}");
    }

    // 2. tessera -C shop profile crm
    let profile = json_rows(&ok(&project, &["profile", "crm", "--format", "json"]));
    let kind = |column: &str| {
        profile
            .iter()
            .find(|r| text(r, "column") == column)
            .map(|r| text(r, "looks_like"))
            .unwrap_or_else(|| panic!("no column {column}: {profile:?}"))
    };
    assert_eq!(kind("E-Mail"), "email");
    assert_eq!(kind("Phone"), "phone");
    assert_eq!(kind("Date of Birth"), "birth_date");
    assert_eq!(kind("First Name"), "first_name");
    assert_eq!(kind("Last Name"), "last_name");
    assert_eq!(kind("Contact ID"), "id");
    let first_name = profile
        .iter()
        .find(|r| text(r, "column") == "Last Name")
        .unwrap();
    assert!(
        text(first_name, "examples").contains("Müller"),
        "decoded as windows-1252: {first_name:?}"
    );

    // 4. tessera -C shop run: green, the broken row set aside with its line.
    let run = ok(&project, &["run"]);
    assert!(run.contains("kept in quarantine.crm"), "{run}");
    let quarantined = query(&project, "select file, line, reason from quarantine.crm");
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert!(text(&quarantined[0], "file").ends_with("exports/crm.csv"));
    assert!(text(&quarantined[0], "file").starts_with('/'));
    // The header is line 1; person 117 is on line 1 + 118 + its earlier duplicates.
    let crm_text = encoding_rs::WINDOWS_1252
        .decode(&std::fs::read(root.join("exports/crm.csv")).unwrap())
        .0
        .into_owned();
    let broken_line = crm_text
        .lines()
        .position(|l| l.starts_with("C9999;"))
        .unwrap()
        + 1;
    assert_eq!(number(&quarantined[0], "line") as usize, broken_line);
    assert_eq!(
        text(&quarantined[0], "reason"),
        "expected 7 fields, found 4"
    );

    // The golden record: display names as the sources write them (case, accents).
    let names: Vec<String> = query(&project, "select name from profiles.customers")
        .iter()
        .map(|r| text(r, "name"))
        .collect();
    assert!(names.iter().any(|n| n.contains("Müller")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("Lefèvre")), "{names:?}");
    assert!(
        !names.iter().any(|n| n.contains(',')),
        "LAST, First is not the display form: {names:?}"
    );
    // The spelling most records agree on, not a duplicate's typo.
    for name in &names {
        let last = name.rsplit(' ').next().unwrap();
        assert!(
            LAST.contains(&last),
            "`{name}`: a typo'd name survived ({names:?})"
        );
    }

    // 5. Evaluate against the truth column.
    let mut toml = std::fs::read_to_string(project.join("tessera.toml")).unwrap();
    let at = toml.find("[identity]").unwrap();
    toml.insert_str(
        at,
        "[sources.truth]\nurl = \"../labels/truth.csv\"\nformat = \"csv\"\n\n",
    );
    std::fs::write(project.join("tessera.toml"), toml).unwrap();
    let evaluation: serde_json::Value = serde_json::from_str(&ok(
        &project,
        &["evaluate", "--truth", "truth.person_id", "--json"],
    ))
    .unwrap();
    let metric = |k: &str| {
        evaluation["metrics"][k]
            .as_f64()
            .unwrap_or_else(|| panic!("no metrics.{k} in {evaluation}"))
    };
    assert!(metric("precision") >= 0.95, "{evaluation}");
    assert!(metric("recall") >= 0.9, "{evaluation}");

    // The quarantined row names a person: subject access shows it, erasure deletes it.
    let export = ok(
        &project,
        &["export-subject", "--email", "Broken.Row@example.com"],
    );
    assert!(export.contains("quarantine.crm"), "{export}");
    let forget = ok(&project, &["forget", "--email", "broken.row@example.com"]);
    assert!(forget.contains("quarantine.crm"), "{forget}");
    assert!(query(&project, "select * from quarantine.crm").is_empty());
    // Nobody by that address any more: an error, not an empty file.
    let err = fails(
        &project,
        &[
            "export-subject",
            "--email",
            "broken.row@example.com",
            "--out",
            "x.json",
        ],
        1,
    );
    assert!(err.contains("no data found"), "{err}");
    assert!(!project.join("x.json").exists());

    if std::env::var_os("TESSERA_KEEP_TEST_DIR").is_some() {
        eprintln!("kept {}", tmp.keep().display());
    }
}

#[test]
fn a_minimal_project_runs_green_and_the_retail_template_is_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(tmp.path(), &["init", "p"]);
    assert!(out.contains("tessera.toml"), "{out}");
    let project = tmp.path().join("p");
    assert!(ok(&project, &["run"]).contains("0 failed"));
    assert!(!project.join("jobs/unify").exists());
    ok(tmp.path(), &["init", "r", "--template", "retail"]);
    assert!(
        tmp.path()
            .join("r/jobs/unify/identity_records.sql")
            .exists()
    );
    // Not over an existing project; not --from with the retail library.
    let err = fails(tmp.path(), &["init", "p"], 1);
    assert!(err.contains("already exists"), "{err}");
    let err = fails(tmp.path(), &["init", "q", "--from", "nowhere"], 1);
    assert!(err.contains("nowhere: no such file or folder"), "{err}");
    // `demo` does not scaffold a project into a folder holding someone's files.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let err = fails(
        &other,
        &["demo", "--people", "50", "--no-run", "--no-query"],
        2,
    );
    assert!(err.contains("--force"), "{err}");
    assert!(!other.join("tessera.toml").exists());
    // Every statement's result is printed (DDL prints nothing).
    let out = ok(
        &project,
        &[
            "sql",
            "create view v as select 1 as a; select 2 as b; select a from v",
        ],
    );
    assert!(out.contains("| b |") && out.contains("| a |"), "{out}");
    let out = ok(
        &project,
        &["sql", "select 2 as b; select 3 as c", "--format", "json"],
    );
    assert_eq!(out.trim(), "[{\"c\":3}]");
}

/// A project with one CSV source `a` (a broken row, a Latin-1 byte, a bad date) and the given
/// extra settings.
fn bad_rows_project(dir: &Path, settings: &str) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        dir.join("data/a.csv"),
        b"id;name;dob\n1;Anna;2001-02-03\n2;Bob;2002-03-04\n3;Bad;x;y\n4;Zo\xe9;1999-12-31\n5;Eve;2000-13-01\n6;Max;2003-01-01\n7;Ida;2004-01-01\n8;Ola;2005-01-01\n9;Per;2006-01-01\n10;Ulf;2007-01-01\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("tessera.toml"),
        format!(
            "[project]\nname = \"b\"\n\n[sources.a]\nurl = \"data/a.csv\"\nformat = \"csv\"\ndelimiter = \";\"\n\
             columns = [\"id: string\", \"name: string\", \"dob: date\"]\n{settings}\n"
        ),
    )
    .unwrap();
}

#[test]
fn bad_rows_fail_skip_or_quarantine_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("data/a.csv").display().to_string();

    // The default reader: the first bad row fails the source, named by file and line.
    bad_rows_project(dir, "");
    let err = fails(dir, &["sql", "select * from a"], 1);
    assert!(err.contains(&format!("file {file}")), "{err}");
    assert!(err.contains("line 4"), "{err}");

    // on_error = "fail" read row by row (an encoding): the same place, said once.
    bad_rows_project(dir, "encoding = \"latin1\"\non_error = \"fail\"");
    let err = fails(dir, &["sql", "select * from a"], 1);
    assert!(
        err.contains(&format!("{file}, line 4: expected 3 fields, found 4")),
        "{err}"
    );
    assert!(!err.contains("External error"), "{err}");

    // skip: three bad rows of ten pass a 40% limit, not a 20% one.
    bad_rows_project(dir, "on_error = \"skip\"\nmax_error_rate = 0.4");
    let rows = query(dir, "select id from a order by cast(id as int)");
    let ids: Vec<String> = rows.iter().map(|r| text(r, "id")).collect();
    assert_eq!(ids, ["1", "2", "6", "7", "8", "9", "10"]);
    bad_rows_project(dir, "on_error = \"skip\"\nmax_error_rate = 0.2");
    let err = fails(dir, &["sql", "select * from a"], 1);
    assert!(
        err.contains("3 of 10 rows (30.0%) cannot be read, more than max_error_rate = 0.2"),
        "{err}"
    );

    // quarantine + encoding: the Latin-1 row is read; the others are kept with their reason.
    bad_rows_project(
        dir,
        "encoding = \"latin1\"\non_error = \"quarantine\"\nmax_error_rate = 0.5",
    );
    std::fs::create_dir_all(dir.join("jobs/s")).unwrap();
    std::fs::write(dir.join("jobs/s/people.sql"), "select * from a").unwrap();
    let run = ok(dir, &["run", "--json"]);
    let rejected = run
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.as_object().cloned())
        .find(|e| e.get("event").and_then(|v| v.as_str()) == Some("rejected_rows"))
        .unwrap_or_else(|| panic!("no rejected_rows event: {run}"));
    assert_eq!(number(&rejected, "rejected"), 2.0);
    let names: Vec<String> = query(dir, "select name from s.people order by cast(id as int)")
        .iter()
        .map(|r| text(r, "name"))
        .collect();
    assert!(names.contains(&"Zoé".to_string()), "{names:?}");
    // Quarantine that cannot be written fails the run (the job's table stands, the rows are
    // not lost unsaid); the next run writes it.
    let failed = common::tessera()
        .arg("-C")
        .arg(dir)
        .args(["run", "--full-refresh"])
        .env("TESSERA_FAILPOINTS", "quarantine:before-write")
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("rejected were not saved"),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    ok(dir, &["run", "--full-refresh"]);
    let q = query(
        dir,
        "select line, reason, record from quarantine.a order by line",
    );
    let got: Vec<(f64, String)> = q
        .iter()
        .map(|r| (number(r, "line"), text(r, "reason")))
        .collect();
    assert_eq!(
        got,
        [
            (4.0, "expected 3 fields, found 4".to_string()),
            (6.0, "column `dob`: `2000-13-01` is not a date".to_string())
        ]
    );
    assert_eq!(text(&q[0], "record"), "3;Bad;x;y");

    // Settings that cannot be meant are refused with their key.
    bad_rows_project(dir, "on_error = \"sometimes\"");
    let err = fails(dir, &["sql", "select 1"], 2);
    assert!(err.contains("sources.a.on_error"), "{err}");
    bad_rows_project(dir, "max_error_rate = 0.1");
    let err = fails(dir, &["sql", "select 1"], 2);
    assert!(err.contains("only applies with on_error"), "{err}");
    bad_rows_project(dir, "encoding = \"klingon\"");
    let err = fails(dir, &["sql", "select 1"], 2);
    assert!(err.contains("unknown encoding `klingon`"), "{err}");
}

#[test]
fn an_export_that_loses_a_column_warns_and_can_fail_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_exports(root);
    ok(root, &["init", "shop", "--from", "exports"]);
    let project = root.join("shop");
    let first = ok(&project, &["run"]);
    assert!(!first.contains("quality ("), "{first}");
    let version = |p: &Path| {
        query(
            p,
            "select max(version) as v from table_history('unify.identity_records')",
        )
        .first()
        .map(|r| number(r, "v"))
    };
    let published = version(&project);

    // The shop's export comes back without its emails, and with a 2,000-character name.
    let shop = std::fs::read_to_string(root.join("exports/shop.csv")).unwrap();
    let mut lines: Vec<String> = shop
        .lines()
        .map(|l| {
            let mut f: Vec<String> = l.split(',').map(String::from).collect();
            let email = f.len() - 3;
            if !l.starts_with("customer_no") {
                f[email].clear();
            }
            f.join(",")
        })
        .collect();
    lines.push(format!("S999,{},,4155550000,Paris", "x".repeat(2000)));
    std::fs::write(root.join("exports/shop.csv"), lines.join("\n") + "\n").unwrap();
    let second = ok(&project, &["run"]);
    assert!(
        second.contains("quality (fill_drop): source `shop`: `email` filled in 0.0%"),
        "{second}"
    );
    assert!(
        second.contains(
            "quality (long_values): source `shop`: `first_name` holds a value of 2000 characters"
        ),
        "{second}"
    );
    // In the run log too.
    let log = query(
        &project,
        "select reason from _tessera.runs where job = 'unify.identity_records' order by finished_at desc limit 1",
    );
    assert!(text(&log[0], "reason").contains("fill_drop"), "{log:?}");
    // And in the report, in its own section.
    let report = std::fs::read_to_string(project.join("reports/report.html")).unwrap();
    let section = report
        .split(r#"<section id="warnings""#)
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .expect("a warnings section");
    assert!(
        section.contains(
            "unify.identity_records: quality (fill_drop): source `shop`: `email` filled in 0.0%"
        ),
        "{section}"
    );

    // With fail_on, the job fails and publishes nothing.
    let mut toml = std::fs::read_to_string(project.join("tessera.toml")).unwrap();
    toml.push_str("\n[quality]\nfail_on = [\"long_values\"]\n");
    std::fs::write(project.join("tessera.toml"), toml).unwrap();
    let before = version(&project);
    assert_ne!(before, published);
    let run = common::run_in(&project, &["run", "--full-refresh"]);
    let out = String::from_utf8_lossy(&run.stdout).into_owned();
    assert_eq!(run.status.code(), Some(1), "{out}");
    assert!(out.contains("fail their quality checks"), "{out}");
    assert_eq!(version(&project), before);
}

#[test]
fn sql_outside_a_project_reads_files_by_name_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_exports(root);
    let files = root.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::copy(root.join("exports/shop.csv"), files.join("shop.csv")).unwrap();
    // A Parquet file and a Delta table written by Tessera itself, somewhere else.
    let project = root.join("p");
    ok(root, &["init", "p"]);
    ok(
        &project,
        &[
            "write",
            "t.people",
            "select 1 as id, 'Zoé' as name union all select 2, 'Ann'",
        ],
    );
    ok(
        &project,
        &[
            "export",
            "select * from t.people",
            files.join("people.parquet").to_str().unwrap(),
        ],
    );
    let delta = project.join("warehouse/t/people");

    let count = |sql: &str| number(&query(&files, sql)[0], "n");
    assert_eq!(count("select count(*) as n from 'shop.csv'"), 120.0);
    assert_eq!(
        count("select count(*) as n from read_csv('shop.csv', ',')"),
        120.0
    );
    assert_eq!(count("select count(*) as n from 'people.parquet'"), 2.0);
    assert_eq!(
        count(&format!(
            "select count(*) as n from read_delta('{}')",
            delta.display()
        )),
        2.0
    );
    assert_eq!(
        count(&format!("select count(*) as n from '{}'", delta.display())),
        2.0
    );
    // Tessera's functions, joins across formats.
    let rows = query(
        &files,
        "select email_canonical(s.email) as e, p.name from 'shop.csv' s join 'people.parquet' p \
         on p.id = cast(substr(s.customer_no, 2) as int) order by p.id",
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(text(&rows[0], "name"), "Zoé");
    // Nothing written where it ran; a missing file is named.
    let err = fails(&files, &["sql", "select * from 'nope.parquet'"], 1);
    assert!(
        err.contains("nope.parquet") && err.contains("does not exist"),
        "{err}"
    );
    let mut left: Vec<String> = std::fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["people.parquet", "shop.csv"]);
}
