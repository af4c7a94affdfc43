//! The helper pool: the disk helper processes, the lookups in flight on
//! each, and the connections waiting for them.
//!
//! Lookups for the same path share one helper request. Each request goes
//! to the ready helper with the fewest in flight. When a helper dies, its
//! lookups go to another helper (lookups are idempotent) and it is
//! restarted with exponential back-off.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use protocol::{
    FileMeta, FrameReader, FrameWriter, FromHelper, Hello, LookupRequest, Outcome, ReadStatus,
    Role, ToHelper,
};

use crate::event::{Event, Interest, Poller, Token};
use crate::spawn::spawn_child;

/// A connection waiting for a lookup: its slot and generation.
pub type Waiter = (usize, u32);

/// A finished lookup and everyone who waited for it.
#[derive(Debug)]
pub struct Completion {
    pub key: String,
    pub outcome: Outcome,
    pub fd: Option<OwnedFd>,
    pub waiters: Vec<Waiter>,
}

/// A helper that lived at least this long is healthy again: its next
/// restart is immediate.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// The longest wait before restarting a helper that keeps dying.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first delayed restart.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Spawned; waiting for its hello.
    Starting,
    Ready,
    /// Dead; restarted at `restart_at`.
    Down,
}

#[derive(Debug)]
struct Slot {
    state: State,
    child: Option<Child>,
    sock: Option<UnixStream>,
    reader: FrameReader,
    writer: FrameWriter,
    in_flight: usize,
    started: Instant,
    restart_at: Option<Instant>,
    quick_deaths: u32,
    restarts: u64,
    interest: Interest,
}

#[derive(Debug)]
struct Pending {
    id: u64,
    known: Option<FileMeta>,
    helper: Option<usize>,
    waiters: Vec<Waiter>,
}

/// The pool of helper processes.
pub struct HelperPool {
    binary: PathBuf,
    args: Vec<OsString>,
    token_base: Token,
    slots: Vec<Slot>,
    pending: HashMap<String, Pending>,
    ids: HashMap<u64, String>,
    next_id: u64,
    /// Children killed but not yet reaped.
    zombies: Vec<Child>,
}

impl HelperPool {
    /// A pool of `count` helpers, not started yet. Their poller tokens
    /// are `token_base..token_base + count`.
    pub fn new(
        binary: PathBuf,
        args: Vec<OsString>,
        count: usize,
        token_base: Token,
        now: Instant,
    ) -> Self {
        let slots = (0..count)
            .map(|_| Slot {
                state: State::Down,
                child: None,
                sock: None,
                reader: FrameReader::new(),
                writer: FrameWriter::new(),
                in_flight: 0,
                started: now,
                restart_at: Some(now),
                quick_deaths: 0,
                restarts: 0,
                interest: Interest::NONE,
            })
            .collect();
        HelperPool {
            binary,
            args,
            token_base,
            slots,
            pending: HashMap::new(),
            ids: HashMap::new(),
            next_id: 1,
            zombies: Vec::new(),
        }
    }

    /// The slot a poller token belongs to, if it is one of ours.
    pub fn slot_of(&self, token: Token) -> Option<usize> {
        token
            .checked_sub(self.token_base)
            .filter(|&i| i < self.slots.len())
    }

    /// Starts every helper and waits (blocking, at most `timeout`) until
    /// each has answered the handshake. For start-up only.
    pub fn start(&mut self, poller: &mut dyn Poller, timeout: Duration) -> Result<()> {
        let begin = Instant::now();
        for i in 0..self.slots.len() {
            self.spawn(i, poller, begin)?;
        }
        let mut events = Vec::new();
        let mut completions = Vec::new();
        while self.slots.iter().any(|s| s.state != State::Ready) {
            if let Some(i) = self.slots.iter().position(|s| s.state == State::Down) {
                bail!(
                    "helper {} ({}) failed during start-up; see the message above",
                    i,
                    self.binary.display()
                );
            }
            let elapsed = begin.elapsed();
            if elapsed >= timeout {
                bail!("helpers did not answer the handshake within {timeout:?}");
            }
            poller.wait(&mut events, Some(timeout - elapsed))?;
            for ev in events.drain(..) {
                if let Some(slot) = self.slot_of(ev.token) {
                    self.handle_event(slot, ev, poller, Instant::now(), &mut completions);
                }
            }
        }
        Ok(())
    }

