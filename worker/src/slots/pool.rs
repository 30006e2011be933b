//! The pool set: one pool of warm slots per (profile, language), refilled in the
//! background with bounded parallel spawns, and the [`Executor`] that runs an execution on
//! a slot (a fresh one when the pool is empty) and destroys it afterwards.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paddock_shared::exec::{
    ExecStatus, ExecutionRequest, ExecutionResult, MAX_CODE_BYTES, MAX_INPUT_BYTES, PoolStats,
    WorkerStats, error_type,
};
use paddock_shared::model::Language;
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::calls;
use super::namespace::{NamespaceSource, Namespaces};
use super::outcome;
use super::slot::{Job, Slot};
use crate::cgroup::Cgroups;
use crate::executor::Executor;
use crate::jail::Launcher;

/// How long the teardown of a used slot and the refill it triggers wait after the run, so
/// that the result is encoded and written to the client first.
const AFTER_RUN_DELAY: Duration = Duration::from_millis(2);

/// How the pools are sized and started.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Warm slots to keep per `(profile, language)`; missing pairs use `default_target`.
    pub targets: BTreeMap<(String, Language), u32>,
    pub default_target: u32,
    /// Slot start-ups running at once in the background.
    pub refill_parallelism: usize,
    /// How long a slot may take to send `ready`.
    pub start_timeout: Duration,
}

#[derive(Debug)]
struct Pool {
    profile: String,
    language: Language,
    target: u32,
    ready: Mutex<VecDeque<Slot>>,
    starting: AtomicU32,
    spawned_total: AtomicU64,
    failed_total: AtomicU64,
    /// Slots handed to an execution.
    used_total: AtomicU64,
    wake: Notify,
}

#[derive(Debug)]
struct Inner {
    launcher: Launcher,
    cgroups: Arc<Cgroups>,
    pools: BTreeMap<(String, Language), Arc<Pool>>,
    spawn_limit: Semaphore,
    settings: PoolSettings,
    seq: AtomicU64,
    prefix: String,
    in_flight: AtomicU32,
    executions_total: AtomicU64,
    stopping: AtomicBool,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    namespaces: Namespaces,
    /// Where calls to remote MCP tools go (the edge link), once attached.
    remote: std::sync::OnceLock<Arc<dyn calls::RemoteCaller>>,
}

/// Where an execution sits in a chain of function calls: depth 0 is the caller's
/// execution, each call through the worker one more.
#[derive(Debug, Clone, Default)]
pub(super) struct Nesting {
    pub depth: u32,
    /// The execute frame's `context` (a called function's namespace, service, …).
    pub context: Option<Value>,
    /// The top-level execution of a nested call (`None` at depth 0): remote MCP calls
    /// made at any depth use its bridge key.
    pub root_execution_id: Option<String>,
}

/// The pools of one worker (cheap to clone).
#[derive(Debug, Clone)]
pub struct PoolSet {
    inner: Arc<Inner>,
}

fn failed(id: &str, kind: &str, msg: String) -> ExecutionResult {
    ExecutionResult::failed(id, ExecStatus::Failed, kind, msg)
}

impl PoolSet {
    /// Creates one pool per (tier, language), removes stale slot cgroups of earlier runs and
    /// starts the background refill. Must be called inside a tokio runtime.
    pub fn start(launcher: Launcher, cgroups: Arc<Cgroups>, settings: PoolSettings) -> PoolSet {
        let prefix = format!("w{}-", std::process::id());
        let stale = cgroups.sweep_stale(&prefix);
        if stale > 0 {
            tracing::info!(stale, "removed slot cgroups left by an earlier run");
        }
        let mut pools = BTreeMap::new();
        for profile in launcher.profiles().tiers.keys() {
            for language in Language::ALL {
                let key = (profile.clone(), language);
                let target = settings
                    .targets
                    .get(&key)
                    .copied()
                    .unwrap_or(settings.default_target);
                pools.insert(
                    key,
                    Arc::new(Pool {
                        profile: profile.clone(),
                        language,
                        target,
                        ready: Mutex::new(VecDeque::new()),
                        starting: AtomicU32::new(0),
                        spawned_total: AtomicU64::new(0),
                        failed_total: AtomicU64::new(0),
                        used_total: AtomicU64::new(0),
                        wake: Notify::new(),
                    }),
                );
            }
        }
        let inner = Arc::new(Inner {
            launcher,
            cgroups,
            pools,
            spawn_limit: Semaphore::new(settings.refill_parallelism.max(1)),
            settings,
            seq: AtomicU64::new(0),
            prefix,
            in_flight: AtomicU32::new(0),
            executions_total: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            namespaces: Namespaces::new(),
            remote: std::sync::OnceLock::new(),
        });
        for pool in inner.pools.values() {
            if pool.target > 0 {
                let (inner2, pool2) = (inner.clone(), pool.clone());
                inner.tasks.spawn(refill_loop(inner2, pool2));
            }
        }
        PoolSet { inner }
    }

