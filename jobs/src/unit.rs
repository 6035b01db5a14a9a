//! Given/expect unit tests of a job's logic, in a `<job>.tests.toml` file beside the job:
//!
//! ```toml
//! [[unit]]
//! name = "the latest correction of an order wins"
//! [unit.given]
//! pos_orders = """
//! select * from (values ('o1', 10.0, timestamp '2026-01-01 10:00:00'),
//!                       ('o1', 12.5, timestamp '2026-01-02 09:00:00'))
//!     as t(order_id, amount, order_ts)
//! """
//! [unit]
//! expect = "select 'o1' as order_id, 12.5 as amount"
//! ```
//!
//! Every table the job reads is replaced by its `given` query (a test never reads real data);
//! the job's SQL runs over them and its result must equal `expect`'s rows, in any order. Only the
//! columns `expect` names are compared, after casting them to the job's output types.

use std::sync::Arc;

use crate::bail;
use crate::errors::{Context, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider,
};
use datafusion::common::TableReference;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;

use crate::job::Job;

pub use crate::job::{UnitTest, load_unit_tests as load, unit_file};

/// Runs one unit test of `job` in a private session built from `base`. `Ok(None)` when it
/// passes, `Ok(Some(why))` when the result differs, `Err` when it cannot run.
pub async fn run(base: &SessionContext, job: &Job, test: &UnitTest) -> Result<Option<String>> {
    let catalogs = Arc::new(MemoryCatalogProviderList::new());
    let catalog = Arc::new(MemoryCatalogProvider::new());
    catalog.register_schema("public", Arc::new(MemorySchemaProvider::new()))?;
    catalogs.register_catalog("datafusion".into(), catalog.clone());
    let state = SessionStateBuilder::new_from_existing(base.state())
        .with_catalog_list(catalogs)
        .build();
    let ctx = SessionContext::new_with_state(state);
    let missing: Vec<&String> = job
        .references
        .iter()
        .filter(|r| !test.given.keys().any(|g| g.eq_ignore_ascii_case(r)))
        .collect();
    if !missing.is_empty() {
        bail!(
            "gives no rows for {} (every table the job reads needs a `given` query)",
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (table, query) in &test.given {
        let name = table.to_lowercase();
        let view = ctx
            .sql(query)
            .await
            .with_context(|| format!("given `{table}`"))?
            .into_view();
        let reference = match name.split_once('.') {
            Some((schema, table)) => {
                if catalog.schema(schema).is_none() {
                    catalog.register_schema(schema, Arc::new(MemorySchemaProvider::new()))?;
                }
                TableReference::partial(schema, table)
            }
            None => TableReference::bare(name.as_str()),
        };
        ctx.register_table(reference, view)?;
    }
    let actual = ctx.sql(&job.sql).await.context("the job's SQL")?;
    let actual_schema = actual.schema().as_arrow().clone();
    let expected = ctx.sql(&test.expect).await.context("expect")?;
    // Compare the columns `expect` names, cast to the job's types.
    let mut columns = Vec::new();
    let mut casts = Vec::new();
    for field in expected.schema().fields() {
        let Ok(out) = actual_schema.field_with_name(field.name()) else {
            bail!(
                "expect names column `{}`, which the job does not return (it returns {})",
                field.name(),
                actual_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        columns.push(datafusion::prelude::ident(field.name()));
        casts.push(
            datafusion::prelude::cast(
                datafusion::prelude::ident(field.name()),
                out.data_type().clone(),
            )
            .alias(field.name()),
        );
    }
    let actual = actual.select(columns)?;
    let expected = expected.select(casts)?;
    let actual_rows = render(&actual.collect().await.context("the job's SQL")?)?;
    let expected_rows = render(&expected.collect().await.context("expect")?)?;
    if actual_rows == expected_rows {
        return Ok(None);
    }
    Ok(Some(diff(&actual_rows, &expected_rows)))
}

/// Rows as sorted strings (`a | b | NULL`).
fn render(batches: &[RecordBatch]) -> Result<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect::<Vec<_>>()
                    .join(" | "),
            );
        }
    }
    rows.sort();
    Ok(rows)
}

/// Rows the job returned that were not expected, and expected rows it did not return.
fn diff(actual: &[String], expected: &[String]) -> String {
    let mut unexpected = actual.to_vec();
    let mut missing = Vec::new();
    for row in expected {
        match unexpected.iter().position(|r| r == row) {
            Some(i) => {
                unexpected.remove(i);
            }
            None => missing.push(row.clone()),
        }
    }
    let show = |rows: &[String]| {
        let mut text: Vec<String> = rows.iter().take(5).map(|r| format!("[{r}]")).collect();
        if rows.len() > 5 {
            text.push(format!("and {} more", rows.len() - 5));
        }
        text.join(", ")
    };
    let mut parts = vec![format!(
        "{} rows returned, {} expected",
        actual.len(),
        expected.len()
    )];
    if !missing.is_empty() {
        parts.push(format!("missing {}", show(&missing)));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected {}", show(&unexpected)));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_missing_and_unexpected_rows() {
        let d = diff(
            &["a | 1".into(), "b | 2".into()],
            &["a | 1".into(), "c | 3".into()],
        );
        assert_eq!(
            d,
            "2 rows returned, 2 expected; missing [c | 3]; unexpected [b | 2]"
        );
    }

    #[test]
    fn unit_file_sits_beside_the_job() {
        assert_eq!(
            unit_file(std::path::Path::new("jobs/staging/orders.sql")),
            std::path::Path::new("jobs/staging/orders.tests.toml")
        );
    }
}
