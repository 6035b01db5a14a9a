//! The cluster path with a real Apache DataFusion Ballista cluster: a scheduler and two
//! executors started here as separate processes of the built `tessera` binary on loopback.
//! The demo project runs on it and every table it writes is compared with a local run of the
//! same project.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{copy_dir, free_port, json_rows, ok, run_in, shared_demo, table_versions, tessera};

/// A scheduler and its executors; the processes are killed when dropped.
struct Cluster {
    address: String,
    scheduler: Child,
    executors: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// The job folders (shuffle files and results) left in the executors' work folders
    /// (`executor-<i>`, killed executors' included).
    fn job_folders(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let works = std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten();
        for work in works.filter(|w| w.file_name().to_string_lossy().starts_with("executor-")) {
            for entry in std::fs::read_dir(work.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = entry.file_name().to_string_lossy().to_string();
                // DataFusion's spill folders are `datafusion-*`; everything else is a job's.
                if entry.path().is_dir() && !name.starts_with("datafusion") {
                    found.push(entry.path());
                }
            }
        }
        found
    }

    /// How many files executor `i` holds in its jobs' folders (shuffle output, results).
    fn job_files(&self, i: usize) -> usize {
        fn count(dir: &Path) -> usize {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        }
        self.job_folders()
            .iter()
            .filter(|f| f.starts_with(self.dir.path().join(format!("executor-{i}"))))
            .map(|f| count(f))
            .sum()
    }

