//! The connection table: every open connection in a slot, the free
//! slots, and the generation that tells a connection from an earlier one
//! in the same slot. Anything that refers to a connection from outside
//! it holds a [`ConnId`] (`conn_id.rs`), and looking one up finds nothing
//! once that connection is gone, even if its slot was reused.
//!
//! The table also keeps the connections' deadlines, in one heap.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

pub(crate) use crate::conn_id::ConnId;
use crate::connection::{Connection, DueCheck};
use crate::event::{Interest, Poller};
use crate::token::EventToken;
use crate::transport::Transport;
use protocol::Deadlines;

/// The open connections.
#[derive(Debug, Default)]
pub(crate) struct ConnTable {
    slots: Vec<Option<Connection>>,
    free: Vec<usize>,
    next_generation: u32,
    /// Connections with sockets (HTTP/2 streams are not counted).
    open: usize,
    /// HTTP/2 streams being served.
    streams: usize,
    timers: Deadlines<ConnId>,
}

impl ConnTable {
    /// True when a new client can be taken in: fewer than `max`
    /// connections and HTTP/2 streams are open, and the poller can watch
    /// its descriptor.
    pub(crate) fn has_room(&self, stream: &TcpStream, max: usize, poller: &dyn Poller) -> bool {
        let fd = stream.as_raw_fd();
        self.open + self.streams < max && poller.fd_limit().is_none_or(|limit| fd < limit)
    }

    /// Takes in a client the table has room for (see
    /// [`has_room`](Self::has_room)), accepted at `now`, watched for
    /// reading, its first request head due by `deadline`. Err when the
    /// poller refuses it (it is closed).
    pub(crate) fn admit(
        &mut self,
        transport: Transport,
        peer: SocketAddr,
        poller: &mut dyn Poller,
        (now, deadline): (Instant, Instant),
    ) -> Result<ConnId, ()> {
        let fd = transport.fd();
        let id = self.reserve();
        let token = EventToken::Client(id.slot()).to_token();
        if poller.register(fd, token, Interest::READABLE).is_err() {
            self.release(id);
            return Err(());
        }
        self.insert(Connection::new(transport, peer, id, now, deadline));
        self.set_deadline(id, deadline);
        Ok(id)
    }

    /// Takes in an HTTP/2 stream as a connection of its own: it has no
    /// socket for the poller, and does not count against
    /// `--max-connections` (its HTTP/2 connection does, and the session
    /// bounds its streams).
    pub(crate) fn admit_stream(
        &mut self,
        transport: Transport,
        peer: SocketAddr,
        (now, deadline): (Instant, Instant),
    ) -> ConnId {
        let id = self.reserve();
        self.insert(Connection::new(transport, peer, id, now, deadline));
        self.set_deadline(id, deadline);
        id
    }

    /// The id the next connection will get (its slot is reserved until
    /// [`insert`](Self::insert) or [`release`](Self::release)).
    pub(crate) fn reserve(&mut self) -> ConnId {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.next_generation = self.next_generation.wrapping_add(1);
        ConnId::new(slot, self.next_generation)
    }

    /// Gives back a reserved id that was not used.
    fn release(&mut self, id: ConnId) {
        if self.slots.get(id.slot()).is_some_and(Option::is_none) {
            self.free.push(id.slot());
        }
    }

    /// Puts a connection in its reserved slot.
    fn insert(&mut self, conn: Connection) {
        let slot = conn.id().slot();
        if let Some(place) = self.slots.get_mut(slot) {
            if place.is_none() {
                match conn.is_stream() {
                    true => self.streams += 1,
                    false => self.open += 1,
                }
            }
            *place = Some(conn);
        }
    }

    /// The connection `id`, if it is still open.
    pub(crate) fn get(&self, id: ConnId) -> Option<&Connection> {
        self.slots
            .get(id.slot())?
            .as_ref()
            .filter(|conn| conn.id() == id)
    }

