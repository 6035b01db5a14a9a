//! Named fault-injection points (see [`tessera_engine::failpoint`], where they are read): the
//! tests that prove Tessera's guarantees under failures and kills (see `docs/guarantees.md`).

use crate::errors::{Error, Result};

pub use tessera_engine::failpoint::EXIT_STATUS;

/// Triggers the point `name` when `TESSERA_FAILPOINTS` names it.
pub fn check(name: &str) -> Result<()> {
    tessera_engine::failpoint::check(name).map_err(Error::msg)
}
