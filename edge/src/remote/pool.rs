//! The pool of rmcp clients: one per (namespace, server), connected lazily on first use,
//! shared by concurrent calls, replaced when the server's generation changes (URL or
//! credentials changed) or its connection broke, and dropped when idle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::client::Client;

/// Default idle time after which a pooled connection is closed.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);

type Key = (String, String);

/// One pooled connection.
pub struct Conn {
    pub generation: u64,
    pub client: Client,
    last_used: AtomicU64,
}

impl Conn {
    fn touch(&self, epoch: Instant) {
        let ms = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_used.store(ms, Ordering::Relaxed);
    }
}

/// A per-server slot: connecting holds its lock, so one connect runs per server.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Conn>>>>;

/// The pool.
pub struct Pool {
    slots: Mutex<HashMap<Key, Slot>>,
    idle: Duration,
    epoch: Instant,
    connects: AtomicU64,
}

impl Pool {
    /// An empty pool closing connections idle for `idle`.
    pub fn new(idle: Duration) -> Pool {
        Pool {
            slots: Mutex::new(HashMap::new()),
            idle,
            epoch: Instant::now(),
            connects: AtomicU64::new(0),
        }
    }

    fn slot(&self, ns: &str, name: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots
            .entry((ns.to_owned(), name.to_owned()))
            .or_default()
            .clone()
    }

    /// The pooled connection of generation `generation`, or a new one made by `connect`.
    ///
    /// # Errors
    /// The error of `connect`.
    pub async fn get<E, F>(
        &self,
        ns: &str,
        name: &str,
        generation: u64,
        connect: F,
    ) -> Result<Arc<Conn>, E>
    where
        F: AsyncFnOnce() -> Result<Client, E>,
    {
        let slot = self.slot(ns, name);
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref()
            && c.generation == generation
            && !c.client.is_closed()
        {
            c.touch(self.epoch);
            return Ok(c.clone());
        }
        // Replace a stale or broken connection.
        *guard = None;
        let client = connect().await?;
        self.connects.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            generation,
            client,
            last_used: AtomicU64::new(0),
        });
        conn.touch(self.epoch);
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the pooled connection of a server if it is `conn` (after a connection error).
    pub async fn discard(&self, ns: &str, name: &str, conn: &Arc<Conn>) {
        let slot = self.slot(ns, name);
        let mut guard = slot.lock().await;
        if guard.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *guard = None;
        }
    }

    /// Drops a server's connection (the server changed or was removed).
    pub fn forget(&self, ns: &str, name: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.remove(&(ns.to_owned(), name.to_owned()));
    }

    /// Closes connections idle for longer than the idle time; returns how many.
    pub fn reap(&self) -> usize {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let idle_ms = u64::try_from(self.idle.as_millis()).unwrap_or(u64::MAX);
        let slots: Vec<Slot> = {
            let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots.values().cloned().collect()
        };
        let mut n = 0;
        for slot in slots {
            // A slot busy connecting is not idle.
            if let Ok(mut guard) = slot.try_lock()
                && guard.as_ref().is_some_and(|c| {
                    Arc::strong_count(c) == 1
                        && now.saturating_sub(c.last_used.load(Ordering::Relaxed)) >= idle_ms
                })
            {
                *guard = None;
                n += 1;
            }
        }
        n
    }

    /// How many connections were made so far.
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// How many connections are open.
    pub fn open(&self) -> usize {
        let slots: Vec<Slot> = {
            let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots.values().cloned().collect()
        };
        slots
            .iter()
            .filter(|s| s.try_lock().map_or(true, |g| g.is_some()))
            .count()
    }

    /// The idle time.
    pub fn idle(&self) -> Duration {
        self.idle
    }
}
