//! Spawning and stopping a child: its own process group, a parent-death signal, SIGTERM to the
//! group and SIGKILL after a timeout. Used for the server the supervisor runs and for the
//! upstream a guard launches. The only unsafe code in the supervisor lives here.
#![allow(unsafe_code)]

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use super::Config;

pub fn spawn(config: &Config) -> std::io::Result<Child> {
    spawn_program(&config.program, &config.args, &config.env)
}

/// Starts `program` with its output piped, in its own process group, with SIGTERM sent to it
/// when this process dies.
pub fn spawn_program(
    program: impl AsRef<std::ffi::OsStr>,
    args: &[impl AsRef<std::ffi::OsStr>],
    env: &[(impl AsRef<std::ffi::OsStr>, impl AsRef<std::ffi::OsStr>)],
) -> std::io::Result<Child> {
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a stop reaches anything it started and a Ctrl-C in the supervisor's
        // terminal does not hit the child before the supervisor decides to stop it.
        .process_group(0)
        .kill_on_drop(true);
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (prctl, getppid, _exit) without allocating.
    unsafe {
        command.pre_exec(move || {
            // The kernel sends SIGTERM when the thread that forked us dies, so the server shuts
            // down gracefully even when the supervisor is killed with SIGKILL.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The supervisor may have died between fork and prctl; then nobody would signal us.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    command.spawn()
}

/// SIGTERM to the child's group, up to `timeout` to exit, then SIGKILL; always reaps the child.
pub async fn stop(child: &mut Child, timeout: Duration) -> ExitStatus {
    if let Ok(Some(status)) = child.try_wait() {
        return status;
    }
    if let Some(pid) = child.id() {
        signal_group(pid, libc::SIGTERM);
    }
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        _ => {
            if let Some(pid) = child.id() {
                signal_group(pid, libc::SIGKILL);
            }
            let _ = child.start_kill();
            child
                .wait()
                .await
                .unwrap_or_else(|_| exit_status_from_signal(libc::SIGKILL))
        }
    }
}

fn signal_group(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals the process group the child leads (it was
    // spawned with process_group(0), so its group id is its pid); it touches no memory of ours.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

fn exit_status_from_signal(signal: libc::c_int) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(signal)
}

pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        _ => "signal",
    }
}
