//! The runner's child mode: the handshake, then one event loop over the
//! server's channel, every running script's stderr pipe, a `SIGCHLD`
//! self-pipe and the deadlines, so that the runner keeps answering the
//! server while any number of scripts run.
//!
//! For each [`CgiRun`] the script is resolved beneath the root and
//! started; the server gets [`FromRunner::Accepted`] just before the start
//! and [`FromRunner::Started`] with the write end of
//! the script's stdin and the read end of its stdout (in that order), and
//! the runner closes its own copies at once, so end-of-file on stdout is
//! the script's (and its children's) doing alone. The runner keeps only
//! the stderr pipe, forwarded line by line to its own stderr.
//!
//! When the script is reaped the server gets [`FromRunner::Exited`] at
//! once. The script's stdout may still be open then: a background child
//! (`sleep 30 &`) inherits it and keeps the server's response from ending.
//! The runner therefore gives the script's process group a **grace period
//! of [`GRACE`] (2 s)** after the exit (or less, if the script's own time
//! limit comes first) and then kills whatever is left of the group with
//! `SIGKILL`, so the server sees end-of-file on stdout at most about 2 s
//! after `Exited`. Long-running daemons started from CGI scripts are not
//! supported.
//!
//! A script that runs past its `timeout_ms` has its whole process group
//! killed with `SIGKILL`; its `Exited` then says `timed_out: true`.
//! Orphaned descendants are reparented to the runner (it is a child
//! subreaper) and reaped without a word; one that left its script's
//! process group (`setsid`, `setpgid`), which no group kill reaches, is
//! killed as soon as it is the runner's (its parent has ended: the
//! script, at its exit or time limit, or a child of it); one that leaves
//! the group only after that (a `setsid` that runs late) is killed when
//! the group is, at the end of the grace period or the time limit.
//!
//! When the server closes the channel (or breaks the protocol), every
//! script's process group is killed and reaped before the runner exits.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use protocol::child_setup::handshake;
use protocol::{CgiRun, Channel, Error, ExitInfo, FromRunner, ReadStatus, Refusal, Role, ToRunner};

use crate::die_hook;
use crate::hold_hook;
use crate::script_deadlines::{self, poll_timeout, Key, Kind, ScriptDeadlines};
use crate::script_lookup::Resolver;
use crate::script_spawn::{self, Streams};
use crate::sigchld::SigChld;
use crate::stderr::{display_name, Drain, StderrLog};

/// How long a script's process group may outlive the script before what
/// is left of it is killed.
pub const GRACE: Duration = Duration::from_secs(2);

/// How long, after the grace period's kill, the runner still waits for
/// end-of-file on a script's stderr (held by something that left the
/// process group) before it closes the pipe itself.
const FORGET_AFTER: Duration = Duration::from_secs(1);

/// How long the runner waits for killed scripts to be reaped when it
/// shuts down.
const SHUTDOWN_REAP: Duration = Duration::from_secs(2);

/// One started script, from spawn until its exit has been reported, its
/// stderr has ended and its process group has been dealt with.
#[derive(Debug)]
struct Script {
    id: u64,
    /// Tells this script from an earlier one with the same pid.
    serial: u64,
    /// `/cgi-bin/x.cgi`, for the log.
    name: String,
    /// None once end-of-file was seen (or the pipe was given up).
    stderr: Option<StderrLog>,
    /// The script itself has been reaped.
    exited: bool,
    /// The time limit was reached and the group killed.
    timed_out: bool,
    timeout_ms: u64,
    timeout_at: Option<Instant>,
}

/// The child-mode state.
#[derive(Debug)]
pub struct Runner {
    /// Blocking for the handshake and for sends; read without blocking
    /// once the loop runs.
    channel: Channel,
    resolver: Resolver,
    sigchld: SigChld,
    /// By pid, which is also the process group id.
    scripts: HashMap<i32, Script>,
    deadlines: ScriptDeadlines,
    /// Scripts not yet reaped.
    running: usize,
    max_scripts: usize,
    next_serial: u64,
}

