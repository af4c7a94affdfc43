//! Looking at the server's process tree through `/proc`: a process's
//! parent, state, name, CPU time and resident memory; the live children of
//! a process by name (`helper`, `cgi-runner`); the members of a process
//! group; which process holds the server's end of a TCP connection;
//! sending a signal by PID; and polling a condition with a deadline.
//!
//! Everything here reads `/proc` afresh on each call and treats a process
//! that vanished in between as gone; a zombie (state `Z`, or `X`) counts as
//! dead.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread;
use std::time::{Duration, Instant};

use crate::DEADLINE;

/// One process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone)]
pub struct ProcStat {
    pub pid: i32,
    /// The command name (`comm`, at most 15 bytes): `helper`, `cgi-runner`.
    pub comm: String,
    /// The one-letter state (`R`, `S`, `D`, `Z`, ...).
    pub state: char,
    pub ppid: i32,
    pub pgid: i32,
    /// User-mode CPU time, in clock ticks.
    pub utime: u64,
    /// Kernel-mode CPU time, in clock ticks.
    pub stime: u64,
}

impl ProcStat {
    /// True unless the process is a zombie (or being torn down).
    pub fn is_live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// User plus kernel CPU time, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.utime + self.stime
    }

    /// Its command line, read now (empty if it is gone).
    pub fn cmdline(&self) -> String {
        cmdline(self.pid)
    }
}

/// Parses `/proc/PID/stat`; `None` if the process is gone.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp session tty_nr tpgid flags minflt
    // cminflt majflt cmajflt utime stime ...`; comm may hold spaces and
    // parentheses, so split at the last `)`.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 2..)?.split_whitespace().collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<i64>().ok());
    Some(ProcStat {
        pid,
        comm,
        state: fields.first()?.chars().next()?,
        ppid: i32::try_from(number(1)?).ok()?,
        pgid: i32::try_from(number(2)?).ok()?,
        utime: u64::try_from(number(11)?).ok()?,
        stime: u64::try_from(number(12)?).ok()?,
    })
}

/// Every process in `/proc` right now.
pub fn all_processes() -> Vec<ProcStat> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(proc_stat)
        .collect()
}

/// The children of `ppid` (zombies included).
pub fn children_of(ppid: i32) -> Vec<ProcStat> {
    all_processes()
        .into_iter()
        .filter(|p| p.ppid == ppid)
        .collect()
}

/// PIDs of the live (non-zombie) children of `ppid` whose command name is
/// `comm`, in ascending order.
pub fn live_children_named(ppid: i32, comm: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = children_of(ppid)
        .into_iter()
        .filter(|p| p.is_live() && p.comm == comm)
        .map(|p| p.pid)
        .collect();
    pids.sort_unstable();
    pids
}

/// The live (non-zombie) children of `ppid`.
pub fn live_children(ppid: i32) -> Vec<ProcStat> {
    all_processes()
        .into_iter()
        .filter(|p| p.ppid == ppid && p.is_live())
        .collect()
}

/// Every member of process group `pgid`, zombies included.
pub fn group_members(pgid: i32) -> Vec<ProcStat> {
    all_processes()
        .into_iter()
        .filter(|p| p.pgid == pgid)
        .collect()
}

