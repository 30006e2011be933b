//! Per-slot cgroups (v1 or v2, detected at start-up): create with memory and pids limits,
//! hand the `cgroup.procs` files to the spawner, read peak memory / CPU / OOM kills / pids
//! hits, kill everything inside and remove. File access goes through [`CgroupFs`] so the
//! sequencing is tested with a fake that records calls.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The parent cgroup the worker creates under each hierarchy.
pub const PARENT_NAME: &str = "paddock";

/// Failed cgroup operations, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no usable cgroup hierarchy: {0}")]
    NoHierarchy(String),
    #[error("creating cgroup {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("removing cgroup {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cgroup {path} still has processes after kill")]
    NotEmpty { path: PathBuf },
}

/// The filesystem operations cgroups need.
pub trait CgroupFs: Send + Sync + 'static {
    fn mkdir(&self, path: &Path) -> std::io::Result<()>;
    fn write(&self, path: &Path, value: &str) -> std::io::Result<()>;
    fn read(&self, path: &Path) -> std::io::Result<String>;
    fn rmdir(&self, path: &Path) -> std::io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    fn kill(&self, pid: i32) -> std::io::Result<()>;
    /// Opens a counter file once for repeated reads at offset 0 (see [`SlotCgroup`]);
    /// `None` (the default) makes every read go through [`CgroupFs::read`] by path.
    fn open_counter(&self, _path: &Path) -> Option<File> {
        None
    }
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl CgroupFs for RealFs {
    fn mkdir(&self, path: &Path) -> std::io::Result<()> {
        match std::fs::create_dir(path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            r => r,
        }
    }
    fn write(&self, path: &Path, value: &str) -> std::io::Result<()> {
        std::fs::write(path, value)
    }
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn rmdir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn kill(&self, pid: i32) -> std::io::Result<()> {
        crate::sys::kill(pid, libc::SIGKILL)
    }
    fn open_counter(&self, path: &Path) -> Option<File> {
        File::open(path).ok()
    }
}

/// Reads a whole (small) cgroup file through an open descriptor: `pread` at offset 0
/// regenerates a kernfs/seq_file from the start, so one descriptor serves every read
/// without the path walk, open and close (~1 µs instead of ~45 µs per counter).
fn pread_text(f: &File) -> std::io::Result<String> {
    let mut buf = [0u8; 512];
    let n = f.read_at(&mut buf, 0)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Which cgroup layout is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// v1: one parent per controller (`memory`, `pids`, `cpuacct`).
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpuacct: PathBuf,
        memsw: bool,
    },
    /// v2: one parent with memory, pids and cpu enabled for its children.
    V2 { parent: PathBuf },
}

/// Limits for one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: u64,
    pub pids: u64,
}

/// What a slot's cgroup measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measured {
    pub peak_memory_bytes: u64,
    pub cpu_ns: u64,
    pub oom_kills: u64,
    pub pids_limit_hits: u64,
}

/// The cgroup manager: detects the layout, creates the parents, makes per-slot cgroups.
#[derive(Debug)]
pub struct Cgroups<F: CgroupFs = RealFs> {
    fs: F,
    layout: Layout,
}

/// One slot's cgroup (its directory in every hierarchy of the layout).
#[derive(Debug, Clone)]
pub struct SlotCgroup {
    /// The directories: one for v2, memory/pids/cpuacct for v1.
    pub dirs: Vec<PathBuf>,
    v2: bool,
    /// The counter files, opened when the cgroup is made (off the execution path) and
    /// read with `pread` after each run; indexed by [`Counter`].
    counters: Arc<[Option<File>; COUNTERS]>,
}

impl PartialEq for SlotCgroup {
    fn eq(&self, other: &Self) -> bool {
        self.dirs == other.dirs && self.v2 == other.v2
    }
}

impl Eq for SlotCgroup {}

