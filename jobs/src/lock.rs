//! The warehouse lock: one writer at a time per warehouse (`run`, `forget`, `retention`,
//! `write`), as a lease that works on a local folder and on object storage alike.
//!
//! - **Taking it** is an atomic create of `_tessera/run.lock` (`PutMode::Create`: a local
//!   hard link, S3's `If-None-Match`), holding a fresh random token, the command, host and pid.
//! - **The lease**: while it holds the lock, the holder rewrites its own heartbeat object
//!   (`_tessera/lock/heartbeat-<token>`, a counter) every [`heartbeat`] interval. A waiter
//!   takes a lock over when the heartbeat has not changed for the lease ([`lease`]) *as the
//!   waiter's own clock measures it* (no clock is compared across machines), or at once when
//!   the holder was on this host and its process is gone (`/proc/<pid>`, Linux).
//! - **Taking over** is itself an atomic create, of `_tessera/lock/takeover-<token>`: of two
//!   waiters seeing the same dead holder, one wins; it re-reads the lock and deletes it only if
//!   it still holds the dead token, then creates its own. (A delete-then-create takeover let two
//!   waiters both win.)
//! - **Releasing** deletes the lock only if it still holds the holder's token (a holder whose
//!   lease lapsed does not delete its successor's lock).
//!
//! Limits: a holder paused longer than the lease (SIGSTOP, a VM freeze) loses the lock without
//! knowing until its next heartbeat, which then reports it ([`RunLock::lost`]); Delta's own
//! optimistic concurrency still keeps each table's commits atomic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::errors::Context;
use crate::errors::Result;
use chrono::Utc;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tessera_engine::storage::object_path;

use crate::workspace::Workspace;

