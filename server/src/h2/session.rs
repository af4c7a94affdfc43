//! One HTTP/2 connection's state, sans I/O (RFC 9113, RFC 7541): the
//! preface and SETTINGS exchange, HPACK in both directions, every
//! stream's state and both flow-control windows, the frames to send, and
//! the limits that keep a hostile client's cost bounded (concurrent
//! streams, header block and list sizes, a budget for frames that make
//! no progress: rapid reset, PING, SETTINGS and empty-frame floods).
//!
//! The loop feeds it what the connection read ([`Session::receive`]) and
//! writes out what it queued ([`Session::unsent`]). Each request stream
//! is served elsewhere as a connection carrying one HTTP/1.1 request: it
//! reads its head and body here ([`Session::read`]) and writes its
//! response head and body here ([`Session::write`], turned into HEADERS
//! and DATA as the windows allow). `O` is what the loop knows that
//! stream's connection by.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;

use super::frame::{self, *};
use super::hpack::{self, Decoder};
use super::request_head::{self, RequestHead};
use super::response_head;

/// The most concurrent streams a client may open (nginx's default).
pub(crate) const MAX_STREAMS: u32 = 128;
/// The HPACK dynamic table the decoder keeps at most.
const TABLE_SIZE: usize = 4096;
/// The largest header block (HEADERS and its CONTINUATIONs) taken.
const MAX_BLOCK: usize = 64 * 1024;
/// The most CONTINUATION frames one header block may take.
const MAX_CONTINUATIONS: usize = 128;
/// The largest decoded header list (name, value and 32 each, RFC 7541
/// 4.1) copied; a block that decodes to more resets its stream.
pub(crate) const MAX_LIST: usize = 32 * 1024;
/// The connection's receive window: what all streams' unread request
/// bodies may hold in all.
const CONNECTION_WINDOW: i64 = 1 << 20;
/// A stream's receive window (the protocol's default, so SETTINGS need
/// not change it).
const STREAM_WINDOW: i64 = 65_535;
/// Stop taking response bytes from streams while this much is unsent.
pub(crate) const OUT_HIGH_WATER: usize = 128 * 1024;
/// Frames that make no progress a connection may send before it is
/// told to calm down; every answered stream earns some back.
const BUDGET: i64 = 1000;
/// What a peer's reset of a stream in flight costs from the budget.
const RESET_COST: i64 = 10;
/// What a completed response earns back.
const RESPONSE_REFUND: i64 = 5;
/// The most a reused scratch buffer keeps between header blocks.
const SCRATCH_KEPT: usize = 4096;
/// The most a header block may decode to at all: past [`MAX_LIST`] its
/// stream is reset; past this, decoding stops and the connection ends
/// (each byte of a block can name a 4 KiB table entry, so decoding is
/// bounded, not only what is kept).
const MAX_DECODED: usize = 16 * MAX_LIST;
/// Recently closed streams remembered, to tell a frame on one from a
/// frame on a stream never opened.
const RECENTLY_CLOSED: usize = 64;

/// What the loop must act on after input was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event<O> {
    /// A request head arrived on this new stream: make its connection
    /// ([`Session::adopt`]) and let it read.
    Opened(u32),
    /// The stream's connection has input (body bytes, or its end).
    Input(O),
    /// The stream is gone (the client reset it, or it broke a rule): close
    /// its connection without answering.
    Reset(O),
}

/// What a stream's read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    Bytes(usize),
    /// Nothing yet.
    Nothing,
    /// The request is complete.
    End,
}

#[derive(Debug)]
struct Stream<O> {
    owner: Option<O>,
    /// The request head, then its body, not yet read by the stream's
    /// connection (chunk-framed when the body has no declared length).
    inbound: Vec<u8>,
    /// Body bytes received but not yet credited back to the client.
    uncredited: u64,
    recv_window: i64,
    recv_closed: bool,
    received: u64,
    content_length: Option<u64>,
    chunked: bool,
    send_window: i64,
    response: Response,
    /// A write found no room: wake it when a window opens.
    blocked: bool,
    /// Answered and its connection gone, while the client still sends
    /// the request: what it sends is dropped until its END_STREAM.
    released: bool,
}

#[derive(Debug, Default)]
struct Response {
    /// The head's text while it is gathered.
    head: Vec<u8>,
    head_done: bool,
    head_request: bool,
    /// Body bytes the head declared and not yet sent.
    left: Option<u64>,
    /// END_STREAM is sent.
    ended: bool,
}

/// A header block being continued.
#[derive(Debug)]
struct Block {
    stream: u32,
    end_stream: bool,
    kind: BlockKind,
    bytes: Vec<u8>,
    frames: usize,
}

/// What a header block will be, decided at its first frame; a block is
/// decoded whatever it is, to keep the HPACK context in step.
#[derive(Debug, Clone, Copy)]
enum BlockKind {
    Request,
    Trailers,
    /// Decoded, then the stream is reset with this code.
    Refuse(u32),
    /// Decoded and dropped (a stream above a GOAWAY's last id).
    Ignore,
}

/// A connection error: GOAWAY with this code.
struct ConnectionError(u32);

type Outcome = Result<(), ConnectionError>;

