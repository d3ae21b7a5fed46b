//! The python step's sandbox. Each step runs in a fresh `python3 -I -S -B` process:
//!
//! - empty environment, a temporary working directory removed afterwards, its own process group
//!   killed as a whole at the end (so nothing it started survives), killed if the server dies;
//! - rlimits on CPU time, address space, file size, open files and processes; a wall-clock timeout;
//! - no new privileges, and as root no capabilities (the bounding set emptied, so exec cannot
//!   restore them); a seccomp filter that kills it when it tries to start a process and refuses
//!   sockets and io_uring, signals to any process, device nodes, mounts, ptrace, namespace
//!   changes, module loading, kexec, reboot, clock setting and port I/O;
//! - new network, mount, IPC and PID namespaces (plus a user namespace when not running as root):
//!   no network at all, the step the first process of its own PID namespace (no process outside
//!   it can be seen or named), the root file system read-only, and `/proc`, `/home`, `/root`,
//!   `/run`, `/tmp`, the Gatehouse config and data directories covered by empty read-only file
//!   systems, so neither the keys, the settings nor the server's environment can be read;
//! - Landlock, where the kernel has it: reading only the Python installation and the system
//!   libraries, writing only the working directory, and no TCP — which still holds in containers
//!   that refuse namespaces; from ABI 6 also no signal to, and no abstract socket of, any process
//!   outside the step.
//!
//! What the kernel refuses (namespaces in some containers, Landlock on older kernels, seccomp on
//! other architectures) is never silently assumed: [`layers`] says what is in force, `/info`
//! shows it, and with a layer missing python steps are refused unless a weaker sandbox was
//! accepted (which the checklist fails).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{ApiError, ErrorCode};

mod landlock;
mod seccomp;

/// Reads the request from stdin, runs the user's `run(inputs)`, writes its dict as JSON. Errors
/// print the traceback of the user's code only (frames from `<workflow>`) and exit with 3.
const RUNNER: &str = r#"
import json, sys, traceback
def main():
    request = json.loads(sys.stdin.read())
    scope = {"__name__": "__workflow__"}
    try:
        exec(compile(request["code"], "<workflow>", "exec"), scope)
        run = scope.get("run")
        if not callable(run):
            raise TypeError("the code must define a function run(inputs)")
        result = run(request["inputs"])
        if not isinstance(result, dict):
            raise TypeError("run(inputs) must return a dict, not " + type(result).__name__)
        text = json.dumps(result, allow_nan=False)
    except BaseException as error:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == "<workflow>"]
        sys.stderr.write("".join(traceback.format_list(frames) + traceback.format_exception_only(type(error), error)))
        sys.stderr.flush()
        sys.exit(3)
    sys.stdout.write(text)
main()
"#;

/// How python steps run; built once from the settings.
#[derive(Clone)]
pub struct SandboxConfig {
    pub python: PathBuf,
    pub timeout: Duration,
    pub cpu_seconds: u64,
    pub memory_bytes: u64,
    pub output_bytes: usize,
    /// Directories covered by an empty read-only file system inside the sandbox.
    pub hidden: Vec<PathBuf>,
    /// Cleared when the kernel refused the namespaces once; later steps run without them.
    namespaces: Arc<AtomicBool>,
    /// Whether python steps may run with a layer missing (`workflows.allow_weaker_sandbox`).
    pub allow_weaker: bool,
}

impl SandboxConfig {
    pub fn new(settings: &gatehouse_core::settings::WorkflowSettings, hidden: Vec<PathBuf>) -> SandboxConfig {
        SandboxConfig {
            python: settings.python.clone(),
            timeout: Duration::from_secs(settings.python_timeout_seconds.into()),
            cpu_seconds: settings.python_cpu_seconds.into(),
            memory_bytes: u64::from(settings.python_memory_mb) * 1024 * 1024,
            output_bytes: settings.python_output_bytes as usize,
            hidden,
            // GATEHOUSE_SANDBOX_NAMESPACES=off leaves the namespaces out where an operator knows
            // they break (and lets the tests prove the other layers hold on their own).
            namespaces: Arc::new(AtomicBool::new(
                std::env::var("GATEHOUSE_SANDBOX_NAMESPACES").map_or(true, |v| v != "off"),
            )),
            allow_weaker: settings.allow_weaker_sandbox,
        }
    }
}

