//! The `tessera` command: projects (`tessera.toml`), the CLI, and what it runs.
#![deny(missing_docs)]

pub mod audience;
pub mod dag;
pub mod errors;
pub mod evaluate;
pub mod explain;
pub mod failpoint;
pub mod job;
pub mod lock;
pub mod mapping;
pub mod output;
pub mod pipeline;
pub mod privacy;
pub mod project;
pub mod quality;
pub mod quarantine;
pub mod report;
pub mod rows;
pub mod runner;
pub mod scaffold;
pub mod schedule;
pub mod serve;
pub mod suppression;
pub mod time_travel;
pub mod unit;
pub mod warehouse;
pub mod whatif;
pub mod workspace;

pub use datafusion;
pub use tessera_engine as engine;

use tessera_engine::demo::{demo_table_columns, demo_tables};

/// The SQL job library shipped in the binary (the `sql/` folder of the repository).
pub mod library {
    include!(concat!(env!("OUT_DIR"), "/library.rs"));

    /// Writes the library's jobs into `<project>/jobs/`. Existing files are kept unless
    /// `overwrite`; returns the files written.
    pub fn install(
        project_dir: &std::path::Path,
        overwrite: bool,
    ) -> std::io::Result<Vec<std::path::PathBuf>> {
        let mut written = Vec::new();
        for (path, text) in LIBRARY {
            let target = project_dir.join(crate::job::JOBS_DIR).join(path);
            if target.exists() && !overwrite {
                continue;
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&target, text)?;
            written.push(target);
        }
        Ok(written)
    }
}

/// The project file `tessera init` writes: commented settings, and the sources the SQL
/// library's jobs read (the demo dataset `tessera demo` generates under `data/`).
pub fn init_template(name: &str) -> String {
    let mut text = include_str!("../templates/tessera.toml").replace("{{name}}", name);
    text.push_str(
        "\n# The sources the jobs in jobs/ read. `tessera demo` generates them under data/; point\n\
         # them at your own systems' tables (with the same columns) or edit the jobs.\n",
    );
    text.push_str(&demo_sources("data"));
    text.push('\n');
    text.push_str(tessera_engine::identity::config::DEFAULT_TOML);
    text.push_str(include_str!("../templates/audiences.toml"));
    text
}

/// A project file whose sources are the demo tables at `data` (a path relative to the
/// project or a URL).
pub fn demo_project_file(name: &str, data: &str) -> String {
    let mut text = format!(
        "# The retail demo: `tessera demo` generates the data these sources read.\n\n\
         [project]\nname = \"{name}\"\nwarehouse = \"warehouse\"\n\n\
         [engine]\nspill_dir = \".tessera/spill\"\n"
    );
    text.push_str(&demo_sources(data));
    text.push('\n');
    text.push_str(tessera_engine::identity::config::DEFAULT_TOML);
    text.push_str(include_str!("../templates/audiences.toml"));
    text
}