/// One HTTP/2 connection.
pub(crate) struct Session<O> {
    preface_seen: usize,
    got_settings: bool,
    decoder: Decoder,
    peer_max_frame: usize,
    peer_initial_window: i64,
    send_window: i64,
    recv_window: i64,
    recv_consumed: i64,
    streams: HashMap<u32, Stream<O>, StreamIds>,
    last_stream: u32,
    /// The highest stream id the client used (above `last_stream` once
    /// GOAWAY ignores new streams).
    highest_seen: u32,
    /// Streams opened so far.
    opened: u64,
    recently_closed: VecDeque<u32>,
    block: Option<Block>,
    out: Vec<u8>,
    sent: usize,
    /// GOAWAY is sent: no new streams.
    going_away: bool,
    /// A connection error: nothing more is read.
    failed: bool,
    budget: i64,
    events: Vec<Event<O>>,
    window_opened: bool,
    /// Reused for every response's header block.
    block_scratch: Vec<u8>,
    /// Reused for every request's decoded fields.
    field_scratch: Vec<u8>,
}

impl<O: Copy> Session<O> {
    /// A session whose SETTINGS (and larger connection window) are
    /// queued at once, as the server's preface.
    pub(crate) fn new() -> Session<O> {
        let mut session = Session {
            preface_seen: 0,
            got_settings: false,
            decoder: Decoder::new(TABLE_SIZE),
            peer_max_frame: MAX_FRAME,
            peer_initial_window: 65_535,
            send_window: 65_535,
            recv_window: CONNECTION_WINDOW,
            recv_consumed: 0,
            streams: HashMap::default(),
            last_stream: 0,
            highest_seen: 0,
            opened: 0,
            recently_closed: VecDeque::new(),
            block: None,
            out: Vec::new(),
            sent: 0,
            going_away: false,
            failed: false,
            budget: BUDGET,
            events: Vec::new(),
            window_opened: false,
            block_scratch: Vec::new(),
            field_scratch: Vec::new(),
        };
        let mut settings = Vec::with_capacity(18);
        for (id, value) in [
            (SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS),
            (SETTINGS_ENABLE_PUSH, 0),
            (SETTINGS_MAX_HEADER_LIST_SIZE, MAX_LIST as u32),
        ] {
            settings.extend_from_slice(&id.to_be_bytes());
            settings.extend_from_slice(&value.to_be_bytes());
        }
        frame::put(&mut session.out, SETTINGS, 0, 0, &settings);
        let increment = (CONNECTION_WINDOW - 65_535) as u32;
        frame::put_window_update(&mut session.out, 0, increment);
        session
    }

    // ----- the connection's side -------------------------------------

    /// Takes frames from `input`; returns how many bytes were used (a
    /// partial frame stays for the next read). After a connection error
    /// everything is used and nothing more is read.
    pub(crate) fn receive(&mut self, input: &[u8]) -> usize {
        if self.failed {
            return input.len();
        }
        let mut pos = 0;
        if self.preface_seen < PREFACE.len() {
            let want = &PREFACE[self.preface_seen..];
            let n = want.len().min(input.len());
            if input[..n] != want[..n] {
                self.fail(PROTOCOL_ERROR);
                return input.len();
            }
            self.preface_seen += n;
            pos = n;
        }
        while let Some(head) = FrameHead::read(&input[pos..]) {
            if head.len > MAX_FRAME {
                self.fail(FRAME_SIZE_ERROR);
                return input.len();
            }
            let end = pos + HEADER_LEN + head.len;
            if end > input.len() {
                break;
            }
            let payload = &input[pos + HEADER_LEN..end];
            pos = end;
            if let Err(ConnectionError(code)) = self.on_frame(head, payload) {
                self.fail(code);
                return input.len();
            }
            if self.budget < 0 {
                self.fail(ENHANCE_YOUR_CALM);
                return input.len();
            }
        }
        pos
    }

    /// What happened since the last call, for the loop to act on.
    pub(crate) fn take_events(&mut self) -> Vec<Event<O>> {
        std::mem::take(&mut self.events)
    }

