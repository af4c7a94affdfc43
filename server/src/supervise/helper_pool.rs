//! The helper pool: the disk helper processes, the work queued for them
//! (lookups, and window reads of files being sent), and the connections
//! waiting for it.
//!
//! Lookups for the same path share one helper request. Which helper
//! takes a job, when one more starts (up to `--helpers-max`) and when an
//! extra one is let go (after [`IDLE_RETIRE`] without work) is
//! `assignment.rs`'s policy: slow disk reads never hold up a lookup.
//!
//! When a helper dies, its work goes to another (lookups and reads are
//! idempotent), and the helper is restarted with back-off (see
//! [`crate::supervise::child_link`]).

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use protocol::{FileMeta, FromHelper, Hello, LookupRequest, ReadRequest, Received, Role, ToHelper};

use crate::event::{Event, Poller};
use crate::send::{OpenFile, Slot, WindowSlots, READ_WINDOW, SLOT_COUNT};

use super::assignment::{self, HelperView};
use super::pool_jobs::{
    Completion, Dispatch, Load, LookupDone, PendingLookup, PendingRead, PoolStats, ReadDone, Waiter,
};
use super::quarantine::Quarantine;
use crate::supervise::child_link::{ChildProcess, ChildState};
use crate::token::EventToken;

/// A helper started for extra work is let go after this long without any.
pub(crate) const IDLE_RETIRE: Duration = Duration::from_secs(5);

/// Helpers a job may leave silent past the answer timeout before it is
/// dropped instead of sent again: when a second helper hangs on it too,
/// the path (a hung NFS or FUSE file) is what hangs, and re-sending it
/// would kill a helper every timeout for ever. Its waiters get their 503
/// at their own deadlines.
pub(crate) const MAX_STUCK: u32 = 2;

/// The pool of helper processes.
pub(crate) struct HelperPool {
    /// A helper that has not answered for this long is stuck: it is
    /// killed and its work goes to another.
    answer_timeout: Duration,
    /// Helpers that always run (`--helpers`); the rest start on demand.
    permanent: usize,
    helpers: Vec<ChildProcess>,
    load: Vec<Load>,
    lookups: HashMap<String, PendingLookup>,
    lookup_ids: HashMap<u64, String>,
    reads: HashMap<u64, PendingRead>,
    /// Unsent lookups (by key) and reads (by id), oldest first. Entries
    /// sent or cancelled meanwhile are skipped when met.
    lookup_queue: VecDeque<String>,
    read_queue: VecDeque<u64>,
    next_id: u64,
    longest_wait: Duration,
    /// The buffer shared with every helper, that windows are read into.
    slots: Option<Rc<WindowSlots>>,
    /// Slots lent to reads of helpers given up on, until they are reaped.
    quarantine: Quarantine<Slot>,
    /// What the assignment policy is shown of each helper, refilled
    /// before each question (kept, so that asking allocates nothing).
    views: Vec<HelperView>,
}

fn hello() -> ToHelper {
    ToHelper::Hello(Hello::new(Role::Server))
}

impl HelperPool {
    /// A pool of `permanent` helpers that may grow to `max`, not started
    /// yet.
    pub(crate) fn new(
        binary: PathBuf,
        args: Vec<OsString>,
        permanent: usize,
        max: usize,
        answer_timeout: Duration,
        now: Instant,
    ) -> Self {
        let max = max.max(permanent);
        let helpers = (0..max)
            .map(|i| {
                let (name, token) = (format!("helper {i}"), EventToken::Helper(i).to_token());
                // Its error-log lines name it `helper-N`, as the server does.
                let mut args = args.clone();
                args.extend(["--slot".into(), i.to_string().into()]);
                let binary = binary.clone();
                if i < permanent {
                    ChildProcess::new(name, binary, args, token, now)
                } else {
                    ChildProcess::on_demand(name, binary, args, token, now)
                }
            })
            .collect();
        HelperPool {
            answer_timeout,
            permanent,
            helpers,
            load: vec![Load::default(); max],
            lookups: HashMap::new(),
            lookup_ids: HashMap::new(),
            reads: HashMap::new(),
            lookup_queue: VecDeque::new(),
            read_queue: VecDeque::new(),
            next_id: 1,
            longest_wait: Duration::ZERO,
            slots: WindowSlots::create(SLOT_COUNT, READ_WINDOW as usize),
            quarantine: Quarantine::default(),
            views: Vec::with_capacity(max),
        }
    }