    fn spawn(&mut self, i: usize, poller: &mut dyn Poller, now: Instant) -> Result<()> {
        let spawned = spawn_child(&self.binary, &self.args)
            .map_err(|e| anyhow::anyhow!("cannot start helper {}: {e}", self.binary.display()))?;
        let token = self.token_base + i;
        let slot = &mut self.slots[i];
        slot.reader = FrameReader::new();
        slot.writer = FrameWriter::new();
        slot.writer
            .push(&ToHelper::Hello(Hello::new(Role::Server)))?;
        poller.register(spawned.sock.as_raw_fd(), token, Interest::BOTH)?;
        slot.interest = Interest::BOTH;
        slot.sock = Some(spawned.sock);
        slot.child = Some(spawned.child);
        slot.state = State::Starting;
        slot.started = now;
        slot.restart_at = None;
        Ok(())
    }

    /// Asks for `key` on behalf of `waiter`, joining a lookup already in
    /// flight for the same path.
    pub fn lookup(
        &mut self,
        key: &str,
        known: Option<FileMeta>,
        waiter: Waiter,
        poller: &mut dyn Poller,
    ) {
        if let Some(pending) = self.pending.get_mut(key) {
            pending.waiters.push(waiter);
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert(id, key.to_string());
        self.pending.insert(
            key.to_string(),
            Pending {
                id,
                known,
                helper: None,
                waiters: vec![waiter],
            },
        );
        self.assign(key, poller);
    }

    /// Sends a pending lookup to the least busy ready helper, if any.
    fn assign(&mut self, key: &str, poller: &mut dyn Poller) {
        let Some(pending) = self.pending.get_mut(key) else {
            return;
        };
        let Some(i) = (0..self.slots.len())
            .filter(|&i| self.slots[i].state == State::Ready)
            .min_by_key(|&i| self.slots[i].in_flight)
        else {
            return;
        };
        let request = ToHelper::Lookup(LookupRequest {
            id: pending.id,
            path: key.to_string(),
            known: pending.known,
        });
        let slot = &mut self.slots[i];
        if let Err(e) = slot.writer.push(&request) {
            eprintln!("amped: cannot encode a lookup for {key}: {e}");
            return;
        }
        pending.helper = Some(i);
        slot.in_flight += 1;
        self.flush(i, poller);
    }

    fn flush(&mut self, i: usize, poller: &mut dyn Poller) {
        let slot = &mut self.slots[i];
        let Some(sock) = slot.sock.as_ref() else {
            return;
        };
        let want = match slot.writer.flush(sock.as_fd()) {
            Ok(true) => Interest::READABLE,
            Ok(false) => Interest::BOTH,
            Err(e) => {
                eprintln!("amped: helper {i}: write failed: {e}");
                self.mark_down(i, poller, Instant::now());
                return;
            }
        };
        if want != slot.interest {
            let fd = sock.as_raw_fd();
            if poller.reregister(fd, self.token_base + i, want).is_ok() {
                slot.interest = want;
            }
        }
    }

    /// Handles readiness on helper `i`'s socket, collecting finished lookups.
    pub fn handle_event(
        &mut self,
        i: usize,
        ev: Event,
        poller: &mut dyn Poller,
        now: Instant,
        completions: &mut Vec<Completion>,
    ) {
        if ev.writable {
            self.flush(i, poller);
        }
        if !ev.readable {
            return;
        }
        loop {
            let slot = &mut self.slots[i];
            let Some(sock) = slot.sock.as_ref() else {
                return;
            };
            let status = slot.reader.read_from(sock.as_fd(), true);
            let closed = match status {
                Ok(ReadStatus::Data(_)) => false,
                Ok(ReadStatus::WouldBlock) => return,
                Ok(ReadStatus::Closed) => true,
                Err(e) => {
                    eprintln!("amped: helper {i}: {e}");
                    self.mark_down(i, poller, now);
                    return;
                }
            };
            if let Err(e) = self.drain_messages(i, poller, completions) {
                eprintln!("amped: helper {i}: {e}");
                self.mark_down(i, poller, now);
                return;
            }
            if closed {
                self.mark_down(i, poller, now);
                return;
            }
        }
    }

    fn drain_messages(
        &mut self,
        i: usize,
        poller: &mut dyn Poller,
        completions: &mut Vec<Completion>,
    ) -> Result<(), protocol::Error> {
        while let Some(received) = self.slots[i].reader.next_message::<FromHelper>()? {
            match received.message {
                FromHelper::Hello(hello) => {
                    hello.check_version()?;
                    if hello.role != Role::Helper || self.slots[i].state != State::Starting {
                        return Err(protocol::Error::Handshake(format!("{hello:?}")));
                    }
                    self.slots[i].state = State::Ready;
                    self.assign_waiting(poller);
                }
                FromHelper::Lookup(reply) => {
                    if self.slots[i].state != State::Ready {
                        return Err(protocol::Error::Handshake(
                            "lookup reply before hello".into(),
                        ));
                    }
                    let Some(key) = self.ids.remove(&reply.id) else {
                        continue;
                    };
                    let Some(pending) = self.pending.remove(&key) else {
                        continue;
                    };
                    if let Some(h) = pending.helper {
                        self.slots[h].in_flight = self.slots[h].in_flight.saturating_sub(1);
                    }
                    completions.push(Completion {
                        key,
                        outcome: reply.outcome,
                        fd: received.fds.into_iter().next(),
                        waiters: pending.waiters,
                    });
                }
            }
        }
        Ok(())
    }

    /// Sends every lookup that has no helper yet.
    fn assign_waiting(&mut self, poller: &mut dyn Poller) {
        let waiting: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.helper.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for key in waiting {
            self.assign(&key, poller);
        }
    }

    /// Takes a dead (or misbehaving) helper out of service, hands its
    /// lookups to the others and schedules its restart.
    fn mark_down(&mut self, i: usize, poller: &mut dyn Poller, now: Instant) {
        let slot = &mut self.slots[i];
        if slot.state == State::Down {
            return;
        }
        if let Some(sock) = slot.sock.take() {
            let _ = poller.deregister(sock.as_raw_fd());
        }
        if let Some(mut child) = slot.child.take() {
            let _ = child.kill();
            match child.try_wait() {
                Ok(Some(status)) => {
                    eprintln!("amped: helper {i} (pid {}) exited: {status}", child.id())
                }
                _ => self.zombies.push(child),
            }
        }
        let slot = &mut self.slots[i];
        slot.state = State::Down;
        slot.in_flight = 0;
        slot.interest = Interest::NONE;
        if now.saturating_duration_since(slot.started) >= HEALTHY_AFTER {
            slot.quick_deaths = 0;
        }
        let delay = match slot.quick_deaths {
            0 => Duration::ZERO,
            n => (FIRST_BACKOFF * 2u32.saturating_pow(n - 1)).min(MAX_BACKOFF),
        };
        slot.quick_deaths = slot.quick_deaths.saturating_add(1);
        slot.restart_at = Some(now + delay);
        for pending in self.pending.values_mut() {
            if pending.helper == Some(i) {
                pending.helper = None;
            }
        }
        self.assign_waiting(poller);
    }

    /// Reaps exited children (call on SIGCHLD) and restarts helpers whose
    /// back-off has passed. Returns when it next needs to run.
    pub fn maintain(&mut self, poller: &mut dyn Poller, now: Instant) -> Option<Instant> {
        self.zombies.retain_mut(|child| match child.try_wait() {
            Ok(Some(status)) => {
                eprintln!("amped: helper (pid {}) exited: {status}", child.id());
                false
            }
            Ok(None) => true,
            Err(_) => false,
        });
        for i in 0..self.slots.len() {
            let exited = matches!(
                self.slots[i].child.as_mut().map(Child::try_wait),
                Some(Ok(Some(_))) | Some(Err(_))
            );
            if exited {
                self.mark_down(i, poller, now);
            }
            let due = self.slots[i].state == State::Down
                && self.slots[i].restart_at.is_some_and(|at| at <= now);
            if due {
                self.slots[i].restarts += 1;
                if let Err(e) = self.spawn(i, poller, now) {
                    eprintln!("amped: {e}");
                    let slot = &mut self.slots[i];
                    slot.restart_at = Some(now + MAX_BACKOFF);
                }
            }
        }
        self.slots.iter().filter_map(|s| s.restart_at).min()
    }

    /// Lookups in flight or queued.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Ends every helper (they also exit on end-of-file).
    pub fn shutdown(&mut self) {
        for slot in &mut self.slots {
            slot.sock = None;
            if let Some(mut child) = slot.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for mut child in self.zombies.drain(..) {
            let _ = child.wait();
        }
    }
}
