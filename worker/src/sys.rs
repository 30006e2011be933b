//! The one module that talks to the kernel with `unsafe`: joining a cgroup between fork and
//! exec, sending signals, and slot-init's seccomp filter plus its single `execve`.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// Errors of the kernel calls here.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error("building seccomp filter: {0}")]
    Seccomp(String),
    #[error("applying seccomp filter: {0}")]
    ApplySeccomp(String),
    #[error("argument contains a NUL byte: {0:?}")]
    Nul(String),
    #[error("execve {path}: {source}")]
    Exec {
        path: String,
        source: std::io::Error,
    },
    #[error("no command to execute")]
    NoCommand,
}

/// Makes the child of `cmd` join the cgroups whose `cgroup.procs` (or v1 `tasks`) files are
/// given, after fork and before exec, so nothing the child starts can run outside them.
/// The files stay open in the parent until the command is spawned (they are `O_CLOEXEC`).
pub fn join_cgroups_before_exec(cmd: &mut std::process::Command, procs_files: Vec<File>) {
    let fds: Vec<i32> = procs_files.iter().map(|f| f.as_raw_fd()).collect();
    // Keep the files alive as long as the command (the closure owns them).
    let keep = procs_files;
    // SAFETY: the closure runs in the forked child before exec; it only calls write(2) on
    // descriptors that are open in the child (inherited, closed at exec by O_CLOEXEC), which
    // is async-signal-safe, and allocates nothing. Writing "0" moves the calling process.
    unsafe {
        cmd.pre_exec(move || {
            let _ = &keep;
            for &fd in &fds {
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                if n != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Sends `signal` to `pid`; a process that is already gone is not an error.
pub fn kill(pid: i32, signal: i32) -> std::io::Result<()> {
    if pid <= 0 {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: kill(2) takes plain integers; pid > 0 so it never targets a process group.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

const CLONE_THREAD: u64 = libc::CLONE_THREAD as u64;

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, SysError> {
    SeccompRule::new(conds).map_err(|e| SysError::Seccomp(e.to_string()))
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SysError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| SysError::Seccomp(e.to_string()))
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<BpfProgram, SysError> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| SysError::Seccomp(e.to_string()))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )
    .map_err(|e| SysError::Seccomp(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SysError::Seccomp(e.to_string()))
}

/// The runner filters slot-init stacks, as BPF programs: (1) EPERM for fork, vfork, clone
/// without `CLONE_THREAD`, memfd_create, execveat and every execve whose filename pointer
/// is not `exec_path_ptr`; (2) ENOSYS for clone3 (so libc falls back to clone for threads);
/// (3) when `no_network`, EACCES for inet, inet6, packet and netlink sockets.
///
/// # Errors
/// Only if the filter cannot be compiled for this architecture.
pub fn runner_filters(exec_path_ptr: u64, no_network: bool) -> Result<Vec<BpfProgram>, SysError> {
    let mut eperm: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    eperm.insert(libc::SYS_fork, vec![]);
    eperm.insert(libc::SYS_vfork, vec![]);
    eperm.insert(
        libc::SYS_clone,
        vec![rule(vec![cond(
            0,
            SeccompCmpOp::MaskedEq(CLONE_THREAD),
            0,
        )?])?],
    );
    eperm.insert(
        libc::SYS_execve,
        vec![rule(vec![cond(0, SeccompCmpOp::Ne, exec_path_ptr)?])?],
    );
    eperm.insert(libc::SYS_execveat, vec![]);
    eperm.insert(libc::SYS_memfd_create, vec![]);
    let mut out = vec![compile(eperm, libc::EPERM)?];
    let mut enosys = BTreeMap::new();
    enosys.insert(libc::SYS_clone3, vec![]);
    out.push(compile(enosys, libc::ENOSYS)?);
    if no_network {
        let mut socks = Vec::new();
        for family in [
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_PACKET,
            libc::AF_NETLINK,
        ] {
            socks.push(rule(vec![cond(0, SeccompCmpOp::Eq, family as u64)?])?);
        }
        let mut eacces = BTreeMap::new();
        eacces.insert(libc::SYS_socket, socks);
        out.push(compile(eacces, libc::EACCES)?);
    }
    Ok(out)
}

/// slot-init's whole job: stack the runner filters, then `execve(argv[0], argv, environ)`
/// exactly once. Only returns on failure.
///
/// # Errors
/// A filter that cannot be built or applied, a NUL byte in an argument, or a failed exec.
pub fn exec_once_under_filters(
    argv: &[String],
    no_network: bool,
) -> Result<std::convert::Infallible, SysError> {
    let first = argv.first().ok_or(SysError::NoCommand)?;
    let path = CString::new(first.as_str()).map_err(|_| SysError::Nul(first.clone()))?;
    let args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| SysError::Nul(a.clone())))
        .collect::<Result<_, _>>()?;
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());
    let filters = runner_filters(path.as_ptr() as u64, no_network)?;
    for f in &filters {
        seccompiler::apply_filter(f).map_err(|e| SysError::ApplySeccomp(e.to_string()))?;
    }
    // SAFETY: `path` and every element of `arg_ptrs` point to live NUL-terminated strings
    // owned by this frame, `arg_ptrs` ends with NULL, and `environ` is the process's own
    // environment block. `path.as_ptr()` is the exact pointer the filter allows.
    unsafe {
        unsafe extern "C" {
            static environ: *const *const libc::c_char;
        }
        libc::execve(path.as_ptr(), arg_ptrs.as_ptr(), environ);
    }
    Err(SysError::Exec {
        path: first.clone(),
        source: std::io::Error::last_os_error(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_for_this_arch() {
        let f = runner_filters(0x1234, true).expect("filters");
        assert_eq!(f.len(), 3);
        assert_eq!(runner_filters(0x1234, false).expect("filters").len(), 2);
    }

    #[test]
    fn kill_of_a_gone_process_is_ok() {
        let mut child = std::process::Command::new("/bin/true")
            .spawn()
            .expect("spawn");
        let pid = child.id() as i32;
        child.wait().expect("wait");
        assert!(kill(pid, libc::SIGKILL).is_ok());
        assert!(kill(0, libc::SIGKILL).is_err());
    }
}
