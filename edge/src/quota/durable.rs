//! The sled adapter of the monthly usage counters: one tree ([`USAGE_TREE`]) in the edge's
//! database, key `YYYY-MM/<account id>`, value the month's execution count (u64 big-endian).
//!
//! Counting happens in memory ([`Limiter`]); [`UsageCounters`] loads the current month at
//! start, writes changed counters every flush interval on a background thread (one batch,
//! then a sled flush) and once more at [`UsageCounters::shutdown`] (or drop).
//!
//! Loss bound: a kill -9 loses the executions admitted after the last completed flush —
//! at most `flush interval × admission rate` (plus one flush's duration). Values written are
//! absolute counts taken from memory, and memory starts from what is on disk, so a crash or
//! a repeated flush can only under-count, never count an execution twice.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::limiter::Limiter;
use super::month::Month;

/// The sled tree of the monthly counters.
pub const USAGE_TREE: &str = "usage_monthly";

/// Why the usage counters could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum UsageStoreError {
    #[error("cannot open the usage tree '{USAGE_TREE}': {0}")]
    Open(#[source] sled::Error),
    #[error("cannot load the usage counters of {month}: {source}")]
    Load { month: String, source: sled::Error },
    #[error("cannot write the usage counters: {0}")]
    Write(#[source] sled::Error),
    #[error("the usage flusher thread cannot start: {0}")]
    Spawn(#[source] std::io::Error),
}

/// The key of `account`'s counter in `month`.
pub fn counter_key(month: Month, account: &str) -> String {
    format!("{month}/{account}")
}

/// Durable monthly counters around a [`Limiter`]. Share it in an `Arc`.
pub struct UsageCounters {
    limiter: Arc<Limiter>,
    writer: Writer,
    flusher: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl std::fmt::Debug for UsageCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageCounters").finish_non_exhaustive()
    }
}

/// Writes dirty counters; one flush at a time so an older snapshot never lands last.
#[derive(Clone)]
struct Writer {
    tree: sled::Tree,
    limiter: Arc<Limiter>,
    lock: Arc<Mutex<()>>,
}

impl Writer {
    fn flush(&self) -> Result<usize, UsageStoreError> {
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let dirty = self.limiter.dirty();
        if dirty.is_empty() {
            return Ok(0);
        }
        let mut batch = sled::Batch::default();
        for d in &dirty {
            batch.insert(
                counter_key(d.month, &d.account).as_bytes(),
                &d.count.to_be_bytes()[..],
            );
        }
        self.tree
            .apply_batch(batch)
            .map_err(UsageStoreError::Write)?;
        self.tree.flush().map_err(UsageStoreError::Write)?;
        self.limiter.mark_flushed(&dirty);
        Ok(dirty.len())
    }
}

impl UsageCounters {
    /// Opens [`USAGE_TREE`] in `db`; see [`UsageCounters::open`].
    ///
    /// # Errors
    /// [`UsageStoreError`] when the tree cannot be opened or read, or the thread not started.
    pub fn open_in(
        db: &sled::Db,
        limiter: Arc<Limiter>,
        flush_interval: Duration,
        now_ms: u64,
    ) -> Result<UsageCounters, UsageStoreError> {
        let tree = db.open_tree(USAGE_TREE).map_err(UsageStoreError::Open)?;
        UsageCounters::open(tree, limiter, flush_interval, now_ms)
    }

    /// Loads the counters of the month of `now_ms` into `limiter` and starts the flusher
    /// (every `flush_interval`).
    ///
    /// # Errors
    /// [`UsageStoreError`] when the tree cannot be read or the thread not started.
    pub fn open(
        tree: sled::Tree,
        limiter: Arc<Limiter>,
        flush_interval: Duration,
        now_ms: u64,
    ) -> Result<UsageCounters, UsageStoreError> {
        let month = Month::of_unix_ms(now_ms);
        load_month(&tree, &limiter, month)?;
        let writer = Writer {
            tree,
            limiter: Arc::clone(&limiter),
            lock: Arc::new(Mutex::new(())),
        };
        let (stop, stopped) = mpsc::channel::<()>();
        let w = writer.clone();
        let handle = std::thread::Builder::new()
            .name("usage-flush".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(flush_interval) {
                    if let Err(e) = w.flush() {
                        tracing::warn!(error = %e, "usage counters not flushed; retrying next interval");
                    }
                }
            })
            .map_err(UsageStoreError::Spawn)?;
        Ok(UsageCounters {
            limiter,
            writer,
            flusher: Mutex::new(Some((stop, handle))),
        })
    }

    /// The in-memory limiter (admission, usage reports).
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// Writes every changed counter now; returns how many.
    ///
    /// # Errors
    /// [`UsageStoreError::Write`]; the counters stay dirty and are retried.
    pub fn flush(&self) -> Result<usize, UsageStoreError> {
        self.writer.flush()
    }

    /// The count stored on disk for `account` in `month` (0 when absent).
    ///
    /// # Errors
    /// [`UsageStoreError::Load`] on sled failure.
    pub fn stored(&self, account: &str, month: Month) -> Result<u64, UsageStoreError> {
        let v = self
            .writer
            .tree
            .get(counter_key(month, account))
            .map_err(|source| UsageStoreError::Load {
                month: month.to_string(),
                source,
            })?;
        Ok(v.as_deref().map_or(0, decode))
    }

    /// Stops the flusher and writes the counters a last time. Idempotent.
    ///
    /// # Errors
    /// [`UsageStoreError::Write`] when the last flush fails.
    pub fn shutdown(&self) -> Result<usize, UsageStoreError> {
        let flusher = self
            .flusher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((stop, handle)) = flusher {
            drop(stop);
            if handle.join().is_err() {
                tracing::error!("the usage flusher thread panicked");
            }
        }
        self.writer.flush()
    }
}

impl Drop for UsageCounters {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "usage counters not flushed at shutdown");
        }
    }
}

fn decode(b: &[u8]) -> u64 {
    <[u8; 8]>::try_from(b).map_or(0, u64::from_be_bytes)
}

/// Seeds `limiter` with every counter of `month`; returns how many.
fn load_month(
    tree: &sled::Tree,
    limiter: &Limiter,
    month: Month,
) -> Result<usize, UsageStoreError> {
    let prefix = format!("{month}/");
    let mut n = 0;
    for item in tree.scan_prefix(prefix.as_bytes()) {
        let (k, v) = item.map_err(|source| UsageStoreError::Load {
            month: month.to_string(),
            source,
        })?;
        let Some(account) = std::str::from_utf8(&k[prefix.len()..]).ok() else {
            tracing::warn!(key = ?k, "usage counter with a non-UTF-8 key skipped");
            continue;
        };
        limiter.seed(account, month, decode(&v));
        n += 1;
    }
    Ok(n)
}
