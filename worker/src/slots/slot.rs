//! One slot: a jailed runner started ahead of time in its own cgroup, past interpreter
//! start-up and blocked on its pipe; it serves exactly one execution and is destroyed.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paddock_shared::exec::MAX_STDERR_BYTES;
use paddock_shared::model::Language;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_util::sync::CancellationToken;

use super::calls::{CallHandler, call_reply, not_supported};
use super::frame::{FrameError, read_frame, write_frame};
use super::outcome::{Ended, Observed};
use crate::cgroup::{CgroupError, Cgroups, Limits, SlotCgroup};
use crate::jail::Launcher;

/// Why a slot could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("unknown profile {0:?}")]
    UnknownProfile(String),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("spawning nsjail: {0}")]
    Spawn(std::io::Error),
    #[error("slot did not become ready within {0:?}")]
    StartTimeout(Duration),
    #[error("slot exited before it was ready: {0}")]
    NotReady(String),
    #[error("slot protocol: {0}")]
    Frame(#[from] FrameError),
}

/// What fd 2 of the slot produced, capped.
#[derive(Debug, Default)]
struct Fd2 {
    bytes: Vec<u8>,
    truncated: bool,
}

/// A warm slot.
#[derive(Debug)]
pub struct Slot {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    fd2: Arc<Mutex<Fd2>>,
    fd2_task: tokio::task::JoinHandle<()>,
    cgroup: SlotCgroup,
    /// The tier this slot was started for.
    pub profile: String,
    pub language: Language,
    memory_mb: u64,
    pids: u64,
    /// CPU the slot had used when it sent `ready` (interpreter start-up), read then so the
    /// execution path does not read it.
    cpu_base_ns: u64,
}

/// The parameters of one execution on a slot.
pub struct Job<'a> {
    pub execution_id: &'a str,
    pub code: &'a str,
    pub input: &'a Value,
    pub timeout: Duration,
    /// The execute frame's `files` (the functions package), if any.
    pub files: Option<&'a BTreeMap<String, String>>,
    /// The execute frame's `context` (`execution_id` is added when missing).
    pub context: Option<&'a Value>,
    /// Who answers the runner's `call` frames; `None` answers every call `NotSupported`.
    pub calls: Option<Arc<dyn CallHandler>>,
}

impl std::fmt::Debug for Job<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("execution_id", &self.execution_id)
            .field("timeout", &self.timeout)
            .field("files", &self.files.map(BTreeMap::len))
            .field("calls", &self.calls.is_some())
            .finish_non_exhaustive()
    }
}