/// `[sources.*]` entries for the demo tables at `data`.
fn demo_sources(data: &str) -> String {
    let data = data.trim_end_matches('/');
    let mut text = String::new();
    for (table, format, path) in demo_tables() {
        text.push_str(&format!(
            "\n[sources.{table}]\nurl = \"{data}/{path}\"\nformat = \"{format}\"\n"
        ));
        if let Some(columns) = demo_table_columns(table) {
            let columns: Vec<String> = columns
                .iter()
                .map(|(name, ty)| format!("\"{name}: {ty}\""))
                .collect();
            text.push_str(&format!("columns = [{}]\n", columns.join(", ")));
        }
        if matches!(table, "truth_records" | "truth_people") {
            text.push_str("description = \"ground truth for accuracy tests\"\n");
        }
        // How rows name a person beyond their email/phone columns (erasure, subject access).
        let subject = match table {
            "crm_contacts" => "[\"record_key: 'crm_contacts:' || contact_id\"]",
            "pos_customers" | "pos_orders" => {
                "[\"record_key: 'pos_customers:' || pos_customer_id\"]"
            }
            "web_events" => "[\"web_user_id: user_id\", \"record_key: 'web_users:' || user_id\"]",
            "support_tickets" => "[\"record_key: 'support_tickets:' || ticket_id\"]",
            "truth_records" => "[\"record_key: source || ':' || record_id\"]",
            _ => "",
        };
        if !subject.is_empty() {
            text.push_str(&format!("subject = {subject}\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    /// The modules of this crate and the modules each names through `crate::` (comments
    /// left out), a file under `src/<m>/` counting as module `m`.
    fn module_imports() -> BTreeMap<String, BTreeSet<String>> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        for dir in [src.clone(), src.join("runner")] {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                if entry.path().extension().is_some_and(|e| e == "rs") {
                    files.push(entry.path());
                }
            }
        }
        let module = |path: &std::path::Path| -> String {
            let relative = path.strip_prefix(&src).unwrap();
            let first = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            first.trim_end_matches(".rs").to_string()
        };
        let known: BTreeSet<String> = files.iter().map(|f| module(f)).collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let from = module(file);
            if from == "main" || from == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            let deps = graph.entry(from.clone()).or_default();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (i, _) in line.match_indices("crate::") {
                    let name: String = line[i + "crate::".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if name != from && known.contains(&name) {
                        deps.insert(name);
                    }
                }
            }
        }
        graph
    }

    /// Issue 26: the modules form layers — errors and rows; the model (project, job, dag,
    /// audience); the warehouse and its workspace; the runner; the features (privacy, explain,
    /// evaluate, what-if, report, serve); the pipeline — and the command line is the binary's
    /// `cli/`, which no library module can reach. No module reaches another that reaches back,
    /// and none reaches a layer above its own.
    #[test]
    fn modules_import_each_other_in_layers_without_circles() {
        let graph = module_imports();
        assert!(graph.len() >= 20, "{graph:?}");
        // A path from each module back to itself is a circle.
        for start in graph.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
            while let Some((at, path)) = stack.pop() {
                for next in graph.get(&at).into_iter().flatten() {
                    if next == start {
                        panic!(
                            "modules import each other in a circle: {} -> {start}",
                            path.join(" -> ")
                        );
                    }
                    if seen.insert(next.clone()) {
                        let mut longer = path.clone();
                        longer.push(next.clone());
                        stack.push((next.clone(), longer));
                    }
                }
            }
        }
        let layers: [&[&str]; 6] = [
            &["errors", "rows", "failpoint", "output"],
            &["job", "audience", "dag", "project", "schedule", "unit"],
            &[
                "warehouse",
                "time_travel",
                "suppression",
                "workspace",
                "lock",
                "quarantine",
                "mapping",
                "quality",
            ],
            &["runner", "scaffold"],
            &[
                "explain", "evaluate", "privacy", "whatif", "report", "serve",
            ],
            &["pipeline"],
        ];
        let layer = |m: &str| {
            layers
                .iter()
                .position(|l| l.contains(&m))
                .unwrap_or_else(|| panic!("module `{m}` is in no layer of this test: add it"))
        };
        for (module, deps) in &graph {
            for dep in deps {
                assert!(
                    layer(dep) <= layer(module),
                    "`{module}` (layer {}) imports `{dep}`, a layer above it ({})",
                    layer(module),
                    layer(dep)
                );
            }
        }
    }

    /// Functions longer than [`MAX_FUNCTION_LINES`] lines of code (blank and comment lines
    /// aside) in the workspace's sources, with where they start; those whose comment just
    /// above says why (`// Over 150 lines: <reason>`) are left out.
    fn long_functions() -> Vec<(usize, String)> {
        fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    rust_files(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        for crate_dir in ["engine", "jobs", "udfs"] {
            rust_files(&root.join(crate_dir).join("src"), &mut files);
        }
        let mut long = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (at, line) in lines.iter().enumerate() {
                let code = line.trim_start();
                let indent = &line[..line.len() - code.len()];
                let starts_fn = ["fn ", "pub fn ", "async fn ", "pub async fn ", "const fn "]
                    .iter()
                    .any(|p| code.starts_with(p))
                    || (code.starts_with("pub(")
                        && (code.contains(") fn ") || code.contains(") async fn ")));
                if !starts_fn {
                    continue;
                }
                // The signature ends at the first line ending in `{` (a declaration without
                // body ends in `;`), and rustfmt closes the body at the indentation the
                // function opened: its end is the first line that is only `}` there.
                let Some(open) = (at..lines.len()).find(|&i| {
                    let l = lines[i].trim_end();
                    l.ends_with('{') || l.ends_with(';') || l.ends_with('}')
                }) else {
                    continue;
                };
                if !lines[open].trim_end().ends_with('{') {
                    continue;
                }
                let close = format!("{indent}}}");
                let Some(end) = (open + 1..lines.len()).find(|&i| lines[i] == close) else {
                    continue;
                };
                let body = &lines[at..=end];
                let code_lines = body
                    .iter()
                    .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
                    .count();
                let said = lines[..at]
                    .iter()
                    .rev()
                    .take_while(|l| {
                        let t = l.trim_start();
                        t.starts_with("//") || t.starts_with("#[")
                    })
                    .any(|l| l.trim_start().starts_with("// Over 150 lines: "));
                if code_lines > MAX_FUNCTION_LINES && !said {
                    let name: String = code[code.find("fn ").unwrap() + 3..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    let place = file
                        .strip_prefix(&root)
                        .unwrap_or(&file)
                        .display()
                        .to_string();
                    long.push((code_lines, format!("{place}:{} `{name}`", at + 1)));
                }
            }
        }
        long.sort();
        long
    }

    /// Issue 26: no function over ~150 lines without a reason in a comment; a long one is a
    /// sequence of steps that can be named.
    const MAX_FUNCTION_LINES: usize = 150;

    #[test]
    fn functions_stay_under_150_lines_or_say_why() {
        let long = long_functions();
        assert!(
            long.is_empty(),
            "functions over {MAX_FUNCTION_LINES} lines of code without `// Over 150 lines: <reason>` above them: {long:#?}"
        );
    }

    /// The README's first command runs `tessera demo` in `examples/retail`, which keeps the
    /// project file it finds: that file must be the one the demo would write.
    #[test]
    fn the_retail_example_is_the_demo_project_file() {
        assert_eq!(
            include_str!("../../examples/retail/tessera.toml"),
            super::demo_project_file("retail", "data"),
            "regenerate examples/retail/tessera.toml with `tessera demo` in an empty folder"
        );
    }
}