/// How long a holder's heartbeat may stand still before its lock is taken over
/// (`TESSERA_LOCK_LEASE_MS` overrides it, for tests and slow stores).
pub fn lease() -> Duration {
    std::env::var("TESSERA_LOCK_LEASE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(60), Duration::from_millis)
}

/// How often the holder renews its lease: a sixth of it.
pub fn heartbeat() -> Duration {
    (lease() / 6).max(Duration::from_millis(50))
}

/// The warehouse lock, held until [`RunLock::release`].
pub struct RunLock {
    store: Arc<dyn ObjectStore>,
    path: object_store::path::Path,
    heartbeat_path: object_store::path::Path,
    token: String,
    lost: Arc<AtomicBool>,
    beating: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLock")
            .field("path", &self.path)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// Another command holds the lock.
#[derive(Debug, thiserror::Error)]
#[error("another tessera command holds the warehouse lock {path}: {holder}")]
pub struct LockHeld {
    /// The lock object.
    pub path: String,
    /// Who holds it (token, command, host, pid, start).
    pub holder: String,
}

impl From<LockHeld> for crate::errors::Error {
    fn from(e: LockHeld) -> Self {
        crate::errors::Error::typed(crate::errors::ErrorKind::Busy, e)
    }
}

async fn read(store: &dyn ObjectStore, path: &object_store::path::Path) -> Result<Option<String>> {
    match store.get(path).await {
        Ok(got) => Ok(Some(
            String::from_utf8_lossy(&got.bytes().await?).into_owned(),
        )),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn create(
    store: &dyn ObjectStore,
    path: &object_store::path::Path,
    body: String,
) -> Result<bool> {
    let put = store
        .put_opts(
            path,
            PutPayload::from(body.into_bytes()),
            PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            },
        )
        .await;
    match put {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn token_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_string))
        // A lock written by an older Tessera: its whole text identifies it.
        .unwrap_or_else(|| format!("legacy-{:x}", fnv(body)))
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// Whether the holder described by `body` ran on this host and its process is gone.
fn holder_is_dead_here(body: &str) -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    parsed["host"].as_str() == Some(hostname().as_str())
        && parsed["pid"]
            .as_u64()
            .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

impl RunLock {
    /// Takes the lock for `command` (e.g. `run 20261205T…`), waiting up to `wait` for the
    /// holder to finish; takes over a holder whose lease lapsed (see the module docs).
    pub async fn acquire(ws: &Workspace, command: &str, wait: Duration) -> Result<RunLock> {
        let lock_url = ws.project.warehouse.join("_tessera/run.lock")?;
        let store = ws.engine.store_for(&lock_url)?;
        let path = object_path(&lock_url);
        let dir = object_path(&ws.project.warehouse.join("_tessera/lock/")?);
        let token = format!("{:016x}{:08x}", rand::random::<u64>(), std::process::id());
        let heartbeat_path = dir.clone().join(format!("heartbeat-{token}"));
        let body = serde_json::json!({
            "token": token,
            "command": command,
            "host": hostname(),
            "pid": std::process::id(),
            "started_at": Utc::now().to_rfc3339(),
        })
        .to_string();
        let deadline = Instant::now() + wait;
        let lease = lease();
        // The holder's heartbeat as last seen, and since when (this process's clock).
        let mut seen: Option<(String, Option<String>, Instant)> = None;
        // The heartbeat exists before the lock does, so a waiter never sees a fresh lock
        // without one.
        store
            .put(&heartbeat_path, PutPayload::from_static(b"0"))
            .await
            .with_context(|| format!("cannot write the lock heartbeat in {dir}"))?;
        loop {
            if create(store.as_ref(), &path, body.clone())
                .await
                .map_err(|e| e.context(format!("cannot take the warehouse lock {lock_url}")))?
            {
                let lost = Arc::new(AtomicBool::new(false));
                let beating = tokio::spawn(beat(
                    store.clone(),
                    path.clone(),
                    heartbeat_path.clone(),
                    token.clone(),
                    lost.clone(),
                ));
                return Ok(RunLock {
                    store,
                    path,
                    heartbeat_path,
                    token,
                    lost,
                    beating,
                });
            }
            let Some(holder) = read(store.as_ref(), &path).await? else {
                continue;
            };
            let holder_token = token_of(&holder);
            let beat_now = read(
                store.as_ref(),
                &dir.clone().join(format!("heartbeat-{holder_token}")),
            )
            .await?;
            let changed = match &seen {
                Some((t, b, _)) => t != &holder_token || b != &beat_now,
                None => true,
            };
            if changed {
                seen = Some((holder_token.clone(), beat_now, Instant::now()));
            }
            let still = seen.as_ref().map_or(Duration::ZERO, |s| s.2.elapsed());
            if still >= lease || holder_is_dead_here(&holder) {
                let marker = dir.clone().join(format!("takeover-{holder_token}"));
                if create(store.as_ref(), &marker, body.clone()).await? {
                    // Ours to take over: delete the lock only if it is still the dead one.
                    if let Some(current) = read(store.as_ref(), &path).await?
                        && token_of(&current) == holder_token
                    {
                        tracing::warn!(
                            "taking over the warehouse lock of a holder that is gone (no heartbeat for {:.0?}): {holder}",
                            still
                        );
                        store.delete(&path).await.ok();
                    }
                    store
                        .delete(&dir.clone().join(format!("heartbeat-{holder_token}")))
                        .await
                        .ok();
                    continue;
                }
            }
            if Instant::now() >= deadline {
                store.delete(&heartbeat_path).await.ok();
                return Err(LockHeld {
                    path: lock_url.to_string(),
                    holder,
                }
                .into());
            }
            tokio::time::sleep(Duration::from_millis(200).min(heartbeat())).await;
        }
    }

    /// True when the lock was taken over while held (a lapsed lease): what was written since
    /// may race another writer.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Releases the lock (if it is still this holder's).
    pub async fn release(self) {
        self.beating.abort();
        match read(self.store.as_ref(), &self.path).await {
            Ok(Some(current)) if token_of(&current) == self.token => {
                if let Err(e) = self.store.delete(&self.path).await {
                    tracing::warn!("cannot release the warehouse lock: {e}");
                }
            }
            Ok(_) => tracing::error!(
                "the warehouse lock was taken over while this command held it (its lease lapsed)"
            ),
            Err(e) => tracing::warn!("cannot read the warehouse lock to release it: {e:#}"),
        }
        self.store.delete(&self.heartbeat_path).await.ok();
    }
}

/// The holder's heartbeat: a counter rewritten every [`heartbeat`] interval; each beat also
/// checks that the lock is still this holder's.
async fn beat(
    store: Arc<dyn ObjectStore>,
    path: object_store::path::Path,
    heartbeat_path: object_store::path::Path,
    token: String,
    lost: Arc<AtomicBool>,
) {
    let mut count = 0u64;
    loop {
        tokio::time::sleep(heartbeat()).await;
        count += 1;
        if let Err(e) = store
            .put(
                &heartbeat_path,
                PutPayload::from(count.to_string().into_bytes()),
            )
            .await
        {
            tracing::warn!("cannot renew the warehouse lock's lease: {e}");
        }
        match read(store.as_ref(), &path).await {
            Ok(Some(current)) if token_of(&current) == token => {}
            Ok(_) => {
                if !lost.swap(true, Ordering::SeqCst) {
                    tracing::error!(
                        "the warehouse lock was taken over while this command held it (its lease lapsed)"
                    );
                }
            }
            Err(e) => tracing::warn!("cannot check the warehouse lock: {e:#}"),
        }
    }
}

/// This machine's name, as the lock records it.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}
