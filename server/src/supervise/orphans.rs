//! Orphaned scripts: the server is its descendants' subreaper, so a
//! script whose runner died is reparented to the server, which reaps it
//! once it exits, leaving its own children to their owners.

/// Makes the server the reaper of its descendants' orphans: CGI scripts
/// whose runner died are reparented here rather than to init.
pub(crate) fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        error_log!("cannot become a child subreaper: {e}");
    }
}

/// Reaps exited orphans (scripts whose runner died), leaving the server's
/// own children (`ours`) to their owners, which report how they ended.
/// Returns false when it stopped at one of ours.
pub(crate) fn reap_orphans(ours: &[u32]) -> bool {
    loop {
        // SAFETY: an all-zero siginfo_t is valid; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // Peek first (WNOWAIT): only a process that is not ours is reaped.
        // SAFETY: plain syscall with a valid pointer.
        let rc = unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid succeeded, so si_pid is set (0 when none exited).
        let pid = if rc == 0 { unsafe { info.si_pid() } } else { 0 };
        if pid <= 0 {
            return true;
        }
        if ours.contains(&(pid as u32)) {
            return false;
        }
        // SAFETY: reaping a zombie we just saw.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
    }
}
