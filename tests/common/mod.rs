//! Helpers shared by the end-to-end tests: run the real `tessera` binary, and a demo project.
#![allow(dead_code)]

pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary under test.
pub fn tessera() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.env_remove("TESSERA_PROJECT").env("NO_COLOR", "1");
    cmd
}

/// Runs `tessera -C dir args...` with the failpoint `point` set to end the process there, as
/// a kill would (exit status 86).
pub fn killed_at(dir: &Path, args: &[&str], point: &str) -> Output {
    tessera()
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("TESSERA_FAILPOINTS", format!("{point}=exit"))
        .output()
        .unwrap()
}

/// Runs `tessera -C dir args...`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    tessera()
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("tessera runs")
}

/// Runs and asserts success, returning stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run_in(dir, args);
    assert!(
        out.status.success(),
        "tessera {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs and asserts failure with `code`, returning stderr.
pub fn fails(dir: &Path, args: &[&str], code: i32) -> String {
    let out = run_in(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "tessera {args:?}: expected exit {code}\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// A demo project generated once per test binary and shared read-only by its tests.
pub fn shared_demo() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("tessera-demo-")
            .tempdir()
            .expect("temp dir")
            .keep();
        ok(
            &dir,
            &[
                "demo",
                "--people",
                "3000",
                "--seed",
                "11",
                "--no-query",
                "--no-run",
            ],
        );
        dir
    })
}

/// A fresh copy of a folder (for tests that write).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Parses `--format json` output.
pub fn json_rows(stdout: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON output");
    value
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|v| v.as_object().expect("objects").clone())
        .collect()
}

/// One row of `--format json` output.
#[allow(dead_code)]
pub type Row = serde_json::Map<String, serde_json::Value>;

/// The rows `tessera sql` returns for `sql` in the project `dir` (which must succeed).
#[allow(dead_code)]
pub fn query(dir: &Path, sql: &str) -> Vec<Row> {
    json_rows(&ok(dir, &["sql", sql, "--format", "json"]))
}

/// A text column of a row (panics, naming the row, when absent or not text).
#[allow(dead_code)]
pub fn text(row: &Row, key: &str) -> String {
    row[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {row:?}"))
        .to_string()
}

/// A numeric column of a row (panics, naming the row, when absent or not a number).
#[allow(dead_code)]
pub fn number(row: &Row, key: &str) -> f64 {
    row[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} in {row:?}"))
}

/// The Python interpreter the tests use.
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs Python with `args` (`-c <script>`, or a file and its arguments); it must succeed.
/// Returns what it printed.
#[allow(dead_code)]
pub fn python_stdout(args: &[&str]) -> String {
    let out = Command::new(python())
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python {:?} failed: {}",
        args.first(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a Python script (written to `dir/reader.py`) with `args`; it must succeed and print
/// one JSON value, which is returned.
#[allow(dead_code)]
pub fn python_json(dir: &Path, script: &str, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let file = dir.join("reader.py");
    std::fs::write(&file, script).unwrap();
    let out = Command::new(python())
        .arg(&file)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Each warehouse table of `project` (not its sources) and its Delta version.
pub fn table_versions(project: &Path) -> std::collections::BTreeMap<String, i64> {
    json_rows(&ok(project, &["tables", "--format", "json", "--no-count"]))
        .into_iter()
        .filter(|t| t["kind"] != "source")
        .map(|t| {
            let name = t["name"].as_str().unwrap().to_string();
            (name, t["delta_version"].as_i64().unwrap_or(-1))
        })
        .collect()
}
