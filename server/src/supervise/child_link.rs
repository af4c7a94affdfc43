//! One supervised child process (a helper or the CGI runner): started
//! with a socketpair, checked with the version handshake, talked to with
//! non-blocking framed I/O inside the event loop, and restarted with
//! exponential back-off when it dies.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use protocol::{FrameReader, FrameWriter, Message, ReadStatus, Received};

use crate::backoff::{RestartBackoff, MAX_BACKOFF};
use crate::event::{Event, Interest, Poller, Token};
use crate::supervise::spawn_child::spawn_child;

/// How long a child may take to exit at shutdown before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Where a child is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildState {
    /// Spawned; waiting for its hello.
    Starting,
    /// Handshake done; takes requests.
    Ready,
    /// Dead; restarted when its back-off has passed.
    Down,
}

/// A child process and the server's end of its channel.
#[derive(Debug)]
pub(crate) struct ChildProcess {
    name: String,
    binary: PathBuf,
    args: Vec<OsString>,
    token: Token,
    state: ChildState,
    child: Option<Child>,
    sock: Option<UnixStream>,
    reader: FrameReader,
    writer: FrameWriter,
    started: Instant,
    restart_at: Option<Instant>,
    backoff: RestartBackoff,
    restarts: u64,
    interest: Interest,
    /// Killed children not reaped yet.
    zombies: Vec<Child>,
    /// Children let go (their channel closed, they exit on end-of-file)
    /// not reaped yet; their exit is expected, so it is not logged.
    retired: Vec<Child>,
}

impl ChildProcess {
    /// A child not started yet; its first start is due at once.
    pub(crate) fn new(
        name: String,
        binary: PathBuf,
        args: Vec<OsString>,
        token: Token,
        now: Instant,
    ) -> Self {
        ChildProcess {
            name,
            binary,
            args,
            token,
            state: ChildState::Down,
            child: None,
            sock: None,
            reader: FrameReader::new(),
            writer: FrameWriter::new(),
            started: now,
            restart_at: Some(now),
            backoff: RestartBackoff::default(),
            restarts: 0,
            interest: Interest::NONE,
            zombies: Vec::new(),
            retired: Vec::new(),
        }
    }

    /// A child that is not started until asked ([`spawn`](Self::spawn)),
    /// and not restarted when it is let go ([`retire`](Self::retire)).
    pub(crate) fn on_demand(
        name: String,
        binary: PathBuf,
        args: Vec<OsString>,
        token: Token,
        now: Instant,
    ) -> Self {
        ChildProcess {
            restart_at: None,
            ..Self::new(name, binary, args, token, now)
        }
    }

    /// True when the child is neither running nor due to be restarted.
    pub(crate) fn is_stopped(&self) -> bool {
        self.state == ChildState::Down && self.restart_at.is_none()
    }

    /// Lets the child go: its channel is closed (it exits on end-of-file)
    /// and it is not restarted.
    pub(crate) fn retire(&mut self, poller: &mut dyn Poller) {
        if let Some(sock) = self.sock.take() {
            let _ = poller.deregister(sock.as_raw_fd());
        }
        if let Some(child) = self.child.take() {
            self.retired.push(child);
        }
        self.state = ChildState::Down;
        self.interest = Interest::NONE;
        self.restart_at = None;
        self.reap();
    }

    pub(crate) fn state(&self) -> ChildState {
        self.state
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The process ids this child owns and has not reaped: the running
    /// one and any killed ones still to be reaped.
    pub(crate) fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.child
            .iter()
            .chain(&self.zombies)
            .chain(&self.retired)
            .map(Child::id)
    }

    /// Times this child has been restarted.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Marks the handshake as done.
    pub(crate) fn set_ready(&mut self) {
        self.state = ChildState::Ready;
    }

    /// Starts the process and queues `hello` as its first message.
    pub(crate) fn spawn<M: Message>(
        &mut self,
        hello: &M,
        poller: &mut dyn Poller,
        now: Instant,
    ) -> Result<()> {
        let spawned = spawn_child(&self.binary, &self.args).map_err(|e| {
            anyhow!(
                "cannot start {} ({}): {e}",
                self.name,
                self.binary.display()
            )
        })?;
        let fd = spawned.sock.as_raw_fd();
        if let Err(e) = poller.register(fd, self.token, Interest::BOTH) {
            let mut child = spawned.child;
            let _ = child.kill();
            self.zombies.push(child);
            return Err(anyhow!("cannot watch {}: {e}", self.name));
        }
        self.reader = FrameReader::new();
        self.writer = FrameWriter::new();
        self.writer.push(hello)?;
        self.interest = Interest::BOTH;
        self.sock = Some(spawned.sock);
        self.child = Some(spawned.child);
        self.state = ChildState::Starting;
        self.started = now;
        self.restart_at = None;
        Ok(())
    }

    /// Queues a message and writes what the socket takes. False when the
    /// child is not running or the message could not be queued.
    pub(crate) fn send<M: Message>(
        &mut self,
        message: &M,
        poller: &mut dyn Poller,
        now: Instant,
    ) -> bool {
        self.send_with_fds(message, Vec::new(), poller, now)
    }

