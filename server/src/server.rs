//! The event loop: accepts clients, reads and answers their requests from
//! the cache, hands misses to the helper pool, and keeps every deadline.
//! Nothing in here blocks: every socket is non-blocking and every wait is
//! the poller's.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use protocol::{Body, Outcome};

use crate::access_log::AccessLog;
use crate::cache::{Cache, Content, Entry, FileEntry, Found};
use crate::cgi::runner_link::CgiRunner;
use crate::config::Config;
use crate::connection::{Connection, Phase};
use crate::deadlines::Timers;
use crate::event::{new_poller, Event, Interest, Poller, Token};
use crate::http::clock::Clock;
use crate::http::mime::content_type;
use crate::http::path::is_directory_key;
use crate::http::request::{parse, Framing, LogFields, Method, Parsed, Request};
use crate::http::response::{overloaded, FileHeaders};
use crate::http::status::Status;
use crate::listener;
use crate::privileges;
use crate::respond::{self, Reply};
use crate::signals::Signals;
use crate::status::{render_json, render_text, Counters, Snapshot};
use crate::supervise::helper_pool::{Completion, HelperPool};

const LISTENER: Token = 0;
const SIGNALS: Token = 1;
const RUNNER: Token = 2;
const HELPER_BASE: Token = 16;
const CONN_BASE: Token = 1024;

/// Each connection has four tokens: its socket and, while a CGI script
/// runs for it, the script's stdin and stdout.
pub(crate) const SUB_SOCKET: usize = 0;
pub(crate) const SUB_STDIN: usize = 1;
pub(crate) const SUB_STDOUT: usize = 2;

/// The poller token of one of connection `idx`'s descriptors.
pub(crate) fn conn_token(idx: usize, sub: usize) -> Token {
    CONN_BASE + (idx << 2) + sub
}

/// How long a closing connection drains what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// Stop taking pipelined requests while this much output is queued.
pub(crate) const OUTPUT_HIGH_WATER: u64 = 256 * 1024;
/// Bytes written to one connection per turn, so that one fast reader of
/// a large file does not starve the others.
const WRITE_BUDGET: u64 = 4 << 20;
/// Connections accepted per readiness report of the listener. One, as
/// nginx does by default: the listener is level-triggered, so a backlog
/// is reported again on the next turn, and a lone connection costs no
/// second `accept4` that would only fail with EAGAIN.
const ACCEPT_BATCH: usize = 1;
/// After running out of descriptors, accepting pauses this long.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The server: every connection, the cache, the helpers.
pub struct Server {
    pub(crate) config: Config,
    pub(crate) poller: Box<dyn Poller>,
    /// The listening socket; closed (`None`) once draining starts.
    listener: Option<TcpListener>,
    local_addr: std::net::SocketAddr,
    signals: Signals,
    pub(crate) conns: Vec<Option<Connection>>,
    free: Vec<usize>,
    next_generation: u32,
    open: usize,
    cache: Cache,
    pool: HelperPool,
    timers: Timers,
    log: AccessLog,
    pub(crate) clock: Clock,
    accept_paused_until: Option<Instant>,
    helpers_due: Option<Instant>,
    pub(crate) runner: CgiRunner,
    pub(crate) runner_due: Option<Instant>,
    /// CGI run ids and the connection (slot, generation) each is for.
    pub(crate) cgi_ids: HashMap<u64, (usize, u32)>,
    /// CGI exchanges in progress.
    pub(crate) cgi_active: usize,
    /// Scratch space for reading scripts' output.
    pub(crate) cgi_buf: Vec<u8>,
    counters: Counters,
    started: Instant,
    /// A SIGCHLD arrived: exited orphans may be waiting to be reaped.
    orphans_due: bool,
    /// Set once SIGTERM or SIGINT arrived: when to give up waiting.
    draining: Option<Instant>,
}