    /// The frames queued and not yet written.
    pub(crate) fn unsent(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    /// `n` bytes of [`unsent`](Self::unsent) were written.
    pub(crate) fn wrote(&mut self, n: usize) {
        self.sent += n;
        if self.sent < self.out.len() && self.sent >= OUT_HIGH_WATER {
            // What was written goes, so that a queue never emptied at
            // once does not keep it.
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        if self.sent >= self.out.len() {
            self.sent = 0;
            if self.out.capacity() > 2 * OUT_HIGH_WATER {
                self.out = Vec::new();
            } else {
                self.out.clear();
            }
            self.window_opened = true;
        }
    }

    /// True when so much is unsent that input waits (a client that does
    /// not read its answers, PING's among them, is not read from).
    pub(crate) fn output_full(&self) -> bool {
        self.unsent().len() >= OUT_HIGH_WATER
    }

    /// True after a connection error: the GOAWAY is queued, nothing more
    /// is read, and the connection closes once it is written.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// True when no stream is open.
    pub(crate) fn is_idle(&self) -> bool {
        // A stream already answered, whose request the client has not
        // finished, holds nothing of the server's: it does not keep the
        // connection from its idle timeout or a drain.
        self.streams.values().all(|s| s.released)
    }

    /// True when no stream is open and every frame queued is written:
    /// the connection may close without cutting anything short.
    pub(crate) fn is_quiet(&self) -> bool {
        self.is_idle() && self.unsent().is_empty()
    }

    /// True once GOAWAY is sent (a drain, a limit, an error).
    pub(crate) fn going_away(&self) -> bool {
        self.going_away
    }

    /// Streams opened on the connection so far.
    pub(crate) fn streams_opened(&self) -> u64 {
        self.opened
    }

    /// Refuses stream `id` (the server holds as many requests as it
    /// may): RST_STREAM(REFUSED_STREAM), which a client may retry.
    pub(crate) fn refuse(&mut self, id: u32) {
        frame::put_reset(&mut self.out, id, REFUSED_STREAM);
        self.forget(id, false);
    }

    /// Every stream's connection (to close them with the connection).
    pub(crate) fn owners(&self) -> Vec<O> {
        self.streams.values().filter_map(|s| s.owner).collect()
    }

    /// Gives stream `stream` the connection that serves it.
    pub(crate) fn adopt(&mut self, stream: u32, owner: O) {
        if let Some(s) = self.streams.get_mut(&stream) {
            s.owner = Some(owner);
        }
    }

    /// The connections of the streams that waited for a window or for
    /// room, when there may be room now.
    pub(crate) fn take_writable(&mut self) -> Vec<O> {
        if !self.window_opened || self.send_window <= 0 || self.output_full() {
            return Vec::new();
        }
        self.window_opened = false;
        let mut woken = Vec::new();
        for s in self.streams.values_mut() {
            if s.blocked && (s.send_window > 0 || !s.response.head_done) {
                s.blocked = false;
                woken.extend(s.owner);
            }
        }
        woken
    }

    /// Starts a graceful close (a drain): GOAWAY naming the last stream
    /// taken; the streams in flight are finished.
    pub(crate) fn go_away(&mut self) {
        if !self.going_away {
            self.going_away = true;
            frame::put_goaway(&mut self.out, self.last_stream, NO_ERROR);
        }
    }

    /// A connection error: GOAWAY with `code`; every stream ends.
    pub(crate) fn fail(&mut self, code: u32) {
        if self.failed {
            return;
        }
        self.failed = true;
        self.going_away = true;
        frame::put_goaway(&mut self.out, self.last_stream, code);
    }

    // ----- frames in -------------------------------------------------

    fn on_frame(&mut self, head: FrameHead, payload: &[u8]) -> Outcome {
        if !self.got_settings {
            if head.kind != SETTINGS || head.flags & ACK != 0 {
                return Err(ConnectionError(PROTOCOL_ERROR));
            }
            self.got_settings = true;
        }
        if let Some(block) = &self.block {
            if head.kind != CONTINUATION || head.stream != block.stream {
                return Err(ConnectionError(PROTOCOL_ERROR));
            }
        }
        let stream = head.stream;
        match head.kind {
            DATA => self.on_data(head, payload),
            HEADERS => self.on_headers(head, payload),
            PRIORITY => {
                // Priorities are read and ignored (RFC 9113 5.3.2).
                if stream == 0 {
                    return Err(ConnectionError(PROTOCOL_ERROR));
                }
                self.budget -= 1;
                if payload.len() != 5 {
                    self.reset(stream, FRAME_SIZE_ERROR);
                } else if be32(payload) & 0x7fff_ffff == stream {
                    self.reset(stream, PROTOCOL_ERROR);
                }
                Ok(())
            }
            RST_STREAM => {
                if stream == 0 {
                    return Err(ConnectionError(PROTOCOL_ERROR));
                }
                if payload.len() != 4 {
                    return Err(ConnectionError(FRAME_SIZE_ERROR));
                }
                if self.is_idle_stream(stream) {
                    return Err(ConnectionError(PROTOCOL_ERROR));
                }
                self.budget -= 1;
                if let Some(s) = self.streams.get(&stream) {
                    if !s.response.ended {
                        self.budget -= RESET_COST;
                    }
                }
                self.forget(stream, true);
                Ok(())
            }
            SETTINGS => self.on_settings(head, payload),
            PUSH_PROMISE => Err(ConnectionError(PROTOCOL_ERROR)),
            PING => {
                if stream != 0 {
                    return Err(ConnectionError(PROTOCOL_ERROR));
                }
                if payload.len() != 8 {
                    return Err(ConnectionError(FRAME_SIZE_ERROR));
                }
                if head.flags & ACK == 0 {
                    self.budget -= 1;
                    frame::put(&mut self.out, PING, ACK, 0, payload);
                }
                Ok(())
            }
            GOAWAY => {
                if stream != 0 {
                    return Err(ConnectionError(PROTOCOL_ERROR));
                }
                if payload.len() < 8 {
                    return Err(ConnectionError(FRAME_SIZE_ERROR));
                }
                // The client says it opens no more streams (and names the
                // last pushed one it took: none). Nothing changes here:
                // the streams in flight are answered, and the connection
                // ends when the client closes it or goes idle (an unknown
                // error code is no reason to act, RFC 9113 7).
                Ok(())
            }
            WINDOW_UPDATE => self.on_window_update(stream, payload),
            CONTINUATION => self.on_continuation(head, payload),
            _ => {
                // Unknown frame types are ignored (RFC 9113 5.5).
                self.budget -= 1;
                Ok(())
            }
        }
    }

    fn is_idle_stream(&self, stream: u32) -> bool {
        stream > self.highest_seen && !self.streams.contains_key(&stream)
    }

    /// A stream opened after GOAWAY, whose frames are dropped (RFC 9113
    /// 6.8).
    fn is_ignored(&self, stream: u32) -> bool {
        stream > self.last_stream && stream <= self.highest_seen
    }

    fn on_data(&mut self, head: FrameHead, payload: &[u8]) -> Outcome {
        let id = head.stream;
        if id == 0 {
            return Err(ConnectionError(PROTOCOL_ERROR));
        }
        let flow = payload.len() as i64;
        let body = strip_padding(head.flags, payload)?;
        self.recv_window -= flow;
        if self.recv_window < 0 {
            return Err(ConnectionError(FLOW_CONTROL_ERROR));
        }
        if self.is_idle_stream(id) {
            return Err(ConnectionError(PROTOCOL_ERROR));
        }
        if self.is_ignored(id) {
            // Counted against the window, then dropped.
            self.credit_connection(flow);
            return Ok(());
        }
        let end_stream = head.flags & END_STREAM != 0;
        if body.is_empty() && !end_stream {
            self.budget -= 1;
        }
        let Some(s) = self.streams.get_mut(&id).filter(|s| !s.recv_closed) else {
            // Its bytes are not kept: the window is the client's again.
            self.credit_connection(flow);
            self.reset(id, STREAM_CLOSED);
            return Ok(());
        };
        s.recv_window -= flow;
        if s.recv_window < 0 {
            self.credit_connection(flow);
            self.reset(id, FLOW_CONTROL_ERROR);
            return Ok(());
        }
        s.received += body.len() as u64;
        if s.content_length.is_some_and(|n| s.received > n)
            || end_stream && s.content_length.is_some_and(|n| s.received != n)
        {
            self.credit_connection(flow);
            self.reset(id, PROTOCOL_ERROR);
            return Ok(());
        }
        if s.released {
            // Answered already: the rest of the request is dropped, and
            // its window given back so that the client can finish it.
            if end_stream {
                self.forget(id, false);
            } else if flow > 0 {
                s.recv_window += flow;
                frame::put_window_update(&mut self.out, id, flow as u32);
            }
            self.credit_connection(flow);
            return Ok(());
        }
        // Padding is never read: its share of the window comes back now.
        let padding = flow - body.len() as i64;
        if s.chunked && !body.is_empty() {
            s.inbound
                .extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            s.inbound.extend_from_slice(body);
            s.inbound.extend_from_slice(b"\r\n");
        } else {
            s.inbound.extend_from_slice(body);
        }
        s.uncredited += body.len() as u64;
        if end_stream {
            s.recv_closed = true;
            if s.chunked {
                s.inbound.extend_from_slice(b"0\r\n\r\n");
            }
        } else if padding > 0 {
            s.recv_window += padding;
            frame::put_window_update(&mut self.out, id, padding as u32);
        }
        let owner = s.owner;
        self.credit_connection(padding);
        self.events.extend(owner.map(Event::Input));
        Ok(())
    }

    fn on_headers(&mut self, head: FrameHead, payload: &[u8]) -> Outcome {
        let id = head.stream;
        if id == 0 {
            return Err(ConnectionError(PROTOCOL_ERROR));
        }
        let mut block = strip_padding(head.flags, payload)?;
        let mut depends_on_itself = false;
        if head.flags & PRIORITY_FLAG != 0 {
            if block.len() < 5 {
                return Err(ConnectionError(FRAME_SIZE_ERROR));
            }
            depends_on_itself = be32(block) & 0x7fff_ffff == id;
            block = &block[5..];
        }
        let end_stream = head.flags & END_STREAM != 0;
        let kind = if let Some(s) = self.streams.get(&id) {
            match (s.recv_closed, end_stream) {
                (true, _) => BlockKind::Refuse(STREAM_CLOSED),
                // Trailers must end the stream.
                (false, false) => BlockKind::Refuse(PROTOCOL_ERROR),
                (false, true) => BlockKind::Trailers,
            }
        } else if id > self.last_stream {
            if id.is_multiple_of(2) {
                return Err(ConnectionError(PROTOCOL_ERROR));
            }
            self.highest_seen = id;
            if self.going_away {
                BlockKind::Ignore
            } else {
                self.last_stream = id;
                self.opened += 1;
                if depends_on_itself {
                    BlockKind::Refuse(PROTOCOL_ERROR)
                } else if self.streams.len() >= MAX_STREAMS as usize {
                    self.budget -= 1;
                    BlockKind::Refuse(REFUSED_STREAM)
                } else {
                    BlockKind::Request
                }
            }
        } else if self.recently_closed.contains(&id) {
            return Err(ConnectionError(STREAM_CLOSED));
        } else {
            return Err(ConnectionError(PROTOCOL_ERROR));
        };
        if head.flags & END_HEADERS != 0 {
            return self.on_block(id, end_stream, kind, block);
        }
        self.block = Some(Block {
            stream: id,
            end_stream,
            kind,
            bytes: block.to_vec(),
            frames: 1,
        });
        Ok(())
    }

    fn on_continuation(&mut self, head: FrameHead, payload: &[u8]) -> Outcome {
        let Some(block) = self.block.as_mut() else {
            return Err(ConnectionError(PROTOCOL_ERROR));
        };
        block.frames += 1;
        // CVE-2024-27316: a block that never ends, or ends too large.
        if block.bytes.len() + payload.len() > MAX_BLOCK || block.frames > MAX_CONTINUATIONS {
            return Err(ConnectionError(ENHANCE_YOUR_CALM));
        }
        block.bytes.extend_from_slice(payload);
        if head.flags & END_HEADERS == 0 {
            return Ok(());
        }
        match self.block.take() {
            Some(b) => self.on_block(b.stream, b.end_stream, b.kind, &b.bytes),
            None => Ok(()),
        }
    }

    fn on_block(&mut self, id: u32, end_stream: bool, kind: BlockKind, block: &[u8]) -> Outcome {
        // Always decoded, to keep the context in step; copied only up to
        // the list cap, so a block that decodes far larger than it was
        // sent (an HPACK bomb) costs its decoding and no memory.
        // The fields go into one reused buffer, not a buffer each.
        let mut arena = std::mem::take(&mut self.field_scratch);
        arena.clear();
        let mut spans: Vec<(usize, usize, usize)> = Vec::with_capacity(16);
        let (mut size, mut too_large) = (0usize, false);
        let decoded = self.decoder.decode(block, MAX_DECODED, |name, value| {
            size += name.len() + value.len() + 32;
            if size > MAX_LIST {
                too_large = true;
            } else {
                let start = arena.len();
                arena.extend_from_slice(name);
                arena.extend_from_slice(value);
                spans.push((start, start + name.len(), arena.len()));
            }
        });
        let fields: Vec<(&[u8], &[u8])> = spans
            .iter()
            .map(|&(a, b, c)| (&arena[a..b], &arena[b..c]))
            .collect();
        let outcome = match decoded {
            // Decoding stopped part way: the table is out of step.
            Err(hpack::TOO_LARGE) => Err(ConnectionError(ENHANCE_YOUR_CALM)),
            _ => self.on_fields(id, end_stream, kind, decoded.is_ok(), too_large, &fields),
        };
        drop(fields);
        // Kept for the next block unless a large one grew it.
        if arena.capacity() <= SCRATCH_KEPT {
            self.field_scratch = arena;
        }
        outcome
    }

    /// A decoded header block's fields, as `kind` says to take them.
    fn on_fields(
        &mut self,
        id: u32,
        end_stream: bool,
        kind: BlockKind,
        decoded: bool,
        too_large: bool,
        fields: &[(&[u8], &[u8])],
    ) -> Outcome {
        if !decoded {
            return Err(ConnectionError(COMPRESSION_ERROR));
        }
        match kind {
            BlockKind::Ignore => return Ok(()),
            BlockKind::Refuse(code) => {
                self.reset(id, code);
                return Ok(());
            }
            BlockKind::Request | BlockKind::Trailers => {}
        }
        if too_large {
            self.budget -= RESET_COST;
            self.reset(id, ENHANCE_YOUR_CALM);
            return Ok(());
        }
        if matches!(kind, BlockKind::Trailers) {
            return self.on_trailers(id, fields);
        }
        match request_head::to_http1(fields, end_stream) {
            Ok(head) => self.open(id, head, end_stream),
            Err(_) => self.reset(id, PROTOCOL_ERROR),
        }
        Ok(())
    }

    /// Trailers end the request; their fields are checked and dropped.
    fn on_trailers(&mut self, id: u32, fields: &[(&[u8], &[u8])]) -> Outcome {
        if fields.iter().any(|(n, _)| n.starts_with(b":")) {
            self.reset(id, PROTOCOL_ERROR);
            return Ok(());
        }
        let Some(s) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        if s.released {
            self.forget(id, false);
            return Ok(());
        }
        if s.content_length.is_some_and(|n| s.received != n) {
            self.reset(id, PROTOCOL_ERROR);
            return Ok(());
        }
        s.recv_closed = true;
        if s.chunked {
            s.inbound.extend_from_slice(b"0\r\n\r\n");
        }
        let owner = s.owner;
        self.events.extend(owner.map(Event::Input));
        Ok(())
    }

    fn open(&mut self, id: u32, head: RequestHead, end_stream: bool) {
        let RequestHead {
            text,
            content_length,
            chunked,
            head_request,
        } = head;
        self.streams.insert(
            id,
            Stream {
                owner: None,
                inbound: text,
                uncredited: 0,
                recv_window: STREAM_WINDOW,
                recv_closed: end_stream,
                received: 0,
                content_length,
                chunked,
                send_window: self.peer_initial_window,
                response: Response {
                    head_request,
                    ..Response::default()
                },
                blocked: false,
                released: false,
            },
        );
        self.events.push(Event::Opened(id));
    }

    fn on_settings(&mut self, head: FrameHead, payload: &[u8]) -> Outcome {
        if head.stream != 0 {
            return Err(ConnectionError(PROTOCOL_ERROR));
        }
        if head.flags & ACK != 0 {
            return match payload.is_empty() {
                true => Ok(()),
                false => Err(ConnectionError(FRAME_SIZE_ERROR)),
            };
        }
        if !payload.len().is_multiple_of(6) {
            return Err(ConnectionError(FRAME_SIZE_ERROR));
        }
        self.budget -= 1;
        for setting in payload.chunks(6) {
            let id = u16::from_be_bytes([setting[0], setting[1]]);
            let value = be32(&setting[2..]);
            match id {
                // The encoder keeps no dynamic table, so the client's
                // SETTINGS_HEADER_TABLE_SIZE asks nothing of it.
                SETTINGS_ENABLE_PUSH if value > 1 => return Err(ConnectionError(PROTOCOL_ERROR)),
                SETTINGS_INITIAL_WINDOW_SIZE => {
                    if i64::from(value) > MAX_WINDOW {
                        return Err(ConnectionError(FLOW_CONTROL_ERROR));
                    }
                    let delta = i64::from(value) - self.peer_initial_window;
                    self.peer_initial_window = i64::from(value);
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
                        if s.send_window > MAX_WINDOW {
                            return Err(ConnectionError(FLOW_CONTROL_ERROR));
                        }
                    }
                    self.window_opened |= delta > 0;
                }
                SETTINGS_MAX_FRAME_SIZE => {
                    if !(16_384..=16_777_215).contains(&value) {
                        return Err(ConnectionError(PROTOCOL_ERROR));
                    }
                    // Frames stay at the default: larger ones only make a
                    // stream hold the connection longer.
                    self.peer_max_frame = (value as usize).min(MAX_FRAME);
                }
                _ => {}
            }
        }
        frame::put(&mut self.out, SETTINGS, ACK, 0, &[]);
        Ok(())
    }

    fn on_window_update(&mut self, id: u32, payload: &[u8]) -> Outcome {
        if payload.len() != 4 {
            return Err(ConnectionError(FRAME_SIZE_ERROR));
        }
        let increment = i64::from(be32(payload) & 0x7fff_ffff);
        if id == 0 {
            if increment == 0 {
                return Err(ConnectionError(PROTOCOL_ERROR));
            }
            self.send_window += increment;
            if self.send_window > MAX_WINDOW {
                return Err(ConnectionError(FLOW_CONTROL_ERROR));
            }
            self.window_opened = true;
            return Ok(());
        }
        if self.is_idle_stream(id) {
            return Err(ConnectionError(PROTOCOL_ERROR));
        }
        let Some(s) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        if increment == 0 {
            self.reset(id, PROTOCOL_ERROR);
            return Ok(());
        }
        s.send_window += increment;
        if s.send_window > MAX_WINDOW {
            self.reset(id, FLOW_CONTROL_ERROR);
            return Ok(());
        }
        self.window_opened = true;
        Ok(())
    }

    /// A stream error: RST_STREAM with `code`, and the stream's
    /// connection (if it has one yet) is told to go.
    fn reset(&mut self, id: u32, code: u32) {
        frame::put_reset(&mut self.out, id, code);
        // A reset the client provokes costs as one it sends: it ends a
        // stream in flight as surely (rapid reset by other means).
        self.budget -= match self.streams.get(&id) {
            Some(s) if !s.response.ended => RESET_COST,
            _ => 1,
        };
        if !self.streams.contains_key(&id) {
            self.remember_closed(id);
        }
        self.forget(id, true);
    }

    /// Drops stream `id`; `tell` reports it to the loop as reset.
    fn forget(&mut self, id: u32, tell: bool) {
        let Some(s) = self.streams.remove(&id) else {
            return;
        };
        self.remember_closed(id);
        // Whatever the client sent that nobody will read is its window
        // again.
        self.credit_connection(s.uncredited as i64);
        if tell {
            self.events.extend(s.owner.map(Event::Reset));
        }
        if self.streams.is_empty() && self.streams.capacity() > 2 * MAX_STREAMS as usize {
            self.streams = HashMap::default();
        }
    }

    fn remember_closed(&mut self, id: u32) {
        if self.recently_closed.contains(&id) {
            return;
        }
        if self.recently_closed.len() >= RECENTLY_CLOSED {
            self.recently_closed.pop_front();
        }
        self.recently_closed.push_back(id);
    }

    /// `n` bytes of the connection's window were read or dropped: give
    /// them back once half the window is used.
    fn credit_connection(&mut self, n: i64) {
        self.recv_consumed += n;
        if self.recv_consumed >= CONNECTION_WINDOW / 2 && !self.failed {
            frame::put_window_update(&mut self.out, 0, self.recv_consumed as u32);
            self.recv_window += self.recv_consumed;
            self.recv_consumed = 0;
        }
    }

    // ----- a stream's side -------------------------------------------

    /// Moves up to `room` bytes of stream `id`'s request into `input`;
    /// what is read is credited back to the client's windows.
    pub(crate) fn read(&mut self, id: u32, input: &mut Vec<u8>, room: usize) -> Read {
        let Some(s) = self.streams.get_mut(&id) else {
            return Read::End;
        };
        if s.inbound.is_empty() {
            return if s.recv_closed {
                Read::End
            } else {
                Read::Nothing
            };
        }
        let n = room.min(s.inbound.len());
        input.extend_from_slice(&s.inbound[..n]);
        s.inbound.drain(..n);
        if s.inbound.capacity() > 4 * n.max(4096) && s.inbound.is_empty() {
            s.inbound = Vec::new();
        }
        // What is left may all be body (chunk framing makes it more than
        // the body it holds): only what cannot be left is credited, all
        // of it once the buffer is empty.
        let credit = s.uncredited.saturating_sub(s.inbound.len() as u64);
        s.uncredited -= credit;
        if credit > 0 && !s.recv_closed {
            s.recv_window += credit as i64;
            frame::put_window_update(&mut self.out, id, credit as u32);
        }
        self.credit_connection(credit as i64);
        Read::Bytes(n)
    }

    /// True when stream `id`'s last write found no room (it is woken by
    /// [`take_writable`](Self::take_writable)).
    pub(crate) fn blocked(&self, id: u32) -> bool {
        self.streams.get(&id).is_some_and(|s| s.blocked)
    }

    /// True while stream `id` has request bytes its connection has not
    /// read.
    pub(crate) fn has_input(&self, id: u32) -> bool {
        self.streams.get(&id).is_some_and(|s| !s.inbound.is_empty())
    }

    /// Writes `slices` of stream `id`'s response: its head, the first
    /// time, as HEADERS; then its body as DATA, as far as both windows
    /// and the unsent frames allow. `WouldBlock` when nothing fits (the
    /// stream is woken by [`take_writable`](Self::take_writable)).
    pub(crate) fn write(&mut self, id: u32, slices: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut taken = 0;
        for slice in slices {
            let mut bytes: &[u8] = slice;
            if !self.stream(id)?.response.head_done {
                let used = self.gather_head(id, bytes)?;
                taken += used;
                bytes = &bytes[used..];
                if !self.stream(id)?.response.head_done {
                    continue;
                }
            }
            if bytes.is_empty() {
                continue;
            }
            let room = self.body_room(id, bytes.len())?;
            if room == 0 {
                break;
            }
            self.put_data(id, &bytes[..room]);
            taken += room;
            if room < bytes.len() {
                break;
            }
        }
        match taken {
            0 => {
                self.stream_mut(id)?.blocked = true;
                Err(io::ErrorKind::WouldBlock.into())
            }
            n => Ok(n),
        }
    }

    /// Sends body bytes of stream `id` that `fill` reads (at most the
    /// `count` it is given, returning how many it read) straight into a
    /// DATA frame: a file's pages `pread`, or a helper's slot copied.
    pub(crate) fn write_with(
        &mut self,
        id: u32,
        count: usize,
        fill: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if !self.stream(id)?.response.head_done {
            return Err(io::Error::other("a body before its head"));
        }
        let room = self.body_room(id, count)?.min(self.peer_max_frame);
        if room == 0 {
            self.stream_mut(id)?.blocked = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let start = self.out.len();
        self.out.resize(start + HEADER_LEN + room, 0);
        let read = fill(&mut self.out[start + HEADER_LEN..]);
        let n = match read {
            Ok(n) if n > 0 => n.min(room),
            Ok(_) => {
                self.out.truncate(start);
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            Err(e) => {
                self.out.truncate(start);
                return Err(e);
            }
        };
        self.out.truncate(start + HEADER_LEN + n);
        let flags = self.account_data(id, n)?;
        let mut head = Vec::with_capacity(HEADER_LEN);
        frame::put_head(&mut head, n, DATA, flags, id);
        self.out[start..start + HEADER_LEN].copy_from_slice(&head);
        Ok(n)
    }

    /// The response of stream `id` is complete: END_STREAM, if its head
    /// has not already said so.
    pub(crate) fn end(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.response.head_done && !s.response.ended {
            s.response.ended = true;
            frame::put(&mut self.out, DATA, END_STREAM, id, &[]);
            self.budget = (self.budget + RESPONSE_REFUND).min(BUDGET);
        }
    }

    /// Stream `id`'s connection is gone. A response cut short resets the
    /// stream. A complete one that did not wait for the rest of the
    /// request leaves the stream half-closed until the client ends it,
    /// its bytes dropped meanwhile (RFC 9113 8.1 would let a reset with
    /// NO_ERROR stop it, but clients and the conformance cases read a
    /// reset as the server's refusal).
    pub(crate) fn release(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        match (s.response.ended, s.recv_closed) {
            (false, _) => frame::put_reset(&mut self.out, id, INTERNAL_ERROR),
            (true, false) => {
                s.released = true;
                s.owner = None;
                let unread = std::mem::take(&mut s.inbound);
                let uncredited = std::mem::take(&mut s.uncredited);
                if uncredited > 0 {
                    s.recv_window += uncredited as i64;
                    frame::put_window_update(&mut self.out, id, uncredited as u32);
                }
                drop(unread);
                self.credit_connection(uncredited as i64);
                return;
            }
            (true, true) => {}
        }
        self.forget(id, false);
    }

    fn stream(&self, id: u32) -> io::Result<&Stream<O>> {
        self.streams.get(&id).ok_or_else(stream_gone)
    }

    fn stream_mut(&mut self, id: u32) -> io::Result<&mut Stream<O>> {
        self.streams.get_mut(&id).ok_or_else(stream_gone)
    }

    /// Takes head bytes of stream `id` until its blank line; a whole
    /// head goes out as HEADERS (an interim one, then the next is
    /// gathered). Returns how many of `bytes` were head. A head that comes
    /// whole in one write is read where it is; one in pieces is gathered.
    fn gather_head(&mut self, id: u32, bytes: &[u8]) -> io::Result<usize> {
        let s = self.stream_mut(id)?;
        if s.response.head.is_empty() {
            if let Some(end) = self.send_head(id, bytes)? {
                return Ok(end);
            }
        }
        let s = self.stream_mut(id)?;
        let before = s.response.head.len();
        s.response.head.extend_from_slice(bytes);
        if s.response.head.len() > MAX_BLOCK {
            return Err(io::Error::other("a response head too large"));
        }
        let text = std::mem::take(&mut s.response.head);
        let sent = self.send_head(id, &text);
        match sent? {
            Some(end) => Ok(end - before),
            None => {
                self.stream_mut(id)?.response.head = text;
                Ok(bytes.len())
            }
        }
    }

    /// Sends the head at the start of `text` as HEADERS, if it is whole:
    /// where it ends.
    fn send_head(&mut self, id: u32, text: &[u8]) -> io::Result<Option<usize>> {
        let mut block = std::mem::take(&mut self.block_scratch);
        block.clear();
        let read = LAST_HEAD.with_borrow_mut(|last| last.encode(text, &mut block));
        let (head, end) = match read {
            response_head::Read::Head(head, end) => (head, end),
            response_head::Read::Incomplete => {
                self.block_scratch = block;
                return Ok(None);
            }
            response_head::Read::Malformed => return Err(io::Error::other("not a response head")),
        };
        let head_request = self.stream(id)?.response.head_request;
        let ends = !head.is_interim()
            && (head.has_no_body() || head_request || head.content_length == Some(0));
        self.put_headers(id, &block, ends);
        if block.capacity() <= SCRATCH_KEPT {
            self.block_scratch = block;
        }
        let s = self.stream_mut(id)?;
        if !head.is_interim() {
            s.response.head_done = true;
            s.response.left = head.content_length.filter(|_| !ends);
            s.response.ended = ends;
        }
        if ends {
            self.budget = (self.budget + RESPONSE_REFUND).min(BUDGET);
        }
        Ok(Some(end))
    }

    /// Queues a header block as HEADERS and as many CONTINUATIONs as the
    /// client's frame size needs.
    fn put_headers(&mut self, id: u32, block: &[u8], end_stream: bool) {
        let max = self.peer_max_frame;
        let mut pieces = block.chunks(max).peekable();
        let first = pieces.next().unwrap_or(&[]);
        let mut flags = if end_stream { END_STREAM } else { 0 };
        if pieces.peek().is_none() {
            flags |= END_HEADERS;
        }
        frame::put(&mut self.out, HEADERS, flags, id, first);
        while let Some(piece) = pieces.next() {
            let last = pieces.peek().is_none();
            frame::put(
                &mut self.out,
                CONTINUATION,
                if last { END_HEADERS } else { 0 },
                id,
                piece,
            );
        }
    }

    /// How many of `want` body bytes stream `id` may send now.
    fn body_room(&self, id: u32, want: usize) -> io::Result<usize> {
        let s = self.stream(id)?;
        if s.response.ended {
            return Err(io::Error::other("a body past its end"));
        }
        let windows = s.send_window.min(self.send_window).max(0) as usize;
        let room = OUT_HIGH_WATER.saturating_sub(self.unsent().len());
        let left = s
            .response
            .left
            .map_or(usize::MAX, |n| n.min(usize::MAX as u64) as usize);
        Ok(want.min(windows).min(room).min(left))
    }

    /// Queues `bytes` (which fit the windows) as DATA frames.
    fn put_data(&mut self, id: u32, bytes: &[u8]) {
        for piece in bytes.chunks(self.peer_max_frame) {
            let Ok(flags) = self.account_data(id, piece.len()) else {
                return;
            };
            frame::put(&mut self.out, DATA, flags, id, piece);
        }
    }

    /// Takes `n` body bytes from both windows and what the head declared;
    /// the flags of their frame (END_STREAM with the last declared byte).
    fn account_data(&mut self, id: u32, n: usize) -> io::Result<u8> {
        self.send_window -= n as i64;
        let s = self.stream_mut(id)?;
        s.send_window -= n as i64;
        let mut flags = 0;
        if let Some(left) = s.response.left.as_mut() {
            *left -= (n as u64).min(*left);
            if *left == 0 {
                s.response.ended = true;
                flags = END_STREAM;
            }
        }
        if flags == END_STREAM {
            self.budget = (self.budget + RESPONSE_REFUND).min(BUDGET);
        }
        Ok(flags)
    }
}

/// Hashes stream ids (odd numbers the client picks, at most
/// [`MAX_STREAMS`] of them held at once) by one multiplication: SipHash
/// cost 6% of the server's CPU under `h2load`, and flooding one bucket
/// would take more streams than a client may hold.
#[derive(Default)]
struct StreamIdHasher(u64);

impl Hasher for StreamIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type StreamIds = BuildHasherDefault<StreamIdHasher>;

/// The last response head turned into a header block, in this thread:
/// within a second, answers of one file share their head (`head_memo`),
/// so its block is made once, whichever connection it goes to.
#[derive(Default)]
struct LastHead {
    text: Vec<u8>,
    block: Vec<u8>,
    read: Option<response_head::Read>,
}

thread_local! {
    static LAST_HEAD: RefCell<LastHead> = RefCell::new(LastHead::default());
}

impl LastHead {
    /// Reads `text` (whose head may be followed by more) into `block`.
    fn encode(&mut self, text: &[u8], block: &mut Vec<u8>) -> response_head::Read {
        if let Some(read @ response_head::Read::Head(_, end)) = self.read {
            if text.get(..end) == Some(&self.text[..]) {
                block.extend_from_slice(&self.block);
                return read;
            }
        }
        let read = response_head::read(text, |name, value| {
            hpack::encode_field(block, name, value);
        });
        if let response_head::Read::Head(_, end) = read {
            if end <= SCRATCH_KEPT {
                self.text.clear();
                self.text.extend_from_slice(&text[..end]);
                self.block.clear();
                self.block.extend_from_slice(block);
                self.read = Some(read);
            }
        }
        read
    }
}

impl<O> std::fmt::Debug for Session<O> {
    // The tables are left out: they are large and say little.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("streams", &self.streams.len())
            .field("last_stream", &self.last_stream)
            .field("unsent", &(self.out.len() - self.sent))
            .field("going_away", &self.going_away)
            .field("failed", &self.failed)
            .finish()
    }
}

fn stream_gone() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "the stream was reset")
}

/// A frame's payload without its padding (RFC 9113 6.1).
fn strip_padding(flags: u8, payload: &[u8]) -> Result<&[u8], ConnectionError> {
    if flags & PADDED == 0 {
        return Ok(payload);
    }
    match payload.first() {
        Some(&pad) if usize::from(pad) < payload.len() => {
            Ok(&payload[1..payload.len() - usize::from(pad)])
        }
        _ => Err(ConnectionError(PROTOCOL_ERROR)),
    }
}
