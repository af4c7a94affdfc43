//! The server's side of the CGI runner: the one `cgi-runner` child, the
//! scripts asked of it, and what it reports back.
//!
//! A run that was sent but never accepted is sent again to a restarted
//! runner (the script never ran, so this is safe). One that was accepted
//! (the runner was about to start it) but not reported as started may
//! have run: it is never sent again, and is reported lost (502). Scripts
//! that did start keep running when the runner dies: the server holds
//! their pipes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use protocol::{CgiRun, ExitInfo, FromRunner, Hello, Received, Refusal, Role, ToRunner};

use nix::sys::signal::Signal;

use super::child_link::{ChildProcess, ChildState};
use crate::event::{Event, Poller, Token};
use crate::process_group::signal_group;

/// What the runner said about one run.
#[derive(Debug)]
pub(crate) enum RunnerEvent {
    Started {
        id: u64,
        pid: u32,
        stdin: OwnedFd,
        stdout: OwnedFd,
    },
    Refused {
        id: u64,
        refusal: Refusal,
    },
    Exited {
        id: u64,
        exit: ExitInfo,
        timed_out: bool,
    },
    /// The runner died after accepting the run and before saying it
    /// started: it may have run, so it is not run again.
    Lost {
        id: u64,
    },
}

impl RunnerEvent {
    /// The run the event is about.
    pub(crate) fn id(&self) -> u64 {
        match self {
            RunnerEvent::Started { id, .. }
            | RunnerEvent::Refused { id, .. }
            | RunnerEvent::Exited { id, .. }
            | RunnerEvent::Lost { id } => *id,
        }
    }
}

fn hello() -> ToRunner {
    ToRunner::Hello(Hello::new(Role::Server))
}

/// The CGI runner child and the runs in its hands.
pub(crate) struct CgiRunner {
    child: ChildProcess,
    /// Sent (or waiting to be sent) and not yet accepted or refused.
    unstarted: HashMap<u64, CgiRun>,
    /// Accepted by the runner, not yet reported started or refused.
    accepted: HashSet<u64>,
    /// Accepted runs of a runner that died: to be reported lost.
    lost: Vec<u64>,
    /// Waiting for a ready runner, in order.
    queue: VecDeque<u64>,
    next_id: u64,
}

impl CgiRunner {
    pub(crate) fn new(
        binary: PathBuf,
        args: Vec<OsString>,
        token: Token,
        now: Instant,
    ) -> CgiRunner {
        CgiRunner {
            child: ChildProcess::new("cgi-runner".into(), binary, args, token, now),
            unstarted: HashMap::new(),
            accepted: HashSet::new(),
            lost: Vec::new(),
            queue: VecDeque::new(),
            next_id: 1,
        }
    }

    /// Starts the runner (its handshake comes later, through
    /// [`handle_event`](Self::handle_event)). For start-up only.
    pub(crate) fn spawn(&mut self, poller: &mut dyn Poller, now: Instant) -> Result<()> {
        self.child.spawn(&hello(), poller, now)
    }

    /// At start-up: `Ok(true)` once the runner has answered the
    /// handshake, an error if it died first.
    pub(crate) fn started(&self) -> Result<bool> {
        match self.child.state() {
            ChildState::Down => {
                bail!("the cgi-runner failed during start-up (see the message above)")
            }
            state => Ok(state == ChildState::Ready),
        }
    }

    /// A fresh id for a run.
    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Asks for a script to be run (now, or once the runner is back).
    pub(crate) fn run(&mut self, run: CgiRun, poller: &mut dyn Poller, now: Instant) {
        let id = run.id;
        self.unstarted.insert(id, run);
        self.queue.push_back(id);
        self.send_queued(poller, now);
    }

    /// Forgets a run whose client went away before it started.
    pub(crate) fn cancel(&mut self, id: u64) {
        self.accepted.remove(&id);
        if self.unstarted.remove(&id).is_some() {
            self.queue.retain(|&q| q != id);
        }
    }