    /// The scheduler's log, for a failure's message.
    fn scheduler_log(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("scheduler.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "scheduler log (last 40 lines):\n{}",
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }

    /// The executors hold no job's files (within 20 s: removal is asynchronous).
    fn assert_no_job_folders(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.job_folders().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(self.job_folders(), Vec::<PathBuf>::new());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_listening(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the {what} exited ({status}) before listening on {port}");
        }
        assert!(
            Instant::now() < deadline,
            "the {what} does not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_cluster(executors: usize) -> Cluster {
    start_cluster_with(executors, &[], &[])
}

/// [`start_cluster`] with more arguments for the scheduler and for each executor.
fn start_cluster_with(
    executors: usize,
    scheduler_args: &[&str],
    executor_args: &[&str],
) -> Cluster {
    start_cluster_in(executors, scheduler_args, executor_args, &[])
}

/// [`start_cluster_with`], every process with `env` set.
fn start_cluster_in(
    executors: usize,
    scheduler_args: &[&str],
    executor_args: &[&str],
    env: &[(&str, &str)],
) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
    let mut scheduler = tessera()
        .args([
            "cluster",
            "scheduler",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .args(scheduler_args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log("scheduler.log"))
        .spawn()
        .unwrap();
    wait_listening(port, "scheduler", &mut scheduler);
    let address = format!("ballista://127.0.0.1:{port}");
    let mut children = Vec::new();
    for i in 0..executors {
        let (flight, grpc) = (free_port(), free_port());
        let mut child = tessera()
            .args(["cluster", "executor", "--scheduler", &address])
            .args(["--bind", &format!("127.0.0.1:{flight}")])
            .args(["--grpc-port", &grpc.to_string(), "--concurrent-tasks", "2"])
            .args(executor_args)
            .envs(env.iter().copied())
            .arg("--work-dir")
            .arg(dir.path().join(format!("executor-{i}")))
            .stdout(Stdio::null())
            .stderr(log(&format!("executor-{i}.log")))
            .spawn()
            .unwrap();
        wait_listening(flight, "executor", &mut child);
        children.push(child);
    }
    Cluster {
        address,
        scheduler,
        executors: children,
        dir,
    }
}

/// Sets `[engine] cluster_timeout` in `project`'s tessera.toml.
fn set_cluster_timeout(project: &Path, timeout: &str) {
    let file = project.join("tessera.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let setting = format!("[engine]\ncluster_timeout = \"{timeout}\"\n");
    std::fs::write(&file, text.replacen("[engine]\n", &setting, 1)).unwrap();
}

fn fresh_copy(of: &Path, name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix(name).tempdir().unwrap();
    let project = dir.path().join("project");
    copy_dir(of, &project);
    (dir, project)
}

/// Columns that say when or in which run a row was written: they differ between any two runs.
const RUN_COLUMNS: &[&str] = &[
    "run_id",
    "trained_run_id",
    "started_at",
    "finished_at",
    "duration_ms",
    "input_versions",
    "changed_at",
    "valid_from",
    "valid_to",
    "trained_at",
    "evaluated_at",
    "run_at",
    "customer_created_at",
    "last_changed_at",
    "at",
];

/// The warehouse tables of `project` (not its sources).
fn tables(project: &Path) -> Vec<String> {
    json_rows(&ok(project, &["tables", "--format", "json", "--no-count"]))
        .into_iter()
        .filter(|t| t["kind"] != "source")
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// A row without its run columns, with numbers that are not integers set apart: sums of
/// floating-point values differ in their last bits between any two runs (the order in which
/// partitions are added up), so they are compared with a tolerance.
fn split_row(row: &serde_json::Map<String, serde_json::Value>) -> (String, Vec<f64>) {
    let mut exact = serde_json::Map::new();
    let mut floats = Vec::new();
    for (k, v) in row {
        if RUN_COLUMNS.contains(&k.as_str()) {
            continue;
        }
        match v {
            serde_json::Value::Number(n) if n.is_f64() => floats.push(n.as_f64().unwrap()),
            serde_json::Value::String(text) => {
                exact.insert(k.clone(), without_run_ids(text).into());
            }
            _ => {
                exact.insert(k.clone(), v.clone());
            }
        }
    }
    (serde_json::Value::Object(exact).to_string(), floats)
}

/// `text` with every run id in it (`20261206T121147-0000142e`) replaced by `<run>`: text
/// such as a reused model's description names the run that trained it.
fn without_run_ids(text: &str) -> String {
    let shape = |w: &[u8]| {
        w.len() == 24
            && w[8] == b'T'
            && w[15] == b'-'
            && w[..8].iter().chain(&w[9..15]).all(u8::is_ascii_digit)
            && w[16..].iter().all(u8::is_ascii_hexdigit)
    };
    let bytes = text.as_bytes();
    let (mut out, mut i) = (String::new(), 0);
    while i < bytes.len() {
        if i + 24 <= bytes.len() && shape(&bytes[i..i + 24]) {
            out.push_str("<run>");
            i += 24;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Every path under `dir`.
fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            found.push(path);
        }
    }
    found
}

/// Tables that gain rows with every run (logs, change feeds, histories, model versions).
fn per_run(table: &str) -> bool {
    table.starts_with("_tessera.")
        || table.ends_with("_changes")
        || table.ends_with("_history")
        || table.ends_with("_metrics")
        || table.ends_with("_model")
        || ["unify.identity_stats", "unify.identity_guard_hits"].contains(&table)
}

/// Every table of `local` has the same rows in `clustered` (but those `skip` names).
fn assert_same_tables(local: &Path, clustered: &Path, skip: fn(&str) -> bool) {
    let names = tables(local);
    assert_eq!(names, tables(clustered), "the same tables");
    assert!(names.len() > 30, "{names:?}");
    for name in names.iter().filter(|n| !skip(n)) {
        // What ran where is the one statistic a cluster run adds.
        let query = if name == "unify.identity_stats" {
            format!(
                "select * from {name} \
                 where metric not in \
                 ('cluster_query_parts', 'connected_components_rounds', 'pairs_kept_on_cluster')"
            )
        } else {
            format!("select * from {name}")
        };
        let rows = |project: &Path| {
            let mut rows: Vec<(String, Vec<f64>)> =
                json_rows(&ok(project, &["sql", &query, "--format", "json"]))
                    .iter()
                    .map(split_row)
                    .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.partial_cmp(&b.1).unwrap()));
            rows
        };
        let (a, b) = (rows(local), rows(clustered));
        assert_eq!(a.len(), b.len(), "{name}: rows");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.0, y.0, "{name}: a row differs");
            for (p, q) in x.1.iter().zip(&y.1) {
                assert!(
                    (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0),
                    "{name}: {p} vs {q} in {}",
                    x.0
                );
            }
        }
    }
}

/// How many query parts a run sent to the cluster (its CLUSTER line).
fn shipped(stdout: &str) -> usize {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("CLUSTER"))
        .unwrap_or_else(|| panic!("no CLUSTER line in\n{stdout}"));
    line.split(": ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_demo_on_a_cluster_writes_what_a_local_run_writes() {
    let cluster = start_cluster(2);
    let (_a, local) = fresh_copy(shared_demo(), "tessera-local-");
    let (_b, clustered) = fresh_copy(shared_demo(), "tessera-cluster-");
    // On the cluster, identity clusters every link through the connected components in SQL
    // (the path past `max_union_find_links`): the executors compute them, and the customers
    // must be the local union-find's.
    let file = clustered.join("tessera.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\n[identity]\n"), "{text}");
    std::fs::write(
        &file,
        text.replacen(
            "\n[identity]\n",
            "\n[identity]\nmax_union_find_links = 0\n",
            1,
        ),
    )
    .unwrap();
    ok(&local, &["run"]);
    let out = ok(&clustered, &["run", "--cluster", &cluster.address]);
    assert!(shipped(&out) > 20, "{out}");
    assert!(out.contains("done: 29 ran"), "{out}");
    assert_same_tables(&local, &clustered, |_| false);
    // Identity's guards, numbering, term frequencies, blocking joins and comparison vectors
    // ran on the executors (its intermediate tables written where they read them).
    let parts = identity_query_parts(&clustered);
    assert!(parts >= 10.0, "identity shipped {parts} query parts");
    let rounds = json_rows(&ok(
        &clustered,
        &[
            "sql",
            "select value from unify.identity_stats \
             where metric = 'connected_components_rounds'",
            "--format",
            "json",
        ],
    ));
    assert!(
        !rounds.is_empty() && rounds[0]["value"].as_f64().unwrap() >= 1.0,
        "the links' components were not computed in SQL: {rounds:?}"
    );
    // The compared pairs stayed on the cluster (scored there each pass, `match_pairs` read
    // from them): as many as the local run held.
    let stat = |project: &Path, metric: &str| {
        let rows = json_rows(&ok(
            project,
            &[
                "sql",
                &format!(
                    "select sum(value) as v from unify.identity_stats where metric = '{metric}'"
                ),
                "--format",
                "json",
            ],
        ));
        rows[0]["v"].as_f64().unwrap_or(0.0)
    };
    let kept = stat(&clustered, "pairs_kept_on_cluster");
    assert!(kept > 1000.0, "pairs kept on the cluster: {kept}");
    assert_eq!(kept, stat(&local, "compared_pairs"));
    assert_eq!(stat(&local, "pairs_kept_on_cluster"), 0.0);
    // … and those intermediate tables were removed once resolved.
    let scratch = clustered.join("warehouse/_tessera/scratch");
    assert!(
        scratch.exists(),
        "no scratch folder: nothing was written for the executors"
    );
    let left: Vec<_> = walkdir(&scratch)
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    assert!(left.is_empty(), "left in the scratch folder: {left:?}");

