//! The helper pool: the disk helper processes, the lookups in flight on
//! each, and the connections waiting for them.
//!
//! Lookups for the same path share one helper request. Each request goes
//! to the ready helper with the fewest in flight. When a helper dies, its
//! lookups go to another helper (lookups are idempotent), and the helper
//! is restarted with back-off (see [`crate::supervise::child_link`]).

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use protocol::{FileMeta, FromHelper, Hello, LookupRequest, Outcome, Received, Role, ToHelper};

use crate::conn_table::ConnId;
use crate::event::{Event, Poller};
use crate::supervise::child_link::{ChildProcess, ChildState};
use crate::token::EventToken;

/// A connection waiting for a lookup.
pub type Waiter = ConnId;

/// A finished lookup and everyone who waited for it.
#[derive(Debug)]
pub struct Completion {
    pub key: String,
    pub outcome: Outcome,
    pub fd: Option<OwnedFd>,
    pub waiters: Vec<Waiter>,
}

#[derive(Debug)]
struct Pending {
    id: u64,
    known: Option<FileMeta>,
    helper: Option<usize>,
    /// When it was sent to `helper`.
    sent_at: Option<Instant>,
    waiters: Vec<Waiter>,
}

/// The pool of helper processes.
pub struct HelperPool {
    /// A helper that has not answered a lookup for this long is stuck: it
    /// is killed and its lookups go to another.
    answer_timeout: Duration,
    helpers: Vec<ChildProcess>,
    in_flight: Vec<usize>,
    pending: HashMap<String, Pending>,
    ids: HashMap<u64, String>,
    next_id: u64,
}

fn hello() -> ToHelper {
    ToHelper::Hello(Hello::new(Role::Server))
}

impl HelperPool {
    /// A pool of `count` helpers, not started yet.
    pub fn new(
        binary: PathBuf,
        args: Vec<OsString>,
        count: usize,
        answer_timeout: Duration,
        now: Instant,
    ) -> Self {
        let helpers = (0..count)
            .map(|i| {
                ChildProcess::new(
                    format!("helper {i}"),
                    binary.clone(),
                    args.clone(),
                    EventToken::Helper(i).to_token(),
                    now,
                )
            })
            .collect();
        HelperPool {
            answer_timeout,
            helpers,
            in_flight: vec![0; count],
            pending: HashMap::new(),
            ids: HashMap::new(),
            next_id: 1,
        }
    }

    /// The helper a poller token belongs to, if it is one of ours.
    pub fn slot_of(&self, token: EventToken) -> Option<usize> {
        match token {
            EventToken::Helper(i) if i < self.helpers.len() => Some(i),
            _ => None,
        }
    }

    /// Starts every helper (their handshakes come later, through
    /// [`handle_event`](Self::handle_event)). For start-up only.
    pub fn spawn_all(&mut self, poller: &mut dyn Poller, now: Instant) -> Result<()> {
        for helper in &mut self.helpers {
            helper.spawn(&hello(), poller, now)?;
        }
        Ok(())
    }

    /// At start-up: `Ok(true)` once every helper has answered the
    /// handshake, an error if one died first.
    pub fn started(&self) -> Result<bool> {
        if let Some(dead) = self.helpers.iter().find(|h| h.state() == ChildState::Down) {
            bail!(
                "{} failed during start-up (see the message above)",
                dead.name()
            );
        }
        Ok(self.helpers.iter().all(|h| h.state() == ChildState::Ready))
    }

