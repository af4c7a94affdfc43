//! The event loop: accepts clients, reads their requests, dispatches each
//! (to the cache, a helper, or the CGI subsystem), and expires deadlines.
//! Nothing in here blocks: every socket is non-blocking and every wait is
//! the poller's. The subsystems (CGI, supervision) own their state and
//! return what the loop must do next; they never call back into it.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;

use crate::access_log::AccessLog;
use crate::cache::Cache;
use crate::cgi::driver::Cgi;
use crate::config::Config;
use crate::conn_table::{ConnId, ConnTable};
use crate::connection::{Connection, Incoming, InputBuffers, Timeouts};
use crate::event::{Event, Poller};
use crate::http::clock::Clock;
use crate::http::error_page::overloaded;
use crate::http::head_writer::{AddedLines, Stamp};
use crate::http::keep_alive;
use crate::http::request::{LogFields, Method, Request, MAX_DISCARDED_BODY};
use crate::listener::{Acceptor, ACCEPT_BATCH};
use crate::next::{Next, Turn};
use crate::respond::{self, Reply};
use crate::send_path::SendPath;
use crate::signals::Signals;
use crate::startup;
use crate::static_files::StaticFiles;
use crate::status::{Gauges, StatusPage};
use crate::supervise::pool_jobs::{Completion, LookupDone, ReadDone};
use crate::supervise::runner_link::RunnerEvent;
use crate::supervise::Supervision;
use crate::systemd::Notifier;
use crate::tls_context::TlsContext;
use crate::token::EventToken;
use crate::transport::Transport;

mod h2_streams;

/// The server: every connection, the cache, the subsystems.
pub(crate) struct Server {
    config: Config,
    timeouts: Timeouts,
    poller: Box<dyn Poller>,
    acceptors: Vec<Acceptor>,
    /// TLS: what new sessions are made with, when a listener speaks it.
    tls: Option<TlsContext>,
    signals: Signals,
    conns: ConnTable,
    /// Input buffers lent to connections while they have unhandled bytes.
    buffers: InputBuffers,
    statics: StaticFiles,
    send: SendPath,
    log: AccessLog,
    clock: Clock,
    cgi: Cgi,
    supervision: Supervision,
    status: StatusPage,
    /// Set once SIGTERM or SIGINT arrived: when to give up waiting.
    draining: Option<Instant>,
    /// systemd's notification socket, when it asked for one.
    notifier: Option<Notifier>,
    /// The header lines every response gets, by transport (`--hsts`).
    added_lines: AddedLines,
    /// With `--redirect-to-https`: the port plain HTTP is sent to.
    https_redirect: Option<u16>,
    /// HTTP/2 streams and connections to go on with at the end of the
    /// turn.
    h2_pending: h2_streams::Pending,
}

impl Server {
    /// Binds, starts the children and registers everything; does not
    /// serve yet.
    pub(crate) fn start(config: Config) -> Result<Server> {
        let parts = startup::prepare(&config)?;
        let https_redirect = match config.redirect_to_https {
            false => None,
            true => match parts.acceptors.iter().find(|a| a.is_tls()) {
                Some(tls) => Some(tls.local_addr().port()),
                None => bail!(
                    "--redirect-to-https: no TLS listener (none given with --listen-tls, none passed by systemd)"
                ),
            },
        };
        let added_lines = AddedLines::new(config.hsts.as_deref());
        let cache = Cache::new(config.cache_size, config.cache_files)
            .with_kept_lines(added_lines.longest());
        Ok(Server {
            statics: StaticFiles::new(cache, config.helper_timeout, config.gzip_static),
            added_lines,
            https_redirect,
            h2_pending: Default::default(),
            send: SendPath::new(config.helper_timeout, config.window_memory),
            timeouts: Timeouts::new(&config),
            status: StatusPage::new(&config),
            config,
            poller: parts.poller,
            acceptors: parts.acceptors,
            tls: parts.tls.map(TlsContext::new).transpose()?,
            signals: parts.signals,
            conns: ConnTable::default(),
            buffers: InputBuffers::default(),
            log: parts.log,
            clock: parts.clock,
            cgi: parts.cgi,
            supervision: parts.supervision,
            draining: None,
            notifier: parts.notifier,
        })
    }

    /// The addresses actually bound (with the real ports), each with
    /// whether it speaks TLS.
    pub(crate) fn local_addrs(&self) -> Vec<(SocketAddr, bool)> {
        self.acceptors
            .iter()
            .map(|a| (a.local_addr(), a.is_tls()))
            .collect()
    }