    // A count over a cross join with an `order by … limit 1` side: Ballista's adaptive
    // planner returned no row at all for it (not even 0), which wrote empty scores.
    let q = "with model as (select * from scores.churn_model order by model_version desc limit 1) \
             select count(*) as n from model m cross join scores.churn_features f \
             where f.snapshot = 'current' and m.model_version > 0";
    let on_cluster = ok(
        &clustered,
        &["sql", q, "--format", "json", "--cluster", &cluster.address],
    );
    assert_eq!(on_cluster, ok(&local, &["sql", q, "--format", "json"]));
    assert!(!json_rows(&on_cluster).is_empty(), "{on_cluster}");

    // A query on the cluster, with Tessera's functions, from `tessera sql`.
    let q = "select email_canonical('Jo.Doe+news@GMail.com') as e, count(*) as n \
             from profiles.customers where email is not null";
    let on_cluster = ok(
        &clustered,
        &["sql", q, "--format", "json", "--cluster", &cluster.address],
    );
    assert_eq!(on_cluster, ok(&local, &["sql", q, "--format", "json"]));
    assert!(on_cluster.contains("jodoe@gmail.com"), "{on_cluster}");

    // Strings are read as plain strings on the cluster, even where a source's Parquet files
    // say views: a view column carries its whole shared buffer into every shuffle and result
    // batch (3.4M orders made 4.9 GB of results and took 16 minutes instead of 13 s).
    let q = "select distinct arrow_typeof(order_id) as t from pos_orders";
    let on_cluster = ok(
        &clustered,
        &["sql", q, "--format", "json", "--cluster", &cluster.address],
    );
    assert_eq!(json_rows(&on_cluster)[0]["t"], "Utf8", "{on_cluster}");