    /// [`send`](Self::send), with `fds` attached to the message.
    pub(crate) fn send_with_fds<M: Message>(
        &mut self,
        message: &M,
        fds: Vec<OwnedFd>,
        poller: &mut dyn Poller,
        now: Instant,
    ) -> bool {
        if self.sock.is_none() {
            return false;
        }
        if let Err(e) = self.writer.push_with_fds(message, fds) {
            error_log!("cannot encode a message for {}: {e}", self.name);
            return false;
        }
        self.flush(poller, now);
        true
    }

    fn flush(&mut self, poller: &mut dyn Poller, now: Instant) {
        let Some(sock) = self.sock.as_ref() else {
            return;
        };
        let want = match self.writer.flush(sock.as_fd()) {
            Ok(true) => Interest::READABLE,
            Ok(false) => Interest::BOTH,
            Err(e) => {
                error_log!("{}: write failed: {e}", self.name);
                self.mark_down(poller, now);
                return;
            }
        };
        if want != self.interest
            && poller
                .reregister(sock.as_raw_fd(), self.token, want)
                .is_ok()
        {
            self.interest = want;
        }
    }

    /// Handles readiness on the child's socket: writes what is queued and
    /// collects every whole message that arrived. Returns false when the
    /// child died or broke the protocol (it is then down; the messages
    /// that arrived before are still in `out`).
    pub(crate) fn on_event<M: Message>(
        &mut self,
        ev: Event,
        poller: &mut dyn Poller,
        now: Instant,
        out: &mut Vec<Received<M>>,
    ) -> bool {
        if ev.writable {
            self.flush(poller, now);
        }
        if !ev.readable {
            return self.state != ChildState::Down;
        }
        loop {
            let Some(sock) = self.sock.as_ref() else {
                return false;
            };
            let closed = match self.reader.read_from(sock.as_fd(), true) {
                Ok(ReadStatus::Data(_)) => false,
                Ok(ReadStatus::WouldBlock) => return true,
                Ok(ReadStatus::Closed) => true,
                Err(e) => {
                    error_log!("{}: {e}", self.name);
                    self.mark_down(poller, now);
                    return false;
                }
            };
            loop {
                match self.reader.next_message::<M>() {
                    Ok(Some(received)) => out.push(received),
                    Ok(None) => break,
                    Err(e) => {
                        error_log!("{}: {e}", self.name);
                        self.mark_down(poller, now);
                        return false;
                    }
                }
            }
            if closed {
                self.mark_down(poller, now);
                return false;
            }
        }
    }

    /// Takes the child out of service (killing it if it still runs) and
    /// schedules its restart with back-off.
    pub(crate) fn mark_down(&mut self, poller: &mut dyn Poller, now: Instant) {
        if self.state == ChildState::Down {
            return;
        }
        if let Some(sock) = self.sock.take() {
            let _ = poller.deregister(sock.as_raw_fd());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            self.zombies.push(child);
        }
        self.state = ChildState::Down;
        self.interest = Interest::NONE;
        let delay = self
            .backoff
            .on_death(now.saturating_duration_since(self.started));
        self.restart_at = Some(now + delay);
        self.reap();
    }

    /// Reaps killed children, reporting how each ended.
    fn reap(&mut self) {
        let name = &self.name;
        self.zombies.retain_mut(|child| match child.try_wait() {
            Ok(Some(status)) => {
                error_log!("{name} (pid {}) exited: {status}", child.id());
                false
            }
            Ok(None) => true,
            Err(_) => false,
        });
        self.retired
            .retain_mut(|child| matches!(child.try_wait(), Ok(None)));
    }

    /// Call on SIGCHLD and when [`next_due`](Self::next_due) comes: notices
    /// an exit, reaps, and restarts when the back-off has passed. The
    /// `hello` is what a restarted child is greeted with. Returns true
    /// when it found the child dead (its work must go elsewhere).
    pub(crate) fn maintain<M: Message>(
        &mut self,
        hello: &M,
        poller: &mut dyn Poller,
        now: Instant,
    ) -> bool {
        let exited = matches!(
            self.child.as_mut().map(Child::try_wait),
            Some(Ok(Some(_))) | Some(Err(_))
        );
        if exited {
            self.mark_down(poller, now);
        }
        self.reap();
        if self.state == ChildState::Down && self.restart_at.is_some_and(|at| at <= now) {
            self.restarts += 1;
            if let Err(e) = self.spawn(hello, poller, now) {
                error_log!("{e}");
                self.restart_at = Some(now + MAX_BACKOFF);
            }
        }
        exited
    }

    /// When [`maintain`](Self::maintain) must next run, if ever.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        // A killed child not reaped yet is looked at again shortly, in
        // case its SIGCHLD was merged with another.
        let zombies = (!self.zombies.is_empty() || !self.retired.is_empty())
            .then(|| Instant::now() + Duration::from_millis(50));
        [self.restart_at, zombies].into_iter().flatten().min()
    }

    /// Ends the child for good: end-of-file and SIGTERM first (the CGI
    /// runner then stops its scripts), SIGKILL if it has not exited within
    /// [`SHUTDOWN_GRACE`].
    pub(crate) fn shutdown(&mut self) {
        self.sock = None;
        if let Some(child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            let mut child = child;
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.zombies.push(child);
        }
        for mut child in self.zombies.drain(..).chain(self.retired.drain(..)) {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.state = ChildState::Down;
        self.restart_at = None;
    }
}