    /// Tells systemd (if it asked) that the server is serving.
    pub(crate) fn notify_ready(&self) {
        if let Some(notifier) = &self.notifier {
            notifier.notify("READY=1");
        }
    }

    /// Serves until SIGTERM or SIGINT.
    pub(crate) fn run(&mut self) -> Result<()> {
        let mut events: Vec<Event> = Vec::with_capacity(1024);
        loop {
            let (timeout, poller) = (self.next_timeout(), self.poller.as_mut());
            poller
                .wait(&mut events, timeout)
                .context("event wait failed")?;
            self.clock.tick();
            for ev in events.drain(..) {
                self.dispatch(ev);
            }
            let now = self.clock.now();
            while let Some(id) = self.conns.pop_expired(now) {
                self.timed_out(id);
            }
            self.supervision
                .maintain(self.cgi.runner(), self.poller.as_mut(), now);
            self.wake_memory_waiters();
            // A runner death seen by SIGCHLD first may leave runs lost.
            let lost = self.cgi.runner().take_lost();
            self.runner_reports(lost);
            self.run_h2_pending();
            if let Some(deadline) = self.draining {
                self.close_idle();
                if self.conns.open() == 0 || deadline <= now {
                    self.log.flush();
                    self.supervision.shutdown(self.cgi.runner());
                    return Ok(());
                }
            }
            for acceptor in &mut self.acceptors {
                acceptor.resume_if_due(self.poller.as_mut(), now);
            }
            self.log.flush_if_due(now);
        }
    }