/// Every process (other than this one) whose initial environment holds
/// `needle` (for example `DOCUMENT_ROOT=<a test's unique root>`).
pub fn processes_with_environ(needle: &str) -> Vec<ProcStat> {
    let me = i32::try_from(std::process::id()).expect("pid fits in i32");
    let needle = needle.as_bytes();
    all_processes()
        .into_iter()
        .filter(|p| p.pid != me)
        .filter(|p| {
            fs::read(format!("/proc/{}/environ", p.pid))
                .map(|env| env.split(|&b| b == 0).any(|var| var == needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Sends SIGKILL to each listed process (cleanup of what a test's own
/// scripts started).
pub fn kill_processes(procs: &[ProcStat]) {
    for p in procs {
        send_signal(p.pid, libc::SIGKILL);
    }
}

/// Waits (up to [`DEADLINE`]) until `ppid` has exactly `n` live children
/// named `comm` and returns their PIDs; panics if it never has.
pub fn wait_for_live_children(ppid: i32, comm: &str, n: usize) -> Vec<i32> {
    let mut found = Vec::new();
    assert!(
        poll_until(DEADLINE, || {
            found = live_children_named(ppid, comm);
            found.len() == n
        }),
        "{ppid} never had {n} live children named {comm}: {found:?}"
    );
    found
}

/// The live members of process group `pgid`.
pub fn live_group_members(pgid: i32) -> Vec<ProcStat> {
    all_processes()
        .into_iter()
        .filter(|p| p.pgid == pgid && p.is_live())
        .collect()
}

/// True if `pid` exists and is not a zombie.
pub fn is_alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|p| p.is_live())
}

/// `/proc/PID/cmdline` with NULs shown as spaces (empty if gone).
pub fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .trim_end_matches('\0')
                .replace('\0', " ")
        })
        .unwrap_or_default()
}

/// The process's CPU time (user plus system) in clock ticks.
pub fn cpu_ticks(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|p| p.cpu_ticks())
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, usually 100).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// The process's resident set size (`VmRSS` in `/proc/PID/status`), in
/// bytes.
pub fn vm_rss_bytes(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The share (0 to 1) of samples, taken every 10 ms for `watch`, in
/// which `pid` was runnable (state `R`: on a CPU or waiting for one).
///
/// This tells a process that spins from one that sleeps whatever the
/// machine's load: a busy loop is runnable all the time even when other
/// processes keep it off the CPU, where a CPU-time budget would let a
/// starved spinner pass. A process that is gone counts as not runnable.
pub fn runnable_share(pid: i32, watch: Duration) -> f64 {
    let start = Instant::now();
    let (mut samples, mut runnable) = (0u32, 0u32);
    while start.elapsed() < watch {
        samples += 1;
        if proc_stat(pid).is_some_and(|p| p.state == 'R') {
            runnable += 1;
        }
        thread::sleep(Duration::from_millis(10));
    }
    f64::from(runnable) / f64::from(samples.max(1))
}

/// Sends `signal` to `pid`; true if it was delivered.
pub fn send_signal(pid: i32, signal: libc::c_int) -> bool {
    // SAFETY: kill(2) on a PID the caller found in the tree it started.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Polls `condition` every 20 ms until it holds or `deadline` has passed;
/// returns whether it held.
pub fn poll_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// PIDs to SIGKILL when dropped if they are still alive: cleanup for
/// processes a test's server started that should have died with it.
#[derive(Debug, Default)]
pub struct KillOnDrop(pub Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if is_alive(pid) {
                send_signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// The process among `pids` holding the server's end of the TCP
/// connection whose client is on local port `client_port` (over
/// loopback), or `None` if none of them does (not yet accepted, or its
/// holder gone).
///
/// Each process's socket descriptors are copied into this one with
/// `pidfd_getfd` (Linux 5.6; the permission of ptrace, which a test has
/// over the servers it started) and asked for their peer's address: a
/// few system calls a descriptor, whatever the size of the machine's TCP
/// table (`/proc/net/tcp`, which lists every socket in TIME_WAIT too,
/// takes seconds to read on a busy machine).
pub fn tcp_connection_holder(client_port: u16, pids: &[i32]) -> Option<i32> {
    pids.iter()
        .copied()
        .find(|&pid| holds_peer(pid, client_port))
}

/// Whether `pid` has a socket descriptor whose peer is on `client_port`.
fn holds_peer(pid: i32, client_port: u16) -> bool {
    // SAFETY: pidfd_open(2) with no flags; the result is checked.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let Ok(pidfd) = i32::try_from(pidfd) else {
        return false;
    };
    if pidfd < 0 {
        return false;
    }
    // SAFETY: a descriptor just returned to this process, owned once.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let is_socket = fs::read_link(entry.path())
            .is_ok_and(|link| link.to_string_lossy().starts_with("socket:"));
        let target = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok());
        let Some(target) = target.filter(|_| is_socket) else {
            return false;
        };
        // SAFETY: pidfd_getfd(2) on a pidfd this function owns; the
        // result is checked.
        let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
        match i32::try_from(copy) {
            Ok(copy) if copy >= 0 => {
                // SAFETY: a descriptor just returned to this process.
                let copy = unsafe { OwnedFd::from_raw_fd(copy) };
                peer_port(&copy) == Some(client_port)
            }
            _ => false,
        }
    })
}

/// The port of an IPv4 or IPv6 socket's peer.
fn peer_port(socket: &OwnedFd) -> Option<u16> {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_storage>()).ok()?;
    // SAFETY: the pointer and length describe `address`, which outlives
    // the call.
    let got = unsafe {
        libc::getpeername(
            socket.as_raw_fd(),
            (&raw mut address).cast::<libc::sockaddr>(),
            &mut len,
        )
    };
    if got < 0 {
        return None;
    }
    match i32::from(address.ss_family) {
        // SAFETY: the kernel filled a sockaddr_in for AF_INET.
        libc::AF_INET => Some(u16::from_be(unsafe {
            (*(&raw const address).cast::<libc::sockaddr_in>()).sin_port
        })),
        // SAFETY: the kernel filled a sockaddr_in6 for AF_INET6.
        libc::AF_INET6 => Some(u16::from_be(unsafe {
            (*(&raw const address).cast::<libc::sockaddr_in6>()).sin6_port
        })),
        _ => None,
    }
}
