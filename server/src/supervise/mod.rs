//! Supervision of the server's children: the disk helpers and the CGI
//! runner are started, watched through SIGCHLD and their sockets, and
//! restarted with back-off; orphaned scripts are reaped.
//!
//! [`Supervision`] owns the helper pool and the restart deadlines. The
//! CGI runner's link belongs to the CGI subsystem (it carries the runs),
//! so the loop lends it to [`Supervision::maintain`].

mod assignment;
pub(crate) mod child_link;
pub(crate) mod helper_pool;
pub(crate) mod orphans;
pub(crate) mod pool_jobs;
mod quarantine;
pub(crate) mod runner_link;
pub(crate) mod spawn_child;

use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use nix::sys::signal::Signal;
use protocol::FileMeta;

use crate::config::Config;
use crate::conn_id::ConnId;
use crate::event::{Event, Poller};
use crate::send::OpenFile;
use crate::token::EventToken;
use helper_pool::HelperPool;
use orphans::reap_orphans;
use pool_jobs::Completion;
use runner_link::CgiRunner;

/// How long the children may take to answer the handshake at start-up.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The children's keeper.
pub(crate) struct Supervision {
    pool: HelperPool,
    /// When the helpers must be looked at (restarts, stuck lookups).
    helpers_due: Option<Instant>,
    /// When the runner must be looked at (a restart).
    runner_due: Option<Instant>,
    /// A SIGCHLD arrived: exited orphans may be waiting to be reaped.
    orphans_due: bool,
}

impl Supervision {
    /// The helpers `config` asks for, not started yet.
    pub(crate) fn new(config: &Config, now: Instant) -> Supervision {
        let mut helper_args = vec![
            "--root".into(),
            config.root.clone().into_os_string(),
            "--inline-max".into(),
            config.inline_max.to_string().into(),
        ];
        if config.dir_listing {
            helper_args.push("--dir-listing".into());
        }
        let pool = HelperPool::new(
            config.helper_bin.clone(),
            helper_args,
            config.helpers,
            config.helpers_max,
            config.helper_timeout,
            now,
        );
        Supervision {
            pool,
            helpers_due: None,
            runner_due: None,
            orphans_due: false,
        }
    }

    /// Starts the helpers and the runner and waits (blocking, at most
    /// [`START_TIMEOUT`]) for their handshakes. For start-up only.
    pub(crate) fn start(&mut self, runner: &mut CgiRunner, poller: &mut dyn Poller) -> Result<()> {
        let begin = Instant::now();
        self.pool.spawn_all(poller, begin)?;
        runner.spawn(poller, begin)?;
        let mut events = Vec::new();
        let mut completions = Vec::new();
        let mut reports = Vec::new();
        loop {
            let helpers_ready = self.pool.started()?;
            if helpers_ready && runner.started()? {
                return Ok(());
            }
            let elapsed = begin.elapsed();
            if elapsed >= START_TIMEOUT {
                match helpers_ready {
                    false => {
                        bail!("the helpers did not answer the handshake within {START_TIMEOUT:?}")
                    }
                    true => bail!(
                        "the cgi-runner did not answer the handshake within {START_TIMEOUT:?}"
                    ),
                }
            }
            poller.wait(&mut events, Some(START_TIMEOUT - elapsed))?;
            for ev in events.drain(..) {
                let now = Instant::now();
                match EventToken::from_token(ev.token) {
                    Some(EventToken::Helper(n))
                        if self.pool.slot_of(EventToken::Helper(n)).is_some() =>
                    {
                        self.pool.handle_event(n, ev, poller, now, &mut completions)
                    }
                    Some(EventToken::Runner) => runner.handle_event(ev, poller, now, &mut reports),
                    _ => {}
                }
            }
        }
    }

    pub(crate) fn pool(&self) -> &HelperPool {
        &self.pool
    }

    /// A child exited (or several did): look at every one.
    pub(crate) fn on_sigchld(&mut self, now: Instant) {
        self.helpers_due = Some(now);
        self.runner_due = Some(now);
        self.orphans_due = true;
    }