/// Why a python step produced no result.
#[derive(Debug)]
pub enum SandboxError {
    /// The user's code raised; the traceback of their code only.
    Raised(String),
    Timeout(Duration),
    Cpu(u64),
    Memory(u64),
    Output(usize),
    Forbidden,
    /// The sandbox itself could not run (no python, a broken setup).
    Unavailable(String),
    /// The kernel refused the namespaces (some containers do); the other layers can still run.
    NamespacesRefused(String),
    /// A layer is missing and the person has not accepted a weaker sandbox.
    Incomplete(Vec<&'static str>),
}

impl SandboxError {
    pub fn into_api_error(self, step: &str) -> ApiError {
        let unprocessable =
            |code, message: String| ApiError::new(code, format!("python step `{step}` {message}"));
        match self {
            SandboxError::Raised(traceback) => {
                unprocessable(ErrorCode::PythonError, format!("raised an error:\n{traceback}"))
            }
            SandboxError::Timeout(limit) => unprocessable(
                ErrorCode::PythonTimeout,
                format!(
                    "ran longer than {} s and was stopped; raise workflows.python_timeout_seconds if that is expected",
                    limit.as_secs()
                ),
            ),
            SandboxError::Cpu(limit) => unprocessable(
                ErrorCode::PythonLimit,
                format!("used more than {limit} s of CPU and was stopped (workflows.python_cpu_seconds)"),
            ),
            SandboxError::Memory(limit) => unprocessable(
                ErrorCode::PythonLimit,
                format!(
                    "needed more than {} MiB of memory (workflows.python_memory_mb)",
                    limit / 1024 / 1024
                ),
            ),
            SandboxError::Output(limit) => unprocessable(
                ErrorCode::PythonLimit,
                format!("returned more than {limit} bytes of JSON (workflows.python_output_bytes)"),
            ),
            SandboxError::Forbidden => unprocessable(
                ErrorCode::PythonForbidden,
                "tried to start another process, which the sandbox does not allow, and was stopped".into(),
            ),
            SandboxError::Incomplete(missing) => ApiError::new(
                ErrorCode::SandboxIncomplete,
                format!(
                    "python step `{step}` was not run: the sandbox lacks {} on this computer ({}); fix: run Gatehouse where the kernel allows them \
                     (unprivileged user namespaces, Landlock: Linux 5.13 or newer), or accept a weaker sandbox with \
                     `gatehouse settings set workflows.allow_weaker_sandbox true`, which the checklist then fails",
                    missing.join(" and "),
                    missing
                        .iter()
                        .map(|layer| layer_purpose(layer))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ),
            SandboxError::Unavailable(why) | SandboxError::NamespacesRefused(why) => ApiError::new(
                ErrorCode::SandboxUnavailable,
                format!("python step `{step}` could not run: {why}"),
            ),
        }
    }
}

/// What a missing layer would have kept out, for the refusal's message.
fn layer_purpose(layer: &str) -> &'static str {
    match layer {
        "namespaces" => {
            "namespaces keep UDP and local sockets, the session bus and with it the keychain, and every other process out of reach"
        }
        "landlock" => "Landlock keeps files outside the Python installation and TCP out of reach",
        "seccomp" => "seccomp refuses sockets, signals and process creation",
        _ => "a layer of the sandbox",
    }
}

/// Runs `code`'s `run(inputs)` in the sandbox and returns the dict it returned. With a layer
/// missing, the step is refused unless a weaker sandbox was accepted: never a silent fallback.
pub async fn run(config: &SandboxConfig, code: &str, inputs: &Value) -> Result<Value, SandboxError> {
    let (_, missing) = layers(config);
    if !missing.is_empty() && !config.allow_weaker {
        return Err(SandboxError::Incomplete(missing));
    }
    let namespaces = config.namespaces.load(Ordering::Relaxed);
    match run_once(config, code, inputs, namespaces).await {
        Err(SandboxError::NamespacesRefused(why)) => {
            tracing::warn!(event = "sandbox_without_namespaces", reason = %why, weaker_accepted = config.allow_weaker,
                "the kernel refused the network and mount namespaces for python steps");
            config.namespaces.store(false, Ordering::Relaxed);
            if !config.allow_weaker {
                return Err(SandboxError::Incomplete(vec!["namespaces"]));
            }
            run_once(config, code, inputs, false).await
        }
        other => other,
    }
}

/// The layers in force for the next python step, and the ones this kernel or build lacks.
pub fn layers(config: &SandboxConfig) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut on = vec!["rlimits", "timeout", "empty environment", "no new privileges"];
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } == 0 {
        on.push("no capabilities");
    }
    let mut off = Vec::new();
    for (name, available) in [
        ("seccomp", seccomp::AVAILABLE),
        ("namespaces", config.namespaces.load(Ordering::Relaxed)),
        ("landlock", landlock::abi().is_some()),
    ] {
        if available { on.push(name) } else { off.push(name) }
    }
    if landlock::scopes() {
        on.push("signal scoping");
    }
    (on, off)
}

