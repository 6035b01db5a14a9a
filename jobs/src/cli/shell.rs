//! `tessera sql`: one query, or the interactive shell.

use super::*;

/// Runs each statement and prints each result that has columns (DDL prints nothing); with
/// `--format json`, whose output is one JSON document, only the last statement's.
pub(crate) async fn sql(
    ws: &Workspace,
    query: &str,
    format: OutputFormat,
    max_rows: usize,
) -> Result<()> {
    register_views(ws, query).await?;
    let statements = ws.prepare_for(query).await?;
    if statements.is_empty() {
        bail!("the query is empty");
    }
    let ctx = ws.engine.ctx();
    let last = statements.len() - 1;
    let mut stdout = std::io::stdout().lock();
    for (i, statement) in statements.into_iter().enumerate() {
        let plan = ctx.state().statement_to_plan(statement).await?;
        let df = ctx.execute_logical_plan(plan).await?;
        let stream = df.execute_stream().await;
        let shown = i == last
            || (format != OutputFormat::Json
                && stream
                    .as_ref()
                    .is_ok_and(|s| !s.schema().fields().is_empty()));
        let result = match stream {
            Ok(stream) if shown => print_stream(stream, format, max_rows, &mut stdout).await,
            Ok(stream) => print_stream(stream, OutputFormat::Jsonl, 0, &mut std::io::sink()).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = result {
            return Err(explain_read_error(ws, e).await);
        }
    }
    Ok(())
}

/// `tessera sql` with no query: an interactive shell. Statements end with `;` and may span
/// lines; `\d`, `\d <table>`, `\df [pattern]`, `\timing`, `\format <fmt>`, `\q`; history in
/// `~/.tessera_history` (or `$TESSERA_HISTORY`); Ctrl-C cancels the running statement.
pub(crate) async fn shell(ws: &Workspace, mut format: OutputFormat, max_rows: usize) -> Result<()> {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new()
        .map_err(tessera_jobs::errors::Error::other)
        .context("cannot open the terminal")?;
    let history = std::env::var_os("TESSERA_HISTORY")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".tessera_history")));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!(
        "Tessera SQL shell on {}: end statements with `;`, \\? for help, \\q to quit.",
        ws.project.warehouse
    );
    let mut buffer = String::new();
    let mut timing = false;
    loop {
        let prompt = if buffer.is_empty() {
            "tessera> "
        } else {
            "      -> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(tessera_jobs::errors::Error::other(e)),
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            let mut words = trimmed.split_whitespace();
            let command = words.next().unwrap_or_default();
            let argument = words.next();
            let result = match command {
                "\\q" | "\\quit" => break,
                "\\?" | "\\h" | "\\help" => {
                    println!("{SHELL_HELP}");
                    Ok(())
                }
                "\\d" => match argument {
                    None => tables(ws, format, false).await,
                    Some(table) => sql(ws, &format!("describe {table}"), format, max_rows).await,
                },
                "\\df" => functions(argument, format).await,
                "\\timing" => {
                    timing = !timing;
                    println!("Timing is {}.", if timing { "on" } else { "off" });
                    Ok(())
                }
                "\\format" => match argument.map(|f| {
                    <OutputFormat as clap::ValueEnum>::from_str(f, true)
                        .map_err(tessera_jobs::errors::Error::msg)
                }) {
                    Some(Ok(f)) => {
                        format = f;
                        Ok(())
                    }
                    Some(Err(e)) => Err(e),
                    None => Err(tessera_jobs::err!(
                        "\\format needs one of table, csv, json, jsonl"
                    )),
                },
                other => Err(tessera_jobs::err!(
                    "unknown command {other} (\\? lists them)"
                )),
            };
            if let Err(e) = result {
                eprintln!("ERROR: {e:#}");
            }
            continue;
        }
        if buffer.is_empty() && trimmed.is_empty() {
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !statement_complete(&buffer) {
            continue;
        }
        let query = std::mem::take(&mut buffer);
        let _ = editor.add_history_entry(query.trim_end());
        let started = Instant::now();
        tokio::select! {
            result = sql(ws, &query, format, max_rows) => {
                if let Err(e) = result {
                    eprintln!("ERROR: {e:#}");
                }
            }
            _ = tokio::signal::ctrl_c() => eprintln!("canceled"),
        }
        if timing {
            println!("Time: {:.3} ms", started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    if let Some(path) = &history
        && let Err(e) = editor.save_history(path)
    {
        eprintln!(
            "warning: cannot save the history to {}: {e}",
            path.display()
        );
    }
    Ok(())
}

pub(crate) const SHELL_HELP: &str = r"Statements end with `;` and may span lines. Every source, warehouse table,
view job and Tessera function is available (time travel: at_version, at_time, table_history).
  \d               list sources and tables
  \d <table>       describe a table's columns
  \df [pattern]    list Tessera functions (\df email_normalize shows one in full)
  \format <fmt>    output as table, csv, json or jsonl
  \timing          show how long each statement takes
  \q               quit (or Ctrl-D); Ctrl-C cancels the running statement";

/// Whether `text` ends with a `;` outside quotes and comments: SQL's own tokenizer (the one
/// DataFusion parses with) reads it; an unterminated string or comment is not complete.
pub(crate) fn statement_complete(text: &str) -> bool {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize() else {
        return false;
    };
    tokens
        .iter()
        .rev()
        .find(|t| !matches!(t, Token::Whitespace(_)))
        .is_some_and(|t| *t == Token::SemiColon)
}

/// Registers the project's view jobs the query names (`profiles.as_of`, `segments.sizes`...):
/// they are not stored, so they are planned over their inputs here, as a run would.
pub(crate) async fn register_views(ws: &Workspace, query: &str) -> Result<()> {
    let Ok(statements) = datafusion::sql::parser::DFParser::parse_sql(query) else {
        return Ok(()); // reported by the query itself
    };
    let state = ws.engine.ctx().state();
    let mut wanted = Vec::new();
    for statement in &statements {
        if let Ok(refs) = state.resolve_table_references(statement) {
            wanted.extend(refs.into_iter().map(|r| r.to_string()));
        }
    }
    tessera_jobs::runner::register_view_jobs(ws, |name| wanted.iter().any(|w| w == name)).await?;
    Ok(())
}

/// After a failed read, finds which source file is at fault and says so.
pub(crate) async fn explain_read_error(
    ws: &Workspace,
    error: tessera_jobs::errors::Error,
) -> tessera_jobs::errors::Error {
    let text = format!("{error:#}");
    let looks_like_read = [
        "Csv error",
        "Json error",
        "Parquet error",
        "Parser error",
        "incorrect number of fields",
        "External error",
    ]
    .iter()
    .any(|s| text.contains(s));
    if !looks_like_read {
        return error;
    }
    for (name, decl) in &ws.project.sources {
        // Delta tables, and CSV read row by row (its errors name the file and line already).
        if decl.spec.format == SourceFormat::Delta || !decl.spec.rows.is_default_reader() {
            continue;
        }
        if ws.engine.ctx().table_exist(name.as_str()).unwrap_or(false)
            && let Some((file, message)) = ws.engine.locate_read_error(&decl.spec).await
        {
            return error.context(format!("source `{name}`, file {file}: {message}"));
        }
    }
    error
}

#[cfg(test)]
mod tests {
    use super::statement_complete;

    #[test]
    fn a_statement_ends_at_a_semicolon_outside_quotes_and_comments() {
        assert!(statement_complete("select 1;"));
        assert!(statement_complete("select 1\n  from t ;  \n"));
        assert!(statement_complete("select 'a;b';"));
        assert!(statement_complete("select 'it''s';"));
        assert!(statement_complete("select 1; -- done\n"));
        assert!(!statement_complete("select 1"));
        assert!(!statement_complete("select 'a;"));
        assert!(!statement_complete("select 1 -- ;\n"));
        assert!(!statement_complete("select 1 /* ; */"));
        assert!(!statement_complete("select \"odd;\" from t"));
        assert!(!statement_complete("select 1 /* unfinished ;"));
    }
}
