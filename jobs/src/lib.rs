//! The `tessera` command: projects (`tessera.toml`), the CLI, and what it runs.
#![deny(missing_docs)]

pub mod commands;
pub mod dag;
pub mod job;
pub mod output;
pub mod project;
pub mod runner;
pub mod workspace;

pub use datafusion;
pub use tessera_engine as engine;

use tessera_engine::demo::demo_tables;

/// The project file `tessera init` writes.
pub fn init_template(name: &str) -> String {
    include_str!("../templates/tessera.toml").replace("{{name}}", name)
}

/// A project file whose sources are the demo tables at `data` (a path relative to the
/// project or a URL).
pub fn demo_project_file(name: &str, data: &str) -> String {
    let data = data.trim_end_matches('/');
    let mut text = format!(
        "# The retail demo: `tessera demo` generates the data these sources read.\n\n\
         [project]\nname = \"{name}\"\nwarehouse = \"warehouse\"\n\n\
         [engine]\nspill_dir = \".tessera/spill\"\n"
    );
    for (table, format, path) in demo_tables() {
        let (what, url) = match table {
            "truth_records" | "truth_people" => {
                ("ground truth for accuracy tests", format!("{data}/{path}"))
            }
            _ => ("", format!("{data}/{path}")),
        };
        text.push_str(&format!(
            "\n[sources.{table}]\nurl = \"{url}\"\nformat = \"{format}\"\n"
        ));
        if !what.is_empty() {
            text.push_str(&format!("description = \"{what}\"\n"));
        }
    }
    text
}