/// Checks at start that python steps can run and logs which layers are in force.
pub async fn probe(config: &SandboxConfig) {
    match run(config, "def run(inputs):\n    return {}", &json!({})).await {
        Ok(_) => {
            let (on, off) = layers(config);
            tracing::info!(event = "sandbox_ready", layers = %on.join(", "), missing = %off.join(", "),
                "python steps run sandboxed")
        }
        Err(error) => tracing::warn!(event = "sandbox_unavailable", error = ?error,
            "python steps cannot run; workflows with python steps will fail"),
    }
}

async fn run_once(
    config: &SandboxConfig,
    code: &str,
    inputs: &Value,
    namespaces: bool,
) -> Result<Value, SandboxError> {
    let unavailable = |e: std::io::Error| SandboxError::Unavailable(e.to_string());
    let workdir = tempfile::Builder::new()
        .prefix("gatehouse-python-")
        .tempdir()
        .map_err(unavailable)?;
    let layers = Layers::new(config, workdir.path(), namespaces);
    let mut command = tokio::process::Command::new(&config.python);
    command
        .args(["-I", "-S", "-B", "-c", RUNNER])
        .env_clear()
        .current_dir(workdir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: `apply` runs in the forked child before exec and only makes system calls with data
    // prepared before the fork (no allocation, no locks).
    unsafe {
        command.pre_exec(move || layers.apply());
    }
    let mut child = command.spawn().map_err(|error| {
        let refused = matches!(
            error.raw_os_error(),
            Some(libc::EPERM | libc::EINVAL | libc::ENOSYS | libc::EACCES)
        );
        if namespaces && refused {
            SandboxError::NamespacesRefused(error.to_string())
        } else {
            unavailable(error)
        }
    })?;
    let group = child.id();
    let request = serde_json::to_vec(&json!({"code": code, "inputs": inputs}))
        .map_err(|e| SandboxError::Unavailable(e.to_string()))?;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let limit = config.output_bytes;
    let exchange = async {
        let write = async {
            if let Some(mut stdin) = stdin.take() {
                let _ = stdin.write_all(&request).await;
            }
        };
        let read_out = async {
            let out = read_capped(stdout.as_mut(), limit + 1).await;
            // Past the cap the step would block on a full pipe: stop it now.
            if let (true, Some(group)) = (out.len() > limit, group) {
                kill_group(group);
            }
            out
        };
        let read_err = read_capped(stderr.as_mut(), 64 * 1024);
        let ((), out, err) = tokio::join!(write, read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    let outcome = tokio::time::timeout(config.timeout, exchange).await;
    // Whatever happened, nothing of the step survives it.
    if let Some(group) = group {
        kill_group(group);
    }
    let (status, out, err) = match outcome {
        Ok(result) => result,
        Err(_) => {
            let _ = child.kill().await;
            return Err(SandboxError::Timeout(config.timeout));
        }
    };
    let status = status.map_err(unavailable)?;
    if out.len() > limit {
        return Err(SandboxError::Output(limit));
    }
    use std::os::unix::process::ExitStatusExt;
    let stderr_text = String::from_utf8_lossy(&err).trim().to_string();
    match (status.code(), status.signal()) {
        (Some(0), _) => serde_json::from_slice(&out)
            .map_err(|e| SandboxError::Unavailable(format!("the step's output was not JSON: {e}"))),
        (Some(3), _) if stderr_text.ends_with("MemoryError") => {
            Err(SandboxError::Memory(config.memory_bytes))
        }
        (Some(3), _) => Err(SandboxError::Raised(stderr_text)),
        (_, Some(libc::SIGXCPU)) | (_, Some(libc::SIGKILL)) => Err(SandboxError::Cpu(config.cpu_seconds)),
        (_, Some(libc::SIGSYS)) => Err(SandboxError::Forbidden),
        (code, signal) => Err(SandboxError::Unavailable(format!(
            "python ended with {} {}: {}",
            code.map_or("signal".to_string(), |c| format!("status {c}")),
            signal.map(|s| s.to_string()).unwrap_or_default(),
            stderr_text.lines().last().unwrap_or("no message")
        ))),
    }
}

async fn read_capped<R: tokio::io::AsyncRead + Unpin>(stream: Option<&mut R>, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(stream) = stream {
        let mut chunk = [0u8; 16 * 1024];
        while out.len() < cap {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    }
    out
}

fn kill_group(group: u32) {
    // SAFETY: kill(2) on the step's own process group (it was spawned with process_group(0)).
    unsafe {
        libc::kill(-(group as libc::pid_t), libc::SIGKILL);
    }
}

/// Everything the child applies to itself between fork and exec, prepared in the parent.
struct Layers {
    cpu_seconds: u64,
    memory_bytes: u64,
    namespaces: bool,
    root: bool,
    workdir: CString,
    hidden: Vec<CString>,
    uid_map: CString,
    gid_map: CString,
    filter: Vec<libc::sock_filter>,
    landlock: Option<landlock::Rules>,
}

// SAFETY: `sock_filter` is plain data; `Layers` is only read in the child.
unsafe impl Send for Layers {}
unsafe impl Sync for Layers {}

impl Layers {
    fn new(config: &SandboxConfig, workdir: &Path, namespaces: bool) -> Layers {
        let cstring = |path: &Path| CString::new(path.as_os_str().as_bytes()).ok();
        // SAFETY: getuid and getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mut hidden: Vec<PathBuf> = ["/proc", "/home", "/root", "/run", "/tmp", "/var/tmp", "/dev/shm"]
            .iter()
            .map(PathBuf::from)
            .chain(config.hidden.iter().cloned())
            .filter(|p| p.is_dir())
            .collect();
        hidden.sort();
        hidden.dedup();
        // A directory inside one already covered cannot be reached, nor mounted on, any more.
        let mut covering: Vec<PathBuf> = Vec::new();
        for path in hidden {
            if !covering.iter().any(|outer| path.starts_with(outer)) {
                covering.push(path);
            }
        }
        let hidden = covering;
        Layers {
            cpu_seconds: config.cpu_seconds,
            memory_bytes: config.memory_bytes,
            namespaces,
            root: uid == 0,
            workdir: cstring(workdir).unwrap_or_default(),
            hidden: hidden.iter().filter_map(|p| cstring(p)).collect(),
            uid_map: CString::new(format!("{uid} {uid} 1")).unwrap_or_default(),
            gid_map: CString::new(format!("{gid} {gid} 1")).unwrap_or_default(),
            filter: seccomp::filter(),
            landlock: landlock::rules(&config.python),
        }
    }

    /// Runs in the child. Order matters: limits, then namespaces and mounts (which need
    /// privileges the later layers take away), then no-new-privileges, then seccomp.
    fn apply(&self) -> std::io::Result<()> {
        let fail = || Err(std::io::Error::last_os_error());
        // SAFETY (whole block): plain system calls on data owned by `self`.
        unsafe {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return fail();
            }
            let limits = [
                (libc::RLIMIT_CPU, self.cpu_seconds, self.cpu_seconds + 1),
                (libc::RLIMIT_AS, self.memory_bytes, self.memory_bytes),
                (libc::RLIMIT_FSIZE, 1 << 20, 1 << 20),
                (libc::RLIMIT_NOFILE, 32, 32),
                (libc::RLIMIT_CORE, 0, 0),
            ];
            for (resource, soft, hard) in limits {
                let limit = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    return fail();
                }
            }
            if self.namespaces {
                let mut flags =
                    libc::CLONE_NEWNET | libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWPID;
                if !self.root {
                    flags |= libc::CLONE_NEWUSER;
                }
                if libc::unshare(flags) != 0 {
                    return fail();
                }
                if !self.root {
                    write_file(c"/proc/self/setgroups", c"deny")?;
                    write_file(c"/proc/self/uid_map", &self.uid_map)?;
                    write_file(c"/proc/self/gid_map", &self.gid_map)?;
                }
                self.mount_layers()?;
                // A new PID namespace takes effect for children only: the step runs in a child
                // that is PID 1 there and sees no process outside, while this process waits.
                become_first_process()?;
            }
            // No new process from here on (after the fork above, which needed one).
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_NPROC, &none) != 0 {
                return fail();
            }
            if self.root {
                drop_capabilities()?;
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return fail();
            }
            if let Some(rules) = &self.landlock {
                rules.restrict_self()?;
            }
            if !self.filter.is_empty() {
                let program = libc::sock_fprog {
                    len: self.filter.len() as u16,
                    filter: self.filter.as_ptr() as *mut libc::sock_filter,
                };
                if libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const _ as libc::c_ulong,
                    0,
                    0,
                ) != 0
                {
                    return fail();
                }
            }
        }
        Ok(())
    }

    /// Private mounts; the working directory bound writable; `/` read-only; the hidden directories
    /// covered by empty read-only tmpfs.
    unsafe fn mount_layers(&self) -> std::io::Result<()> {
        let fail = || Err(std::io::Error::last_os_error());
        let none = std::ptr::null();
        // SAFETY: mount(2)/chdir(2) with NUL-terminated strings owned by `self`.
        unsafe {
            if libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return fail();
            }
            if libc::mount(
                self.workdir.as_ptr(),
                self.workdir.as_ptr(),
                none,
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return fail();
            }
            // The working directory is now the bind mount, which stays writable below.
            if libc::chdir(self.workdir.as_ptr()) != 0 {
                return fail();
            }
            let read_only =
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
            if libc::mount(none, c"/".as_ptr(), none, read_only, std::ptr::null()) != 0 {
                return fail();
            }
            for dir in &self.hidden {
                let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                if libc::mount(
                    c"tmpfs".as_ptr(),
                    dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    flags,
                    c"size=4k,mode=0555".as_ptr().cast(),
                ) != 0
                {
                    return fail();
                }
            }
        }
        Ok(())
    }
}