/// The counters read from a slot's cgroup.
#[derive(Debug, Clone, Copy)]
enum Counter {
    Peak = 0,
    Cpu = 1,
    Oom = 2,
    PidsEvents = 3,
}

const COUNTERS: usize = 4;
const ALL_COUNTERS: [Counter; COUNTERS] = [
    Counter::Peak,
    Counter::Cpu,
    Counter::Oom,
    Counter::PidsEvents,
];

impl SlotCgroup {
    /// The files a new process writes `0` into to join (see `sys::join_cgroups_before_exec`).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Opens the `cgroup.procs` files for writing.
    ///
    /// # Errors
    /// A file that cannot be opened.
    pub fn open_procs_files(&self) -> Result<Vec<File>, CgroupError> {
        self.procs_files()
            .into_iter()
            .map(|p| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(|source| CgroupError::Write {
                        path: p,
                        value: "0".into(),
                        source,
                    })
            })
            .collect()
    }
}

fn first_number(text: &str) -> u64 {
    text.split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

fn keyed(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some(key)).then(|| it.next().and_then(|v| v.parse().ok()).unwrap_or(0))
        })
        .unwrap_or(0)
}

impl Cgroups<RealFs> {
    /// Detects v2 (controllers available in the unified root) or v1 and creates the parents.
    ///
    /// # Errors
    /// No usable hierarchy, or a parent that cannot be created.
    pub fn detect() -> Result<Cgroups<RealFs>, CgroupError> {
        Cgroups::detect_with(RealFs, Path::new(CGROUP_ROOT))
    }
}

impl<F: CgroupFs> Cgroups<F> {
    /// Detection with an explicit filesystem and root (tests).
    ///
    /// # Errors
    /// See [`Cgroups::detect`].
    pub fn detect_with(fs: F, root: &Path) -> Result<Cgroups<F>, CgroupError> {
        let ctrl_file = root.join("cgroup.controllers");
        if fs.exists(&ctrl_file) {
            let ctrls = fs.read(&ctrl_file).map_err(|source| CgroupError::Read {
                path: ctrl_file.clone(),
                source,
            })?;
            let has = |c: &str| ctrls.split_whitespace().any(|x| x == c);
            if has("memory") && has("pids") {
                let parent = root.join(PARENT_NAME);
                fs.mkdir(&parent).map_err(|source| CgroupError::Create {
                    path: parent.clone(),
                    source,
                })?;
                let want = if has("cpu") {
                    "+memory +pids +cpu"
                } else {
                    "+memory +pids"
                };
                for dir in [root, parent.as_path()] {
                    let f = dir.join("cgroup.subtree_control");
                    fs.write(&f, want).map_err(|source| CgroupError::Write {
                        path: f,
                        value: want.into(),
                        source,
                    })?;
                }
                return Ok(Cgroups {
                    fs,
                    layout: Layout::V2 { parent },
                });
            }
        }
        let memory = root.join("memory");
        let pids = root.join("pids");
        let cpuacct = root.join("cpuacct");
        if fs.exists(&memory.join("memory.limit_in_bytes")) && fs.exists(&pids.join("cgroup.procs"))
        {
            let memsw = fs.exists(&memory.join("memory.memsw.limit_in_bytes"));
            let layout = Layout::V1 {
                memory: memory.join(PARENT_NAME),
                pids: pids.join(PARENT_NAME),
                cpuacct: cpuacct.join(PARENT_NAME),
                memsw,
            };
            let cg = Cgroups { fs, layout };
            for p in cg.parents() {
                cg.fs.mkdir(&p).map_err(|source| CgroupError::Create {
                    path: p.clone(),
                    source,
                })?;
            }
            return Ok(cg);
        }
        Err(CgroupError::NoHierarchy(format!(
            "{} has neither cgroup v2 with memory+pids controllers nor v1 memory and pids hierarchies",
            root.display()
        )))
    }