    /// The helper a poller token belongs to, if it is one of ours.
    pub(crate) fn slot_of(&self, token: EventToken) -> Option<usize> {
        match token {
            EventToken::Helper(i) if i < self.helpers.len() => Some(i),
            _ => None,
        }
    }

    /// Starts the permanent helpers (their handshakes come later, through
    /// [`handle_event`](Self::handle_event)). For start-up only.
    pub(crate) fn spawn_all(&mut self, poller: &mut dyn Poller, now: Instant) -> Result<()> {
        for helper in &mut self.helpers[..self.permanent] {
            helper.spawn(&hello(), poller, now)?;
        }
        Ok(())
    }

    /// At start-up: `Ok(true)` once every permanent helper has answered
    /// the handshake, an error if one died first.
    pub(crate) fn started(&self) -> Result<bool> {
        let permanent = &self.helpers[..self.permanent];
        if let Some(dead) = permanent.iter().find(|h| h.state() == ChildState::Down) {
            bail!(
                "{} failed during start-up (see the message above)",
                dead.name()
            );
        }
        Ok(permanent.iter().all(|h| h.state() == ChildState::Ready))
    }

    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Asks for `key` on behalf of `waiter`, joining a lookup already in
    /// flight for the same path.
    pub(crate) fn lookup(
        &mut self,
        key: &str,
        known: Option<FileMeta>,
        waiter: Waiter,
        poller: &mut dyn Poller,
        now: Instant,
    ) {
        if let Some(pending) = self.lookups.get_mut(key) {
            pending.waiters.push(waiter);
            return;
        }
        let id = self.new_id();
        self.lookup_ids.insert(id, key.to_string());
        self.lookups.insert(
            key.to_string(),
            PendingLookup {
                id,
                known,
                dispatch: Dispatch::queued(now),
                waiters: vec![waiter],
            },
        );
        self.lookup_queue.push_back(key.to_string());
        self.assign_unsent(poller, now);
    }

    /// Asks for `len` bytes of `file` from `start` on behalf of `waiter`.
    pub(crate) fn read(
        &mut self,
        waiter: Waiter,
        file: &Rc<OpenFile>,
        start: u64,
        len: u32,
        poller: &mut dyn Poller,
        now: Instant,
    ) {
        let id = self.new_id();
        let slot = self.slots.as_ref().and_then(|s| s.take(len as usize));
        self.reads.insert(
            id,
            PendingRead {
                waiter,
                file: Rc::clone(file),
                start,
                len,
                slot,
                dispatch: Dispatch::queued(now),
            },
        );
        self.read_queue.push_back(id);
        self.assign_unsent(poller, now);
    }

    /// Drops the reads `waiter` asked for that no helper has taken yet
    /// (the client left); answers to the others are dropped on arrival.
    pub(crate) fn cancel_reads(&mut self, waiter: Waiter) {
        self.reads
            .retain(|_, r| r.waiter != waiter || r.dispatch.helper.is_some());
        let reads = &self.reads;
        self.read_queue.retain(|id| reads.contains_key(id));
    }

    /// What the assignment policy needs to know of each helper now.
    fn views(&mut self) -> &[HelperView] {
        let permanent = self.permanent;
        let views = self
            .helpers
            .iter()
            .zip(&self.load)
            .enumerate()
            .map(|(i, (helper, load))| HelperView {
                ready: helper.state() == ChildState::Ready,
                starting: helper.state() == ChildState::Starting,
                stopped: helper.is_stopped(),
                on_demand: i >= permanent,
                in_flight: load.in_flight,
                reading: load.reading,
                idle_since: load.idle_since,
            });
        self.views.clear();
        self.views.extend(views);
        &self.views
    }

    /// False once a write to the helper has failed (it is then down).
    fn is_running(&self, i: usize) -> bool {
        self.helpers[i].state() != ChildState::Down
    }

