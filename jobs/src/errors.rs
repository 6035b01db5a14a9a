//! Errors of the `tessera` library: a typed [`Error`] whose [`ErrorKind`] gives the command's
//! exit code, and how errors read to people — one line of causes, each said once, in the names
//! the user wrote.
//!
//! DataFusion and delta-rs wrap each other's errors and print their sources inside their own
//! messages, so a chain printed with `{:#}` said the same planner error two or three times;
//! and the planner names tables by their full internal path (`datafusion.public.orders`).

use std::fmt;

/// What kind of failure an error is; the `tessera` command's exit code comes from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Anything that went wrong while working: data, storage, a query, a failed job (exit 1).
    Failed,
    /// The project file or the command line asks for what cannot be (exit 2).
    Usage,
    /// Another command holds the warehouse lock (exit 3).
    Busy,
    /// A what-if's change exceeds limits set on the command line (exit 4).
    LimitsExceeded,
}

impl ErrorKind {
    /// The process exit code of this kind of failure.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Failed => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Busy => 3,
            ErrorKind::LimitsExceeded => 4,
        }
    }
}

/// An error of the library: what failed, with the context each caller added.
#[derive(Debug)]
pub enum Error {
    /// An error of the library's own whose kind is known where it is raised (the project file
    /// is wrong, the lock is held, a job failed...): each such type converts with its kind.
    Typed {
        /// What kind of failure it is.
        kind: ErrorKind,
        /// The error.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The engine failed (a query, a table, a source, identity resolution).
    Engine(tessera_engine::Error),
    /// A query failed to plan or run.
    DataFusion(datafusion::error::DataFusionError),
    /// A Delta table operation failed.
    Delta(deltalake::DeltaTableError),
    /// Object storage failed.
    ObjectStore(object_store::Error),
    /// A file could not be read or written.
    Io(std::io::Error),
    /// Any other cause, from a library.
    Other(Box<dyn std::error::Error + Send + Sync>),
    /// A failure described in words (see [`bail!`](crate::bail)).
    Message(String),
    /// What was being done when `source` happened.
    Context {
        /// What was being done.
        context: String,
        /// The cause.
        source: Box<Error>,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error described in words.
    pub fn msg(message: impl fmt::Display) -> Self {
        Error::Message(message.to_string())
    }

    /// An error of the library's own, of a known kind.
    pub fn typed(kind: ErrorKind, error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Typed {
            kind,
            error: Box::new(error),
        }
    }

    /// An error from any other library.
    pub fn other(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Other(Box::new(source))
    }

    /// This error with what was being done when it happened.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error::Context {
            context: context.to_string(),
            source: Box::new(self),
        }
    }

    /// What kind of failure this is, whatever context was added on the way.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Typed { kind, .. } => *kind,
            Error::Context { source, .. } => source.kind(),
            _ => ErrorKind::Failed,
        }
    }

    /// The library error this one wraps (none for a message or a context layer).
    fn wrapped(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(match self {
            Error::Typed { error, .. } => error.as_ref(),
            Error::Engine(e) => e,
            Error::DataFusion(e) => e,
            Error::Delta(e) => e,
            Error::ObjectStore(e) => e,
            Error::Io(e) => e,
            Error::Other(e) => e.as_ref(),
            Error::Message(_) | Error::Context { .. } => return None,
        })
    }
}

impl fmt::Display for Error {
    /// `{}` says what failed at this level; `{:#}` says it with every cause, each once
    /// ([`error_text`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            return f.write_str(&error_text(self));
        }
        match (self, self.wrapped()) {
            (_, Some(wrapped)) => fmt::Display::fmt(wrapped, f),
            (Error::Context { context: text, .. } | Error::Message(text), None) => {
                f.write_str(text)
            }
            (_, None) => Ok(()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Context { source, .. } => Some(source.as_ref()),
            other => other.wrapped().and_then(|e| e.source()),
        }
    }
}

macro_rules! from {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::$variant(e)
            }
        })*
    };
}
from!(
    Engine(tessera_engine::Error),
    DataFusion(datafusion::error::DataFusionError),
    Delta(deltalake::DeltaTableError),
    ObjectStore(object_store::Error),
    Io(std::io::Error),
);

macro_rules! from_other {
    ($($ty:ty),* $(,)?) => {
        $(impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::other(e)
            }
        })*
    };
}
from_other!(
    datafusion::arrow::error::ArrowError,
    datafusion::parquet::errors::ParquetError,
    serde_json::Error,
    toml::de::Error,
    url::ParseError,
    tokio::task::JoinError,
    std::fmt::Error,
    std::string::FromUtf8Error,
    std::num::ParseIntError,
    std::num::ParseFloatError,
    object_store::path::Error,
    csv::Error,
    chrono::ParseError,
    humantime::DurationError,
    croner::errors::CronError,
);

/// Adds what was being done to an error, as `anyhow::Context` does.
pub trait Context<T> {
    /// The error, if any, with `context`.
    fn context(self, context: impl fmt::Display) -> Result<T>;
    /// The error, if any, with the context `f` returns (built only on error).
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.ok_or_else(|| Error::msg(context))
    }
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.ok_or_else(|| Error::msg(f()))
    }
}

/// Returns early with an [`Error`] described in words (`format!` arguments).
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::errors::Error::msg(format!($($arg)*)))
    };
}

/// An [`Error`] described in words (`format!` arguments).
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::errors::Error::msg(format!($($arg)*))
    };
}

/// The text of `error` and its causes, joined by ": ", without the repetitions and without
/// the default catalog and schema in table names.
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut cause = Some(error);
    while let Some(at) = cause {
        cause = at.source();
        let part = at.to_string();
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
        let e = Error::msg("Error during planning: table 'datafusion.public.pos_orders' not found")
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
        let e = Error::msg("disk full")
            .context("writing x")
            .context("job y");
        assert_eq!(error_text(&e), "job y: writing x: disk full");
        assert_eq!(format!("{e:#}"), "job y: writing x: disk full");
        assert_eq!(format!("{e}"), "job y");
    }

    #[test]
    fn the_kind_of_an_error_survives_its_context() {
        let held = std::io::Error::other("another command holds the lock");
        let busy = Error::typed(ErrorKind::Busy, held).context("tessera forget");
        assert_eq!(busy.kind(), ErrorKind::Busy);
        assert_eq!(busy.kind().exit_code(), 3);
        assert_eq!(
            format!("{busy:#}"),
            "tessera forget: another command holds the lock"
        );
        let usage = Error::typed(ErrorKind::Usage, std::fmt::Error).context("run");
        assert_eq!(usage.kind().exit_code(), 2);
        let limits = Error::typed(ErrorKind::LimitsExceeded, std::fmt::Error);
        assert_eq!(limits.context("plan").kind().exit_code(), 4);
        assert_eq!(Error::msg("disk full").kind().exit_code(), 1);
        // A cause from another library is one of the chain's links.
        let io = Error::from(std::io::Error::other("no space left")).context("writing a");
        assert_eq!(format!("{io:#}"), "writing a: no space left");
    }
}