impl Slot {
    /// Starts a slot of `profile`/`language` in a fresh cgroup named `name` and waits for its
    /// `ready` frame. `on_demand`: an execution is waiting for this slot (no warm-up).
    ///
    /// # Errors
    /// Unknown profile, cgroup, spawn or start-up failures (the cgroup is removed again).
    pub async fn start(
        launcher: &Launcher,
        cgroups: &Arc<Cgroups>,
        profile: &str,
        language: Language,
        name: &str,
        start_timeout: Duration,
        on_demand: bool,
    ) -> Result<Slot, SlotError> {
        let tier = launcher
            .profiles()
            .tier(profile)
            .ok_or_else(|| SlotError::UnknownProfile(profile.to_owned()))?;
        let mut cmd = launcher
            .command(profile, language, on_demand)
            .ok_or_else(|| SlotError::UnknownProfile(profile.to_owned()))?;
        // +1 pid for nsjail itself, which lives in the cgroup too.
        let limits = Limits {
            memory_bytes: tier.memory_mb * 1024 * 1024,
            pids: tier.pids + 1,
        };
        let (memory_mb, pids) = (tier.memory_mb, tier.pids);
        let cgroup = cgroups.create(name, limits)?;
        let files = match cgroup.open_procs_files() {
            Ok(f) => f,
            Err(e) => {
                let _ = cgroups.destroy(&cgroup);
                return Err(e.into());
            }
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        crate::sys::join_cgroups_before_exec(&mut cmd, files);
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let spawned = cmd.spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = cgroups.destroy(&cgroup);
                return Err(SlotError::Spawn(e));
            }
        };
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = cgroups.destroy(&cgroup);
            return Err(SlotError::Spawn(std::io::Error::other(
                "missing stdio pipe",
            )));
        };
        let fd2 = Arc::new(Mutex::new(Fd2::default()));
        let sink = fd2.clone();
        let fd2_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let Ok(mut s) = sink.lock() else { break };
                        let room = MAX_STDERR_BYTES.saturating_sub(s.bytes.len());
                        s.bytes.extend_from_slice(&buf[..n.min(room)]);
                        s.truncated |= n > room;
                    }
                }
            }
        });
        let mut slot = Slot {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            fd2,
            fd2_task,
            cgroup,
            profile: profile.to_owned(),
            language,
            memory_mb,
            pids,
            cpu_base_ns: 0,
        };
        let ready = tokio::time::timeout(start_timeout, read_frame(&mut slot.stdout)).await;
        let failure = match ready {
            Ok(Ok(Some(f))) if f.get("type").and_then(Value::as_str) == Some("ready") => {
                // After `ready` the runner blocks on its pipe: nothing it does until the
                // execute frame arrives uses CPU, so this is the hand-over baseline.
                slot.cpu_base_ns = cgroups.cpu_ns(&slot.cgroup);
                return Ok(slot);
            }
            Ok(Ok(Some(f))) => SlotError::NotReady(format!("expected `ready`, got {f}")),
            Ok(Ok(None)) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), slot.child.wait()).await;
                let _ = tokio::time::timeout(Duration::from_secs(1), &mut slot.fd2_task).await;
                let text = slot
                    .fd2
                    .lock()
                    .map(|s| String::from_utf8_lossy(&s.bytes).into_owned())
                    .unwrap_or_default();
                SlotError::NotReady(format!("runner exited: {}", text.trim()))
            }
            Ok(Err(e)) => e.into(),
            Err(_) => SlotError::StartTimeout(start_timeout),
        };
        slot.destroy(cgroups).await;
        Err(failure)
    }

    /// Runs one execution: sends `execute`, answers `call` frames (through `job.calls`,
    /// concurrently with the timeout and cancel), waits
    /// for `result` until the timeout or a cancel, killing the slot's cgroup when it has to.
    /// Returns what was observed; the slot is then only good for [`Slot::destroy`].
    ///
    /// # Errors
    /// Sending the `execute` frame failed (the slot was dead before it got the code; the
    /// caller may use another slot).
    pub async fn run(
        &mut self,
        cgroups: &Arc<Cgroups>,
        job: &Job<'_>,
        cancel: &CancellationToken,
    ) -> Result<Observed, FrameError> {
        let cpu_base_ns = self.cpu_base_ns;
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + job.timeout;
        let mut context = match job.context {
            Some(Value::Object(m)) => m.clone(),
            _ => serde_json::Map::new(),
        };
        context
            .entry("execution_id")
            .or_insert_with(|| Value::String(job.execution_id.to_owned()));
        let frame = json!({
            "type": "execute",
            "execution_id": job.execution_id,
            "code": job.code,
            "input": job.input,
            "timeout_ms": job.timeout.as_millis() as u64,
            "files": job.files.map_or_else(|| json!({}), |f| json!(f)),
            "context": context,
        });
        write_frame(&mut self.stdin, &frame).await?;
        // Calls under way (nested executions); they get a child of the cancel token, which
        // is canceled when this run ends, and are left to finish their own cleanup.
        let call_cancel = cancel.child_token();
        let mut pending: tokio::task::JoinSet<Value> = tokio::task::JoinSet::new();
        let ended = loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break Ended::Canceled,
                () = tokio::time::sleep_until(deadline) => break Ended::Timeout,
                Some(done) = pending.join_next(), if !pending.is_empty() => {
                    let Ok(reply) = done else { continue };
                    if write_frame(&mut self.stdin, &reply).await.is_err() {
                        break Ended::Eof;
                    }
                }
                f = read_frame(&mut self.stdout) => match f {
                    Ok(Some(v)) => match v.get("type").and_then(Value::as_str) {
                        Some("result") => break Ended::Result(v),
                        Some("call") => {
                            let id = v.get("id").cloned().unwrap_or(Value::Null);
                            match &job.calls {
                                Some(h) => {
                                    let target = v.get("target").and_then(Value::as_str).unwrap_or_default().to_owned();
                                    let args = v.get("args").cloned().unwrap_or(Value::Null);
                                    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                                    let fut = h.call(&target, args, remaining, call_cancel.clone());
                                    pending.spawn(async move { call_reply(id, fut.await) });
                                }
                                None => {
                                    let reply = call_reply(id, Err(not_supported(
                                        "calls from sandboxed code are not available for this execution")));
                                    if write_frame(&mut self.stdin, &reply).await.is_err() {
                                        break Ended::Eof;
                                    }
                                }
                            }
                        }
                        Some(other) => break Ended::Protocol(format!("unexpected `{other}` frame")),
                        None => break Ended::Protocol("frame without type".into()),
                    },
                    Ok(None) => break Ended::Eof,
                    Err(e) => break Ended::Protocol(e.to_string()),
                },
            }
        };
        call_cancel.cancel();
        pending.detach_all();
        let duration = started.elapsed();
        let mut exit_code = None;
        match &ended {
            Ended::Result(_) => {}
            Ended::Eof => {
                // The runner died on its own: collect nsjail's status (signal or code).
                match tokio::time::timeout(Duration::from_secs(3), self.child.wait()).await {
                    Ok(Ok(st)) => exit_code = st.code(),
                    _ => self.kill(cgroups).await,
                }
            }
            _ => self.kill(cgroups).await,
        }
        // A completed result needs only the usage counters; every other end also reads
        // the OOM and pids counters that explain it.
        let completed = matches!(&ended, Ended::Result(v)
            if v.get("status").and_then(Value::as_str) == Some("completed"));
        let measured = if completed {
            cgroups.measure_usage(&self.cgroup)
        } else {
            cgroups.measure(&self.cgroup)
        };
        if !matches!(ended, Ended::Result(_)) {
            // Everything is dead now: collect the rest of fd 2.
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.fd2_task).await;
        }
        let (fd2, fd2_truncated) = self
            .fd2
            .lock()
            .map(|mut s| (std::mem::take(&mut s.bytes), s.truncated))
            .unwrap_or_default();
        Ok(Observed {
            ended,
            exit_code,
            measured,
            cpu_base_ns,
            fd2,
            fd2_truncated,
            duration,
            timeout_ms: job.timeout.as_millis() as u64,
            memory_mb: self.memory_mb,
            pids: self.pids,
        })
    }

    async fn kill(&mut self, cgroups: &Arc<Cgroups>) {
        let cg = cgroups.clone();
        let slot_cg = self.cgroup.clone();
        let _ = tokio::task::spawn_blocking(move || cg.kill_all(&slot_cg, Duration::from_secs(5)))
            .await;
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }

    /// Kills whatever is left and removes the cgroup.
    pub async fn destroy(mut self, cgroups: &Arc<Cgroups>) {
        let _ = self.child.start_kill();
        let cg = cgroups.clone();
        let slot_cg = self.cgroup.clone();
        let res = tokio::task::spawn_blocking(move || cg.destroy(&slot_cg)).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        self.fd2_task.abort();
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "slot cgroup not removed"),
            Err(e) => tracing::warn!(error = %e, "slot cleanup task failed"),
        }
    }
}