    /// The runner's socket had news (maybe its death): look at it now.
    pub(crate) fn runner_touched(&mut self, now: Instant) {
        self.runner_due = Some(self.runner_due.map_or(now, |t| t.min(now)));
    }

    /// Readiness on helper `n`'s socket: the lookups it finished.
    pub(crate) fn helper_event(
        &mut self,
        n: usize,
        ev: Event,
        poller: &mut dyn Poller,
        now: Instant,
    ) -> Vec<Completion> {
        let mut completions = Vec::new();
        if self.pool.slot_of(EventToken::Helper(n)).is_none() {
            return completions;
        }
        self.pool.handle_event(n, ev, poller, now, &mut completions);
        // A dead helper is restarted from the loop, not from here.
        self.helpers_due = Some(
            self.helpers_due
                .map_or(now, |t| t.min(now + Duration::from_millis(1))),
        );
        completions
    }

    /// Asks a helper for `key` on behalf of `waiter`, whose answer is due
    /// by `deadline`, if it has one (the pool checks then that the helper
    /// answered).
    pub(crate) fn lookup(
        &mut self,
        key: &str,
        known: Option<FileMeta>,
        waiter: ConnId,
        deadline: Option<Instant>,
        poller: &mut dyn Poller,
        now: Instant,
    ) {
        if let Some(deadline) = deadline {
            self.helpers_due = Some(self.helpers_due.map_or(deadline, |t| t.min(deadline)));
        }
        self.pool.lookup(key, known, waiter, poller, now);
    }

    /// Asks a helper to read `len` bytes of `file` from `start` for
    /// `waiter`, whose answer is due by `deadline` (see
    /// [`lookup`](Self::lookup)).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn read(
        &mut self,
        waiter: ConnId,
        file: &Rc<OpenFile>,
        start: u64,
        len: u32,
        deadline: Instant,
        poller: &mut dyn Poller,
        now: Instant,
    ) {
        self.helpers_due = Some(self.helpers_due.map_or(deadline, |t| t.min(deadline)));
        self.pool.read(waiter, file, start, len, poller, now);
    }

    /// True while no window read waits for a helper: reading further
    /// ahead is then worth asking for.
    pub(crate) fn reads_keep_up(&self) -> bool {
        self.pool.reads_waiting() == 0
    }

    /// The client behind `waiter` left: its reads not yet taken are
    /// dropped.
    pub(crate) fn cancel_reads(&mut self, waiter: ConnId) {
        self.pool.cancel_reads(waiter);
    }

    /// When [`maintain`](Self::maintain) must next run, if ever.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        [self.helpers_due, self.runner_due]
            .into_iter()
            .flatten()
            .min()
    }

    /// Reaps, restarts what is due, and reaps orphans after a SIGCHLD.
    pub(crate) fn maintain(
        &mut self,
        runner: &mut CgiRunner,
        poller: &mut dyn Poller,
        now: Instant,
    ) {
        if self.helpers_due.is_some_and(|t| t <= now) {
            self.helpers_due = self.pool.maintain(poller, now);
        }
        if self.runner_due.is_some_and(|t| t <= now) {
            self.runner_due = runner.maintain(poller, now);
        }
        if self.orphans_due {
            self.orphans_due = false;
            let mut children = self.pool.pids();
            children.extend(runner.pids());
            if !reap_orphans(&children) {
                // A child of ours exited after its owner looked: let the
                // owner reap it (and report how it ended), then look for
                // orphans again.
                self.on_sigchld(now);
            }
        }
    }

    /// Sends `signal` to every child (the helpers and the runner).
    pub(crate) fn signal_children(&self, runner: &CgiRunner, signal: Signal) {
        let mut children = self.pool.pids();
        children.extend(runner.pids());
        for pid in children {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
            }
        }
    }

    /// Ends every child.
    pub(crate) fn shutdown(&mut self, runner: &mut CgiRunner) {
        self.pool.shutdown();
        runner.shutdown();
    }
}