impl Server {
    /// Binds, starts the helpers and registers everything; does not serve yet.
    pub fn start(config: Config) -> Result<Server> {
        raise_descriptor_limit();
        become_subreaper();
        let mut poller = new_poller(config.backend)
            .with_context(|| format!("cannot create the {} poller", config.backend.name()))?;
        let listener = listener::bind(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let signals = Signals::install().context("cannot install signal handlers")?;
        let log = AccessLog::open(&config.access_log).context("cannot open the access log")?;
        if let Some(user) = &config.user {
            privileges::drop_to(user)?;
        }
        let clock = Clock::new();
        let helper_args = vec![
            "--root".into(),
            config.root.clone().into_os_string(),
            "--inline-max".into(),
            config.inline_max.to_string().into(),
        ];
        let mut pool = HelperPool::new(
            config.helper_bin.clone(),
            helper_args,
            config.helpers,
            HELPER_BASE,
            config.helper_timeout,
            clock.now(),
        );
        pool.start(poller.as_mut(), Duration::from_secs(10))?;
        let runner_args = vec![
            "--root".into(),
            config.root.clone().into_os_string(),
            "--max-scripts".into(),
            config.cgi_max_procs.to_string().into(),
        ];
        let mut runner = CgiRunner::new(
            config.cgi_runner_bin.clone(),
            runner_args,
            RUNNER,
            clock.now(),
        );
        runner.start(poller.as_mut(), Duration::from_secs(10))?;
        poller.register(listener.as_raw_fd(), LISTENER, Interest::READABLE)?;
        poller.register(signals.fd(), SIGNALS, Interest::READABLE)?;
        Ok(Server {
            cache: Cache::new(config.cache_size),
            config,
            poller,
            local_addr: listener.local_addr()?,
            listener: Some(listener),
            signals,
            conns: Vec::new(),
            free: Vec::new(),
            next_generation: 0,
            open: 0,
            pool,
            timers: Timers::default(),
            log,
            clock,
            accept_paused_until: None,
            helpers_due: None,
            runner,
            runner_due: None,
            cgi_ids: HashMap::new(),
            cgi_active: 0,
            cgi_buf: Vec::new(),
            counters: Counters::default(),
            started: Instant::now(),
            orphans_due: false,
            draining: None,
        })
    }

    /// The address actually bound (with the real port).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }

    /// Serves until SIGTERM or SIGINT.
    pub fn run(&mut self) -> Result<()> {
        let mut events: Vec<Event> = Vec::with_capacity(1024);
        loop {
            let timeout = self.next_timeout();
            self.poller
                .wait(&mut events, timeout)
                .context("event wait failed")?;
            self.clock.tick();
            for ev in events.drain(..) {
                match ev.token {
                    LISTENER => self.accept_clients(),
                    SIGNALS => {
                        let arrived = self.signals.take();
                        if arrived.terminate && self.draining.is_none() {
                            self.begin_drain();
                        }
                        if arrived.hangup {
                            self.reopen_log();
                        }
                        if arrived.child {
                            self.helpers_due = Some(self.clock.now());
                            self.runner_due = Some(self.clock.now());
                            self.orphans_due = true;
                        }
                    }
                    RUNNER => self.runner_event(ev),
                    t if t >= CONN_BASE => {
                        let (idx, sub) = ((t - CONN_BASE) >> 2, (t - CONN_BASE) & 3);
                        if sub == SUB_SOCKET {
                            self.client_event(idx, ev);
                        } else {
                            // A script's pipe: move what can move.
                            self.pump_cgi(idx);
                        }
                    }
                    t => self.helper_event(t, ev),
                }
            }
            let now = self.clock.now();
            self.expire_timers(now);
            if self.helpers_due.is_some_and(|t| t <= now) {
                self.helpers_due = self.pool.maintain(self.poller.as_mut(), now);
            }
            if self.runner_due.is_some_and(|t| t <= now) {
                self.runner_due = self.runner.maintain(self.poller.as_mut(), now);
            }
            if self.orphans_due {
                self.orphans_due = false;
                let mut children = self.pool.pids();
                children.extend(self.runner.pids());
                if !reap_orphans(&children) {
                    // A child of ours exited after its owner looked: let the
                    // owner reap it (and report how it ended), then look
                    // for orphans again.
                    self.helpers_due = Some(now);
                    self.runner_due = Some(now);
                    self.orphans_due = true;
                }
            }
            if let Some(deadline) = self.draining {
                self.close_idle();
                if self.open == 0 || deadline <= now {
                    self.shutdown();
                    return Ok(());
                }
            }
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
                if let Some(listener) = &self.listener {
                    let _ =
                        self.poller
                            .reregister(listener.as_raw_fd(), LISTENER, Interest::READABLE);
                }
            }
            self.log.flush_if_due(now);
        }
    }