    /// The same pools with `source` for namespaces' functions (see
    /// [`PoolSet::set_namespace_source`]).
    pub fn with_namespace_source(self, source: Arc<dyn NamespaceSource>) -> PoolSet {
        self.set_namespace_source(source);
        self
    }

    /// Sets where executions with a `namespace` get its functions: their code then finds
    /// the `functions` package in its workspace (when it mentions `functions`), and calls
    /// to functions through the worker are served. Without a source, no package is sent
    /// and calls are answered `NotSupported`. Returns false (and keeps the old source)
    /// when one was already set.
    pub fn set_namespace_source(&self, source: Arc<dyn NamespaceSource>) -> bool {
        self.inner.namespaces.set(source)
    }

    /// Sets where calls to remote MCP tools go (the edge link); false (keeping the old
    /// one) when one was already set.
    pub fn set_remote_caller(&self, remote: Arc<dyn calls::RemoteCaller>) -> bool {
        self.inner.remote.set(remote).is_ok()
    }

    /// Where calls to remote MCP tools go, if anywhere.
    pub fn remote_caller(&self) -> Option<Arc<dyn calls::RemoteCaller>> {
        self.inner.remote.get().cloned()
    }

    /// The namespace source, if one is set.
    pub fn namespace_source(&self) -> Option<Arc<dyn NamespaceSource>> {
        self.inner.namespaces.source().cloned()
    }

    /// Waits until every pool holds its target of ready slots, or `timeout` passes.
    /// Returns whether the pools are full.
    pub async fn wait_warm(&self, timeout: Duration) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let full = self
                .inner
                .pools
                .values()
                .all(|p| ready_len(p) >= p.target as usize);
            if full {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops refilling, destroys the warm slots and waits (up to `deadline`) for every slot
    /// cleanup to finish. Returns whether it finished in time.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.shutdown.cancel();
        for pool in self.inner.pools.values() {
            let slots: Vec<Slot> = pool
                .ready
                .lock()
                .map(|mut q| q.drain(..).collect())
                .unwrap_or_default();
            for s in slots {
                let cg = self.inner.cgroups.clone();
                self.inner.tasks.spawn(async move { s.destroy(&cg).await });
            }
        }
        self.inner.tasks.close();
        tokio::time::timeout(deadline, self.inner.tasks.wait())
            .await
            .is_ok()
    }

    /// Slots handed to executions by the pool of `profile`/`language` (0 for no pool).
    pub fn slots_used(&self, profile: &str, language: Language) -> u64 {
        self.inner
            .pools
            .get(&(profile.to_owned(), language))
            .map_or(0, |p| p.used_total.load(Ordering::Relaxed))
    }

