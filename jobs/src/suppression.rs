//! The suppression list: people erased with `tessera forget` stay out of every later run.
//! Their identifiers are kept as salted SHA-256 hashes in `privacy.suppression`; every source is
//! read through `not is_suppressed(...)` over the columns that name a person (see
//! [`crate::privacy`] for how a table names one). Below the workspace: it needs the engine and
//! the project only.

use crate::errors::{Context, Result};
use crate::{bail, err};
use datafusion::arrow::datatypes::{DataType, Schema};
use object_store::ObjectStoreExt as _;
use sha2::{Digest, Sha256};
use tessera_engine::Engine;
use tessera_engine::privacy::{IdentifierKind, IdentifierSet};
use tessera_engine::sql::ident as quote;
use tessera_engine::storage::object_path;

use crate::project::Project;

/// The suppression list (salted hashes).
pub const SUPPRESSION_TABLE: &str = "privacy.suppression";
/// The SQL function testing values against the suppression list.
pub const SUPPRESSED_FUNCTION: &str = "is_suppressed";
const SALT_OBJECT: &str = "_tessera/suppression_salt";

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The SQL expressions (by kind) through which rows of a table with `schema` name a person:
/// `declared` ones, then text columns whose names say their kind. Sources do not take
/// `customer_id` / `record_key` from column names (those are Tessera's own ids).
pub fn subject_columns(
    schema: &Schema,
    declared: &[(IdentifierKind, String)],
    is_source: bool,
) -> Vec<(IdentifierKind, String)> {
    let mut out: Vec<(IdentifierKind, String)> = declared.to_vec();
    for field in schema.fields() {
        if !is_text(field.data_type()) {
            continue;
        }
        if let Some(kind) = IdentifierKind::of_column(field.name())
            && !(is_source && kind.is_key())
        {
            out.push((kind, quote(field.name())));
        }
    }
    out
}

/// `f('kind', expr) or ...` over the subject columns.
pub fn predicate_sql(function: &str, columns: &[(IdentifierKind, String)]) -> String {
    columns
        .iter()
        .map(|(k, e)| format!("{function}('{}', {e})", k.name()))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The salt of the suppression list: from the environment, else the one stored in the
/// warehouse, else (when `create`) a new random one stored there.
pub async fn salt(engine: &Engine, project: &Project, create: bool) -> Result<Option<Vec<u8>>> {
    let var = &project.privacy.salt_env;
    if let Ok(value) = std::env::var(var)
        && !value.is_empty()
    {
        return Ok(Some(value.into_bytes()));
    }
    let url = project.warehouse.join(SALT_OBJECT)?;
    let store = engine.store_for(&url)?;
    let path = object_path(&url);
    match store.get(&path).await {
        Ok(got) => Ok(Some(got.bytes().await?.to_vec())),
        Err(object_store::Error::NotFound { .. }) if create => {
            let salt: Vec<u8> = tessera_engine::privacy::random_salt()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes();
            // Created only if absent: two first erasures at once agree on one salt (the loser
            // reads the winner's) instead of each hashing with its own.
            let put = store
                .put_opts(
                    &path,
                    salt.clone().into(),
                    object_store::PutOptions {
                        mode: object_store::PutMode::Create,
                        ..Default::default()
                    },
                )
                .await;
            match put {
                Ok(_) => {
                    tracing::warn!(
                        "created the suppression salt at {url}; keep it with the warehouse's backups \
                         (or set ${var})"
                    );
                    Ok(Some(salt))
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    Ok(Some(store.get(&path).await?.bytes().await?.to_vec()))
                }
                Err(e) => {
                    Err(e).with_context(|| format!("cannot write the suppression salt at {url}"))
                }
            }
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read the suppression salt at {url}")),
    }
}

/// A short fingerprint of the salt, stored with each entry: a list read with another salt is
/// refused rather than silently matching nothing.
pub fn salt_id(salt: &[u8]) -> String {
    Sha256::digest(salt)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the suppression list (empty when there is none).
pub async fn load(engine: &Engine, project: &Project) -> Result<IdentifierSet> {
    let Some(table) = crate::warehouse::list(engine, &project.warehouse)
        .await?
        .into_iter()
        .find(|t| t.name == SUPPRESSION_TABLE)
    else {
        return Ok(IdentifierSet::default());
    };
    crate::warehouse::register(engine, &table).await?;
    // Read directly (not through `rows`, which registers sources, which read this list).
    let batches = engine
        .ctx()
        .sql(&format!(
            "select kind, value_hash, region, salt_id from {SUPPRESSION_TABLE}"
        ))
        .await?
        .collect()
        .await?;
    let entries = crate::rows::rows(&batches);
    if entries.is_empty() {
        return Ok(IdentifierSet::default());
    }
    let salt = salt(engine, project, false).await?.ok_or_else(|| {
        err!(
            "{SUPPRESSION_TABLE} holds {} entries but its salt is missing: set ${} to the salt \
             the list was written with (or restore {}/{SALT_OBJECT})",
            entries.len(),
            project.privacy.salt_env,
            project.warehouse
        )
    })?;
    let id = salt_id(&salt);
    let mut set = IdentifierSet::salted(salt);
    for e in &entries {
        if e.text("salt_id") != id {
            bail!(
                "{SUPPRESSION_TABLE} was written with another salt (fingerprint {}, the current \
                 salt's is {id}): set ${} to the original salt",
                e.text("salt_id"),
                project.privacy.salt_env
            );
        }
        let kind = IdentifierKind::parse(&e.text("kind"))
            .ok_or_else(|| err!("{SUPPRESSION_TABLE}: unknown kind `{}`", e.text("kind")))?;
        set.insert_key(kind, e.text("value_hash"));
        let region = e.text("region");
        if !region.is_empty() {
            set.add_region(&region);
        }
    }
    Ok(set)
}

/// The predicate (SQL) keeping a source's rows that are not on the suppression list, or
/// `None` when the source has no identifier columns.
pub fn filter(schema: &Schema, declared: &[(IdentifierKind, String)]) -> Option<String> {
    let columns = subject_columns(schema, declared, true);
    (!columns.is_empty()).then(|| format!("not ({})", predicate_sql(SUPPRESSED_FUNCTION, &columns)))
}
