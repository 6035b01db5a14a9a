//! Every function's documented SQL example runs and prints what its documentation says: the
//! query after `> ` in the example, the expected value on the line(s) after it.

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;

#[tokio::test]
async fn documented_examples_print_what_they_say() {
    let mut ctx = SessionContext::new();
    tessera_udfs::register_all(&mut ctx).unwrap();
    let docs = tessera_udfs::scalar_functions()
        .iter()
        .map(|f| (f.name().to_string(), f.documentation().cloned()))
        .chain(
            tessera_udfs::aggregate_functions()
                .iter()
                .map(|f| (f.name().to_string(), f.documentation().cloned())),
        )
        .collect::<Vec<_>>();
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, doc) in docs {
        let doc = doc.unwrap_or_else(|| panic!("{name} has no documentation"));
        let example = doc
            .sql_example
            .unwrap_or_else(|| panic!("{name} has no SQL example"));
        let body = example
            .trim()
            .trim_start_matches("```sql")
            .trim_end_matches("```")
            .trim();
        let mut lines = body.lines();
        let query = lines
            .next()
            .and_then(|l| l.strip_prefix("> "))
            .unwrap_or_else(|| panic!("{name}: the example does not start with `> `"));
        let expected = expected_rows(lines);
        let batches = match ctx.sql(query).await {
            Ok(df) => df.collect().await,
            Err(e) => Err(e),
        };
        let batches = match batches {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{name}: `{query}` failed: {e}"));
                continue;
            }
        };
        let options = FormatOptions::default().with_null("NULL");
        let mut got = Vec::new();
        for batch in &batches {
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                .collect();
            for row in 0..batch.num_rows() {
                let cells: Vec<String> = formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect();
                got.push(cells.join(" "));
            }
        }
        if got != expected {
            failures.push(format!(
                "{name}: `{query}` printed {got:?}, documented {expected:?}"
            ));
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} examples differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 45, "only {checked} examples");
}

/// The documented result rows, cells separated by one space: either plain lines, or a table as
/// DataFusion prints it (`+---+` rules, a header row, then data rows between `|`).
fn expected_rows<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    let lines: Vec<&str> = lines.map(str::trim).filter(|l| !l.is_empty()).collect();
    if !lines.first().is_some_and(|l| l.starts_with("+-")) {
        return lines.into_iter().map(str::to_string).collect();
    }
    lines
        .into_iter()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}
