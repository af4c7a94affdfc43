//! The event loop: accepts clients, reads their requests, dispatches each
//! (to the cache, a helper, or the CGI subsystem), and expires deadlines.
//! Nothing in here blocks: every socket is non-blocking and every wait is
//! the poller's. The subsystems (CGI, supervision) own their state and
//! return what the loop must do next; they never call back into it.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use protocol::Outcome;

use crate::access_log::AccessLog;
use crate::cache::{Cache, Entry, Found};
use crate::cgi::driver::{Cgi, CgiConfig, Io, Next};
use crate::cgi::runner_link::CgiRunner;
use crate::config::Config;
use crate::conn_table::{ConnId, ConnTable};
use crate::connection::{Connection, DueCheck, Timeouts, Wants};
use crate::deadlines::Timers;
use crate::event::{new_poller, Event, Interest, Poller};
use crate::http::clock::Clock;
use crate::http::request::{parse, Framing, LogFields, Parsed, Request};
use crate::http::response::overloaded;
use crate::http::status::Status;
use crate::listener;
use crate::privileges;
use crate::respond::{self, Reply};
use crate::signals::Signals;
use crate::status::{self, Counters, Snapshot};
use crate::supervise::helper_pool::{Completion, HelperPool};
use crate::supervise::{orphans, Supervision};
use crate::token::EventToken;

/// Connections accepted per readiness report of the listener. One, as
/// nginx does by default: the listener is level-triggered, so a backlog
/// is reported again on the next turn, and a lone connection costs no
/// second `accept4` that would only fail with EAGAIN.
const ACCEPT_BATCH: usize = 1;
/// After running out of descriptors, accepting pauses this long.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long the children may take to answer the handshake at start-up.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The server: every connection, the cache, the subsystems.
pub struct Server {
    config: Config,
    timeouts: Timeouts,
    poller: Box<dyn Poller>,
    /// The listening socket; closed (`None`) once draining starts.
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: Signals,
    conns: ConnTable,
    cache: Cache,
    timers: Timers,
    log: AccessLog,
    clock: Clock,
    accept_paused_until: Option<Instant>,
    cgi: Cgi,
    supervision: Supervision,
    counters: Counters,
    started: Instant,
    /// Set once SIGTERM or SIGINT arrived: when to give up waiting.
    draining: Option<Instant>,
}

impl Server {
    /// Binds, starts the children and registers everything; does not
    /// serve yet.
    pub fn start(config: Config) -> Result<Server> {
        listener::raise_descriptor_limit();
        orphans::become_subreaper();
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
        let root = config.root.clone().into_os_string();
        let helper_args = vec![
            "--root".into(),
            root.clone(),
            "--inline-max".into(),
            config.inline_max.to_string().into(),
        ];
        let pool = HelperPool::new(
            config.helper_bin.clone(),
            helper_args,
            config.helpers,
            config.helper_timeout,
            clock.now(),
        );
        let runner_args = vec![
            "--root".into(),
            root,
            "--max-scripts".into(),
            config.cgi_max_procs.to_string().into(),
        ];
        let runner_token = EventToken::Runner.to_token();
        let bin = config.cgi_runner_bin.clone();
        let mut runner = CgiRunner::new(bin, runner_args, runner_token, clock.now());
        let mut supervision = Supervision::new(pool);
        supervision.start(&mut runner, poller.as_mut(), START_TIMEOUT)?;
        let token = EventToken::Listener.to_token();
        poller.register(listener.as_raw_fd(), token, Interest::READABLE)?;
        let token = EventToken::Signals.to_token();
        poller.register(signals.fd(), token, Interest::READABLE)?;
        let cgi = Cgi::new(
            runner,
            CgiConfig {
                max_body: config.cgi_max_body,
                max_procs: config.cgi_max_procs,
                timeout: config.cgi_timeout,
                root: config.root.clone(),
                listen: config.listen,
            },
        );
        Ok(Server {
            cache: Cache::new(config.cache_size),
            timeouts: Timeouts {
                send: config.send_timeout,
                header: config.header_timeout,
                keepalive: config.keepalive_timeout,
                cgi: config.cgi_timeout,
            },
            config,
            poller,
            local_addr: listener.local_addr()?,
            listener: Some(listener),
            signals,
            conns: ConnTable::default(),
            timers: Timers::default(),
            log,
            clock,
            accept_paused_until: None,
            cgi,
            supervision,
            counters: Counters::default(),
            started: Instant::now(),
            draining: None,
        })
    }

