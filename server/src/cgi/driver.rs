//! The event-loop side of CGI: collecting a request's body, starting its
//! script through the runner, feeding the body into the script's stdin
//! and streaming its output back to the client, with back-pressure both
//! ways, and ending the exchange (normally, on a bad header block, on a
//! timeout, or when the client goes away). Nothing here blocks: both
//! pipes are non-blocking and sit in the poller beside the client
//! sockets.
//!
//! [`Cgi`] owns the CGI state (the runner link, which connection each run
//! is for, the read buffer). Its functions take the connection and an
//! [`Turn`] context and return what the loop must do next ([`Next`]); they
//! never call back into the loop.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use protocol::{CgiRun, Refusal};

use crate::cgi::env::{build_env, CgiEnvInput};
use crate::cgi::exchange::{Exchange, Framed, Script, Stage};
use crate::cgi::pipes::{close_pipe, Pipe};
use crate::cgi::redirect::redirected;
use crate::cgi::spool::{Spool, SpoolBudget};
use crate::config::Config;
use crate::conn_id::ConnId;
use crate::connection::Connection;
use crate::event::{Event, Poller};
use crate::http::chunked::ChunkedDecoder;
use crate::http::keep_alive;
use crate::http::request::Request;
use crate::http::request_body::Framing;
use crate::http::status::Status;
use crate::next::{Next, Turn};
use crate::process_group::signal_group;
use crate::respond::{self, Reply};
use crate::supervise::runner_link::{CgiRunner, RunnerEvent};
use crate::token::EventToken;

/// How long to wait for end-of-file on a script's output after it exited
/// (a background child may hold the pipe open).
pub(super) const EOF_GRACE: Duration = Duration::from_secs(2);

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The script's output ended (or its grace after exit passed).
    Eof,
    /// The script ran past its time.
    TimedOut,
    /// Its header block was malformed.
    BadHead,
}

/// The limits and facts CGI runs under.
#[derive(Debug, Clone)]
pub(super) struct CgiConfig {
    pub(super) max_body: u64,
    max_procs: usize,
    pub(super) timeout: Duration,
    /// How long a request body may stop arriving before 408.
    pub(super) body_timeout: Duration,
    spool_dir: PathBuf,
    root: PathBuf,
    listen: SocketAddr,
}

/// CGI's state: the runner link and the exchanges in progress.
pub(crate) struct Cgi {
    runner: CgiRunner,
    pub(super) config: CgiConfig,
    /// CGI run ids and the connection each is for.
    ids: HashMap<u64, ConnId>,
    /// The runs handed to the runner: the ones that take a script slot
    /// (a body being collected takes none).
    launched: HashSet<u64>,
    /// The bytes of all collected request bodies and their bound.
    pub(super) spooled: SpoolBudget,
    /// Scratch space for reading scripts' output.
    pub(super) buf: Vec<u8>,
}

impl Cgi {
    /// CGI as `config` sets it up; the runner is not started yet.
    pub(crate) fn new(config: &Config, now: Instant) -> Cgi {
        let runner_args = vec![
            "--root".into(),
            config.root.clone().into_os_string(),
            "--max-scripts".into(),
            config.cgi_max_procs.to_string().into(),
        ];
        let bin = config.cgi_runner_bin.clone();
        let token = EventToken::Runner.to_token();
        Cgi {
            runner: CgiRunner::new(bin, runner_args, token, now),
            config: CgiConfig {
                max_body: config.cgi_max_body,
                max_procs: config.cgi_max_procs,
                timeout: config.cgi_timeout,
                body_timeout: config.cgi_body_timeout,
                spool_dir: config.cgi_spool_dir.clone(),
                root: config.root.clone(),
                listen: config.listeners[0].addr,
            },
            ids: HashMap::new(),
            launched: HashSet::new(),
            spooled: SpoolBudget::new(config.cgi_spool_max),
            buf: Vec::new(),
        }
    }

    pub(crate) fn runner(&mut self) -> &mut CgiRunner {
        &mut self.runner
    }

    /// Scripts handed to the runner and not ended: the slots taken.
    pub(crate) fn active(&self) -> usize {
        self.launched.len()
    }

    /// Exchanges collecting a request body (no script yet), and the bytes
    /// their spools hold.
    pub(crate) fn collecting(&self) -> (usize, u64) {
        (self.ids.len() - self.launched.len(), self.spooled.used())
    }