    fn next_timeout(&self) -> Option<Duration> {
        let now = self.clock.now();
        let until = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(now));
        [
            self.conns.next_timeout(now),
            until(self.supervision.next_due()),
            until(
                self.acceptors
                    .iter()
                    .filter_map(Acceptor::paused_until)
                    .min(),
            ),
            until(self.log.next_flush()),
            until(self.draining),
            (!self.h2_pending.is_empty()).then_some(Duration::ZERO),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Hands what the runner reported to the exchanges it is about.
    fn runner_reports(&mut self, events: Vec<RunnerEvent>) {
        for event in events {
            let Some(id) = self.cgi.conn_of(event.id()) else {
                continue;
            };
            let next = self.with_cgi(id, |cgi, conn, turn| cgi.on_runner_event(conn, event, turn));
            self.act(id, next);
        }
    }

    fn dispatch(&mut self, ev: Event) {
        let now = self.clock.now();
        match EventToken::from_token(ev.token) {
            Some(EventToken::Listener(n)) => self.accept_clients(n),
            Some(EventToken::Signals) => self.on_signals(),
            Some(EventToken::Runner) => {
                let events = self.cgi.runner_event(ev, self.poller.as_mut(), now);
                self.supervision.runner_touched(now);
                self.runner_reports(events);
            }
            Some(EventToken::Helper(n)) => {
                let poller = self.poller.as_mut();
                for done in self.supervision.helper_event(n, ev, poller, now) {
                    self.complete(done);
                }
            }
            Some(EventToken::Client(slot)) => self.client_event(slot, ev),
            // A script's pipe: move what can move.
            Some(EventToken::ScriptStdin(slot) | EventToken::ScriptStdout(slot)) => {
                if let Some(id) = self.conns.in_slot(slot) {
                    let next = self.with_cgi(id, |cgi, conn, turn| cgi.pump(conn, turn));
                    self.act(id, next);
                }
            }
            None => {}
        }
    }

    fn on_signals(&mut self) {
        let arrived = self.signals.take();
        if arrived.terminate && self.draining.is_none() {
            // Responses in flight go on until done or `--shutdown-timeout`.
            for acceptor in &mut self.acceptors {
                acceptor.close(self.poller.as_mut());
            }
            if let Some(notifier) = &self.notifier {
                notifier.notify("STOPPING=1");
            }
            self.draining = Some(self.clock.now() + self.config.shutdown_timeout);
            self.h2_go_away();
            self.close_idle();
        }
        if arrived.hangup {
            // The error log file was reopened by the signal handler
            // (`protocol::log_file`); the children reopen theirs on the
            // SIGHUP passed on to them.
            self.log.reopen(&self.config.access_log);
            if self.config.error_log.is_some() {
                self.supervision
                    .signal_children(self.cgi.runner(), Signal::SIGHUP);
            }
            info_log!("SIGHUP: reopened the logs");
            if let Some(tls) = &mut self.tls {
                tls.reload();
            }
        }
        if arrived.child {
            self.supervision.on_sigchld(self.clock.now());
        }
    }

    fn accept_clients(&mut self, listener: usize) {
        let Some(acceptor) = self.acceptors.get_mut(listener) else {
            return;
        };
        for _ in 0..ACCEPT_BATCH {
            let now = self.clock.now();
            let (stream, peer) = match acceptor.accept(self.poller.as_mut(), now) {
                Ok(Some(accepted)) => accepted,
                Ok(None) => return,
                Err(_) => continue,
            };
            let (max, poller) = (self.config.max_connections, self.poller.as_mut());
            if !self.conns.has_room(&stream, max, poller) {
                // Over TLS there is no way to say why before a handshake.
                if !acceptor.is_tls() {
                    let stamp = Stamp::plain(self.clock.http_date());
                    let _ = (&stream).write(&overloaded(stamp));
                }
                continue;
            }
            let transport = match (&self.tls, acceptor.is_tls()) {
                (Some(tls), true) => match tls.session(stream) {
                    Ok(session) => Transport::Tls(Box::new(session)),
                    Err(e) => {
                        error_log!("cannot start a TLS session: {e}");
                        continue;
                    }
                },
                _ => Transport::Plain(stream),
            };
            let deadline = now + self.config.header_timeout;
            if let Ok(id) = self.conns.admit(transport, peer, poller, (now, deadline)) {
                self.status.accepted();
                self.read_at_once(id);
                return;
            }
        }
    }

    /// Reads connection `id` without waiting for the poller. A client's
    /// first request usually arrives with its connection, so this answers
    /// it a turn earlier and saves a wait of the poller per new
    /// connection; an HTTP/2 stream has no descriptor for the poller, so
    /// its input is read this way whenever its session has some. Nothing
    /// there yet is no harm (one read, EAGAIN).
    fn read_at_once(&mut self, id: ConnId) {
        let token = EventToken::Client(id.slot()).to_token();
        self.client_event(
            id.slot(),
            Event {
                token,
                readable: true,
                writable: false,
            },
        );
    }

    /// While draining: closes connections with nothing in flight.
    fn close_idle(&mut self) {
        for id in self.conns.ids_where(Connection::is_idle) {
            self.close(id);
        }
    }

    fn close(&mut self, id: ConnId) {
        let Some(mut conn) = self.conns.remove(id) else {
            return;
        };
        if let Some(session) = conn.h2().cloned() {
            self.end_streams(&session);
        }
        self.stream_closed(&mut conn);
        self.cgi.abandon(&mut conn, self.poller.as_mut());
        self.supervision.cancel_reads(id);
        self.send.forget(id);
        if !conn.is_stream() {
            let _ = self.poller.forget_closing(conn.fd());
        }
    }

    /// Goes on with the connections whose front window waited for room in
    /// the window budget, oldest first, while there is room.
    fn wake_memory_waiters(&mut self) {
        while let Some(id) = self.send.memory_turn() {
            self.advance(id);
            // It took its room, and may wait again (at the back) for a
            // later window; if it waits still at the front, with room, it
            // would never take it: drop it rather than spin.
            let waits = self.conns.get(id).is_some_and(Connection::waits_for_memory);
            if !waits || self.send.memory_turn() == Some(id) {
                self.send.forget(id);
            }
        }
    }

    fn client_event(&mut self, slot: usize, ev: Event) {
        let now = self.clock.now();
        let Some(conn) = self.conns.in_slot_mut(slot) else {
            return;
        };
        let id = conn.id();
        if ev.readable && !conn.on_readable(now, &mut self.buffers) {
            return self.close(id);
        }
        if conn.runs_cgi() {
            let next = self.with_cgi(id, |cgi, conn, turn| cgi.pump(conn, turn));
            return self.act(id, next);
        }
        self.advance(id);
    }

    /// Runs one function of the CGI subsystem on connection `id`.
    fn with_cgi(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut Cgi, &mut Connection, &mut Turn) -> Next,
    ) -> Next {
        let Some(conn) = self.conns.get_mut(id) else {
            return Next::Unchanged;
        };
        let stamp = stamp_for(&self.added_lines, &self.clock, conn);
        let mut turn = Turn::new(self.poller.as_mut(), &self.clock, stamp);
        f(&mut self.cgi, conn, &mut turn)
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
            Next::Redirect(request) => return Some(request),
            Next::Await(deadline) => self.conns.set_deadline(id, deadline),
            Next::Respond(reply, log) => self.finish_reply(id, reply, log.as_ref()),
            Next::Close => self.close(id),
            Next::Unchanged | Next::Continue => {}
        }
        None
    }

    /// Handles whatever the connection can do now: answer buffered
    /// requests in order, write, and pick what to wait for next.
    fn advance(&mut self, id: ConnId) {
        if self.speaks_h2(id) {
            return self.h2_turn(id);
        }
        // Answering stops while too much output is queued; once a flush
        // empties the queue, the requests still buffered are taken up.
        while self.answer_buffered(id) {
            self.flush(id);
            if !self
                .conns
                .get(id)
                .is_some_and(|c| c.flushed() && c.is_reading())
            {
                return;
            }
        }
        if self.speaks_h2(id) {
            return self.h2_turn(id);
        }
        self.flush(id);
    }

    /// Answers the requests buffered on a connection, in order. Returns
    /// true when it stopped only because too much output is queued.
    fn answer_buffered(&mut self, id: ConnId) -> bool {
        loop {
            let Some(conn) = self.conns.get_mut(id) else {
                return false;
            };
            let (now, log) = (self.clock.now(), self.log.enabled());
            let stamp = stamp_for(&self.added_lines, &self.clock, conn);
            let limits = &self.config.keepalive_limits;
            match conn.next_request(now, stamp, log, limits) {
                Incoming::Nothing => return false,
                Incoming::OutputFull => return true,
                Incoming::Refused(reply, log) => self.finish_reply(id, reply, log.as_ref()),
                Incoming::Request(request) => self.serve(id, request),
                Incoming::Http2 => {
                    self.start_h2(id);
                    return false;
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

    /// Starts a request's script, answers it with the status page, or
    /// hands it to the static files.
    fn serve_one(&mut self, id: ConnId, request: Request) -> Next {
        if let Method::Options(allow) = request.method {
            let Some(conn) = self.conns.get_mut(id) else {
                return Next::Unchanged;
            };
            let stamp = stamp_for(&self.added_lines, &self.clock, conn);
            let reply = respond::options(conn.output(), &request, allow, stamp);
            return Next::Respond(reply, request.log);
        }
        if let Some(port) = self.https_redirect {
            if let Some(conn) = self.conns.get_mut(id).filter(|c| !c.is_tls()) {
                let date = self.clock.http_date();
                return redirect_to_https(conn, request, port, Stamp::plain(date));
            }
        }
        if request.cgi.is_some() {
            return self.with_cgi(id, |cgi, conn, turn| cgi.start(conn, request, turn));
        }
        let (cgi_bodies, cgi_spooled_bytes) = self.cgi.collecting();
        let gauges = self.status.asked_by(&request).then(|| Gauges {
            open_connections: self.conns.open(),
            h2_streams: self.conns.streams(),
            cache: self.statics.stats(),
            tls: self.tls.as_ref().map(TlsContext::stats).unwrap_or_default(),
            helper_lookups_in_flight: self.supervision.pool().in_flight(),
            send: self.send.stats(),
            pool: self.supervision.pool().stats(self.clock.now()),
            helper_restarts: self.supervision.pool().restarts(),
            runner_restarts: self.cgi.runner().restarts(),
            cgi_running: self.cgi.active(),
            cgi_bodies,
            cgi_spooled_bytes,
        });
        let Some(conn) = self.conns.get_mut(id) else {
            return Next::Unchanged;
        };
        let stamp = stamp_for(&self.added_lines, &self.clock, conn);
        let mut turn = Turn::new(self.poller.as_mut(), &self.clock, stamp);
        match gauges {
            Some(gauges) => self.status.serve(conn, request, gauges, &turn),
            None => self
                .statics
                .serve(conn, request, &mut self.supervision, &mut turn),
        }
    }

    /// After a response is queued: the last keep-alive stage, counters, log.
    fn finish_reply(&mut self, id: ConnId, reply: Reply, log: Option<&LogFields>) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let draining = self.draining.is_some();
        conn.replied(keep_alive::after_reply(reply.keep_alive, draining));
        self.status.responded(reply.status.code);
        if let Some(fields) = log {
            self.log.record(conn.peer(), fields, &reply, &self.clock);
        }
    }

    /// Writes what is queued and sets what the connection waits for.
    fn flush(&mut self, id: ConnId) {
        let now = self.clock.now();
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let poller = self.poller.as_mut();
        let mut planner = self.send.planner(id, &mut self.supervision, poller, now);
        if conn.write_output(&mut planner).is_err() {
            return self.close(id);
        }
        let (timeouts, poller) = (&self.timeouts, self.poller.as_mut());
        let Some(deadline) = conn.rearm(now, timeouts, poller, &mut self.buffers) else {
            return self.close(id);
        };
        if conn.runs_cgi() {
            self.cgi.rearm(conn, self.poller.as_mut());
        }
        self.conns.set_deadline(id, deadline);
        self.after_flush(id);
    }

    /// Takes a helper's answer to where it belongs.
    fn complete(&mut self, completion: Completion) {
        match completion {
            Completion::Lookup(done) => self.lookup_done(done),
            Completion::Read(done) => self.read_done(done),
        }
    }

    /// A window of a file being sent arrived: it goes out, and the
    /// connection goes on.
    fn read_done(&mut self, done: ReadDone) {
        let id = done.waiter;
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if !self.send.deliver(conn.output(), done) {
            return self.close(id);
        }
        self.advance(id);
    }

    /// Fills the cache from a helper's answer and wakes its waiters.
    fn lookup_done(&mut self, completion: LookupDone) {
        let (poller, now) = (self.poller.as_mut(), self.clock.now());
        let supervision = &mut self.supervision;
        let Some((key, entry, waiters)) =
            self.statics.complete(completion, supervision, poller, now)
        else {
            return;
        };
        for id in waiters {
            let Some(conn) = self.conns.get_mut(id) else {
                continue;
            };
            let stamp = stamp_for(&self.added_lines, &self.clock, conn);
            let mut turn = Turn::new(self.poller.as_mut(), &self.clock, stamp);
            let supervision = &mut self.supervision;
            let next = self
                .statics
                .answer(conn, &key, &entry, supervision, &mut turn);
            self.act(id, next);
        }
    }

    /// A connection's deadline passed: its script's, its helper's, or
    /// the client's.
    fn timed_out(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if let Some(session) = conn.h2().cloned() {
            // An HTTP/2 connection idle too long (or whose frames waited
            // too long to be read) says GOAWAY before it closes.
            if session.borrow().is_quiet() && conn.is_reading() {
                session.borrow_mut().go_away();
                conn.close_after_reply();
                return self.flush(id);
            }
            return self.close(id);
        }
        let next = if conn.cgi_due() {
            self.with_cgi(id, |cgi, conn, turn| cgi.timed_out(conn, turn))
        } else if conn.waits_for_helper() {
            let stamp = stamp_for(&self.added_lines, &self.clock, conn);
            self.statics.timed_out(conn, stamp)
        } else {
            Next::Close
        };
        self.act(id, next);
    }
}

/// `--redirect-to-https`: answers a request that came over plain HTTP
/// with its address over HTTPS on `port`, for the host it named (else
/// the address the client reached). A script's body is dropped, as a
/// file request's already is; a chunked one closes the connection.
fn redirect_to_https(conn: &mut Connection, request: Request, port: u16, stamp: Stamp) -> Next {
    let host = match &request.host {
        Some(host) => host.to_string(),
        None => match conn.local_addr() {
            Ok(addr) => addr.ip().to_string(),
            Err(_) => return Next::Close,
        },
    };
    let mut keep_alive = request.keep_alive;
    // A file request's body is already being dropped; a script's is
    // dropped here when it can be (not when the client waits for a 100
    // Continue it will not get), else the connection closes after.
    if let Some(cgi) = &request.cgi {
        let skipped =
            keep_alive::body_can_be_skipped(request.body, MAX_DISCARDED_BODY, cgi.expect_continue);
        keep_alive &= skipped;
        if keep_alive {
            conn.discard_body(request.body.known_length());
        }
    }
    let reply = respond::to_https(conn.output(), &request, &host, port, keep_alive, stamp);
    Next::Respond(reply, request.log)
}

/// What the heads of `conn`'s responses start with now: this second's
/// `Date` and the lines its transport adds.
fn stamp_for<'a>(added: &'a AddedLines, clock: &'a Clock, conn: &Connection) -> Stamp<'a> {
    added.stamp(clock.http_date(), conn.is_tls())
}
