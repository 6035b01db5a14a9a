//! The warehouse: the Delta tables under the project's warehouse URL, found by listing its
//! folders (`<table>/`, `<schema>/<table>/`), and registered in a session by exact name.
//! Below the workspace: it needs only the engine and the warehouse's URL.

use std::sync::Arc;

use crate::errors::{Context, Result};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use object_store::ObjectStore;
use tessera_engine::storage::object_path;
use tessera_engine::{Engine, TableVersion};
use url::Url;

/// Where what-if sandboxes live under the warehouse (`tessera plan --impact`): deeper than
/// the listing looks, so never taken for published tables.
pub const SANDBOX_DIR: &str = "_tessera/whatif/";

/// A Delta table found in the warehouse.
#[derive(Debug, Clone)]
pub struct WarehouseTable {
    /// `schema.table` or `table`.
    pub name: String,
    /// Schema part, if any.
    pub schema: Option<String>,
    /// Table part.
    pub table: String,
    /// Where it is.
    pub url: Url,
}

impl WarehouseTable {
    /// The table in SQL, quoted: its folder names may be anything another tool wrote.
    pub fn sql(&self) -> String {
        tessera_engine::sql::table(self.schema.as_deref(), &self.table)
    }

    /// The table's reference in the session (exact names, no SQL parsing).
    pub fn reference(&self) -> TableReference {
        match &self.schema {
            Some(schema) => TableReference::partial(schema.as_str(), self.table.as_str()),
            None => TableReference::bare(self.table.as_str()),
        }
    }
}

/// Lists the Delta tables under the warehouse `root`: `<table>/` and `<schema>/<table>/`.
pub async fn list(engine: &Engine, root: &Url) -> Result<Vec<WarehouseTable>> {
    let store = engine.store_for(root)?;
    let mut tables = Vec::new();
    for dir in subdirs(&store, &object_path(root)).await? {
        if is_delta_dir(&store, &dir).await? {
            let table = last_segment(&dir);
            tables.push(WarehouseTable {
                name: table.clone(),
                schema: None,
                url: root.join(&format!("{table}/"))?,
                table,
            });
            continue;
        }
        let schema = last_segment(&dir);
        for sub in subdirs(&store, &dir).await? {
            if is_delta_dir(&store, &sub).await? {
                let table = last_segment(&sub);
                tables.push(WarehouseTable {
                    name: format!("{schema}.{table}"),
                    schema: Some(schema.clone()),
                    url: root.join(&format!("{schema}/{table}/"))?,
                    table,
                });
            }
        }
    }
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tables)
}

/// The provider of the Delta table at `url` (latest version), or None when there is none.
pub async fn provider_if_exists(
    engine: &Engine,
    url: &Url,
) -> Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
    match engine.open_delta(url, TableVersion::Latest).await {
        Ok(table) => Ok(Some(engine.delta_provider(&table).await?)),
        Err(tessera_engine::Error::NoDeltaTable { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Registers a warehouse table under its name (creating its schema if needed), at its latest
/// version; returns the version.
pub async fn register(engine: &Engine, table: &WarehouseTable) -> Result<u64> {
    let delta = engine.open_delta(&table.url, TableVersion::Latest).await?;
    register_opened(engine, table, &delta).await
}

/// Registers a warehouse table at the version `delta` was opened at.
pub async fn register_opened(
    engine: &Engine,
    table: &WarehouseTable,
    delta: &deltalake::DeltaTable,
) -> Result<u64> {
    let version = delta.version().unwrap_or_default();
    let provider = engine.delta_provider(delta).await?;
    let ctx = engine.ctx();
    let reference = match &table.schema {
        Some(schema) => {
            let catalog = ctx
                .catalog("datafusion")
                .context("the default catalog is missing")?;
            if catalog.schema(schema).is_none() {
                catalog.register_schema(schema, Arc::new(MemorySchemaProvider::new()))?;
            }
            TableReference::partial(schema.as_str(), table.table.as_str())
        }
        None => TableReference::bare(table.table.as_str()),
    };
    // Registering again (a second query in one process) replaces the earlier snapshot.
    ctx.deregister_table(reference.clone())?;
    ctx.register_table(reference, provider)?;
    Ok(version)
}

async fn subdirs(
    store: &Arc<dyn ObjectStore>,
    dir: &object_store::path::Path,
) -> Result<Vec<object_store::path::Path>> {
    let prefix = (!dir.as_ref().is_empty()).then_some(dir);
    match store.list_with_delimiter(prefix).await {
        Ok(listing) => Ok(listing.common_prefixes),
        Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

async fn is_delta_dir(
    store: &Arc<dyn ObjectStore>,
    dir: &object_store::path::Path,
) -> Result<bool> {
    Ok(subdirs(store, dir)
        .await?
        .iter()
        .any(|p| p.filename() == Some("_delta_log")))
}

fn last_segment(path: &object_store::path::Path) -> String {
    path.filename().unwrap_or_default().to_string()
}

/// The folder of a warehouse table (`schema.table` → `<warehouse>/schema/table/`).
pub fn table_url(warehouse: &Url, name: &str) -> Result<Url> {
    let path = name.replace('.', "/");
    Ok(warehouse.join(&format!("{path}/"))?)
}