    /// The detected layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn parents(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V1 {
                memory,
                pids,
                cpuacct,
                ..
            } => {
                let mut v = vec![memory.clone(), pids.clone()];
                if self.fs.exists(cpuacct.parent().unwrap_or(Path::new("/"))) {
                    v.push(cpuacct.clone());
                }
                v
            }
            Layout::V2 { parent } => vec![parent.clone()],
        }
    }

    fn write(&self, path: PathBuf, value: &str) -> Result<(), CgroupError> {
        self.fs
            .write(&path, value)
            .map_err(|source| CgroupError::Write {
                path,
                value: value.to_owned(),
                source,
            })
    }

    /// Creates the slot's cgroup `name` with its limits (swap counted in the memory limit).
    ///
    /// # Errors
    /// A directory or limit file that cannot be written.
    pub fn create(&self, name: &str, limits: Limits) -> Result<SlotCgroup, CgroupError> {
        let dirs: Vec<PathBuf> = self.parents().into_iter().map(|p| p.join(name)).collect();
        for d in &dirs {
            self.fs.mkdir(d).map_err(|source| CgroupError::Create {
                path: d.clone(),
                source,
            })?;
        }
        let mem = limits.memory_bytes.to_string();
        let pids = limits.pids.to_string();
        match &self.layout {
            Layout::V1 { memsw, .. } => {
                self.write(dirs[0].join("memory.limit_in_bytes"), &mem)?;
                if *memsw {
                    self.write(dirs[0].join("memory.memsw.limit_in_bytes"), &mem)?;
                }
                self.write(dirs[1].join("pids.max"), &pids)?;
            }
            Layout::V2 { .. } => {
                self.write(dirs[0].join("memory.max"), &mem)?;
                let swap = dirs[0].join("memory.swap.max");
                if self.fs.exists(&swap) {
                    self.write(swap, "0")?;
                }
                self.write(dirs[0].join("pids.max"), &pids)?;
            }
        }
        let mut cg = SlotCgroup {
            dirs,
            v2: matches!(self.layout, Layout::V2 { .. }),
            counters: Arc::new([None, None, None, None]),
        };
        let files = ALL_COUNTERS.map(|c| {
            self.counter_file(&cg, c)
                .and_then(|(path, _)| self.fs.open_counter(&path))
        });
        cg.counters = Arc::new(files);
        Ok(cg)
    }

    /// Where counter `c` of `cg` lives and the key of its line (`None`: the first number).
    fn counter_file(&self, cg: &SlotCgroup, c: Counter) -> Option<(PathBuf, Option<&'static str>)> {
        let d = cg.dirs.first()?;
        if cg.v2 {
            return Some(match c {
                Counter::Peak => (d.join("memory.peak"), None),
                Counter::Cpu => (d.join("cpu.stat"), Some("usage_usec")),
                Counter::Oom => (d.join("memory.events"), Some("oom_kill")),
                Counter::PidsEvents => (d.join("pids.events"), Some("max")),
            });
        }
        Some(match c {
            Counter::Peak => (d.join("memory.max_usage_in_bytes"), None),
            Counter::Cpu => (cg.dirs.get(2)?.join("cpuacct.usage"), None),
            Counter::Oom => (d.join("memory.oom_control"), Some("oom_kill")),
            Counter::PidsEvents => (cg.dirs.get(1)?.join("pids.events"), Some("max")),
        })
    }

    /// Counter `c` of `cg` (0 when it cannot be read), through its open descriptor when
    /// there is one.
    fn read_counter(&self, cg: &SlotCgroup, c: Counter) -> u64 {
        let Some((path, key)) = self.counter_file(cg, c) else {
            return 0;
        };
        let text = match &cg.counters[c as usize] {
            Some(f) => pread_text(f),
            None => self.fs.read(&path),
        };
        let n = match (text, key) {
            (Ok(t), Some(k)) => keyed(&t, k),
            (Ok(t), None) => first_number(&t),
            (Err(_), _) => 0,
        };
        if cg.v2 && matches!(c, Counter::Cpu) {
            n * 1000
        } else {
            n
        }
    }

    /// CPU used by the slot so far, in nanoseconds (the hand-over baseline).
    pub fn cpu_ns(&self, cg: &SlotCgroup) -> u64 {
        self.read_counter(cg, Counter::Cpu)
    }

    /// Reads what the slot used so far (missing counters read as 0).
    pub fn measure(&self, cg: &SlotCgroup) -> Measured {
        Measured {
            peak_memory_bytes: self.read_counter(cg, Counter::Peak),
            cpu_ns: self.read_counter(cg, Counter::Cpu),
            oom_kills: self.read_counter(cg, Counter::Oom),
            pids_limit_hits: self.read_counter(cg, Counter::PidsEvents),
        }
    }

    /// Only the usage counters (peak memory, CPU): what a run that ended with a
    /// completed result needs; the OOM and pids counters read as 0.
    pub fn measure_usage(&self, cg: &SlotCgroup) -> Measured {
        Measured {
            peak_memory_bytes: self.read_counter(cg, Counter::Peak),
            cpu_ns: self.read_counter(cg, Counter::Cpu),
            oom_kills: 0,
            pids_limit_hits: 0,
        }
    }

    fn pids_in(&self, cg: &SlotCgroup) -> Vec<i32> {
        let mut out = Vec::new();
        for f in cg.procs_files() {
            if let Ok(t) = self.fs.read(&f) {
                out.extend(t.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// SIGKILLs every process in the cgroup (`cgroup.kill` on v2 when present), repeating
    /// until it is empty or `deadline` passes.
    ///
    /// # Errors
    /// Processes still present at the deadline.
    pub fn kill_all(&self, cg: &SlotCgroup, deadline: Duration) -> Result<(), CgroupError> {
        let until = Instant::now() + deadline;
        let kill_file = cg.dirs[0].join("cgroup.kill");
        let mut first = true;
        loop {
            let pids = self.pids_in(cg);
            if pids.is_empty() {
                return Ok(());
            }
            if cg.v2 && self.fs.exists(&kill_file) {
                self.write(kill_file.clone(), "1")?;
            } else {
                for p in pids {
                    let _ = self.fs.kill(p);
                }
            }
            if Instant::now() >= until {
                return Err(CgroupError::NotEmpty {
                    path: cg.dirs[0].clone(),
                });
            }
            if !first {
                std::thread::yield_now();
                std::thread::sleep(Duration::from_millis(1));
            }
            first = false;
        }
    }

    /// Kills what is left and removes the slot's directories.
    ///
    /// # Errors
    /// Processes that survive the kill, or a directory that cannot be removed.
    pub fn destroy(&self, cg: &SlotCgroup) -> Result<(), CgroupError> {
        self.kill_all(cg, Duration::from_secs(5))?;
        for d in cg.dirs.iter().rev() {
            let mut tries = 0;
            loop {
                match self.fs.rmdir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    // EBUSY right after the last process exited: the kernel is still tearing down.
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(source) => {
                        return Err(CgroupError::Remove {
                            path: d.clone(),
                            source,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes slot cgroups left by earlier worker runs: names `w<pid>-<n>` whose worker pid
    /// is gone (names starting with `keep_prefix` are this run's; a live worker's are left
    /// alone). Returns how many were removed.
    pub fn sweep_stale(&self, keep_prefix: &str) -> usize {
        let mut removed = 0;
        let parents = self.parents();
        let Some(first) = parents.first() else {
            return 0;
        };
        let Ok(entries) = std::fs::read_dir(first) else {
            return 0;
        };
        for e in entries.flatten() {
            if !e.path().is_dir() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(keep_prefix) || owner_alive(&name) {
                continue;
            }
            let cg = SlotCgroup {
                dirs: parents.iter().map(|p| p.join(&name)).collect(),
                v2: matches!(self.layout, Layout::V2 { .. }),
                counters: Arc::new([None, None, None, None]),
            };
            if self.destroy(&cg).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// Whether the worker that named a slot cgroup `w<pid>-<n>` is still running.
fn owner_alive(name: &str) -> bool {
    let pid = name
        .strip_prefix('w')
        .and_then(|r| r.split('-').next())
        .and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(pid) => Path::new(&format!("/proc/{pid}")).exists(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// Records every call; files hold what was written or seeded.
    #[derive(Debug, Default)]
    struct FakeFs {
        files: Mutex<BTreeMap<PathBuf, String>>,
        calls: Mutex<Vec<String>>,
    }

    impl FakeFs {
        fn seed(&self, p: &str, v: &str) {
            self.files
                .lock()
                .expect("lock")
                .insert(PathBuf::from(p), v.to_owned());
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().expect("lock").clone()
        }
    }

    impl CgroupFs for std::sync::Arc<FakeFs> {
        fn mkdir(&self, path: &Path) -> std::io::Result<()> {
            self.calls
                .lock()
                .expect("lock")
                .push(format!("mkdir {}", path.display()));
            self.files
                .lock()
                .expect("lock")
                .insert(path.to_owned(), String::new());
            Ok(())
        }
        fn write(&self, path: &Path, value: &str) -> std::io::Result<()> {
            self.calls
                .lock()
                .expect("lock")
                .push(format!("write {} {value}", path.display()));
            if path.ends_with("cgroup.kill") {
                let mut f = self.files.lock().expect("lock");
                for (k, v) in f.iter_mut() {
                    if k.ends_with("cgroup.procs") {
                        v.clear();
                    }
                }
            }
            self.files
                .lock()
                .expect("lock")
                .insert(path.to_owned(), value.to_owned());
            Ok(())
        }
        fn read(&self, path: &Path) -> std::io::Result<String> {
            self.files
                .lock()
                .expect("lock")
                .get(path)
                .cloned()
                .ok_or_else(|| std::io::ErrorKind::NotFound.into())
        }
        fn rmdir(&self, path: &Path) -> std::io::Result<()> {
            self.calls
                .lock()
                .expect("lock")
                .push(format!("rmdir {}", path.display()));
            Ok(())
        }
        fn exists(&self, path: &Path) -> bool {
            self.files.lock().expect("lock").contains_key(path)
        }
        fn kill(&self, pid: i32) -> std::io::Result<()> {
            self.calls.lock().expect("lock").push(format!("kill {pid}"));
            let mut f = self.files.lock().expect("lock");
            for (k, v) in f.iter_mut() {
                if k.ends_with("cgroup.procs") {
                    *v = v
                        .split_whitespace()
                        .filter(|p| *p != pid.to_string())
                        .collect::<Vec<_>>()
                        .join("\n");
                }
            }
            Ok(())
        }
    }

    fn v1_fake() -> std::sync::Arc<FakeFs> {
        let fs = std::sync::Arc::new(FakeFs::default());
        fs.seed("/cg/memory/memory.limit_in_bytes", "0");
        fs.seed("/cg/memory/memory.memsw.limit_in_bytes", "0");
        fs.seed("/cg/pids/cgroup.procs", "");
        fs.seed("/cg/cpuacct", "");
        fs
    }

    #[test]
    fn v1_create_measure_destroy_sequence() {
        let fs = v1_fake();
        let cg = Cgroups::detect_with(fs.clone(), Path::new("/cg")).expect("v1");
        assert!(matches!(cg.layout(), Layout::V1 { memsw: true, .. }));
        let slot = cg
            .create(
                "s1",
                Limits {
                    memory_bytes: 1000,
                    pids: 17,
                },
            )
            .expect("create");
        assert_eq!(
            fs.calls(),
            vec![
                "mkdir /cg/memory/paddock",
                "mkdir /cg/pids/paddock",
                "mkdir /cg/cpuacct/paddock",
                "mkdir /cg/memory/paddock/s1",
                "mkdir /cg/pids/paddock/s1",
                "mkdir /cg/cpuacct/paddock/s1",
                "write /cg/memory/paddock/s1/memory.limit_in_bytes 1000",
                "write /cg/memory/paddock/s1/memory.memsw.limit_in_bytes 1000",
                "write /cg/pids/paddock/s1/pids.max 17",
            ]
        );
        fs.seed("/cg/memory/paddock/s1/memory.max_usage_in_bytes", "4096\n");
        fs.seed(
            "/cg/memory/paddock/s1/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        fs.seed("/cg/pids/paddock/s1/pids.events", "max 3\n");
        fs.seed("/cg/cpuacct/paddock/s1/cpuacct.usage", "5000000\n");
        assert_eq!(
            cg.measure(&slot),
            Measured {
                peak_memory_bytes: 4096,
                cpu_ns: 5_000_000,
                oom_kills: 2,
                pids_limit_hits: 3
            }
        );
        fs.seed("/cg/memory/paddock/s1/cgroup.procs", "41\n42\n");
        fs.seed("/cg/pids/paddock/s1/cgroup.procs", "41\n42\n");
        fs.calls.lock().expect("lock").clear();
        cg.destroy(&slot).expect("destroy");
        assert_eq!(
            fs.calls(),
            vec![
                "kill 41",
                "kill 42",
                "rmdir /cg/cpuacct/paddock/s1",
                "rmdir /cg/pids/paddock/s1",
                "rmdir /cg/memory/paddock/s1",
            ]
        );
    }

    #[test]
    fn v2_detected_from_controllers_and_uses_cgroup_kill() {
        let fs = std::sync::Arc::new(FakeFs::default());
        fs.seed("/cg/cgroup.controllers", "cpuset cpu io memory pids\n");
        fs.seed("/cg/paddock/s/memory.swap.max", "max");
        let cg = Cgroups::detect_with(fs.clone(), Path::new("/cg")).expect("v2");
        assert_eq!(
            cg.layout(),
            &Layout::V2 {
                parent: "/cg/paddock".into()
            }
        );
        let slot = cg
            .create(
                "s",
                Limits {
                    memory_bytes: 5,
                    pids: 3,
                },
            )
            .expect("create");
        let calls = fs.calls();
        assert!(calls.contains(&"write /cg/cgroup.subtree_control +memory +pids +cpu".to_owned()));
        assert!(calls.contains(&"write /cg/paddock/s/memory.max 5".to_owned()));
        assert!(calls.contains(&"write /cg/paddock/s/memory.swap.max 0".to_owned()));
        assert!(calls.contains(&"write /cg/paddock/s/pids.max 3".to_owned()));
        fs.seed(
            "/cg/paddock/s/memory.events",
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        );
        fs.seed(
            "/cg/paddock/s/cpu.stat",
            "usage_usec 1500\nuser_usec 1000\n",
        );
        let m = cg.measure(&slot);
        assert_eq!((m.oom_kills, m.cpu_ns), (1, 1_500_000));
        fs.seed("/cg/paddock/s/cgroup.procs", "7\n");
        fs.seed("/cg/paddock/s/cgroup.kill", "");
        fs.calls.lock().expect("lock").clear();
        cg.destroy(&slot).expect("destroy");
        assert_eq!(
            fs.calls(),
            vec!["write /cg/paddock/s/cgroup.kill 1", "rmdir /cg/paddock/s"]
        );
    }

    #[test]
    fn v2_without_controllers_falls_back_or_fails_clearly() {
        let fs = std::sync::Arc::new(FakeFs::default());
        fs.seed("/cg/cgroup.controllers", "");
        let e = Cgroups::detect_with(fs, Path::new("/cg")).expect_err("no hierarchy");
        assert!(e.to_string().contains("neither cgroup v2"), "{e}");
    }
}