    /// The connection `id`, if it is still open.
    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        self.slots
            .get_mut(id.slot())?
            .as_mut()
            .filter(|conn| conn.id() == id)
    }

    /// The id of the connection now in `slot` (for readiness reports,
    /// whose tokens carry only the slot).
    pub(crate) fn in_slot(&self, slot: usize) -> Option<ConnId> {
        Some(self.slots.get(slot)?.as_ref()?.id())
    }

    /// The connection now in `slot`.
    pub(crate) fn in_slot_mut(&mut self, slot: usize) -> Option<&mut Connection> {
        self.slots.get_mut(slot)?.as_mut()
    }

    /// Takes connection `id` out of the table; its slot becomes free.
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<Connection> {
        self.get(id)?;
        let conn = self.slots.get_mut(id.slot())?.take()?;
        self.free.push(id.slot());
        match conn.is_stream() {
            true => self.streams -= 1,
            false => self.open -= 1,
        }
        Some(conn)
    }

    /// How many connections are open.
    pub(crate) fn open(&self) -> usize {
        self.open
    }

    /// How many HTTP/2 streams are being served.
    pub(crate) fn streams(&self) -> usize {
        self.streams
    }

    /// Sets connection `id`'s deadline.
    pub(crate) fn set_deadline(&mut self, id: ConnId, at: Instant) {
        if self.get_mut(id).is_some_and(|conn| conn.set_deadline(at)) {
            self.timers.push(at, id);
        }
    }

    /// Time until the earliest deadline (zero if overdue).
    pub(crate) fn next_timeout(&self, now: Instant) -> Option<Duration> {
        self.timers.next_timeout(now)
    }

    /// The next connection whose deadline has passed at `now`, if any.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<ConnId> {
        while let Some((at, id)) = self.timers.pop_due(now) {
            let Some(conn) = self.get_mut(id) else {
                continue;
            };
            match conn.check_due(at, now) {
                DueCheck::Stale => {}
                DueCheck::Moved(deadline) => self.set_deadline(id, deadline),
                DueCheck::Expired => return Some(id),
            }
        }
        None
    }

    /// The ids of the open connections for which `pick` holds.
    pub(crate) fn ids_where(&self, pick: impl Fn(&Connection) -> bool) -> Vec<ConnId> {
        self.slots
            .iter()
            .flatten()
            .filter(|conn| pick(conn))
            .map(Connection::id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn connection(id: ConnId) -> Connection {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let _client = TcpStream::connect(addr).expect("connect");
        let (stream, peer) = listener.accept().expect("accept");
        let transport = crate::transport::Transport::Plain(stream);
        Connection::new(transport, peer, id, Instant::now(), Instant::now())
    }

    #[test]
    fn an_old_id_finds_nothing_in_a_reused_slot() {
        let mut table = ConnTable::default();
        let first = table.reserve();
        table.insert(connection(first));
        assert_eq!(table.open(), 1);
        assert_eq!(table.get(first).map(Connection::id), Some(first));
        assert_eq!(table.in_slot(first.slot()), Some(first));
        assert!(table.remove(first).is_some());
        assert!(table.remove(first).is_none(), "removed once");
        assert_eq!(table.open(), 0);

        let second = table.reserve();
        assert_eq!(second.slot(), first.slot(), "the slot is reused");
        assert_ne!(second, first);
        table.insert(connection(second));
        assert!(table.get(first).is_none());
        assert!(table.get_mut(first).is_none());
        assert!(table.remove(first).is_none());
        assert_eq!(table.get(second).map(Connection::id), Some(second));
    }

    #[test]
    fn a_released_reservation_frees_its_slot() {
        let mut table = ConnTable::default();
        let a = table.reserve();
        table.release(a);
        let b = table.reserve();
        assert_eq!(a.slot(), b.slot());
        assert_ne!(a, b);
        assert_eq!(table.open(), 0);
    }
}