    fn next_timeout(&self) -> Option<Duration> {
        let now = self.clock.now();
        let until = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(now));
        [
            self.timers.next_timeout(now),
            until(self.helpers_due),
            until(self.runner_due),
            until(self.accept_paused_until),
            until(self.log.next_flush()),
            until(self.draining),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn shutdown(&mut self) {
        self.log.flush();
        self.pool.shutdown();
        self.runner.shutdown();
    }

    /// Stops accepting; responses in flight go on until done or until
    /// `--shutdown-timeout`.
    fn begin_drain(&mut self) {
        // Closing the listener makes new clients fail to connect at once
        // rather than wait in the backlog until the server is gone.
        if let Some(listener) = self.listener.take() {
            let _ = self.poller.deregister(listener.as_raw_fd());
        }
        self.accept_paused_until = None;
        self.draining = Some(self.clock.now() + self.config.shutdown_timeout);
        self.close_idle();
    }

    /// While draining: closes connections with nothing in flight.
    fn close_idle(&mut self) {
        for idx in 0..self.conns.len() {
            let idle = self.conns[idx].as_ref().is_some_and(|c| {
                matches!(c.phase, Phase::Reading | Phase::Lingering)
                    && c.output.is_empty()
                    && c.input.is_empty()
            });
            if idle {
                self.close(idx);
            }
        }
    }

    fn reopen_log(&mut self) {
        self.log.flush();
        match AccessLog::open(&self.config.access_log) {
            Ok(log) => self.log = log,
            Err(e) => error_log!("amped: cannot reopen the access log: {e}"),
        }
    }

    // ----- accepting -------------------------------------------------

    fn accept_clients(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            let Some(listening) = self.listener.as_ref() else {
                return;
            };
            let (stream, peer) = match listener::accept(listening) {
                Ok(Some(accepted)) => accepted,
                Ok(None) => return,
                Err(e) => {
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE)
                            | Some(libc::ENFILE)
                            | Some(libc::ENOBUFS)
                            | Some(libc::ENOMEM)
                    ) {
                        error_log!("amped: cannot accept: {e}; pausing for {ACCEPT_PAUSE:?}");
                        let _ =
                            self.poller
                                .reregister(listening.as_raw_fd(), LISTENER, Interest::NONE);
                        self.accept_paused_until = Some(self.clock.now() + ACCEPT_PAUSE);
                        return;
                    }
                    continue;
                }
            };
            let fd = stream.as_raw_fd();
            let too_high = self.poller.fd_limit().is_some_and(|limit| fd >= limit);
            if too_high || self.open >= self.config.max_connections {
                let _ = (&stream).write(&overloaded(self.clock.http_date()));
                continue;
            }
            let idx = match self.free.pop() {
                Some(i) => i,
                None => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
            };
            if self
                .poller
                .register(fd, conn_token(idx, SUB_SOCKET), Interest::READABLE)
                .is_err()
            {
                let _ = (&stream).write(&overloaded(self.clock.http_date()));
                self.free.push(idx);
                continue;
            }
            self.next_generation = self.next_generation.wrapping_add(1);
            let now = self.clock.now();
            let conn = Connection::new(stream, peer, self.next_generation, now);
            self.conns[idx] = Some(conn);
            self.open += 1;
            self.counters.accepted += 1;
            self.set_deadline(idx, now + self.config.header_timeout);
        }
    }

    pub(crate) fn close(&mut self, idx: usize) {
        self.abandon_cgi(idx);
        if let Some(conn) = self.conns.get_mut(idx).and_then(Option::take) {
            let _ = self.poller.forget_closing(conn.fd());
            self.free.push(idx);
            self.open -= 1;
        }
    }

    // ----- client I/O ------------------------------------------------

    fn client_event(&mut self, idx: usize, ev: Event) {
        let now = self.clock.now();
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if ev.readable {
            let result = match conn.phase {
                Phase::Lingering => drain(conn),
                _ if conn.input_room() == 0 => peek_closed(conn),
                _ => conn.read_input(now),
            };
            let waiting = matches!(conn.phase, Phase::Waiting(_) | Phase::Cgi(_));
            match result {
                Ok(0) if conn.peer_closed && matches!(conn.phase, Phase::Lingering) => {
                    return self.close(idx)
                }
                // The client went away while its answer was being prepared:
                // drop the request (a hung-up socket would otherwise be
                // reported again on every wait).
                Ok(0) if conn.peer_closed && waiting => return self.close(idx),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(idx),
            }
        }
        if let Some(conn) = self.conns.get(idx).and_then(Option::as_ref) {
            if matches!(conn.phase, Phase::Cgi(_)) {
                return self.pump_cgi(idx);
            }
        }
        self.advance(idx);
    }

    /// Handles whatever the connection can do now: answer buffered
    /// requests in order, write, and pick what to wait for next.
    pub(crate) fn advance(&mut self, idx: usize) {
        // Answering stops while too much output is queued; once a flush
        // empties the queue, the requests still buffered are taken up.
        while self.answer_buffered(idx) {
            self.flush(idx);
            let drained = self
                .conns
                .get(idx)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.output.is_empty() && matches!(c.phase, Phase::Reading));
            if !drained {
                return;
            }
        }
        self.flush(idx);
    }

    /// Answers the requests buffered on a connection, in order. Returns
    /// true when it stopped only because too much output is queued.
    fn answer_buffered(&mut self, idx: usize) -> bool {
        loop {
            let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                return false;
            };
            if !matches!(conn.phase, Phase::Reading) {
                return false;
            }
            conn.discard_buffered_body();
            if conn.discard > 0 || conn.input.is_empty() {
                return false;
            }
            // The header timeout runs from the first byte of a head, even
            // one that arrived behind an earlier request.
            conn.request_started.get_or_insert(self.clock.now());
            if conn.output.queued() > OUTPUT_HIGH_WATER {
                return true;
            }
            match parse(&conn.input, self.log.enabled()) {
                Parsed::Partial => return false,
                Parsed::Rejected(rejection) => {
                    let consumed = if rejection.head_len == 0 {
                        conn.input.len()
                    } else {
                        rejection.head_len
                    };
                    conn.consume(consumed);
                    conn.request_started = None;
                    conn.discard = body_length(rejection.body);
                    let reply =
                        respond::reject(&mut conn.output, &rejection, self.clock.http_date());
                    let log = rejection.log;
                    self.finish_reply(idx, reply, log.as_ref());
                }
                Parsed::Request(request) => {
                    conn.consume(request.head_len);
                    conn.request_started = None;
                    // A CGI request's body is read by its exchange.
                    conn.discard = match request.cgi {
                        Some(_) => 0,
                        None => body_length(request.body),
                    };
                    self.serve(idx, request);
                }
            }
        }
    }

    /// Answers a request from the cache, or sends it to a helper.
    pub(crate) fn serve(&mut self, idx: usize, request: Request) {
        if request.cgi.is_some() {
            return self.start_cgi(idx, request);
        }
        if self.config.status_key.as_deref() == Some(request.target.key.as_str()) {
            return self.serve_status(idx, &request);
        }
        let now = self.clock.now();
        let cached = self.cache.get(&request.target.key);
        if let Some(entry) = cached.as_ref().filter(|e| e.is_fresh(now)) {
            self.reply(idx, &request, entry);
            return;
        }
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let waiter = (idx, conn.generation);
        let known = cached.and_then(|e| e.meta());
        let key = request.target.key.clone();
        conn.phase = Phase::Waiting(Box::new(request));
        let deadline = now + self.config.helper_timeout;
        self.set_deadline(idx, deadline);
        // The pool checks then that the helper answered.
        self.helpers_due = Some(self.helpers_due.map_or(deadline, |t| t.min(deadline)));
        self.pool
            .lookup(&key, known, waiter, self.poller.as_mut(), now);
    }

    /// The status page, to loopback clients unless allowed for all.
    fn serve_status(&mut self, idx: usize, request: &Request) {
        let snapshot = Snapshot {
            uptime_secs: self
                .clock
                .now()
                .saturating_duration_since(self.started)
                .as_secs(),
            open_connections: self.open,
            counters: self.counters.clone(),
            cache: self.cache.stats(),
            helper_lookups_in_flight: self.pool.in_flight(),
            helper_restarts: self.pool.restarts(),
            runner_restarts: self.runner.restarts(),
            cgi_running: self.cgi_active,
        };
        let allow_all = self.config.status_allow_remote;
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let date = self.clock.http_date();
        let reply = if !allow_all && !conn.peer.ip().is_loopback() {
            respond::error(
                &mut conn.output,
                Status::FORBIDDEN,
                request.keep_alive,
                request.http10,
                request.method == Method::Head,
                "",
                date,
            )
        } else {
            let json = request
                .target
                .query
                .as_deref()
                .is_some_and(|q| q.split('&').any(|p| p == "json"));
            let (body, content_type) = if json {
                (render_json(&snapshot), "application/json")
            } else {
                (render_text(&snapshot), "text/plain; charset=utf-8")
            };
            respond::dynamic(
                &mut conn.output,
                request,
                content_type,
                body.into_bytes(),
                date,
            )
        };
        self.finish_reply(idx, reply, request.log.as_ref());
    }

    fn reply(&mut self, idx: usize, request: &Request, entry: &Entry) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let reply = respond::respond(&mut conn.output, request, entry, self.clock.http_date());
        self.finish_reply(idx, reply, request.log.as_ref());
    }

    /// Bookkeeping after a response is queued: the log line, and closing
    /// when the response says so.
    pub(crate) fn finish_reply(&mut self, idx: usize, reply: Reply, log: Option<&LogFields>) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        conn.responses += 1;
        self.counters.response(reply.status.code);
        if !reply.keep_alive || self.draining.is_some() {
            conn.phase = Phase::Closing;
        }
        if let Some(fields) = log {
            self.log.record(
                conn.peer,
                self.clock.log_date(),
                fields,
                reply.status.code,
                reply.body_bytes,
                self.clock.now(),
            );
        }
    }

    /// Queues an error page for `request` and does what follows every
    /// response (the log line, closing when not kept alive).
    pub(crate) fn answer_error(
        &mut self,
        idx: usize,
        request: &Request,
        status: Status,
        keep_alive: bool,
        extra: &str,
    ) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let head_only = request.method == Method::Head;
        let date = self.clock.http_date();
        let reply = respond::error(
            &mut conn.output,
            status,
            keep_alive,
            request.http10,
            head_only,
            extra,
            date,
        );
        self.finish_reply(idx, reply, request.log.as_ref());
    }

    /// Writes what is queued and decides what the connection waits for.
    pub(crate) fn flush(&mut self, idx: usize) {
        let now = self.clock.now();
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if !conn.output.is_empty() {
            match conn.output.write_to(conn.fd(), WRITE_BUDGET) {
                Ok(_) => {}
                Err(_) => return self.close(idx),
            }
        }
        let flushed = conn.output.is_empty();
        let (interest, deadline) = match conn.phase {
            _ if !flushed => (Interest::WRITABLE, now + self.config.send_timeout),
            Phase::Cgi(ref ex) => {
                let wants_body = !ex.body_complete() && !conn.peer_closed && conn.input_room() > 0;
                let interest = if wants_body {
                    Interest::READABLE
                } else {
                    Interest::NONE
                };
                (interest, ex.deadline(self.config.cgi_timeout))
            }
            Phase::Waiting(_) => {
                let interest = if conn.input_room() > 0 && !conn.peer_closed {
                    Interest::READABLE
                } else {
                    Interest::NONE
                };
                (interest, conn.deadline)
            }
            Phase::Closing => {
                if conn.input.is_empty() && conn.discard == 0 && conn.peer_closed {
                    return self.close(idx);
                }
                let _ = conn.stream.shutdown(std::net::Shutdown::Write);
                conn.phase = Phase::Lingering;
                conn.input.clear();
                (Interest::READABLE, now + LINGER)
            }
            Phase::Lingering => (Interest::READABLE, conn.deadline),
            Phase::Reading => {
                if conn.peer_closed {
                    return self.close(idx);
                }
                if conn.input_room() == 0 {
                    // A full buffer that still does not parse cannot happen
                    // (the parser refuses oversized heads), but never spin.
                    return self.close(idx);
                }
                let deadline = match conn.request_started {
                    Some(t) => t + self.config.header_timeout,
                    None if conn.responses == 0 => conn.deadline,
                    None => now + self.config.keepalive_timeout,
                };
                (Interest::READABLE, deadline)
            }
        };
        if interest != conn.interest {
            let fd = conn.fd();
            if self
                .poller
                .reregister(fd, conn_token(idx, SUB_SOCKET), interest)
                .is_err()
            {
                return self.close(idx);
            }
            if let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) {
                conn.interest = interest;
            }
        }
        self.set_deadline(idx, deadline);
    }

    // ----- helpers ---------------------------------------------------

    fn helper_event(&mut self, token: Token, ev: Event) {
        let Some(slot) = self.pool.slot_of(token) else {
            return;
        };
        let mut completions = Vec::new();
        let now = self.clock.now();
        self.pool
            .handle_event(slot, ev, self.poller.as_mut(), now, &mut completions);
        // A dead helper is restarted from the loop, not from here.
        self.helpers_due = Some(
            self.helpers_due
                .map_or(now, |t| t.min(now + Duration::from_millis(1))),
        );
        for completion in completions {
            self.complete(completion);
        }
    }

    /// Fills the cache from a helper's answer and wakes its waiters.
    fn complete(&mut self, completion: Completion) {
        let now = self.clock.now();
        let Completion {
            key,
            outcome,
            fd,
            waiters,
        } = completion;
        let entry = match outcome {
            Outcome::Unchanged => match self.cache.peek(&key) {
                Some(entry) => {
                    entry.revalidated(now);
                    entry
                }
                None => {
                    for waiter in waiters {
                        self.pool
                            .lookup(&key, None, waiter, self.poller.as_mut(), now);
                    }
                    return;
                }
            },
            outcome => {
                let entry = Rc::new(Entry::new(found_from(&key, outcome, fd), now));
                self.cache.insert(key, Rc::clone(&entry));
                entry
            }
        };
        for (idx, generation) in waiters {
            let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if conn.generation != generation || !matches!(conn.phase, Phase::Waiting(_)) {
                continue;
            }
            let Phase::Waiting(request) = std::mem::replace(&mut conn.phase, Phase::Reading) else {
                continue;
            };
            self.reply(idx, &request, &entry);
            self.advance(idx);
        }
    }

    // ----- timeouts --------------------------------------------------

    fn set_deadline(&mut self, idx: usize, at: Instant) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        conn.deadline = at;
        if conn.armed_at.is_none_or(|armed| at < armed) {
            conn.armed_at = Some(at);
            self.timers.push(at, idx, conn.generation);
        }
    }

    fn expire_timers(&mut self, now: Instant) {
        while let Some((at, idx, generation)) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if conn.generation != generation || conn.armed_at != Some(at) {
                continue;
            }
            conn.armed_at = None;
            if conn.deadline > now {
                let deadline = conn.deadline;
                self.set_deadline(idx, deadline);
                continue;
            }
            self.timed_out(idx);
        }
    }

    fn timed_out(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if matches!(conn.phase, Phase::Cgi(_)) && conn.output.is_empty() {
            return self.cgi_timed_out(idx);
        }
        if matches!(conn.phase, Phase::Waiting(_)) {
            let Phase::Waiting(request) = std::mem::replace(&mut conn.phase, Phase::Reading) else {
                return;
            };
            let extra = "Retry-After: 5\r\n";
            self.answer_error(idx, &request, Status::SERVICE_UNAVAILABLE, false, extra);
            self.flush(idx);
            return;
        }
        self.close(idx);
    }
}