/// Running as root, with no user namespace to take root's powers away: every capability goes,
/// from the bounding set too, so that the exec of python cannot give them back.
fn drop_capabilities() -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    // SAFETY: prctl and capset with plain data on the stack; no allocation.
    unsafe {
        for capability in 0..64 {
            // Capabilities this kernel does not know answer EINVAL: there is nothing to drop.
            if libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0) != 0
                && *libc::__errno_location() != libc::EINVAL
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        if libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let data = [Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        if libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Forks after `unshare(CLONE_NEWPID)`: returns in the child, PID 1 of the new namespace, which
/// goes on to exec the step. The parent closes every descriptor it holds (so the step's pipes and
/// the spawner's exec report close with the step alone), waits, and ends the way the step ended,
/// by the same exit code or signal, so timeouts and limits read the same as without it.
///
/// # Safety
/// Runs between fork and exec: only async-signal-safe calls.
unsafe fn become_first_process() -> std::io::Result<()> {
    // SAFETY (whole block): fork, prctl, close_range, waitpid, signal, kill and _exit, all
    // async-signal-safe, on no data but integers.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if pid == 0 {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            return Ok(());
        }
        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
        let mut status = 0;
        loop {
            let waited = libc::waitpid(pid, &mut status, 0);
            if waited == pid {
                break;
            }
            if waited < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(127);
            }
        }
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        let signal = libc::WTERMSIG(status);
        libc::signal(signal, libc::SIG_DFL);
        libc::kill(libc::getpid(), signal);
        libc::_exit(128 + signal)
    }
}

fn write_file(path: &std::ffi::CStr, contents: &std::ffi::CStr) -> std::io::Result<()> {
    // SAFETY: open/write/close with NUL-terminated strings; no allocation.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let bytes = contents.to_bytes();
        let written = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        libc::close(fd);
        if written != bytes.len() as isize {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