    /// The address actually bound (with the real port).
    pub fn local_addr(&self) -> SocketAddr {
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
                self.dispatch(ev);
            }
            let now = self.clock.now();
            self.expire_timers(now);
            self.supervision
                .maintain(self.cgi.runner(), self.poller.as_mut(), now);
            if let Some(deadline) = self.draining {
                self.close_idle();
                if self.conns.open() == 0 || deadline <= now {
                    self.log.flush();
                    self.supervision.shutdown(self.cgi.runner());
                    return Ok(());
                }
            }
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
                if let Some(listener) = &self.listener {
                    let token = EventToken::Listener.to_token();
                    let _ = self
                        .poller
                        .reregister(listener.as_raw_fd(), token, Interest::READABLE);
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
            until(self.supervision.next_due()),
            until(self.accept_paused_until),
            until(self.log.next_flush()),
            until(self.draining),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn dispatch(&mut self, ev: Event) {
        let now = self.clock.now();
        match EventToken::from_token(ev.token) {
            Some(EventToken::Listener) => self.accept_clients(),
            Some(EventToken::Signals) => self.on_signals(),
            Some(EventToken::Runner) => {
                let events = self.cgi.runner_event(ev, self.poller.as_mut(), now);
                self.supervision.runner_touched(now);
                for (id, event) in events {
                    let next =
                        self.with_cgi(id, |cgi, conn, io| cgi.on_runner_event(conn, event, io));
                    self.act(id, next);
                }
            }
            Some(EventToken::Helper(n)) => {
                let poller = self.poller.as_mut();
                for done in self.supervision.helper_event(n, ev, poller, now) {
                    self.complete(done);
                }
            }
            Some(EventToken::Client(slot)) => {
                if let Some(id) = self.conns.in_slot(slot) {
                    self.client_event(id, ev);
                }
            }
            // A script's pipe: move what can move.
            Some(EventToken::ScriptStdin(slot) | EventToken::ScriptStdout(slot)) => {
                if let Some(id) = self.conns.in_slot(slot) {
                    let next = self.with_cgi(id, |cgi, conn, io| cgi.pump(conn, io));
                    self.act(id, next);
                }
            }
            None => {}
        }
    }

    fn on_signals(&mut self) {
        let arrived = self.signals.take();
        if arrived.terminate && self.draining.is_none() {
            // Closing the listener makes new clients fail to connect at
            // once rather than wait in the backlog until the server is
            // gone. Responses in flight go on until done or until
            // `--shutdown-timeout`.
            if let Some(listener) = self.listener.take() {
                let _ = self.poller.deregister(listener.as_raw_fd());
            }
            self.accept_paused_until = None;
            self.draining = Some(self.clock.now() + self.config.shutdown_timeout);
            self.close_idle();
        }
        if arrived.hangup {
            self.log.flush();
            match AccessLog::open(&self.config.access_log) {
                Ok(log) => self.log = log,
                Err(e) => error_log!("amped: cannot reopen the access log: {e}"),
            }
        }
        if arrived.child {
            self.supervision.on_sigchld(self.clock.now());
        }
    }

    fn accept_clients(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            let Some(listening) = self.listener.as_ref() else {
                return;
            };
            let (stream, peer) = match listener::accept(listening) {
                Ok(Some(accepted)) => accepted,
                Ok(None) => return,
                Err(e) if listener::out_of_descriptors(&e) => {
                    error_log!("amped: cannot accept: {e}; pausing for {ACCEPT_PAUSE:?}");
                    let fd = listening.as_raw_fd();
                    let token = EventToken::Listener.to_token();
                    let _ = self.poller.reregister(fd, token, Interest::NONE);
                    self.accept_paused_until = Some(self.clock.now() + ACCEPT_PAUSE);
                    return;
                }
                Err(_) => continue,
            };
            let fd = stream.as_raw_fd();
            let too_high = self.poller.fd_limit().is_some_and(|limit| fd >= limit);
            let id = self.conns.reserve();
            let token = EventToken::Client(id.slot()).to_token();
            if too_high
                || self.conns.open() >= self.config.max_connections
                || self.poller.register(fd, token, Interest::READABLE).is_err()
            {
                let _ = (&stream).write(&overloaded(self.clock.http_date()));
                self.conns.release(id);
                continue;
            }
            let deadline = self.clock.now() + self.config.header_timeout;
            self.conns
                .insert(Connection::new(stream, peer, id, deadline));
            self.counters.accepted += 1;
            self.set_deadline(id, deadline);
        }
    }

    /// While draining: closes connections with nothing in flight.
    fn close_idle(&mut self) {
        for id in self.conns.ids_where(Connection::is_idle) {
            self.close(id);
        }
    }