    /// Sends queued work to helpers that may take it, lookups first, and
    /// starts more helpers while reads are left waiting.
    fn assign_unsent(&mut self, poller: &mut dyn Poller, now: Instant) {
        while let Some(key) = self.lookup_queue.front().cloned() {
            let unsent = self
                .lookups
                .get(&key)
                .is_some_and(|p| p.dispatch.helper.is_none());
            if !unsent {
                self.lookup_queue.pop_front();
                continue;
            }
            let Some(i) = assignment::for_lookup(self.views()) else {
                break;
            };
            self.lookup_queue.pop_front();
            self.send_lookup(&key, i, poller, now);
        }
        while let Some(&id) = self.read_queue.front() {
            if self
                .reads
                .get(&id)
                .is_none_or(|r| r.dispatch.helper.is_some())
            {
                self.read_queue.pop_front();
                continue;
            }
            let Some(i) = assignment::for_read(self.views()) else {
                break;
            };
            self.read_queue.pop_front();
            if !self.send_read(id, i, poller, now) {
                break;
            }
        }
        self.grow(poller, now);
    }

    /// Starts a stopped on-demand helper while reads wait, one at a time
    /// (see `assignment::to_start`); the next starts when this one is
    /// ready, if reads still wait.
    fn grow(&mut self, poller: &mut dyn Poller, now: Instant) {
        let waiting = self.read_queue.iter().any(|id| {
            self.reads
                .get(id)
                .is_some_and(|r| r.dispatch.helper.is_none())
        });
        let Some(i) = assignment::to_start(self.views(), waiting) else {
            return;
        };
        match self.helpers[i].spawn(&hello(), poller, now) {
            Ok(()) => self.load[i] = Load::default(),
            Err(e) => error_log!("{e}"),
        }
    }

    fn send_lookup(&mut self, key: &str, i: usize, poller: &mut dyn Poller, now: Instant) {
        let Some(pending) = self.lookups.get_mut(key) else {
            return;
        };
        let request = ToHelper::Lookup(LookupRequest {
            id: pending.id,
            path: key.to_string(),
            known: pending.known,
        });
        let waited = now.saturating_duration_since(pending.dispatch.queued_at);
        pending.dispatch.helper = Some(i);
        pending.dispatch.sent_at = Some(now);
        self.dispatched(i, waited);
        if !self.helpers[i].send(&request, poller, now) || !self.is_running(i) {
            self.helper_died(i, poller, now);
        }
    }

    /// Sends read `id` to helper `i`. False when it could not be sent
    /// now (no descriptor to spare): it stays first in the queue.
    fn send_read(&mut self, id: u64, i: usize, poller: &mut dyn Poller, now: Instant) -> bool {
        let Some(pending) = self.reads.get_mut(&id) else {
            return true;
        };
        let fds = match pending.file.fd().map(OwnedFd::try_clone).transpose() {
            Ok(fd) => Vec::from_iter(fd),
            Err(e) => {
                // Out of descriptors: try again when work comes back.
                error_log!("cannot pass /{} to a helper: {e}", pending.file.path());
                self.read_queue.push_front(id);
                return false;
            }
        };
        let request = ToHelper::Read(ReadRequest {
            id,
            path: pending.file.path().to_string(),
            known: pending.file.meta(),
            offset: pending.start,
            len: pending.len,
            with_descriptor: !fds.is_empty(),
            slot: pending.slot.as_ref().map(|slot| slot.offset() as u64),
        });
        let waited = now.saturating_duration_since(pending.dispatch.queued_at);
        pending.dispatch.helper = Some(i);
        pending.dispatch.sent_at = Some(now);
        self.dispatched(i, waited);
        self.load[i].reading = true;
        if !self.helpers[i].send_with_fds(&request, fds, poller, now) || !self.is_running(i) {
            self.helper_died(i, poller, now);
        }
        true
    }

    /// Accounts for a job sent to helper `i` after waiting `waited`.
    fn dispatched(&mut self, i: usize, waited: Duration) {
        self.longest_wait = self.longest_wait.max(waited);
        let load = &mut self.load[i];
        load.in_flight += 1;
        load.idle_since = None;
    }

    /// Accounts for an answer from helper `i`.
    fn answered(&mut self, i: Option<usize>, read: bool, now: Instant) {
        let Some(i) = i else {
            return;
        };
        let load = &mut self.load[i];
        load.in_flight = load.in_flight.saturating_sub(1);
        load.reading &= !read;
        if load.in_flight == 0 {
            load.idle_since = Some(now);
        }
    }