    /// Asks for `key` on behalf of `waiter`, joining a lookup already in
    /// flight for the same path.
    pub fn lookup(
        &mut self,
        key: &str,
        known: Option<FileMeta>,
        waiter: Waiter,
        poller: &mut dyn Poller,
        now: Instant,
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
                sent_at: None,
                waiters: vec![waiter],
            },
        );
        self.assign(key, poller, now);
    }

    /// Sends a pending lookup to the least busy ready helper, if any.
    fn assign(&mut self, key: &str, poller: &mut dyn Poller, now: Instant) {
        let Some(pending) = self.pending.get_mut(key) else {
            return;
        };
        let Some(i) = (0..self.helpers.len())
            .filter(|&i| self.helpers[i].state() == ChildState::Ready)
            .min_by_key(|&i| self.in_flight[i])
        else {
            return;
        };
        let request = ToHelper::Lookup(LookupRequest {
            id: pending.id,
            path: key.to_string(),
            known: pending.known,
        });
        pending.helper = Some(i);
        pending.sent_at = Some(now);
        self.in_flight[i] += 1;
        if !self.helpers[i].send(&request, poller, now)
            || self.helpers[i].state() == ChildState::Down
        {
            self.helper_died(i, poller, now);
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
        let mut received: Vec<Received<FromHelper>> = Vec::new();
        let alive = self.helpers[i].on_event(ev, poller, now, &mut received);
        for Received { message, fds } in received {
            match message {
                FromHelper::Hello(hello) => {
                    let valid = hello.check_peer(Role::Helper).is_ok()
                        && self.helpers[i].state() == ChildState::Starting;
                    if !valid {
                        error_log!("{}: bad handshake {hello:?}", self.helpers[i].name());
                        self.helpers[i].mark_down(poller, now);
                        break;
                    }
                    self.helpers[i].set_ready();
                    self.assign_unsent(poller, now);
                }
                FromHelper::Lookup(reply) => {
                    let Some(key) = self.ids.remove(&reply.id) else {
                        continue;
                    };
                    let Some(pending) = self.pending.remove(&key) else {
                        continue;
                    };
                    if let Some(h) = pending.helper {
                        self.in_flight[h] = self.in_flight[h].saturating_sub(1);
                    }
                    completions.push(Completion {
                        key,
                        outcome: reply.outcome,
                        fd: fds.into_iter().next(),
                        waiters: pending.waiters,
                    });
                }
            }
        }
        if !alive || self.helpers[i].state() == ChildState::Down {
            self.helper_died(i, poller, now);
        }
    }

    /// Hands a dead helper's lookups to the others.
    fn helper_died(&mut self, i: usize, poller: &mut dyn Poller, now: Instant) {
        self.helpers[i].mark_down(poller, now);
        self.forget_assignments(i);
        self.assign_unsent(poller, now);
    }

    /// Marks the lookups sent to helper `i` as not sent.
    fn forget_assignments(&mut self, i: usize) {
        self.in_flight[i] = 0;
        for pending in self.pending.values_mut() {
            if pending.helper == Some(i) {
                pending.helper = None;
                pending.sent_at = None;
            }
        }
    }

    /// Sends every lookup that has no helper yet.
    fn assign_unsent(&mut self, poller: &mut dyn Poller, now: Instant) {
        let unsent: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.helper.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for key in unsent {
            self.assign(&key, poller, now);
        }
    }

    /// Reaps and restarts helpers (call on SIGCHLD and when due). Returns
    /// when it next needs to run.
    pub fn maintain(&mut self, poller: &mut dyn Poller, now: Instant) -> Option<Instant> {
        let stuck: Vec<usize> = self
            .pending
            .values()
            .filter(|p| p.sent_at.is_some_and(|t| t + self.answer_timeout <= now))
            .filter_map(|p| p.helper)
            .collect();
        for i in stuck {
            if self.helpers[i].state() != ChildState::Down {
                error_log!(
                    "{} did not answer within {:?}; restarting it",
                    self.helpers[i].name(),
                    self.answer_timeout
                );
                self.helper_died(i, poller, now);
            }
        }
        for i in 0..self.helpers.len() {
            if self.helpers[i].maintain(&hello(), poller, now) {
                self.forget_assignments(i);
                self.assign_unsent(poller, now);
            }
        }
        let answers_due = self
            .pending
            .values()
            .filter_map(|p| p.sent_at)
            .map(|t| t + self.answer_timeout);
        self.helpers
            .iter()
            .filter_map(ChildProcess::next_due)
            .chain(answers_due)
            .min()
    }

    /// Lookups in flight or queued.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The process ids of the running helpers.
    pub fn pids(&self) -> Vec<u32> {
        self.helpers.iter().flat_map(ChildProcess::pids).collect()
    }

    /// Restarts of each helper so far.
    pub fn restarts(&self) -> Vec<u64> {
        self.helpers.iter().map(ChildProcess::restarts).collect()
    }

    /// Ends every helper.
    pub fn shutdown(&mut self) {
        for helper in &mut self.helpers {
            helper.shutdown();
        }
    }
}