    // Every job's results were freed once read: Ballista deletes them on its own only after
    // a delay (they were lost mid-read at 1M records with its 300 s; Tessera's scheduler keeps
    // them a day), so a coordinator that did not free them would fill the executors' disks.
    cluster.assert_no_job_folders();

    // Incremental resolution and stable ids on the cluster: the same new records in both
    // projects, a second (incremental) run in each, and again every table is the same — the
    // new record of a known person joins that person's customer, the new person gets a new
    // id, every earlier id stays, and the stored model is reused.
    let known = &json_rows(&ok(
        &local,
        &[
            "sql",
            "select i.email, i.first_name, r.customer_id from unify.identity_records i \
             join unify.record_customer r using (record_key) \
             where i.source = 'crm_contacts' and i.email is not null \
             and i.first_name is not null and r.cluster_size = 1 order by i.record_key limit 1",
            "--format",
            "json",
        ],
    ))[0];
    let ids_before = customer_ids(&clustered);
    for project in [&local, &clustered] {
        let csv = project.join("data/crm/contacts.csv");
        let mut text = std::fs::read_to_string(&csv).unwrap();
        text.push_str(&format!(
            "CNEW0000001,,{},Newsurname,{},,,,,,,,,2026-01-01T00:00:00Z,2026-01-02T00:00:00Z\n\
             CNEW0000002,,Zebulon,Quattlebaum,zebulon.quattlebaum@example.org,,,,,,,,,\
             2026-01-01T00:00:00Z,2026-01-02T00:00:00Z\n",
            known["first_name"].as_str().unwrap(),
            known["email"].as_str().unwrap()
        ));
        std::fs::write(&csv, text).unwrap();
    }
    ok(&local, &["run"]);
    let out = ok(&clustered, &["run", "--cluster", &cluster.address]);
    assert!(shipped(&out) > 20, "{out}");
    // (The run logs name the sources' file fingerprints, which hold their times.)
    assert_same_tables(&local, &clustered, |t| t.starts_with("_tessera."));
    let ids_after = customer_ids(&clustered);
    for (key, id) in &ids_before {
        assert_eq!(ids_after.get(key), Some(id), "{key} changed customer");
    }
    assert_eq!(
        ids_after["crm_contacts:CNEW0000001"], known["customer_id"],
        "the new record did not join its person"
    );
    let new_id = &ids_after["crm_contacts:CNEW0000002"];
    assert!(!ids_before.values().any(|id| id == new_id), "an id reused");
    let reused = json_rows(&ok(
        &clustered,
        &[
            "sql",
            "select count(*) as n from unify.identity_stats where metric = 'model' \
             and dimension = 'reused' and run_id = (select max(run_id) from unify.identity_stats)",
            "--format",
            "json",
        ],
    ));
    assert_eq!(
        reused[0]["n"], 1,
        "the stored model was not reused: {reused:?}"
    );

