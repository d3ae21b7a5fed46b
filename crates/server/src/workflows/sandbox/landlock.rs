//! Landlock: an unprivileged allow-list of what the process may touch, enforced by the kernel.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const TRUNCATE: u64 = 1 << 14;
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
const RULE_PATH_BENEATH: libc::c_int = 1;
const CREATE_RULESET_VERSION: libc::c_uint = 1;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// Whether the kernel scopes signals and abstract sockets (ABI 6): a second wall behind
/// seccomp's refusal of every signal call and the network namespace's own abstract sockets.
pub fn scopes() -> bool {
    abi().is_some_and(|abi| abi >= 6)
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The kernel's Landlock ABI version, asked once.
pub fn abi() -> Option<i64> {
    static ABI: OnceLock<Option<i64>> = OnceLock::new();
    *ABI.get_or_init(|| {
        // SAFETY: the documented way to ask for the ABI version: no attribute, size 0.
        let version = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<u8>(),
                0usize,
                CREATE_RULESET_VERSION,
            )
        };
        (version >= 1).then_some(version)
    })
}

/// What one python step may read and write, prepared before the fork.
pub struct Rules {
    handled_fs: u64,
    handled_net: u64,
    scoped: u64,
    /// Paths and the rights beneath them.
    paths: Vec<(CString, u64)>,
}

pub fn rules(python: &Path) -> Option<Rules> {
    let abi = abi()?;
    // Every right of ABI 1, plus REFER (ABI 2) and TRUNCATE (ABI 3) where the kernel has them.
    let handled_fs: u64 = match abi {
        1 => (1 << 13) - 1,
        2 => (1 << 14) - 1,
        _ => (1 << 15) - 1,
    };
    let handled_net = if abi >= 4 {
        NET_BIND_TCP | NET_CONNECT_TCP
    } else {
        0
    };
    let read_dir = EXECUTE | READ_FILE | READ_DIR;
    let mut paths: Vec<(std::path::PathBuf, u64)> = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"]
        .iter()
        .map(|p| (std::path::PathBuf::from(p), read_dir))
        .collect();
    // An interpreter outside /usr brings its own installation (two levels up from bin/python3).
    if let Some(prefix) = python
        .canonicalize()
        .ok()
        .and_then(|p| p.parent()?.parent().map(Path::to_path_buf))
    {
        paths.push((prefix, read_dir));
    }
    for file in ["/etc/ld.so.cache", "/etc/localtime", "/dev/urandom"] {
        paths.push((file.into(), READ_FILE));
    }
    paths.push(("/dev/null".into(), READ_FILE | WRITE_FILE | TRUNCATE));
    let mut paths: Vec<(CString, u64)> = paths
        .into_iter()
        .filter(|(path, _)| path.exists())
        .filter_map(|(path, rights)| {
            Some((
                CString::new(path.as_os_str().as_bytes()).ok()?,
                rights & handled_fs,
            ))
        })
        .collect();
    // The working directory by `.`: by the time the rules are made the child has moved into
    // it, and in a mount namespace its path leads to the covered /tmp instead.
    paths.push((c".".to_owned(), handled_fs));
    Some(Rules {
        handled_fs,
        handled_net,
        scoped: if scopes() {
            SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        } else {
            0
        },
        paths,
    })
}

impl Rules {
    /// Runs in the child, after no-new-privileges: builds the ruleset and enforces it.
    pub fn restrict_self(&self) -> std::io::Result<()> {
        let attr = RulesetAttr {
            handled_access_fs: self.handled_fs,
            handled_access_net: self.handled_net,
            scoped: self.scoped,
        };
        // A kernel reads only the fields its ABI has: the first before ABI 4, two before 6.
        let fields = if self.scoped != 0 {
            3
        } else if self.handled_net != 0 {
            2
        } else {
            1
        };
        let size = fields * std::mem::size_of::<u64>();
        // SAFETY: Landlock system calls with structures laid out as the kernel's headers say;
        // open/close on NUL-terminated paths owned by `self`. No allocation.
        unsafe {
            let ruleset = libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                size,
                0u32,
            );
            if ruleset < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let ruleset = ruleset as libc::c_int;
            for (path, rights) in &self.paths {
                let fd = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
                if fd < 0 {
                    continue;
                }
                let rule = PathBeneathAttr {
                    allowed_access: *rights,
                    parent_fd: fd,
                };
                let added = libc::syscall(
                    libc::SYS_landlock_add_rule,
                    ruleset,
                    RULE_PATH_BENEATH,
                    &rule as *const PathBeneathAttr,
                    0u32,
                );
                libc::close(fd);
                if added != 0 {
                    let error = std::io::Error::last_os_error();
                    libc::close(ruleset);
                    return Err(error);
                }
            }
            let enforced = libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32);
            let error = std::io::Error::last_os_error();
            libc::close(ruleset);
            if enforced != 0 {
                return Err(error);
            }
        }
        Ok(())
    }
}
