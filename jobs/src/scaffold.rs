//! `tessera init`: a new project. Minimal by default (runs green before any source is
//! declared), the retail library with `--template retail`, or mapped from the user's own
//! files with `--from`: each file declared as a source, profiled, and an identity job and a
//! golden-record job written for review.

use std::path::{Path, PathBuf};

use crate::bail;
use crate::errors::{Context, Result};

use crate::mapping::{self, ColumnProfile, SourceMapping};
use crate::project::{PROJECT_FILE, Project};
use crate::workspace::Workspace;

/// What `tessera init` starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Template {
    /// An empty project: the settings, commented, and no jobs.
    #[default]
    Minimal,
    /// The retail library: 9 sources, 24 jobs, 6 audiences (`tessera demo` generates the data).
    Retail,
}

/// A file declared as a source by `init --from`.
#[derive(Debug, Clone)]
pub struct DeclaredSource {
    /// The source's name.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Its columns as profiled.
    pub profile: Vec<ColumnProfile>,
    /// What the identity job takes from it.
    pub mapping: SourceMapping,
}

/// What `init` wrote.
#[derive(Debug, Default)]
pub struct Created {
    /// Files written, in order.
    pub files: Vec<PathBuf>,
    /// Sources declared from `--from`.
    pub sources: Vec<DeclaredSource>,
    /// Sources declared but left out of the identity job: they could not be read (why).
    pub unreadable: Vec<(String, String)>,
}

/// The minimal project file: commented settings, the default `[identity]` section.
pub fn minimal_project_file(name: &str) -> String {
    let mut text = include_str!("../templates/tessera.toml").replace("{{name}}", name);
    text.push_str(
        "\n# Next steps (docs/your-own-data.md walks through them):\n\
         #   1. declare your sources above, or run `tessera init --from <files or folder>` in a new\n\
         #      folder to have them declared and mapped for you;\n\
         #   2. `tessera profile <source>` shows what each column holds;\n\
         #   3. write jobs/unify/identity_records.sql (the identity shape: docs/identity.md);\n\
         #   4. `tessera run`.\n\n",
    );
    text.push_str(tessera_engine::identity::config::DEFAULT_TOML);
    text
}

