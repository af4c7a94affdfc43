//! A connection's memory between requests, over a real loopback socket:
//! what it holds once a response is out, and that borrowing its input
//! buffer changes nothing a client sees (heads split over reads,
//! pipelined requests).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use super::*;
use crate::event::poll::PollPoller;
use crate::send::SendStraight;

const T: Timeouts = state::TEST_TIMEOUTS;

const LIMITS: Limits = Limits {
    requests: 1000,
    time: None,
};

/// A connection on the server's end of a loopback socket (blocking, so
/// that a read waits for what the client wrote), registered with a
/// poller, and the client's end.
struct Pair {
    conn: Connection,
    client: TcpStream,
    poller: PollPoller,
    buffers: InputBuffers,
}

impl Pair {
    fn new() -> Pair {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let (stream, peer) = listener.accept().expect("accept");
        let mut table = crate::conn_table::ConnTable::default();
        let id = table.reserve();
        let now = Instant::now();
        let conn = Connection::new(
            crate::transport::Transport::Plain(stream),
            peer,
            id,
            now,
            now + T.header,
        );
        let mut poller = PollPoller::new();
        let token = EventToken::Client(id.slot()).to_token();
        poller
            .register(conn.fd(), token, Interest::READABLE)
            .expect("register");
        Pair {
            conn,
            client,
            poller,
            buffers: InputBuffers::default(),
        }
    }

    /// The client sends `bytes`; the connection reads them (in one read:
    /// nothing else is waiting).
    fn send(&mut self, bytes: &[u8]) {
        self.client.write_all(bytes).expect("client write");
        assert!(self.conn.on_readable(Instant::now(), &mut self.buffers));
        assert!(!self.conn.state.peer_closed);
    }

    /// The next request's path, if a whole head is buffered.
    fn next_path(&mut self) -> Option<String> {
        match self
            .conn
            .next_request(Instant::now(), Stamp::plain("date"), false, &LIMITS)
        {
            Incoming::Request(request) => Some(request.target.key),
            Incoming::Nothing => None,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Queues a small response, writes it, and ends the turn as the loop
    /// does.
    fn respond(&mut self) {
        self.conn
            .output()
            .push_owned(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec());
        self.conn.replied(true);
        self.end_turn();
    }

    fn end_turn(&mut self) {
        self.conn.write_output(&mut SendStraight).expect("write");
        let deadline = self
            .conn
            .rearm(Instant::now(), &T, &mut self.poller, &mut self.buffers);
        assert!(deadline.is_some(), "the connection is kept");
    }

    fn input_capacity(&self) -> usize {
        self.conn.state.input.capacity()
    }
}

#[test]
fn a_connection_fits_in_a_small_slot() {
    // Every open connection costs a slot of the table whatever it does;
    // an idle one costs nothing else in the server's memory. (The bound
    // was 256 until the transport, plain or TLS, took a word more; 272
    // until HTTP/2's session pointer and idle clock.)
    let size = std::mem::size_of::<Option<Connection>>();
    assert!(size <= 288, "{size} bytes");
}

#[test]
fn an_idle_connection_holds_no_buffers_after_a_response() {
    let mut pair = Pair::new();
    assert_eq!(pair.input_capacity(), 0, "nothing before the first read");
    pair.send(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(pair.input_capacity(), READ_CHUNK, "a buffer is lent");
    assert_eq!(pair.next_path().as_deref(), Some("a"));
    assert_eq!(pair.next_path(), None);
    pair.respond();
    assert_eq!(pair.input_capacity(), 0, "the input buffer is given back");
    assert_eq!(pair.conn.state.output.capacity(), 0, "the queue is freed");
    assert_eq!(pair.buffers.spares(), 1);
    // The next request borrows the same spare buffer.
    pair.send(b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(pair.buffers.spares(), 0);
    assert_eq!(pair.next_path().as_deref(), Some("b"));
    pair.respond();
    assert_eq!(pair.input_capacity(), 0);
    assert_eq!(pair.buffers.spares(), 1);
}

#[test]
fn a_head_sent_a_byte_at_a_time_keeps_its_buffer_until_complete() {
    let mut pair = Pair::new();
    let head = b"GET /slow HTTP/1.1\r\nHost: h\r\nX-Pad: 0123456789\r\n\r\n";
    for (i, byte) in head.iter().enumerate() {
        assert_eq!(pair.next_path(), None, "only {i} bytes");
        pair.send(std::slice::from_ref(byte));
        if i + 1 < head.len() {
            assert_eq!(pair.next_path(), None, "{} of {} bytes", i + 1, head.len());
            pair.end_turn();
            assert_eq!(
                pair.conn.state.input.len(),
                i + 1,
                "the bytes so far are kept"
            );
            assert!(pair.input_capacity() > 0);
        }
    }
    assert_eq!(pair.next_path().as_deref(), Some("slow"));
    pair.respond();
    assert_eq!(pair.input_capacity(), 0);
}

#[test]
fn pipelined_requests_keep_the_buffer_until_the_last_is_taken() {
    let mut pair = Pair::new();
    pair.send(
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /2 HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /3 HTTP/1.1\r\nHost: h\r\n\r\nGET /4 HT",
    );
    for path in ["1", "2", "3"] {
        assert_eq!(pair.next_path().as_deref(), Some(path));
        pair.respond();
        assert!(pair.input_capacity() > 0, "requests are still buffered");
    }
    assert_eq!(pair.next_path(), None, "the fourth head is incomplete");
    pair.send(b"TP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(pair.next_path().as_deref(), Some("4"));
    pair.respond();
    assert_eq!(pair.input_capacity(), 0);
}