    /// True when every script slot is taken.
    fn slots_full(&self) -> bool {
        self.active() >= self.config.max_procs
    }

    /// Starts a CGI request: checks the limits, then reads the request
    /// body, chunked or by Content-Length (which takes no script slot
    /// until it is complete), or hands a bodyless request's script to the
    /// runner at once.
    pub(crate) fn start(
        &mut self,
        conn: &mut Connection,
        request: Request,
        turn: &mut Turn,
    ) -> Next {
        let too_large = matches!(request.body, Framing::Length(n) if n > self.config.max_body);
        let (framed, body_left) = match request.body {
            Framing::Chunked => (Some(Framed::Chunked(ChunkedDecoder::default())), 0),
            Framing::Length(n) if n > 0 => (Some(Framed::Length), n),
            Framing::Length(_) | Framing::None => (None, 0),
        };
        if too_large || (framed.is_none() && self.slots_full()) {
            let (status, extra) = match too_large {
                true => (Status::PAYLOAD_TOO_LARGE, ""),
                false => (Status::SERVICE_UNAVAILABLE, "Retry-After: 1\r\n"),
            };
            // The body was not read: the connection cannot be kept.
            let reply = respond::error(
                conn.output(),
                &request.error_to(false),
                status,
                extra,
                turn.stamp,
            );
            return Next::Respond(reply, request.log);
        }
        let expect_continue = request.cgi.as_ref().is_some_and(|c| c.expect_continue);
        let collecting = framed.is_some();
        if expect_continue && collecting && !request.http10 && conn.input_is_empty() {
            conn.output()
                .push_owned(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec());
        }
        let id = self.runner.next_id();
        let stage = match framed {
            Some(framed) => Stage::Collecting(framed),
            None => Stage::Queued,
        };
        let mut ex = Exchange::new(id, request, stage, body_left, turn.now);
        if collecting {
            ex.spool = Some(Spool::new(&self.config.spool_dir, self.spooled.clone()));
            ex.body_deadline = Some(turn.now + self.config.body_timeout);
        }
        conn.begin_cgi(Box::new(ex));
        self.ids.insert(id, conn.id());
        if !collecting {
            self.launch(conn, turn);
        }
        self.pump(conn, turn)
    }

    /// A request body is all in: its script starts if a slot is free
    /// (503 otherwise, and the connection is kept).
    pub(super) fn launch_collected(&mut self, conn: &mut Connection, turn: &mut Turn) -> Next {
        if self.slots_full() {
            return self.failed(conn, Status::SERVICE_UNAVAILABLE, turn);
        }
        self.launch(conn, turn);
        Next::Continue
    }

    /// Sends the exchange's script to the runner; it takes a slot.
    pub(super) fn launch(&mut self, conn: &mut Connection, turn: &mut Turn) {
        let local = conn.local_addr().unwrap_or(self.config.listen);
        let remote = conn.peer();
        let https = conn.is_tls();
        let Some(ex) = conn.exchange() else {
            return;
        };
        let Some(cgi) = ex.request.cgi.as_ref() else {
            return;
        };
        let content_length = match (&ex.stage, ex.request.body) {
            (Stage::Collecting(Framed::Chunked(d)), _) => Some(d.decoded),
            (_, Framing::Length(n)) => Some(n),
            _ => None,
        };
        ex.stage = Stage::Queued;
        let script_name = format!("/{}", cgi.script);
        let env = build_env(&CgiEnvInput {
            method: &cgi.method,
            http10: ex.request.http10,
            http2: ex.request.http2,
            script_name: &script_name,
            path_info: &cgi.path_info,
            query: ex.request.target.query.as_deref().unwrap_or(""),
            request_uri: &cgi.request_uri,
            headers: &cgi.headers,
            host: ex.request.host.as_deref(),
            content_length,
            remote,
            local,
            https,
            root: &self.config.root,
        });
        let run = CgiRun {
            id: ex.id,
            script: cgi.script.clone(),
            env,
            timeout_ms: self.config.timeout.as_millis() as u64,
        };
        ex.started = turn.now;
        self.launched.insert(ex.id);
        self.runner.run(run, turn.poller, turn.now);
    }

    /// Readiness on the runner's socket: what the runner reported.
    pub(crate) fn runner_event(
        &mut self,
        ev: Event,
        poller: &mut dyn Poller,
        now: Instant,
    ) -> Vec<RunnerEvent> {
        let mut events = Vec::new();
        self.runner.handle_event(ev, poller, now, &mut events);
        events
    }