/// Comments out each `[[identity.*]]` entry of a project file that names one of `unfilled`
/// (in `column`, `on` or a level's SQL), saying why.
fn comment_out_unfilled(text: &str, unfilled: &[&str]) -> String {
    if unfilled.is_empty() {
        return text.to_string();
    }
    let names = |line: &str, column: &str| {
        line.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == column)
    };
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if !line.starts_with("[[identity.") {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        // The entry: its header and the lines up to the next table header, less the comments
        // and blank lines that end it (they introduce the next entry).
        let mut entry = vec![line];
        while let Some(next) = lines.peek() {
            if next.starts_with('[') {
                break;
            }
            entry.push(lines.next().unwrap_or_default());
        }
        let is_setting = |l: &&str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
        let last = entry.iter().rposition(is_setting).unwrap_or(0);
        let tail = entry.split_off(last + 1);
        let missing: Vec<&str> = unfilled
            .iter()
            .copied()
            .filter(|c| {
                entry
                    .iter()
                    .any(|l| !l.trim_start().starts_with('#') && names(l, c))
            })
            .collect();
        if missing.is_empty() {
            for l in entry {
                out.push_str(l);
                out.push('\n');
            }
        } else {
            out.push_str(&format!(
                "# Off: no source has {} yet (map it in jobs/unify/identity_records.sql, then uncomment).\n",
                missing.join(", ")
            ));
            for l in entry {
                out.push_str("# ");
                out.push_str(l);
                out.push('\n');
            }
        }
        for l in tail {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// Creates the project in `dir` (which must not hold a project yet).
pub async fn init(dir: &Path, template: Template, from: &[PathBuf]) -> Result<Created> {
    let file = dir.join(PROJECT_FILE);
    if file.exists() {
        bail!("{} already exists; not overwriting it", file.display());
    }
    if template == Template::Retail && !from.is_empty() {
        bail!(
            "--from maps your own files into a new project; it does not combine with --template retail"
        );
    }
    std::fs::create_dir_all(dir.join(crate::job::JOBS_DIR))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let name = std::path::absolute(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "tessera".into());
    let mut created = Created::default();
    let gitignore = dir.join(".gitignore");
    if !gitignore.exists() {
        std::fs::write(&gitignore, "warehouse/\n.tessera/\nreports/\n")?;
        created.files.push(gitignore);
    }
    match template {
        Template::Retail => {
            std::fs::write(&file, crate::init_template(&name))
                .with_context(|| format!("cannot write {}", file.display()))?;
            created.files.push(file);
            created.files.extend(
                crate::library::install(dir, false)
                    .with_context(|| format!("cannot write jobs under {}", dir.display()))?,
            );
        }
        Template::Minimal if from.is_empty() => {
            std::fs::write(&file, minimal_project_file(&name))
                .with_context(|| format!("cannot write {}", file.display()))?;
            created.files.push(file);
        }
        Template::Minimal => {
            let files = data_files(from)?;
            let mut text = minimal_project_file(&name);
            let declared = declare_sources(dir, &files)?;
            let at = text.find("[identity]").unwrap_or(text.len());
            text.insert_str(
                at,
                &declared
                    .iter()
                    .map(|(_, _, t)| t.as_str())
                    .collect::<String>(),
            );
            std::fs::write(&file, &text)
                .with_context(|| format!("cannot write {}", file.display()))?;
            created.files.push(file.clone());
            // Profile each source through the project just written, as `tessera profile` does.
            let project = Project::load(dir)?;
            let ws = Workspace::open(project)?;
            let mut mappings = Vec::new();
            for (source, path, _) in &declared {
                // A source that cannot be read yet stays declared, out of the identity job:
                // the project is written whole, and the message says what to fix.
                let profile = match mapping::profile(&ws, source).await {
                    Ok(profile) => profile,
                    Err(e) => {
                        created.unreadable.push((
                            source.clone(),
                            crate::errors::error_text(
                                &e.context(format!("cannot profile {}", path.display())),
                            ),
                        ));
                        continue;
                    }
                };
                let m = mapping::mapping(source, &profile);
                mappings.push(m.clone());
                created.sources.push(DeclaredSource {
                    name: source.clone(),
                    path: path.clone(),
                    profile,
                    mapping: m,
                });
            }
            let unify = dir.join(crate::job::JOBS_DIR).join("unify");
            std::fs::create_dir_all(&unify)?;
            let identity = unify.join("identity_records.sql");
            let mut sql = mapping::identity_sql(&mappings);
            for (source, why) in &created.unreadable {
                sql.insert_str(
                    0,
                    &format!(
                        "-- Source `{source}` is left out: {}\n",
                        why.replace('\n', " ")
                    ),
                );
            }
            if mappings.is_empty() {
                bail!(
                    "no source could be read, so no identity job was written ({}); fix the \
                     sources in {} and run `tessera profile <source>`",
                    created
                        .unreadable
                        .iter()
                        .map(|(_, why)| why.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                    file.display()
                );
            }
            std::fs::write(&identity, sql)?;
            created.files.push(identity);
            // Identity settings on columns no source fills would only be noise (a comparison
            // with nothing to compare, warned about on every run): commented out, to take
            // back when a source gains the column.
            let filled = |kind: &str| mappings.iter().any(|m| m.columns.contains_key(kind));
            let unfilled: Vec<&str> = [
                ("email", "email"),
                ("phone", "phone"),
                ("phone", "phone_key"),
                ("birth_date", "birth_date"),
                ("postal_code", "postal_code"),
                ("loyalty_number", "loyalty_number"),
                ("web_user_id", "web_user_id"),
            ]
            .into_iter()
            .filter(|(kind, _)| !filled(kind))
            .map(|(_, column)| column)
            .collect();
            std::fs::write(&file, comment_out_unfilled(&text, &unfilled))
                .with_context(|| format!("cannot write {}", file.display()))?;
            let profiles = dir.join(crate::job::JOBS_DIR).join("profiles");
            std::fs::create_dir_all(&profiles)?;
            let golden = profiles.join("customers.sql");
            std::fs::write(&golden, GOLDEN_RECORD)?;
            created.files.push(golden);
        }
    }
    Ok(created)
}

/// The golden-record job `init --from` writes: one row per customer.
const GOLDEN_RECORD: &str = "\
-- The golden record: one row per customer. Each attribute survives from the records the
-- identity job linked; change a rule by editing its function (latest_value, most_frequent,
-- longest_value, priority_value, earliest_value: docs/functions-reference.md).
-- @materialized: table
-- @grain: customer_id
-- @test: unique(customer_id)
-- @test: not_null(customer_id)
with records as (
    select
        rc.customer_id,
        rc.customer_created_at,
        i.*,
        -- How well a record writes the name for people: First Last in mixed case (1), all in
        -- one case (2), LAST, First (3).
        case
            when i.display_name like '%,%' then 3
            when i.display_name = upper(i.display_name) or i.display_name = lower(i.display_name) then 2
            else 1
        end as display_rank,
        -- Records of the customer spelling the name the same way (in its matching form).
        count(*) over (partition by rc.customer_id, i.first_name, i.last_name) as name_votes,
        -- How complete the record is (ties go to the most complete).
        cast(i.email is not null as int) + cast(i.phone is not null as int)
            + cast(i.birth_date is not null as int) + cast(i.postal_code is not null as int) as filled
    from unify.record_customer rc
    join unify.identity_records i on i.record_key = rc.record_key
)
select
    customer_id,
    -- The name as the sources write it (accents kept): the spelling most records agree on, in
    -- its best-written form, from the most complete record.
    (array_agg(display_name order by name_votes desc, display_rank, filled desc, display_name)
        filter (where display_name is not null))[1] as name,
    most_frequent(first_name) as first_name,
    most_frequent(last_name) as last_name,
    most_frequent(email) as email,
    most_frequent(phone) as phone,
    most_frequent(birth_date) as birth_date,
    most_frequent(postal_code) as postal_code,
    most_frequent(city) as city,
    most_frequent(country) as country,
    count(*) as records,
    count(distinct source) as sources,
    -- When Tessera first saw the customer (add your own earliest activity, e.g. a first order).
    min(customer_created_at) as first_seen_at
from records
group by customer_id
";

/// The files named (folders: their data files, sorted), refusing what cannot be a source.
fn data_files(from: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in from {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("--from {}: no such file or folder", path.display()))?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && format_of(p).is_some())
                .collect();
            found.sort();
            if found.is_empty() {
                bail!(
                    "--from {}: no .csv, .tsv, .txt, .parquet, .json or .ndjson files in this folder",
                    path.display()
                );
            }
            files.extend(found);
        } else if format_of(path).is_some() {
            files.push(path.clone());
        } else {
            bail!(
                "--from {}: not a .csv, .tsv, .txt, .parquet, .json or .ndjson file",
                path.display()
            );
        }
    }
    Ok(files)
}

