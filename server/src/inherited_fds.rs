//! Descriptors this process inherited from whoever started it (a shell's
//! open files, a supervisor's sockets) are not passed on: at start every
//! descriptor above stderr is marked close-on-exec, so the helpers, the
//! cgi-runner and every CGI script get only what the server hands each of
//! them on purpose. A socket passed by systemd is adopted in-process and
//! needs no inheriting either; so are the two a `--workers` parent hands
//! each worker, at the numbers below.

use std::fs;
use std::io;

/// Where a `--workers` parent puts the worker's end of the socketpair it
/// reports `READY=1` and `STOPPING=1` on (and hands the session-ticket
/// key over).
pub(crate) const WORKER_READY_FD: i32 = 3;

/// Where a `--workers` parent puts the first of the listening sockets all
/// its workers accept from; the others follow, in order.
pub(crate) const WORKER_LISTENERS_FD: i32 = 4;

/// Marks every descriptor above 2 close-on-exec: `close_range(2)` with
/// `CLOSE_RANGE_CLOEXEC` (Linux 5.11), else each one listed in
/// `/proc/self/fd`.
pub(crate) fn close_on_exec_above_stderr() -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on
    // descriptors in the range; it closes nothing and touches no memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let listed: Vec<i32> = fs::read_dir("/proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in listed {
        // SAFETY: F_GETFD/F_SETFD only read and set the descriptor's flags;
        // one that closed meanwhile (the directory's own) fails with EBADF.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn an_inherited_descriptor_becomes_close_on_exec() {
        let file = fs::File::open("/proc/self/stat").expect("a file to duplicate");
        // SAFETY: dup returns a new descriptor (without FD_CLOEXEC) or -1.
        let plain = unsafe { libc::dup(file.as_raw_fd()) };
        assert!(plain > 2, "dup: {}", io::Error::last_os_error());
        // SAFETY: reads the flags of a descriptor this test owns.
        let before = unsafe { libc::fcntl(plain, libc::F_GETFD) };
        assert_eq!(before & libc::FD_CLOEXEC, 0, "dup clears close-on-exec");
        close_on_exec_above_stderr().expect("marked");
        // SAFETY: as above.
        let after = unsafe { libc::fcntl(plain, libc::F_GETFD) };
        // SAFETY: closes the descriptor this test made.
        unsafe { libc::close(plain) };
        assert_ne!(after & libc::FD_CLOEXEC, 0, "close-on-exec after");
    }
}