    /// The connection CGI run `id` is for, if it is still in progress.
    pub(crate) fn conn_of(&self, id: u64) -> Option<ConnId> {
        self.ids.get(&id).copied()
    }

    /// Acts on what the runner reported for the exchange on `conn`.
    pub(crate) fn on_runner_event(
        &mut self,
        conn: &mut Connection,
        event: RunnerEvent,
        turn: &mut Turn,
    ) -> Next {
        let id = event.id();
        let Some(ex) = conn.exchange().filter(|ex| ex.id == id) else {
            // The client went away: dropping any pipes ends the script's I/O.
            return Next::Unchanged;
        };
        match event {
            RunnerEvent::Started {
                pid, stdin, stdout, ..
            } => {
                if !matches!(ex.stage, Stage::Queued) {
                    error_log!("cgi-runner reported run {id} started twice; ignored");
                    return Next::Unchanged;
                }
                match self.pipes(stdin, stdout, turn.poller) {
                    Some((stdin, stdout)) => {
                        ex.stage = Stage::Running(Script {
                            pid,
                            stdin: Some(stdin),
                            stdout: Some(stdout),
                        });
                        self.pump(conn, turn)
                    }
                    None => self.failed(conn, Status::SERVICE_UNAVAILABLE, turn),
                }
            }
            RunnerEvent::Refused { refusal, .. } => {
                let status = match refusal {
                    Refusal::NotFound => Status::NOT_FOUND,
                    Refusal::Forbidden(_) => Status::FORBIDDEN,
                    Refusal::ExecFailed(why) => {
                        error_log!("CGI run {id} could not start: {why}");
                        Status::INTERNAL_ERROR
                    }
                    Refusal::Overloaded => Status::SERVICE_UNAVAILABLE,
                };
                self.failed(conn, status, turn)
            }
            RunnerEvent::Lost { .. } => {
                error_log!("CGI run {id}: the cgi-runner died as it started the script");
                self.failed(conn, Status::BAD_GATEWAY, turn)
            }
            RunnerEvent::Exited {
                exit, timed_out, ..
            } => {
                ex.exited = Some((exit, timed_out));
                ex.eof_deadline = Some(turn.now + EOF_GRACE);
                self.pump(conn, turn)
            }
        }
    }

    /// A started script's pipe ends, non-blocking and within the poller's
    /// reach; `None` if they cannot be used.
    fn pipes(&self, stdin: OwnedFd, stdout: OwnedFd, poller: &dyn Poller) -> Option<(Pipe, Pipe)> {
        let (Ok(stdin), Ok(stdout)) = (Pipe::new(stdin), Pipe::new(stdout)) else {
            return None;
        };
        let fits = poller
            .fd_limit()
            .is_none_or(|limit| stdin.fd() < limit && stdout.fd() < limit);
        fits.then_some((stdin, stdout))
    }

    /// Ends the exchange with an error page (nothing was sent yet).
    fn failed(&mut self, conn: &mut Connection, status: Status, turn: &mut Turn) -> Next {
        let Some(mut ex) = self.detach(conn, turn.poller) else {
            return Next::Unchanged;
        };
        let keep_alive = keep_alive::after_exchange(
            ex.keep_alive,
            true,
            ex.body_complete() && ex.to_script.is_empty(),
        );
        if keep_alive {
            conn.discard_body(ex.body_left);
        }
        let extra = if status == Status::SERVICE_UNAVAILABLE {
            "Retry-After: 1\r\n"
        } else {
            ""
        };
        ex.to_script.clear();
        let to = ex.request.error_to(keep_alive);
        let reply = respond::error(conn.output(), &to, status, extra, turn.stamp);
        Next::Respond(reply, ex.request.log)
    }

    /// A request body that is malformed, too large, cannot be spooled or
    /// stopped arriving: answer and close.
    pub(super) fn bad_body(
        &mut self,
        conn: &mut Connection,
        status: Status,
        turn: &mut Turn,
    ) -> Next {
        let Some(ex) = self.detach(conn, turn.poller) else {
            return Next::Unchanged;
        };
        let extra = match status == Status::SERVICE_UNAVAILABLE {
            true => "Retry-After: 1\r\n",
            false => "",
        };
        let reply = respond::error(
            conn.output(),
            &ex.request.error_to(false),
            status,
            extra,
            turn.stamp,
        );
        Next::Respond(reply, ex.request.log)
    }