fn format_of(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "csv" | "tsv" | "txt" => Some("csv"),
        "parquet" => Some("parquet"),
        "json" | "ndjson" | "jsonl" => Some("json"),
        _ => None,
    }
}

/// A source name from a file name: lower case, `_` for anything else, unique.
fn source_name(path: &Path, taken: &[String]) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = deunicode::deunicode(&stem)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    name = name.trim_matches('_').to_string();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name = format!("source_{name}");
    }
    let mut unique = name.clone();
    let mut n = 2;
    while taken.contains(&unique) {
        unique = format!("{name}_{n}");
        n += 1;
    }
    unique
}

/// `[sources.<name>]` sections for the files, with what was sniffed from CSV files.
fn declare_sources(dir: &Path, files: &[PathBuf]) -> Result<Vec<(String, PathBuf, String)>> {
    let mut out: Vec<(String, PathBuf, String)> = Vec::new();
    let root = std::path::absolute(dir)?;
    for path in files {
        let taken: Vec<String> = out.iter().map(|(n, _, _)| n.clone()).collect();
        let name = source_name(path, &taken);
        let absolute = std::path::absolute(path)?;
        let url = absolute
            .strip_prefix(&root)
            .map(Path::to_path_buf)
            .unwrap_or(absolute.clone());
        let format = format_of(path).expect("filtered by data_files");
        let mut text = format!(
            "[sources.{name}]\nurl = {}\nformat = \"{format}\"\n",
            toml_string(&url.to_string_lossy())
        );
        if format == "csv" {
            let head = read_head(path)?;
            let delimiter = sniff_delimiter(&head);
            if delimiter != b',' {
                text.push_str(&format!(
                    "delimiter = {}\n",
                    toml_string(&(delimiter as char).to_string())
                ));
            }
            if std::str::from_utf8(&head).is_err() && !utf8_cut_at_end(&head) {
                text.push_str(
                    "encoding = \"windows-1252\"   # the file is not UTF-8; Western European exports usually are this\n",
                );
            }
            text.push_str(
                "on_error = \"quarantine\"       # rows that cannot be read go to quarantine.<source>, not the run\n\
                 max_error_rate = 0.05          # ...unless more than 5% of them fail\n",
            );
        }
        text.push('\n');
        out.push((name, path.clone(), text));
    }
    Ok(out)
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// The first 64 KiB of a file.
fn read_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .take(64 * 1024)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// True when the only invalid UTF-8 is a character cut by the 64 KiB limit.
fn utf8_cut_at_end(head: &[u8]) -> bool {
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// The delimiter of a CSV file's first line: the most frequent of `,` `;` tab `|` outside quotes.
fn sniff_delimiter(head: &[u8]) -> u8 {
    let line = head.split(|b| *b == b'\n').next().unwrap_or(head);
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0), (b'|', 0)];
    let mut quoted = false;
    for b in line {
        if *b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(c) = counts.iter_mut().find(|(d, _)| d == b) {
            c.1 += 1;
        }
    }
    counts
        .iter()
        .max_by_key(|(_, n)| *n)
        .filter(|(_, n)| *n > 0)
        .map_or(b',', |(d, _)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_settings_on_columns_no_source_has_are_commented_out() {
        let text = minimal_project_file("p");
        let pruned = comment_out_unfilled(&text, &["email", "loyalty_number", "web_user_id"]);
        #[derive(serde::Deserialize)]
        struct File {
            identity: tessera_engine::identity::IdentityConfig,
        }
        let config = toml::from_str::<File>(&pruned)
            .expect("still a project file")
            .identity;
        let full = toml::from_str::<File>(&text).unwrap().identity;
        assert!(config.comparisons.len() < full.comparisons.len());
        let mentions = |s: &str| s.contains("email") || s.contains("loyalty_number");
        for c in &config.comparisons {
            assert!(!c.column.as_deref().is_some_and(mentions), "{c:?}");
        }
        for r in config.rules.iter().chain(&config.blocking) {
            assert!(!r.on.iter().any(|c| mentions(c)), "{r:?}");
        }
        assert!(config.identifiers.iter().all(|i| !mentions(&i.column)));
        // What the sources have stays, comments and all.
        assert!(config.comparisons.iter().any(|c| c.name == "phone"));
        assert!(pruned.contains("# Off: no source has email yet"));
        assert_eq!(comment_out_unfilled(&text, &[]), text);
    }

    #[test]
    fn delimiters_and_names() {
        assert_eq!(
            sniff_delimiter(b"Contact ID;First Name;\"a;b\"\n1;2;3"),
            b';'
        );
        assert_eq!(sniff_delimiter(b"a,b,c\n"), b',');
        assert_eq!(sniff_delimiter(b"a\tb\tc"), b'\t');
        assert_eq!(sniff_delimiter(b"\"a,b\"|c|d"), b'|');
        assert_eq!(sniff_delimiter(b"single"), b',');
        let taken = vec!["crm_export".to_string()];
        assert_eq!(
            source_name(Path::new("/x/CRM Export.csv"), &taken),
            "crm_export_2"
        );
        assert_eq!(
            source_name(Path::new("2024-shop.csv"), &[]),
            "source_2024_shop"
        );
        assert_eq!(
            source_name(Path::new("Kunden_Übersicht.csv"), &[]),
            "kunden_ubersicht"
        );
    }
}
