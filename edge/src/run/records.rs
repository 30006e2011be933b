//! The execution-record writer: a bounded queue and one background thread that writes
//! [`ExecutionRecord`]s into sled and trims each namespace to the retention cap, so the
//! hot path never waits on the disk. A full queue drops the record (and says so in the
//! log) rather than slow executions down.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use crate::store::Store;
use crate::store::executions::ExecutionRecord;

/// Default number of records kept per namespace.
pub const DEFAULT_RETENTION_PER_NAMESPACE: usize = 10_000;
/// Default capacity of the writer's queue.
pub const DEFAULT_RECORD_QUEUE: usize = 4_096;

enum Msg {
    Record(Box<ExecutionRecord>),
    /// Answered once every message before it is written (tests, shutdown).
    Sync(SyncSender<()>),
}

/// Handle on the writer thread; the thread ends when every handle is dropped.
#[derive(Clone)]
pub struct RecordWriter {
    tx: SyncSender<Msg>,
}

impl RecordWriter {
    /// Starts the writer thread.
    ///
    /// # Errors
    /// The I/O error when the thread cannot be spawned.
    pub fn start(store: Store, retention: usize, queue: usize) -> std::io::Result<RecordWriter> {
        let (tx, rx) = sync_channel(queue.max(1));
        std::thread::Builder::new()
            .name("exec-records".into())
            .spawn(move || run(&store, retention.max(1), &rx))?;
        Ok(RecordWriter { tx })
    }

    /// Queues a record; drops it (with a warning) when the queue is full.
    pub fn record(&self, r: ExecutionRecord) {
        match self.tx.try_send(Msg::Record(Box::new(r))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!("execution-record queue full; one record dropped");
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!("execution-record writer stopped; one record dropped");
            }
        }
    }

    /// Waits until everything queued before this call is written (blocking).
    pub fn sync(&self) {
        let (tx, rx) = sync_channel(1);
        if self.tx.send(Msg::Sync(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

fn run(store: &Store, retention: usize, rx: &Receiver<Msg>) {
    // Records per namespace, counted once on first sight and kept up to date after.
    let mut counts: HashMap<String, usize> = HashMap::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Sync(done) => {
                let _ = done.send(());
            }
            Msg::Record(r) => {
                if let Err(e) = write(store, retention, &mut counts, &r) {
                    tracing::warn!(error = %e, execution_id = %r.execution_id, "cannot record an execution");
                }
            }
        }
    }
}

fn write(
    store: &Store,
    retention: usize,
    counts: &mut HashMap<String, usize>,
    r: &ExecutionRecord,
) -> Result<(), crate::store::StoreError> {
    let count = match counts.get_mut(&r.namespace) {
        Some(c) => c,
        None => {
            let n = store.count_executions(&r.namespace)?;
            counts.entry(r.namespace.clone()).or_insert(n)
        }
    };
    store.put_execution(r)?;
    *count += 1;
    if *count > retention {
        let gone = store.trim_executions(&r.namespace, *count - retention)?;
        *count -= gone;
    }
    Ok(())
}