    // Only the threshold changed: each run reads its published compared pairs instead of
    // blocking and comparing again (on the cluster, into the pairs kept there), and again
    // every table is the same.
    for project in [&local, &clustered] {
        let file = project.join("tessera.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("\nthreshold = 0.95 "), "{text}");
        std::fs::write(
            &file,
            text.replacen("\nthreshold = 0.95 ", "\nthreshold = 0.8 ", 1),
        )
        .unwrap();
    }
    ok(&local, &["run"]);
    let out = ok(&clustered, &["run", "--cluster", &cluster.address]);
    assert!(out.contains("done: "), "{out}");
    let reused = json_rows(&ok(
        &clustered,
        &[
            "sql",
            "select count(*) as n from unify.identity_stats \
             where metric = 'published_pairs_reused' \
             and run_id = (select max(run_id) from unify.identity_stats)",
            "--format",
            "json",
        ],
    ));
    assert!(
        reused[0]["n"].as_i64().unwrap() > 0,
        "the published pairs were not read: {reused:?}"
    );
    assert_same_tables(&local, &clustered, |t| t.starts_with("_tessera."));
    cluster.assert_no_job_folders();
}

/// A project whose sources and warehouse are in object storage (a real S3-compatible server),
/// run on a cluster whose processes hold no project: the executors open the bucket with the
/// credentials and endpoint of their own environment (none travel inside plans) and write
/// the same tables as a local run of the same project; identity's intermediate tables, in
/// the warehouse's bucket, are removed.
#[test]
fn a_project_on_s3_runs_on_a_cluster_that_reads_the_bucket_with_its_own_credentials() {
    use common::s3::{create_bucket, start_s3, storage_section};
    let server = start_s3();
    create_bucket(&server.endpoint, "lake");
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT", server.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let cluster = start_cluster_in(2, &[], &[], &env);
    let project = |warehouse: &str| {
        let dir = tempfile::tempdir().unwrap();
        let mut text = format!(
            "[project]\nname = \"s3cluster\"\nwarehouse = \"s3://lake/{warehouse}\"\n\n{}",
            storage_section(&server.endpoint)
        );
        for (name, format, path) in tessera_engine::demo::demo_tables() {
            text.push_str(&format!(
                "\n[sources.{name}]\nurl = \"s3://lake/demo/{path}\"\nformat = \"{format}\"\n"
            ));
        }
        text.push('\n');
        text.push_str(tessera_engine::identity::config::DEFAULT_TOML);
        std::fs::write(dir.path().join("tessera.toml"), text).unwrap();
        dir
    };
    let (local, clustered) = (project("local"), project("cluster"));
    let out = ok(
        local.path(),
        &[
            "demo",
            "--people",
            "1500",
            "--out",
            "s3://lake/demo",
            "--no-query",
            "--no-run",
        ],
    );
    assert!(out.contains("Generated 1500 people"), "{out}");
    // The demo wrote its jobs into the project it ran in: the same jobs in the other.
    for entry in std::fs::read_dir(local.path()).unwrap().flatten() {
        let name = entry.file_name();
        if entry.path().is_dir() && name != "reports" && !name.to_string_lossy().starts_with('.') {
            copy_dir(&entry.path(), &clustered.path().join(&name));
        }
    }
    ok(local.path(), &["run"]);
    let out = ok(clustered.path(), &["run", "--cluster", &cluster.address]);
    assert!(shipped(&out) > 20, "{out}");
    assert!(out.contains("0 failed"), "{out}");
    assert_same_tables(local.path(), clustered.path(), |t| {
        t.starts_with("_tessera.")
    });
    let parts = identity_query_parts(clustered.path());
    assert!(parts >= 10.0, "identity shipped {parts} query parts");
    let customers = json_rows(&ok(
        clustered.path(),
        &[
            "sql",
            "select count(*) as n from profiles.customers",
            "--format",
            "json",
        ],
    ));
    assert!(customers[0]["n"].as_i64().unwrap() > 1000, "{customers:?}");
    // Identity ran its intermediate tables through the bucket, and removed them.
    let listing = common::python_stdout(&[
        "-c",
        &format!(
            "import boto3; s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test'); \
             print(sum(1 for o in s3.list_objects_v2(Bucket='lake', Prefix='cluster/_tessera/scratch/')\
             .get('Contents', [])))",
            server.endpoint
        ),
    ]);
    assert_eq!(listing.trim(), "0", "files left in the scratch folder");
    cluster.assert_no_job_folders();
}

/// How many query parts the last identity resolution of `project` sent to the cluster.
fn identity_query_parts(project: &Path) -> f64 {
    let rows = json_rows(&ok(
        project,
        &[
            "sql",
            "select value from unify.identity_stats where metric = 'cluster_query_parts' \
             and run_id = (select max(run_id) from unify.identity_stats)",
            "--format",
            "json",
        ],
    ));
    rows[0]["value"].as_f64().unwrap()
}

/// Each record's customer id.
fn customer_ids(project: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    json_rows(&ok(
        project,
        &[
            "sql",
            "select record_key, customer_id from unify.record_customer",
            "--format",
            "json",
        ],
    ))
    .into_iter()
    .map(|r| {
        (
            r["record_key"].as_str().unwrap().to_string(),
            r["customer_id"].clone(),
        )
    })
    .collect()
}

#[test]
fn a_cluster_that_is_not_there_fails_the_run_and_leaves_every_table_as_it_was() {
    let (_a, project) = fresh_copy(shared_demo(), "tessera-nocluster-");
    let nobody = format!("ballista://127.0.0.1:{}", free_port());
    let out = run_in(&project, &["run", "--cluster", &nobody]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAILED"), "{stdout}");
    // Nothing was committed: no job wrote a table (the run log records the failed run).
    let written: Vec<String> =
        json_rows(&ok(&project, &["tables", "--format", "json", "--no-count"]))
            .into_iter()
            .filter(|t| t["kind"] == "warehouse")
            .map(|t| t["name"].as_str().unwrap().to_string())
            .filter(|name| !name.starts_with("_tessera."))
            .collect();
    assert!(written.is_empty(), "{written:?}");
}

#[test]
fn an_executor_killed_mid_run_loses_nothing() {
    let mut cluster = start_cluster(2);
    let (_a, local) = fresh_copy(shared_demo(), "tessera-local-");
    let (_b, project) = fresh_copy(shared_demo(), "tessera-kill-");
    // A shipped part that hangs (Ballista can leave a job waiting after losing an executor)
    // fails its job after 90 s instead of holding the run.
    set_cluster_timeout(&project, "90s");
    // The same runs locally (models get the same versions).
    ok(&local, &["run"]);
    ok(&local, &["run", "--full-refresh"]);
    ok(&project, &["run", "--cluster", &cluster.address]);
    let before = table_versions(&project);

    // Everything again, and one executor killed while jobs run on it.
    let run = tessera()
        .arg("-C")
        .arg(&project)
        .args(["run", "--full-refresh", "--cluster", &cluster.address])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let mut killed = cluster.executors.remove(0);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let after = table_versions(&project);
    if !out.status.success() {
        // A job that failed committed nothing: its table is at its version before the run.
        for line in stdout
            .lines()
            .filter(|l| l.trim_start().starts_with("FAILED"))
        {
            let job = line.split_whitespace().nth(1).unwrap();
            if let Some(v) = before.get(job) {
                assert_eq!(after.get(job), Some(v), "{job} failed but moved:\n{stdout}");
            }
        }
        // The surviving executor finishes the work.
        let again = run_in(&project, &["run", "--cluster", &cluster.address]);
        assert!(
            again.status.success(),
            "{}\n{}\nthe run the executor was killed in:\n{stdout}",
            String::from_utf8_lossy(&again.stdout),
            cluster.scheduler_log()
        );
    }
    assert_same_tables(&local, &project, per_run);
}

/// An executor lost while a join stage reads its shuffle output: Ballista rolls the stage back
/// and cancels the survivor's tasks of it. The query completes with the answer a local run
/// gives (or, past `cluster_timeout`, fails saying so), and the survivor keeps running later
/// queries (before the scheduler gave back the cores of those cancelled tasks, its count of the
/// survivor's free cores could fall to zero, and every later job then waited forever).
#[test]
fn an_executor_lost_under_a_running_join_leaves_the_survivor_running_queries() {
    // The loss is noticed 6 s after the kill, while the survivor still runs the join.
    let mut cluster = start_cluster_with(2, &["--executor-timeout", "6s"], &[]);
    let (_a, project) = fresh_copy(shared_demo(), "tessera-lostjoin-");
    // A wedged cluster fails the test instead of holding it.
    set_cluster_timeout(&project, "150s");
    // Two quick stages move the orders by currency; the join stage then runs for a while.
    let join = "select count(*) as n from pos_orders a join \
                (select * from pos_orders union all select * from pos_orders \
                 union all select * from pos_orders) b \
                on a.currency = b.currency where a.amount < b.amount + 1";
    let local = ok(&project, &["sql", join, "--format", "json"]);
    let run = tessera()
        .arg("-C")
        .arg(&project)
        .args([
            "sql",
            join,
            "--format",
            "json",
            "--cluster",
            &cluster.address,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    // The executor holding the most shuffle output of the first stages is the one lost, so
    // that the join stage has to be rolled back.
    let holder = (0..2).max_by_key(|&i| cluster.job_files(i)).unwrap();
    assert!(cluster.job_files(holder) > 0, "no stage finished in 5 s");
    let mut killed = cluster.executors.remove(holder);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let out = run.wait_with_output().unwrap();
    if out.status.success() {
        assert_eq!(String::from_utf8_lossy(&out.stdout), local);
    } else {
        // Redoing the lost work on one executor can outlast `cluster_timeout` on a loaded
        // machine (seen with both cores busy): then the query fails, saying so.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("cluster_timeout"),
            "{stderr}\n{}",
            cluster.scheduler_log()
        );
    }
    // Either way the survivor runs the next query at once.
    let started = Instant::now();
    let q = "select store_id, count(*) as n from pos_orders group by store_id order by store_id";
    let out = run_in(&project, &["sql", q, "--cluster", &cluster.address]);
    assert!(out.status.success(), "{out:?}\n{}", cluster.scheduler_log());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// An executor asked to stop (SIGTERM) while it runs a long task leaves within its
/// `--stop-timeout` instead of waiting for the task to end (Ballista's executor drains its
/// tasks first, and one whose scheduler was gone was seen still alive 50 minutes later).
#[test]
fn a_stopping_executor_leaves_within_its_stop_timeout() {
    let mut cluster = start_cluster_with(1, &[], &["--stop-timeout", "3s"]);
    let (_a, project) = fresh_copy(shared_demo(), "tessera-stop-");
    // Every order against every pair of orders: a task that runs for minutes.
    let q = "select count(*) as n from pos_orders a cross join pos_orders b \
             cross join pos_orders c where a.amount + b.amount < c.amount";
    let mut query = tessera()
        .arg("-C")
        .arg(&project)
        .args(["sql", q, "--cluster", &cluster.address])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let executor = &mut cluster.executors[0];
    assert!(executor.try_wait().unwrap().is_none(), "the executor died");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &executor.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = executor.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "the executor still runs {:?} after SIGTERM",
            asked.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        asked.elapsed() >= Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    let _ = query.kill();
    let _ = query.wait();
}

#[test]
fn a_query_past_the_cluster_timeout_fails_and_its_job_is_cancelled_and_freed() {
    let cluster = start_cluster(1);
    let (_a, project) = fresh_copy(shared_demo(), "tessera-timeout-");
    set_cluster_timeout(&project, "2s");
    // Every order against every pair of orders: far longer than the timeout.
    let q = "select count(*) as n from pos_orders a cross join pos_orders b \
             cross join pos_orders c where a.amount + b.amount < c.amount";
    let started = Instant::now();
    let out = run_in(&project, &["sql", q, "--cluster", &cluster.address]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cluster_timeout"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");
    // The job was cancelled and its files removed, not left for `--keep-results`.
    cluster.assert_no_job_folders();
}

#[test]
fn a_bad_cluster_address_is_a_usage_error_naming_the_setting() {
    let (_a, project) = fresh_copy(shared_demo(), "tessera-badcluster-");
    let err = common::fails(&project, &["tables", "--cluster", "http://x:1"], 2);
    assert!(
        err.contains("--cluster") && err.contains("ballista://"),
        "{err}"
    );
    let file = project.join("tessera.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replacen(
            "[engine]\n",
            "[engine]\ncluster = \"ballista://h:port\"\n",
            1,
        ),
    )
    .unwrap();
    let err = common::fails(&project, &["tables"], 2);
    assert!(
        err.contains("engine.cluster") && err.contains("port"),
        "{err}"
    );
}