    fn slot_name(&self) -> String {
        format!(
            "{}{}",
            self.inner.prefix,
            self.inner.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Starts a slot of `pool`; `on_demand` when an execution is waiting for it.
    async fn fresh_slot(&self, pool: &Pool, on_demand: bool) -> Result<Slot, String> {
        let name = self.slot_name();
        let s = Slot::start(
            &self.inner.launcher,
            &self.inner.cgroups,
            &pool.profile,
            pool.language,
            &name,
            self.inner.settings.start_timeout,
            on_demand,
        )
        .await;
        match s {
            Ok(s) => {
                pool.spawned_total.fetch_add(1, Ordering::Relaxed);
                Ok(s)
            }
            Err(e) => {
                pool.failed_total.fetch_add(1, Ordering::Relaxed);
                Err(e.to_string())
            }
        }
    }

    /// Validates and prepares the request before any slot is used: the code text to send
    /// and the parsed input, or the rejection.
    fn prepare(
        &self,
        req: &ExecutionRequest,
    ) -> Result<(Arc<Pool>, String, Value, u64), Box<ExecutionResult>> {
        let id = &req.execution_id;
        if req.code.trim().is_empty() {
            return Err(Box::new(failed(
                id,
                error_type::INVALID_CODE,
                "the code is empty; send the program to run".into(),
            )));
        }
        if req.code.len() > MAX_CODE_BYTES {
            return Err(Box::new(failed(
                id,
                error_type::INVALID_CODE,
                format!(
                    "the code is {} bytes, over the {} KiB limit; send less code",
                    req.code.len(),
                    MAX_CODE_BYTES / 1024
                ),
            )));
        }
        let Some(tier) = self.inner.launcher.profiles().tier(&req.profile) else {
            let known: Vec<&str> = self
                .inner
                .launcher
                .profiles()
                .tiers
                .keys()
                .map(String::as_str)
                .collect();
            return Err(Box::new(failed(
                id,
                error_type::SANDBOX_FAILURE,
                format!(
                    "unknown sandbox profile {:?}; known profiles: {}",
                    req.profile,
                    known.join(", ")
                ),
            )));
        };
        let Some(pool) = self
            .inner
            .pools
            .get(&(req.profile.clone(), req.language))
            .cloned()
        else {
            return Err(Box::new(failed(
                id,
                error_type::SANDBOX_FAILURE,
                format!("no pool for {}", req.language.as_str()),
            )));
        };
        if req.input_json.len() > MAX_INPUT_BYTES {
            return Err(Box::new(failed(
                id,
                error_type::INVALID_CODE,
                format!("the input is over {} KiB", MAX_INPUT_BYTES / 1024),
            )));
        }
        let input: Value = if req.input_json.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str(&req.input_json).map_err(|e| {
                Box::new(failed(
                    id,
                    error_type::INVALID_CODE,
                    format!("the input is not valid JSON: {e}"),
                ))
            })?
        };
        let code = match req.language {
            Language::Python => req.code.clone(),
            Language::TypeScript => crate::typescript::transform(&req.code).map_err(|e| {
                Box::new(failed(
                    id,
                    error_type::INVALID_CODE,
                    format!("the TypeScript code cannot be compiled: {e}"),
                ))
            })?,
        };
        let timeout_ms = req
            .timeout_ms
            .map_or(tier.wall_timeout_ms, |t| t.clamp(1, tier.wall_timeout_ms));
        Ok((pool, code, input, timeout_ms))
    }

    /// Runs `req` at `nesting` (boxed: a call made by the code runs here again).
    pub(super) fn run_at(
        &self,
        req: ExecutionRequest,
        cancel: CancellationToken,
        nesting: Nesting,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ExecutionResult> + Send + '_>> {
        Box::pin(self.run(req, cancel, nesting))
    }

    async fn run(
        &self,
        req: ExecutionRequest,
        cancel: CancellationToken,
        nesting: Nesting,
    ) -> ExecutionResult {
        let id = req.execution_id.clone();
        let (pool, code, input, timeout_ms) = match self.prepare(&req) {
            Ok(p) => p,
            Err(r) => return *r,
        };
        // The package only when the code can refer to it (cheap test, warm path intact).
        let with_namespace = !req.namespace.is_empty();
        let package = if with_namespace && req.code.contains(crate::package::PACKAGE_DIR) {
            match self.inner.namespaces.package(&req.namespace, req.language) {
                Ok(p) => p,
                Err(e) => {
                    return failed(
                        &id,
                        error_type::SANDBOX_FAILURE,
                        format!("the functions package could not be built: {e}"),
                    );
                }
            }
        } else {
            None
        };
        let (call_handler, nested_calls) = match with_namespace
            .then(|| calls::for_execution(self, &req, &nesting))
            .flatten()
        {
            Some((h, n)) => (Some(h), Some(n)),
            None => (None, None),
        };
        if self.inner.stopping.load(Ordering::SeqCst) {
            return failed(
                &id,
                error_type::SANDBOX_FAILURE,
                "the worker is shutting down; retry on another worker".into(),
            );
        }
        let job = Job {
            execution_id: &id,
            code: &code,
            input: &input,
            timeout: Duration::from_millis(timeout_ms),
            files: package.as_deref().map(|p| &p.files),
            context: nesting.context.as_ref(),
            calls: call_handler,
        };
        // A warm slot when there is one, else a fresh one; a slot that died while waiting
        // (its pipe is broken before it saw the code) is replaced, a few times at most.
        for _ in 0..3 {
            let warm = pool.ready.lock().ok().and_then(|mut q| q.pop_front());
            // Slot lifecycle logs run in the caller's span (the link's `execution` span).
            tracing::debug!(warm = warm.is_some(), profile = %pool.profile, "slot taken");
            if warm.is_none() {
                pool.wake.notify_one();
            }
            let mut slot = match warm {
                Some(s) => s,
                None => {
                    let fresh = tokio::select! {
                        () = cancel.cancelled() => return ExecutionResult::failed(&id, ExecStatus::Canceled,
                            error_type::CANCELED, "the execution was canceled by the caller"),
                        s = self.fresh_slot(&pool, true) => s,
                    };
                    match fresh {
                        Ok(s) => s,
                        Err(e) => {
                            return failed(
                                &id,
                                error_type::SANDBOX_FAILURE,
                                format!("could not start a sandbox: {e}"),
                            );
                        }
                    }
                }
            };
            pool.used_total.fetch_add(1, Ordering::Relaxed);
            let observed = slot.run(&self.inner.cgroups, &job, &cancel).await;
            let (cg, pool2) = (self.inner.cgroups.clone(), pool.clone());
            tracing::debug!(ok = observed.is_ok(), "slot used; destroying it");
            // Teardown and refill wait until the reply has left the worker: the slot's
            // kill and cgroup removal, and the new slot's cgroup and spawn, would
            // otherwise compete with it for the CPU (and, for the spawn, the address space).
            self.inner
                .tasks
                .spawn(tracing::Instrument::in_current_span(async move {
                    tokio::time::sleep(AFTER_RUN_DELAY).await;
                    pool2.wake.notify_one();
                    slot.destroy(&cg).await;
                    tracing::debug!("slot destroyed");
                }));
            match observed {
                Ok(obs) => {
                    let mut r = outcome::build(&id, &obs);
                    // Calls made inside nested (cross-language) executions follow the
                    // execution's own, so `calls` covers the whole call tree.
                    if let Some(n) = nested_calls.as_ref().and_then(|n| n.lock().ok()) {
                        r.calls.extend(n.iter().cloned());
                    }
                    return r;
                }
                Err(e) => {
                    tracing::warn!(execution_id = %id, error = %e, "warm slot was dead; using another")
                }
            }
        }
        failed(
            &id,
            error_type::SANDBOX_FAILURE,
            "sandboxes keep dying before they receive the code".into(),
        )
    }
}

fn ready_len(p: &Pool) -> usize {
    p.ready.lock().map(|q| q.len()).unwrap_or(0)
}

/// Keeps `ready + starting` at the pool's target: each missing slot is started by its own
/// task, at most `refill_parallelism` at once across all pools (the semaphore). A failed
/// start holds its place for an exponential backoff so a broken setup does not spin.
async fn refill_loop(inner: Arc<Inner>, pool: Arc<Pool>) {
    let failures = Arc::new(AtomicU32::new(0));
    loop {
        if inner.shutdown.is_cancelled() {
            return;
        }
        let have = ready_len(&pool) + pool.starting.load(Ordering::SeqCst) as usize;
        if have >= pool.target as usize {
            tokio::select! {
                () = inner.shutdown.cancelled() => return,
                () = pool.wake.notified() => continue,
            }
        }
        pool.starting.fetch_add(1, Ordering::SeqCst);
        let (inner2, pool2, failures2) = (inner.clone(), pool.clone(), failures.clone());
        inner.tasks.spawn(async move {
            start_one(&inner2, &pool2, &failures2).await;
            pool2.starting.fetch_sub(1, Ordering::SeqCst);
            pool2.wake.notify_one();
        });
    }
}

async fn start_one(inner: &Arc<Inner>, pool: &Arc<Pool>, failures: &AtomicU32) {
    let permit = tokio::select! {
        () = inner.shutdown.cancelled() => return,
        p = inner.spawn_limit.acquire() => match p { Ok(p) => p, Err(_) => return },
    };
    let set = PoolSet {
        inner: inner.clone(),
    };
    let started = set.fresh_slot(pool, false).await;
    drop(permit);
    match started {
        Ok(slot) if !inner.shutdown.is_cancelled() => {
            failures.store(0, Ordering::SeqCst);
            if let Ok(mut q) = pool.ready.lock() {
                q.push_back(slot);
            }
        }
        Ok(slot) => slot.destroy(&inner.cgroups).await,
        Err(e) => {
            let n = failures.fetch_add(1, Ordering::SeqCst).min(7);
            let backoff = Duration::from_millis(100 << n);
            tracing::warn!(profile = %pool.profile, language = pool.language.as_str(), error = %e,
                backoff_ms = backoff.as_millis() as u64, "slot start failed");
            tokio::select! {
                () = inner.shutdown.cancelled() => {}
                () = tokio::time::sleep(backoff) => {}
            }
        }
    }
}

impl Executor for PoolSet {
    async fn execute(
        &self,
        request: ExecutionRequest,
        cancel: CancellationToken,
    ) -> ExecutionResult {
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let r = self.run(request, cancel, Nesting::default()).await;
        self.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.inner.executions_total.fetch_add(1, Ordering::Relaxed);
        r
    }

    fn attach_remote(&self, remote: Arc<dyn calls::RemoteCaller>) -> bool {
        self.set_remote_caller(remote)
    }

    fn stats(&self) -> WorkerStats {
        WorkerStats {
            in_flight: self.inner.in_flight.load(Ordering::SeqCst),
            executions_total: self.inner.executions_total.load(Ordering::Relaxed),
            pools: self
                .inner
                .pools
                .values()
                .map(|p| PoolStats {
                    profile: p.profile.clone(),
                    language: p.language,
                    target: p.target,
                    ready: ready_len(p) as u32,
                    starting: p.starting.load(Ordering::SeqCst),
                    spawned_total: p.spawned_total.load(Ordering::Relaxed),
                    failed_total: p.failed_total.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }
}
