//! How errors read to people: one line of causes, each said once, in the names the user wrote.
//!
//! DataFusion and delta-rs wrap each other's errors and print their sources inside their own
//! messages, so a chain printed with `{:#}` said the same planner error two or three times;
//! and the planner names tables by their full internal path (`datafusion.public.orders`).

/// The text of `error` and its causes, joined by ": ", without the repetitions and without
/// the default catalog and schema in table names.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    tidy(&text)
}

/// [`error_text`] for text already joined (a message a library built with `{:#}`).
pub fn tidy(text: &str) -> String {
    // "External error: " is DataFusion's wrapper around an error Tessera raised inside a
    // query (a source read row by row): it says nothing to the reader.
    let mut text = text
        .replace("'datafusion.public.", "'")
        .replace("datafusion.public.", "")
        .replace("External error: ", "");
    // "A: B: B" → "A: B": a cause printed again after the message that already holds it.
    let mut i = text.len();
    while let Some(at) = text[..i].rfind(": ") {
        let (left, right) = (&text[..at], &text[at + 2..]);
        if !right.is_empty() && left.ends_with(right) {
            text.truncate(at);
            i = text.len();
        } else {
            i = at;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_said_once_and_tables_by_their_names() {
        let planner = "Generic DeltaTable error: type_coercion\ncaused by\nError during planning: \
                       Cannot infer common argument type for logical boolean operation Utf8 AND Boolean";
        let joined = format!(
            "jobs/staging/clicks.sql: writing file:///w/staging/clicks/ failed, the previous version is unchanged: {planner}: {planner}"
        );
        assert_eq!(
            tidy(&joined),
            format!(
                "jobs/staging/clicks.sql: writing file:///w/staging/clicks/ failed, the previous version is unchanged: {planner}"
            )
        );
        let e = anyhow::anyhow!(
            "Error during planning: table 'datafusion.public.pos_orders' not found"
        )
        .context("planning failed");
        assert_eq!(
            error_text(&e),
            "planning failed: Error during planning: table 'pos_orders' not found"
        );
        assert_eq!(
            tidy(
                "External error: source `a` (file:///d/a.csv): /d/a.csv, line 4: expected 3 fields, found 4"
            ),
            "source `a` (file:///d/a.csv): /d/a.csv, line 4: expected 3 fields, found 4"
        );
        // Different causes all stay.
        let e = anyhow::anyhow!("disk full")
            .context("writing x")
            .context("job y");
        assert_eq!(error_text(&e), "job y: writing x: disk full");
    }
}