    fn close(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id) {
            self.cgi.abandon(conn, self.poller.as_mut());
        }
        if let Some(conn) = self.conns.remove(id) {
            let _ = self.poller.forget_closing(conn.fd());
        }
    }

    fn client_event(&mut self, id: ConnId, ev: Event) {
        let now = self.clock.now();
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if ev.readable {
            match conn.on_readable(now) {
                Ok(0) if conn.hung_up() => return self.close(id),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(id),
            }
        }
        if conn.runs_cgi() {
            let next = self.with_cgi(id, |cgi, conn, io| cgi.pump(conn, io));
            return self.act(id, next);
        }
        self.advance(id);
    }

    /// Runs one function of the CGI subsystem on connection `id`.
    fn with_cgi(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut Cgi, &mut Connection, &mut Io) -> Next,
    ) -> Next {
        let Some(conn) = self.conns.get_mut(id) else {
            return Next::Unchanged;
        };
        let mut io = Io {
            poller: self.poller.as_mut(),
            now: self.clock.now(),
            date: self.clock.http_date(),
        };
        f(&mut self.cgi, conn, &mut io)
    }

    /// Does what a subsystem said comes next, then goes on with the
    /// connection.
    fn act(&mut self, id: ConnId, next: Next) {
        if matches!(next, Next::Unchanged) {
            return;
        }
        if let Some(request) = self.settle(id, next) {
            self.serve(id, *request);
        }
        self.advance(id);
    }

    /// Accounts for a response or closes, as `next` says; returns the
    /// request a local redirect asks to serve.
    fn settle(&mut self, id: ConnId, next: Next) -> Option<Box<Request>> {
        match next {
            Next::Unchanged | Next::Continue => None,
            Next::Respond(reply, log) => {
                self.finish_reply(id, reply, log.as_ref());
                None
            }
            Next::Redirect(request) => Some(request),
            Next::Close => {
                self.close(id);
                None
            }
        }
    }

    /// Handles whatever the connection can do now: answer buffered
    /// requests in order, write, and pick what to wait for next.
    fn advance(&mut self, id: ConnId) {
        // Answering stops while too much output is queued; once a flush
        // empties the queue, the requests still buffered are taken up.
        while self.answer_buffered(id) {
            self.flush(id);
            let drained = self
                .conns
                .get(id)
                .is_some_and(|c| c.flushed() && c.is_reading());
            if !drained {
                return;
            }
        }
        self.flush(id);
    }

    /// Answers the requests buffered on a connection, in order. Returns
    /// true when it stopped only because too much output is queued.
    fn answer_buffered(&mut self, id: ConnId) -> bool {
        loop {
            let now = self.clock.now();
            let Some(conn) = self.conns.get_mut(id) else {
                return false;
            };
            let full = conn.output_full();
            let Some(head) = conn.next_head(now) else {
                return false;
            };
            if full {
                return true;
            }
            match parse(head, self.log.enabled()) {
                Parsed::Partial => return false,
                Parsed::Rejected(rejection) => {
                    let head_len = match rejection.head_len {
                        0 => usize::MAX,
                        n => n,
                    };
                    conn.took_head(head_len, body_length(rejection.body));
                    let date = self.clock.http_date();
                    let reply = respond::reject(conn.output(), &rejection, date);
                    self.finish_reply(id, reply, rejection.log.as_ref());
                }
                Parsed::Request(request) => {
                    // A CGI request's body is read by its exchange.
                    let discard = match request.cgi {
                        Some(_) => 0,
                        None => body_length(request.body),
                    };
                    conn.took_head(request.head_len, discard);
                    self.serve(id, request);
                }
            }
        }
    }

    /// Serves a request, and the requests its scripts redirect to.
    fn serve(&mut self, id: ConnId, request: Request) {
        let mut next = self.serve_one(id, request);
        while let Some(request) = self.settle(id, next) {
            next = self.serve_one(id, *request);
        }
    }

    /// Answers a request from the cache, sends it to a helper, or starts
    /// its script.
    fn serve_one(&mut self, id: ConnId, request: Request) -> Next {
        if request.cgi.is_some() {
            return self.with_cgi(id, |cgi, conn, io| cgi.start(conn, request, io));
        }
        if self.config.status_key.as_deref() == Some(request.target.key.as_str()) {
            let snapshot = self.snapshot();
            let allow_all = self.config.status_allow_remote;
            let Some(conn) = self.conns.get_mut(id) else {
                return Next::Unchanged;
            };
            let allowed = allow_all || conn.peer().ip().is_loopback();
            let date = self.clock.http_date();
            let reply = status::reply(conn.output(), &request, &snapshot, allowed, date);
            self.finish_reply(id, reply, request.log.as_ref());
            return Next::Unchanged;
        }
        let now = self.clock.now();
        let cached = self.cache.get(&request.target.key);
        if let Some(entry) = cached.as_ref().filter(|e| e.is_fresh(now)) {
            self.reply(id, &request, entry);
            return Next::Unchanged;
        }
        let Some(conn) = self.conns.get_mut(id) else {
            return Next::Unchanged;
        };
        let known = cached.and_then(|e| e.meta());
        let key = request.target.key.clone();
        conn.await_helper(request);
        let deadline = now + self.config.helper_timeout;
        self.set_deadline(id, deadline);
        let poller = self.poller.as_mut();
        self.supervision
            .lookup(&key, known, id, Some(deadline), poller, now);
        Next::Unchanged
    }

    fn snapshot(&mut self) -> Snapshot {
        let uptime = self.clock.now().saturating_duration_since(self.started);
        Snapshot {
            uptime_secs: uptime.as_secs(),
            open_connections: self.conns.open(),
            counters: self.counters.clone(),
            cache: self.cache.stats(),
            helper_lookups_in_flight: self.supervision.pool().in_flight(),
            helper_restarts: self.supervision.pool().restarts(),
            runner_restarts: self.cgi.runner().restarts(),
            cgi_running: self.cgi.active(),
        }
    }

    fn reply(&mut self, id: ConnId, request: &Request, entry: &Entry) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let reply = respond::respond(conn.output(), request, entry, self.clock.http_date());
        self.finish_reply(id, reply, request.log.as_ref());
    }

    /// Bookkeeping after a response is queued: whether the connection is
    /// kept (decided here, and only here), the counters, the log line.
    fn finish_reply(&mut self, id: ConnId, reply: Reply, log: Option<&LogFields>) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.replied(reply.keep_alive && self.draining.is_none());
        self.counters.response(reply.status.code);
        if let Some(fields) = log {
            self.log.record(
                conn.peer(),
                self.clock.log_date(),
                fields,
                reply.status.code,
                reply.body_bytes,
                self.clock.now(),
            );
        }
    }

    /// Writes what is queued and sets what the connection waits for.
    fn flush(&mut self, id: ConnId) {
        let now = self.clock.now();
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.write_output().is_err() {
            return self.close(id);
        }
        let (interest, deadline) = match conn.wants(now, &self.timeouts) {
            Wants::Close => return self.close(id),
            Wants::Linger => conn.start_lingering(now),
            Wants::Wait(interest, deadline) => (interest, deadline),
        };
        if interest != conn.interest() {
            let token = EventToken::Client(id.slot()).to_token();
            if self.poller.reregister(conn.fd(), token, interest).is_err() {
                return self.close(id);
            }
            conn.set_interest(interest);
        }
        self.set_deadline(id, deadline);
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
                        let poller = self.poller.as_mut();
                        self.supervision
                            .lookup(&key, None, waiter, None, poller, now);
                    }
                    return;
                }
            },
            outcome => {
                let entry = Rc::new(Entry::new(Found::from_outcome(&key, outcome, fd), now));
                self.cache.insert(key, Rc::clone(&entry));
                entry
            }
        };
        for id in waiters {
            let Some(request) = self.conns.get_mut(id).and_then(Connection::take_waiting) else {
                continue;
            };
            self.reply(id, &request, &entry);
            self.advance(id);
        }
    }

    fn set_deadline(&mut self, id: ConnId, at: Instant) {
        if self.conns.get_mut(id).is_some_and(|c| c.set_deadline(at)) {
            self.timers.push(at, id);
        }
    }

    fn expire_timers(&mut self, now: Instant) {
        while let Some((at, id)) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get_mut(id) else {
                continue;
            };
            match conn.check_due(at, now) {
                DueCheck::Stale => {}
                DueCheck::Moved(deadline) => self.set_deadline(id, deadline),
                DueCheck::Expired => self.timed_out(id),
            }
        }
    }

    fn timed_out(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.cgi_due() {
            let next = self.with_cgi(id, |cgi, conn, io| cgi.timed_out(conn, io));
            return self.act(id, next);
        }
        if let Some(request) = conn.take_waiting() {
            let to = request.error_to(false);
            let status = Status::SERVICE_UNAVAILABLE;
            let date = self.clock.http_date();
            let reply = respond::error(conn.output(), &to, status, "Retry-After: 5\r\n", date);
            self.finish_reply(id, reply, request.log.as_ref());
            return self.flush(id);
        }
        self.close(id);
    }
}

/// Bytes of request body to read and drop before the next request.
fn body_length(framing: Framing) -> u64 {
    match framing {
        Framing::Length(n) => n,
        Framing::None | Framing::Chunked => 0,
    }
}
