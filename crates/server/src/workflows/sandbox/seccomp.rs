//! The seccomp filter: a classic BPF program over the system call number.

#[cfg(target_arch = "x86_64")]
const ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const ARCH: u32 = 0xc000_00b7;

/// Whether this build knows the system call numbers of its architecture.
pub const AVAILABLE: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;

fn statement(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn filter() -> Vec<libc::sock_filter> {
    const LOAD: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
    #[cfg(target_arch = "x86_64")]
    let killed: Vec<libc::c_long> = vec![libc::SYS_fork, libc::SYS_vfork, libc::SYS_clone, libc::SYS_clone3];
    #[cfg(target_arch = "aarch64")]
    let killed: Vec<libc::c_long> = vec![libc::SYS_clone, libc::SYS_clone3];
    let mut refused: Vec<libc::c_long> = vec![
        // Networking: sockets, and io_uring, whose socket and connect operations would
        // create and use one without any of these calls.
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        // Signals to anyone: the step's own process group is killed by the server, and
        // `kill(-1, 9)` would reach every process of the user (of the machine, as root).
        libc::SYS_kill,
        libc::SYS_tkill,
        libc::SYS_tgkill,
        libc::SYS_rt_sigqueueinfo,
        libc::SYS_rt_tgsigqueueinfo,
        libc::SYS_pidfd_open,
        libc::SYS_pidfd_send_signal,
        libc::SYS_pidfd_getfd,
        // Other processes, the kernel and the machine.
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_process_madvise,
        libc::SYS_kcmp,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fsconfig,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_mount_setattr,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_bpf,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_mknodat,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_reboot,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_fanotify_init,
        libc::SYS_lookup_dcookie,
        libc::SYS_personality,
        libc::SYS_vhangup,
    ];
    #[cfg(target_arch = "x86_64")]
    refused.extend([
        libc::SYS_mknod,
        libc::SYS_iopl,
        libc::SYS_ioperm,
        libc::SYS_uselib,
        libc::SYS_modify_ldt,
    ]);
    let mut program = vec![
        statement(LOAD, 4), // arch
        jump(JEQ, ARCH, 1, 0),
        statement(RET, RET_KILL_PROCESS),
        statement(LOAD, 0), // number
        // x32 system calls on x86_64 carry bit 30; none are allowed.
        jump(JGE, 0x4000_0000, 0, 1),
        statement(RET, RET_KILL_PROCESS),
    ];
    for number in killed {
        program.push(jump(JEQ, number as u32, 0, 1));
        program.push(statement(RET, RET_KILL_PROCESS));
    }
    for number in refused {
        program.push(jump(JEQ, number as u32, 0, 1));
        program.push(statement(RET, RET_ERRNO | libc::EPERM as u32));
    }
    program.push(statement(RET, RET_ALLOW));
    program
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn filter() -> Vec<libc::sock_filter> {
    Vec::new()
}