/// Bytes of request body to read and drop before the next request.
fn body_length(framing: Framing) -> u64 {
    match framing {
        Framing::Length(n) => n,
        Framing::None | Framing::Chunked => 0,
    }
}

/// Builds a cache entry from a helper's answer.
fn found_from(key: &str, outcome: Outcome, fd: Option<std::os::fd::OwnedFd>) -> Found {
    match outcome {
        Outcome::File { meta, body } => {
            let content = match (body, fd) {
                (Body::Inline(bytes), _) => Content::Inline(bytes.into()),
                (Body::Descriptor, Some(fd)) => Content::Descriptor(Rc::new(fd)),
                (Body::Descriptor, None) => return Found::Failed,
            };
            let name = if is_directory_key(key) {
                "index.html"
            } else {
                key
            };
            Found::File(FileEntry {
                meta,
                headers: FileHeaders::new(&content_type(name), &meta),
                content,
            })
        }
        Outcome::Directory => Found::Directory,
        Outcome::NotFound => Found::Missing,
        Outcome::Forbidden { .. } => Found::Forbidden,
        Outcome::Failed { reason } => {
            error_log!("amped: lookup of {:?} failed: {reason}", format!("/{key}"));
            Found::Failed
        }
        Outcome::Unchanged => Found::Failed,
    }
}

/// Reads and drops input on a lingering connection.
fn drain(conn: &mut Connection) -> io::Result<usize> {
    let mut scratch = [0u8; 4096];
    let n = io::Read::read(&mut &conn.stream, &mut scratch)?;
    if n == 0 {
        conn.peer_closed = true;
    }
    Ok(n)
}

/// With a full input buffer, checks whether the client went away.
fn peek_closed(conn: &mut Connection) -> io::Result<usize> {
    let mut byte = [0u8; 1];
    let n = conn.stream.peek(&mut byte)?;
    if n == 0 {
        conn.peer_closed = true;
    }
    Ok(n)
}

/// Makes the server the reaper of its descendants' orphans: CGI scripts
/// whose runner died are reparented here rather than to init.
fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        error_log!("amped: cannot become a child subreaper: {e}");
    }
}

/// Reaps exited orphans (scripts whose runner died), leaving the server's
/// own children (`ours`) to their owners, which report how they ended.
/// Returns false when it stopped at one of ours.
fn reap_orphans(ours: &[u32]) -> bool {
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

/// Lets the server hold as many descriptors as the hard limit allows.
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls with a valid pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