    /// The script's output is over: finish the response.
    pub(super) fn end(&mut self, conn: &mut Connection, end: End, turn: &mut Turn) -> Next {
        let Some(mut ex) = self.detach(conn, turn.poller) else {
            return Next::Unchanged;
        };
        let timed_out = end == End::TimedOut || matches!(ex.exited, Some((_, true)));
        // A response cut short by the time limit must not look complete:
        // no last chunk, and the connection closes.
        let finished = match end {
            End::BadHead => None,
            _ if timed_out => None,
            _ => ex.on_eof(conn.output()),
        };
        let status = match timed_out {
            true => Status::GATEWAY_TIMEOUT,
            false => Status::BAD_GATEWAY,
        };
        let sent = |keep_alive| Reply {
            status: Status {
                code: ex.status,
                reason: "",
            },
            keep_alive,
            body_bytes: ex.body_bytes,
        };
        let reply = match finished {
            // Keep the connection only if the client's body is all in.
            Some(keep_alive) => sent(keep_alive::after_exchange(
                keep_alive,
                !timed_out,
                ex.body_complete(),
            )),
            None if ex.responded() => sent(false),
            None => {
                if !timed_out {
                    error_log!(
                        "{:?}: the script sent no valid header block",
                        format!("/{}", ex.request.target.key)
                    );
                }
                let to = ex.request.error_to(false);
                respond::error(conn.output(), &to, status, "", turn.stamp)
            }
        };
        Next::Respond(reply, ex.request.log)
    }

    /// The script named a local redirect: the request to serve instead.
    pub(super) fn redirect(&mut self, conn: &mut Connection, path: &str, turn: &mut Turn) -> Next {
        let Some(ex) = self.detach(conn, turn.poller) else {
            return Next::Unchanged;
        };
        match redirected(ex.request, path) {
            Ok(request) => Next::Redirect(request),
            Err(request) => {
                error_log!(
                    "{:?}: bad local redirect to {path:?}",
                    format!("/{}", request.target.key)
                );
                let to = request.error_to(false);
                let reply =
                    respond::error(conn.output(), &to, Status::INTERNAL_ERROR, "", turn.stamp);
                Next::Respond(reply, request.log)
            }
        }
    }

    /// Detaches the exchange from its connection: pipes closed and out of
    /// the poller, bookkeeping undone. The connection goes back to reading;
    /// the caller queues the response.
    fn detach(&mut self, conn: &mut Connection, poller: &mut dyn Poller) -> Option<Box<Exchange>> {
        let mut ex = conn.end_cgi()?;
        if let Stage::Running(script) = &mut ex.stage {
            close_pipe(poller, &mut script.stdin);
            close_pipe(poller, &mut script.stdout);
        }
        self.ids.remove(&ex.id);
        self.launched.remove(&ex.id);
        self.runner.cancel(ex.id);
        Some(ex)
    }

    /// The client of a CGI exchange went away: the script is asked to stop
    /// (SIGTERM to its process group; the runner still enforces the time
    /// limit) so that it does not hold a slot nobody will read from.
    pub(crate) fn abandon(&mut self, conn: &mut Connection, poller: &mut dyn Poller) {
        if let Some(pid) = conn.exchange().and_then(|ex| ex.live_pid()) {
            signal_group(pid, Signal::SIGTERM);
        }
        self.detach(conn, poller);
    }

    /// A CGI exchange's deadline passed.
    pub(crate) fn timed_out(&mut self, conn: &mut Connection, turn: &mut Turn) -> Next {
        let Some(ex) = conn.exchange() else {
            return Next::Unchanged;
        };
        if matches!(ex.stage, Stage::Collecting(_)) {
            if ex.body_deadline.is_some_and(|t| t > turn.now) {
                return Next::Continue;
            }
            return self.bad_body(conn, Status::REQUEST_TIMEOUT, turn);
        }
        if ex.eof_deadline.is_some_and(|t| t <= turn.now) {
            return self.pump(conn, turn);
        }
        // The runner should have killed it; it may be gone (a script of a
        // dead runner is ours now), so make sure.
        if let Some(pid) = ex.live_pid() {
            signal_group(pid, Signal::SIGKILL);
        }
        self.end(conn, End::TimedOut, turn)
    }
}
