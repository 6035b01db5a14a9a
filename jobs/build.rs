//! Embeds the SQL job library (`../sql/**/*.sql` and their `*.tests.toml`) in the binary.

use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "sql" || e == "toml") {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.join("../sql");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut code = String::from(
        "/// The SQL job library: (path under `sql/`, contents).\npub static LIBRARY: &[(&str, &str)] = &[\n",
    );
    for file in files {
        let relative = file.strip_prefix(&root).expect("under sql/");
        let relative = relative.to_string_lossy().replace('\\', "/");
        code.push_str(&format!(
            "    ({relative:?}, include_str!({:?})),\n",
            file.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("library.rs");
    std::fs::write(out, code).expect("write library.rs");
}
