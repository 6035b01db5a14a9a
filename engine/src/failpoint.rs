//! Named fault-injection points for the tests that prove Tessera's guarantees under failures
//! and kills (see `docs/guarantees.md`).
//!
//! `TESSERA_FAILPOINTS` lists the points to trigger, comma-separated: `name` (or `name=error`)
//! makes [`check`] return an error there, `name=exit` ends the process at once with status 86,
//! as a kill between two commits would (no destructor runs, no lock is released). Unset, a
//! check costs one look at a value read once per process.

use std::collections::HashMap;
use std::sync::OnceLock;

/// What a triggered point does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Error,
    Exit,
}

fn points() -> &'static HashMap<String, Action> {
    static POINTS: OnceLock<HashMap<String, Action>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var("TESSERA_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((name, "exit")) => (name.to_string(), Action::Exit),
                Some((name, _)) => (name.to_string(), Action::Error),
                None => (p.to_string(), Action::Error),
            })
            .collect()
    })
}

/// The process exits with this status at an `exit` point.
pub const EXIT_STATUS: i32 = 86;

/// Triggers the point `name` when `TESSERA_FAILPOINTS` names it: `Err` with the message to
/// fail with, or the process ends.
pub fn check(name: &str) -> std::result::Result<(), String> {
    match points().get(name) {
        None => Ok(()),
        Some(Action::Error) => Err(format!("failpoint `{name}` triggered (TESSERA_FAILPOINTS)")),
        Some(Action::Exit) => {
            eprintln!("failpoint `{name}`: exiting as a kill would");
            std::process::exit(EXIT_STATUS)
        }
    }
}