    fn send_queued(&mut self, poller: &mut dyn Poller, now: Instant) {
        while self.child.state() == ChildState::Ready {
            let Some(id) = self.queue.pop_front() else {
                return;
            };
            let Some(run) = self.unstarted.get(&id) else {
                continue;
            };
            let sent = self.child.send(&ToRunner::Run(run.clone()), poller, now);
            if !sent || self.child.state() == ChildState::Down {
                // The runner died under the write: every run it has not
                // started (this one too) goes to the next runner.
                self.requeue_unstarted();
                return;
            }
        }
    }

    /// Handles readiness on the runner's socket.
    pub(crate) fn handle_event(
        &mut self,
        ev: Event,
        poller: &mut dyn Poller,
        now: Instant,
        out: &mut Vec<RunnerEvent>,
    ) {
        let mut received: Vec<Received<FromRunner>> = Vec::new();
        let alive = self.child.on_event(ev, poller, now, &mut received);
        for Received { message, fds } in received {
            match message {
                FromRunner::Hello(hello) => {
                    let valid = hello.check_peer(Role::CgiRunner).is_ok()
                        && self.child.state() == ChildState::Starting;
                    if !valid {
                        error_log!("cgi-runner: bad handshake {hello:?}");
                        self.child.mark_down(poller, now);
                        break;
                    }
                    self.child.set_ready();
                    self.send_queued(poller, now);
                }
                FromRunner::Accepted { id } => {
                    if self.unstarted.remove(&id).is_some() {
                        self.accepted.insert(id);
                    }
                }
                FromRunner::Started { id, pid } => {
                    self.unstarted.remove(&id);
                    self.accepted.remove(&id);
                    let mut fds = fds.into_iter();
                    if let (Some(stdin), Some(stdout)) = (fds.next(), fds.next()) {
                        out.push(RunnerEvent::Started {
                            id,
                            pid,
                            stdin,
                            stdout,
                        });
                    } else {
                        // Its pipes were lost on the way (the server is at
                        // its descriptor limit): nobody can talk to it.
                        error_log!("CGI run {id}: no descriptors to spare for its pipes");
                        signal_group(pid, Signal::SIGKILL);
                        out.push(RunnerEvent::Refused {
                            id,
                            refusal: Refusal::Overloaded,
                        });
                    }
                }
                FromRunner::Refused { id, refusal } => {
                    self.unstarted.remove(&id);
                    self.accepted.remove(&id);
                    out.push(RunnerEvent::Refused { id, refusal });
                }
                FromRunner::Exited {
                    id,
                    exit,
                    timed_out,
                } => out.push(RunnerEvent::Exited {
                    id,
                    exit,
                    timed_out,
                }),
            }
        }
        if !alive || self.child.state() == ChildState::Down {
            self.requeue_unstarted();
        }
        out.extend(self.take_lost());
    }

    /// Runs lost with a runner that died (see [`RunnerEvent::Lost`]).
    pub(crate) fn take_lost(&mut self) -> Vec<RunnerEvent> {
        let lost = std::mem::take(&mut self.lost);
        lost.into_iter()
            .map(|id| RunnerEvent::Lost { id })
            .collect()
    }

    /// After the runner died: every run it had not accepted goes again;
    /// the ones it had accepted are lost.
    fn requeue_unstarted(&mut self) {
        self.lost.extend(self.accepted.drain());
        let mut ids: Vec<u64> = self.unstarted.keys().copied().collect();
        ids.sort_unstable();
        self.queue = ids.into();
    }

    /// Reaps and restarts the runner (call on SIGCHLD and when due).
    pub(crate) fn maintain(&mut self, poller: &mut dyn Poller, now: Instant) -> Option<Instant> {
        if self.child.maintain(&hello(), poller, now) {
            self.requeue_unstarted();
        }
        self.child.next_due()
    }

    pub(crate) fn restarts(&self) -> u64 {
        self.child.restarts()
    }

    /// The process ids of the runner (and of killed runners not reaped yet).
    pub(crate) fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.child.pids()
    }

    pub(crate) fn shutdown(&mut self) {
        self.child.shutdown();
    }
}