impl Runner {
    pub fn new(
        channel: Channel,
        resolver: Resolver,
        sigchld: SigChld,
        max_scripts: usize,
    ) -> Runner {
        Runner {
            channel,
            resolver,
            sigchld,
            scripts: HashMap::new(),
            deadlines: ScriptDeadlines::new(),
            running: 0,
            max_scripts,
            next_serial: 0,
        }
    }

    /// Serves until the server closes the channel (`Ok`) or breaks the
    /// protocol (`Err`). Every script is killed and reaped either way.
    pub fn serve(mut self) -> Result<(), Error> {
        let result = match handshake::<ToRunner, FromRunner>(&mut self.channel, Role::CgiRunner) {
            Ok(true) => self.event_loop(),
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        };
        self.shutdown();
        result
    }

    fn sock(&self) -> BorrowedFd<'_> {
        self.channel.socket().as_fd()
    }

    /// The loop proper; returns at end-of-file from the server.
    fn event_loop(&mut self) -> Result<(), Error> {
        loop {
            // Messages that came in with an earlier read (the hello's, too).
            while let Some(received) = self.channel.next_buffered::<ToRunner>()? {
                match received.message {
                    ToRunner::Run(run) => self.start(run)?,
                    ToRunner::Hello(_) => {
                        return Err(Error::Handshake(
                            "a second hello after the handshake".into(),
                        ))
                    }
                }
            }

            let mut fds = vec![pollfd(self.sock()), pollfd(self.sigchld.fd())];
            let mut stderr_of = Vec::new();
            for (pid, script) in &self.scripts {
                if let Some(log) = &script.stderr {
                    fds.push(pollfd(log.fd()));
                    stderr_of.push(*pid);
                }
            }
            let timeout = poll_timeout(self.deadlines.next_timeout(Instant::now()));
            // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs
            // whose descriptors stay open during the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::Io(e));
            }

            if fds[1].revents != 0 {
                self.sigchld.drain();
                if self.sigchld.terminate_requested() {
                    return Ok(());
                }
                self.reap(true)?;
            }
            for (i, pid) in stderr_of.iter().enumerate() {
                if fds[2 + i].revents != 0 {
                    self.forward_stderr(*pid);
                }
            }
            if fds[0].revents != 0 {
                match self.channel.read_nonblocking()? {
                    ReadStatus::Data(_) | ReadStatus::WouldBlock => {}
                    // Runs that arrived just before the end are moot:
                    // nobody is left to read their output.
                    ReadStatus::Closed => return Ok(()),
                }
            }
            self.fire_timers();
        }
    }

    /// Handles one run request: refuse, or start the script and pass its
    /// pipe ends.
    fn start(&mut self, run: CgiRun) -> Result<(), Error> {
        let name = display_name(&run.script);
        if self.running >= self.max_scripts {
            return self.refuse(run.id, &name, Refusal::Overloaded);
        }
        let script = match self.resolver.resolve(&run.script) {
            Ok(script) => script,
            Err(refusal) => return self.refuse(run.id, &name, refusal),
        };
        hold_hook::after_check();
        let mut cmd = match script_spawn::command(&script, &run.env, Streams::Piped) {
            Ok(cmd) => cmd,
            Err(refusal) => return self.refuse(run.id, &name, refusal),
        };
        // Said before the script starts: a runner that dies between the
        // start and `Started` must not have the run sent again.
        self.channel
            .send(&FromRunner::Accepted { id: run.id }, &[])?;
        let mut child = match script_spawn::spawn(&mut cmd, &script) {
            Ok(child) => child,
            Err(refusal) => return self.refuse(run.id, &name, refusal),
        };
        die_hook::after_spawn();
        // The pid doubles as the process group id (process_group(0)).
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        let stdin = child.stdin.take().map(OwnedFd::from);
        let stdout = child.stdout.take().map(OwnedFd::from);
        let stderr = child.stderr.take().map(OwnedFd::from);
        // The std handle is not needed: the script is reaped by waitpid(-1).
        drop(child);
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
            // Cannot happen with piped streams; never leave it running.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let why = Refusal::ExecFailed("no pipes to the script".into());
            return self.refuse(run.id, &name, why);
        };
        let stderr = stderr.and_then(|fd| match StderrLog::new(fd, &name) {
            Ok(log) => Some(log),
            Err(e) => {
                log_line(&name, &format!("stderr not forwarded: {e}"));
                None
            }
        });

        // A pid can only be reused once its old process group is empty, so
        // an old entry with this pid has nothing left to wait for.
        if let Some(mut old) = self.scripts.remove(&pid) {
            if let Some(log) = old.stderr.as_mut() {
                log.finish(&mut io::stderr().lock());
            }
            if !old.exited {
                self.running = self.running.saturating_sub(1);
            }
        }
        let now = Instant::now();
        let serial = self.next_serial;
        self.next_serial += 1;
        // A time limit of 0 means none.
        let timeout_at = match run.timeout_ms {
            0 => None,
            ms => script_deadlines::after(now, ms),
        };
        if let Some(at) = timeout_at {
            self.deadlines
                .push(at, (Key { pid, serial }, Kind::Timeout));
        }
        self.scripts.insert(
            pid,
            Script {
                id: run.id,
                serial,
                name,
                stderr,
                exited: false,
                timed_out: false,
                timeout_ms: run.timeout_ms,
                timeout_at,
            },
        );
        self.running += 1;

        let started = FromRunner::Started {
            id: run.id,
            pid: pid.unsigned_abs(),
        };
        let sent = self
            .channel
            .send(&started, &[stdin.as_fd(), stdout.as_fd()]);
        // Our copies go now: the server holds its own.
        drop(stdin);
        drop(stdout);
        sent
    }

    fn refuse(&mut self, id: u64, name: &str, refusal: Refusal) -> Result<(), Error> {
        // Refusals the client did not cause are worth a line in the log.
        if matches!(refusal, Refusal::ExecFailed(_) | Refusal::Overloaded) {
            log_line(name, &format!("not started: {refusal}"));
        }
        self.channel.send(&FromRunner::Refused { id, refusal }, &[])
    }

    /// Reaps every child that has ended. With `report`, the server is told
    /// of each script's end.
    fn reap(&mut self, report: bool) -> Result<(), Error> {
        let mut reaped = false;
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: waitpid only writes the status through the pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid == 0 || (pid < 0 && Errno::last() != Errno::EINTR) {
                // Nothing more now (or no children at all). A death may
                // have handed the runner orphans.
                if reaped {
                    self.kill_escaped_orphans();
                }
                return Ok(());
            }
            if pid < 0 {
                continue;
            }
            reaped = true;
            let exit = if libc::WIFEXITED(status) {
                ExitInfo::Code(libc::WEXITSTATUS(status))
            } else if libc::WIFSIGNALED(status) {
                ExitInfo::Signal(libc::WTERMSIG(status))
            } else {
                // Stopped or continued: not asked for, not an end.
                continue;
            };
            self.exited(pid, exit, report)?;
        }
    }

    /// One child has been reaped. Grandchildren are not tracked: nothing
    /// to do for them.
    fn exited(&mut self, pid: i32, exit: ExitInfo, report: bool) -> Result<(), Error> {
        let Some(script) = self.scripts.get_mut(&pid) else {
            return Ok(());
        };
        if script.exited {
            return Ok(());
        }
        script.exited = true;
        self.running = self.running.saturating_sub(1);
        // The time limit was only the cause if our SIGKILL ended it.
        let timed_out = script.timed_out && exit == ExitInfo::Signal(libc::SIGKILL);
        if timed_out {
            let ms = script.timeout_ms;
            log_line(&script.name, &format!("killed after {ms} ms (time limit)"));
        }
        let now = Instant::now();
        let grace_at = match (
            script_deadlines::after(now, GRACE.as_millis() as u64),
            script.timeout_at,
        ) {
            (Some(grace), Some(limit)) => Some(grace.min(limit)),
            (grace, limit) => grace.or(limit),
        };
        let id = script.id;
        let key = Key {
            pid,
            serial: script.serial,
        };
        if let Some(at) = grace_at {
            self.deadlines.push(at, (key, Kind::Grace));
        }
        self.forget_if_done(pid);
        if report {
            let message = FromRunner::Exited {
                id,
                exit,
                timed_out,
            };
            self.channel.send(&message, &[])?;
        }
        Ok(())
    }

    /// Kills the runner's children that are not its scripts and are in no
    /// script's process group: descendants that left their script's group
    /// (`setsid`) and whose parent has ended. Those in a script's group
    /// are the group kill's (the time limit, the grace period).
    fn kill_escaped_orphans(&self) {
        let me = std::process::id();
        let Ok(list) = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")) else {
            return;
        };
        for pid in list
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            if self.scripts.contains_key(&pid) {
                continue;
            }
            let Ok(group) = nix::unistd::getpgid(Some(Pid::from_raw(pid))) else {
                continue;
            };
            if !self.scripts.contains_key(&group.as_raw()) {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }

    /// Copies what a script wrote to stderr into the log.
    fn forward_stderr(&mut self, pid: i32) {
        let Some(script) = self.scripts.get_mut(&pid) else {
            return;
        };
        let Some(log) = script.stderr.as_mut() else {
            return;
        };
        if log.read_available(&mut io::stderr().lock()) == Drain::Closed {
            script.stderr = None;
            self.forget_if_done(pid);
        }
    }

    /// Drops a script that has exited, whose stderr has ended and whose
    /// process group is empty: nothing is left to wait for.
    fn forget_if_done(&mut self, pid: i32) {
        let done = self
            .scripts
            .get(&pid)
            .is_some_and(|s| s.exited && s.stderr.is_none() && group_is_empty(pid));
        if done {
            self.scripts.remove(&pid);
        }
    }

    /// Acts on every deadline that has passed.
    fn fire_timers(&mut self) {
        let now = Instant::now();
        let mut group_killed = false;
        while let Some((_, (key, kind))) = self.deadlines.pop_due(now) {
            let Some(script) = self.scripts.get_mut(&key.pid) else {
                continue;
            };
            if script.serial != key.serial {
                continue;
            }
            match kind {
                Kind::Timeout => {
                    if !script.exited {
                        script.timed_out = true;
                        kill_group(key.pid);
                        group_killed = true;
                    }
                }
                Kind::Grace => {
                    kill_group(key.pid);
                    group_killed = true;
                    if script.stderr.is_some() {
                        let at = now + FORGET_AFTER;
                        self.deadlines.push(at, (key, Kind::Forget));
                    } else {
                        self.scripts.remove(&key.pid);
                    }
                }
                Kind::Forget => {
                    if let Some(mut log) = script.stderr.take() {
                        let mut err = io::stderr().lock();
                        if log.read_available(&mut err) == Drain::Open {
                            log.finish(&mut err);
                        }
                    }
                    self.scripts.remove(&key.pid);
                }
            }
        }
        // A descendant still in the group when its parent was reaped may
        // have left it since (a `setsid` that ran late): now, at the group's
        // end, it is in no script's group, and goes too.
        if group_killed {
            self.kill_escaped_orphans();
        }
    }

    /// Kills every script's process group, reaps what it can within
    /// [`SHUTDOWN_REAP`] and writes out what the scripts left on stderr.
    fn shutdown(&mut self) {
        for pid in self.scripts.keys() {
            kill_group(*pid);
        }
        let deadline = Instant::now() + SHUTDOWN_REAP;
        loop {
            let _ = self.reap(false);
            if self.running == 0 || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut err = io::stderr().lock();
        for script in self.scripts.values_mut() {
            if let Some(mut log) = script.stderr.take() {
                if log.read_available(&mut err) == Drain::Open {
                    log.finish(&mut err);
                }
            }
        }
        self.scripts.clear();
    }
}

fn pollfd(fd: BorrowedFd<'_>) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }
}

/// `SIGKILL` to a whole process group; a group that is gone already is
/// fine.
fn kill_group(pgid: i32) {
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
}

/// True when no process is left in the group.
fn group_is_empty(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None) == Err(Errno::ESRCH)
}

/// One line of the runner's own about a script, in the log's format.
fn log_line(name: &str, text: &str) {
    let prefix = format!("cgi: {name}: ");
    let mut err = io::stderr().lock();
    let _ = err.write_all(&crate::stderr::log_line(&prefix, text.as_bytes()));
}
