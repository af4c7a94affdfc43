//! HTTP/2 in the loop: a connection that opened with the HTTP/2 preface
//! gets a session (`h2/session.rs`); each request stream it opens
//! becomes a connection of its own in the table, with the stream as its
//! transport (`transport/h2_stream.rs`), and is served as any connection
//! is. What this adds to the loop is the traffic between the two: the
//! session's events (a stream opened, input for it, a reset) to the
//! streams' connections, and, at the end of each turn, the HTTP/2
//! connections whose streams wrote frames flushed once each and the
//! streams that waited for a window or for room woken.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use super::Server;
use crate::conn_table::ConnId;
use crate::h2::{Event, Session};
use crate::transport::{SharedSession, StreamEnd, Transport};

/// Rounds of flushing and waking per turn of the loop; what is left
/// goes on next turn, so that one connection never holds the loop.
const ROUNDS: usize = 8;

/// The streams and connections to go on with at the end of the turn.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// HTTP/2 connections whose streams queued frames.
    connections: Vec<ConnId>,
    /// Streams to read and go on with: woken for a window, with input
    /// left, or with output left after their write budget.
    streams: VecDeque<ConnId>,
}

impl Pending {
    pub(super) fn is_empty(&self) -> bool {
        self.connections.is_empty() && self.streams.is_empty()
    }
}

impl Server {
    /// True when connection `id` speaks HTTP/2.
    pub(super) fn speaks_h2(&self, id: ConnId) -> bool {
        self.conns.get(id).is_some_and(|c| c.h2().is_some())
    }

    /// The client opened with the HTTP/2 preface: from here the
    /// connection is a session of streams.
    pub(super) fn start_h2(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let session: SharedSession = Rc::new(RefCell::new(Session::new()));
        if conn.start_h2(session).is_err() {
            return self.close(id);
        }
        self.status.h2_started();
    }

    /// An HTTP/2 connection's turn: its frames read, its streams opened,
    /// fed or reset, its frames written.
    pub(super) fn h2_turn(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.feed_h2();
        let Some(session) = conn.h2().cloned() else {
            return;
        };
        let events = session.borrow_mut().take_events();
        for event in events {
            match event {
                Event::Opened(stream) => {
                    if !self.open_stream(id, &session, stream) {
                        return self.close(id);
                    }
                }
                Event::Input(stream_id) => self.read_at_once(stream_id),
                Event::Reset(stream_id) => self.close(stream_id),
            }
        }
        if session.borrow().failed() {
            self.end_streams(&session);
            if let Some(conn) = self.conns.get_mut(id) {
                conn.close_after_reply();
            }
        } else if let Some(conn) = self.conns.get(id) {
            // Past --keepalive-requests streams or --keepalive-time: GOAWAY,
            // and the connection ends once its streams are answered.
            let (opened, now) = (session.borrow().streams_opened(), self.clock.now());
            if !conn.h2_within_limits(opened, now, &self.config.keepalive_limits) {
                session.borrow_mut().go_away();
            }
        }
        self.flush(id);
    }

    /// Gives a new stream of connection `id` a connection of its own and
    /// reads its request, or refuses it when the server holds as many
    /// connections and streams as `--max-connections` (as nginx counts
    /// them). False when the connection is gone.
    fn open_stream(&mut self, id: ConnId, session: &SharedSession, stream: u32) -> bool {
        if self.conns.open() + self.conns.streams() >= self.config.max_connections {
            session.borrow_mut().refuse(stream);
            return true;
        }
        let now = self.clock.now();
        let Some(conn) = self.conns.get_mut(id) else {
            return false;
        };
        let Some(local) = conn.h2_local_addr() else {
            return false;
        };
        conn.h2_stream_opened(now);
        let (peer, tls) = (conn.peer(), conn.is_tls());
        let end = StreamEnd::new(session.clone(), stream, id, local, tls);
        let deadline = now + self.config.header_timeout;
        let transport = Transport::Stream(Box::new(end));
        let stream_id = self.conns.admit_stream(transport, peer, (now, deadline));
        session.borrow_mut().adopt(stream, stream_id);
        self.read_at_once(stream_id);
        true
    }

    /// Closes every stream of a session (its connection fails or goes).
    pub(super) fn end_streams(&mut self, session: &SharedSession) {
        let owners = session.borrow().owners();
        for owner in owners {
            self.close(owner);
        }
    }

    /// After connection `id` was flushed: an HTTP/2 connection wakes the
    /// streams that waited for room; a stream has its connection flushed
    /// at the end of the turn, and comes back then if it has more to
    /// read or to write.
    pub(super) fn after_flush(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if let Some(session) = conn.h2().cloned() {
            let woken = session.borrow_mut().take_writable();
            self.h2_pending.streams.extend(woken);
            let done = session.borrow().going_away() && session.borrow().is_quiet();
            if done && conn.is_reading() {
                // GOAWAY said, every stream answered: the connection ends.
                conn.close_after_reply();
                self.h2_pending.connections.push(id);
            } else if conn.h2_input_can_go() && !self.h2_pending.connections.contains(&id) {
                self.h2_pending.connections.push(id);
            }
            return;
        }
        let Some(parent) = conn.h2_parent() else {
            return;
        };
        if !self.h2_pending.connections.contains(&parent) {
            self.h2_pending.connections.push(parent);
        }
        if conn.stream_has_input() || conn.writes_on() {
            self.h2_pending.streams.push_back(id);
        }
    }

    /// A stream's connection closes: its stream is let go, and its
    /// HTTP/2 connection flushed (a reset may be queued).
    pub(super) fn stream_closed(&mut self, conn: &mut crate::connection::Connection) {
        let Some(parent) = conn.h2_parent() else {
            return;
        };
        conn.release_stream();
        if !self.h2_pending.connections.contains(&parent) {
            self.h2_pending.connections.push(parent);
        }
    }

    /// The end of a turn: streams woken go on, and the HTTP/2
    /// connections they wrote to are flushed, a few rounds at most.
    pub(super) fn run_h2_pending(&mut self) {
        for _ in 0..ROUNDS {
            if self.h2_pending.is_empty() {
                return;
            }
            let streams = std::mem::take(&mut self.h2_pending.streams);
            for id in streams {
                if self.conns.get(id).is_some() {
                    self.read_at_once(id);
                }
            }
            let connections = std::mem::take(&mut self.h2_pending.connections);
            for id in connections {
                self.h2_turn(id);
            }
        }
    }

    /// On SIGTERM: every HTTP/2 connection is told GOAWAY; its streams in
    /// flight are finished.
    pub(super) fn h2_go_away(&mut self) {
        let ids = self.conns.ids_where(|c| c.h2().is_some());
        for id in ids {
            if let Some(session) = self.conns.get(id).and_then(|c| c.h2().cloned()) {
                session.borrow_mut().go_away();
            }
            self.flush(id);
        }
    }
}