    /// Handles readiness on helper `i`'s socket, collecting finished jobs.
    pub(crate) fn handle_event(
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
                    self.load[i] = Load {
                        idle_since: Some(now),
                        ..Load::default()
                    };
                    self.share_buffer(i, poller, now);
                }
                FromHelper::Lookup(reply) => {
                    let Some(key) = self.lookup_ids.get(&reply.id) else {
                        continue;
                    };
                    let sent_here = self
                        .lookups
                        .get(key)
                        .is_some_and(|p| p.dispatch.helper == Some(i));
                    if !sent_here {
                        error_log!(
                            "{} answered lookup {} it was not sent; ignored",
                            self.helpers[i].name(),
                            reply.id
                        );
                        continue;
                    }
                    let Some(key) = self.lookup_ids.remove(&reply.id) else {
                        continue;
                    };
                    let Some(pending) = self.lookups.remove(&key) else {
                        continue;
                    };
                    self.answered(pending.dispatch.helper, false, now);
                    completions.push(Completion::Lookup(LookupDone {
                        key,
                        outcome: reply.outcome,
                        fd: fds.into_iter().next(),
                        waiters: pending.waiters,
                    }));
                }
                FromHelper::Read(reply) => {
                    if let Some(pending) = self.reads.get(&reply.id) {
                        if pending.dispatch.helper != Some(i) {
                            error_log!(
                                "{} answered read {} it was not sent; ignored",
                                self.helpers[i].name(),
                                reply.id
                            );
                            continue;
                        }
                    }
                    let Some(pending) = self.reads.remove(&reply.id) else {
                        // Cancelled while in flight: only the helper is free.
                        self.answered(Some(i), true, now);
                        continue;
                    };
                    self.answered(pending.dispatch.helper, true, now);
                    completions.push(Completion::Read(ReadDone {
                        waiter: pending.waiter,
                        file: pending.file,
                        start: pending.start,
                        result: reply.result,
                        slot: pending.slot,
                    }));
                }
            }
        }
        if !alive || self.helpers[i].state() == ChildState::Down {
            self.helper_died(i, poller, now);
        } else {
            self.assign_unsent(poller, now);
        }
    }

    /// Passes the shared buffer to helper `i`, just ready: it comes before
    /// any read on the channel. Without it the helper answers reads in
    /// its replies.
    fn share_buffer(&mut self, i: usize, poller: &mut dyn Poller, now: Instant) {
        let Some(slots) = &self.slots else {
            return;
        };
        let fd = match slots.fd().try_clone() {
            Ok(fd) => fd,
            Err(e) => return error_log!("cannot share the window buffer: {e}"),
        };
        let message = ToHelper::SharedBuffer {
            len: slots.len() as u64,
        };
        if !self.helpers[i].send_with_fds(&message, vec![fd], poller, now) {
            self.helper_died(i, poller, now);
        }
    }

    /// Hands a dead helper's work to the others.
    fn helper_died(&mut self, i: usize, poller: &mut dyn Poller, now: Instant) {
        self.helpers[i].mark_down(poller, now);
        self.forget_assignments(i);
        self.assign_unsent(poller, now);
    }

    /// Holds the slots lent to reads sent to helper `i` (down now) until
    /// its processes are reaped (a killed helper may still be inside a
    /// read into one); each such read gets a fresh slot, if one is free,
    /// or has its window come back in the reply.
    fn quarantine_slots(&mut self, i: usize) {
        let writers: Vec<u32> = self.helpers[i].pids().collect();
        let slots = self.slots.as_ref();
        for pending in self.reads.values_mut() {
            if pending.dispatch.helper != Some(i) {
                continue;
            }
            if let Some(slot) = pending.slot.take() {
                self.quarantine.hold(writers.clone(), slot);
                pending.slot = slots.and_then(|s| s.take(pending.len as usize));
            }
        }
    }

    /// Lets go the quarantined slots whose helpers have been reaped.
    fn release_quarantine(&mut self) {
        let unreaped: Vec<u32> = self.helpers.iter().flat_map(ChildProcess::pids).collect();
        self.quarantine.release(|pid| unreaped.contains(&pid));
    }

    /// Queues the work sent to helper `i` again, ahead of newer work;
    /// drops the jobs that have hung [`MAX_STUCK`] helpers.
    fn forget_assignments(&mut self, i: usize) {
        self.load[i] = Load::default();
        self.quarantine_slots(i);
        let hopeless = |d: &Dispatch| d.helper == Some(i) && d.stuck >= MAX_STUCK;
        let ids = &mut self.lookup_ids;
        self.lookups.retain(|key, pending| {
            let keep = !hopeless(&pending.dispatch);
            if !keep {
                error_log!("lookup of /{key} hung {MAX_STUCK} helpers; dropped");
                ids.remove(&pending.id);
            }
            keep
        });
        self.reads.retain(|_, pending| {
            let keep = !hopeless(&pending.dispatch);
            if !keep {
                error_log!(
                    "read of /{} hung {MAX_STUCK} helpers; dropped",
                    pending.file.path()
                );
            }
            keep
        });
        for (key, pending) in &mut self.lookups {
            if pending.dispatch.helper == Some(i) {
                pending.dispatch.unsent();
                self.lookup_queue.push_front(key.clone());
            }
        }
        for (&id, pending) in &mut self.reads {
            if pending.dispatch.helper == Some(i) {
                pending.dispatch.unsent();
                self.read_queue.push_front(id);
            }
        }
    }

    /// Every job's dispatch record.
    fn dispatches(&self) -> impl Iterator<Item = &Dispatch> {
        let lookups = self.lookups.values().map(|p| &p.dispatch);
        lookups.chain(self.reads.values().map(|r| &r.dispatch))
    }

    /// Reaps, restarts and retires helpers, and kills stuck ones (call on
    /// SIGCHLD and when due). Returns when it next needs to run.
    pub(crate) fn maintain(&mut self, poller: &mut dyn Poller, now: Instant) -> Option<Instant> {
        let timeout = self.answer_timeout;
        let lookups = self.lookups.values_mut().map(|p| &mut p.dispatch);
        let reads = self.reads.values_mut().map(|r| &mut r.dispatch);
        let mut stuck = Vec::new();
        for d in lookups.chain(reads).filter(|d| d.overdue(timeout, now)) {
            d.stuck += 1;
            stuck.extend(d.helper);
        }
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
        self.retire_idle(poller, now);
        self.release_quarantine();
        let retire_due = assignment::retirable(self.views())
            .map(|(_, since)| since + IDLE_RETIRE)
            .min();
        let answers_due = self
            .dispatches()
            .filter_map(|d| d.sent_at)
            .map(|t| t + timeout);
        self.helpers
            .iter()
            .filter_map(ChildProcess::next_due)
            .chain(answers_due)
            .chain(retire_due)
            .min()
    }

    /// Lets on-demand helpers go once idle for [`IDLE_RETIRE`].
    fn retire_idle(&mut self, poller: &mut dyn Poller, now: Instant) {
        for i in assignment::due_to_retire(self.views(), IDLE_RETIRE, now) {
            self.helpers[i].retire(poller);
            self.load[i] = Load::default();
        }
    }

    /// Window reads queued for a helper (an upper bound: reads cancelled
    /// meanwhile may still be counted).
    pub(crate) fn reads_waiting(&self) -> usize {
        self.read_queue.len()
    }

    /// Lookups in flight or queued.
    pub(crate) fn in_flight(&self) -> usize {
        self.lookups.len()
    }

    /// Queue, wait and size figures for the status page.
    pub(crate) fn stats(&self, now: Instant) -> PoolStats {
        let waiting = self.dispatches().filter(|d| d.helper.is_none());
        let (queued, oldest) = waiting.fold((0, Duration::ZERO), |(n, oldest), d| {
            (
                n + 1,
                oldest.max(now.saturating_duration_since(d.queued_at)),
            )
        });
        let running = self
            .helpers
            .iter()
            .filter(|h| h.state() != ChildState::Down)
            .count();
        PoolStats {
            queued,
            longest_wait: self.longest_wait.max(oldest),
            running,
            slots_quarantined: self.quarantine.len(),
        }
    }

    /// The process ids of the running helpers.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.helpers.iter().flat_map(ChildProcess::pids).collect()
    }

    /// Restarts of each permanent helper so far.
    pub(crate) fn restarts(&self) -> Vec<u64> {
        self.helpers[..self.permanent]
            .iter()
            .map(ChildProcess::restarts)
            .collect()
    }

    /// Ends every helper.
    pub(crate) fn shutdown(&mut self) {
        for helper in &mut self.helpers {
            helper.shutdown();
        }
    }
}
