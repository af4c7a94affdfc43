//! The session driven as a client would drive it, frame by frame, with
//! no sockets: requests in, HTTP/1.1 heads out, responses back as frames,
//! flow control, and the limits that answer a hostile client.

use std::io::IoSlice;

use loona_hpack::Encoder;

use super::frame::{self, *};
use super::session::{Event, Read, Session, MAX_STREAMS};

/// A client's side: its HPACK encoder.
struct Client {
    encoder: Encoder<'static>,
}

impl Client {
    fn new() -> Client {
        Client {
            encoder: Encoder::new(),
        }
    }

    /// The preface and an empty SETTINGS.
    fn start(&self) -> Vec<u8> {
        let mut out = PREFACE.to_vec();
        frame::put(&mut out, SETTINGS, 0, 0, &[]);
        out
    }

    fn block(&mut self, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut fields: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":path", path.as_bytes()),
            (b":authority", b"localhost"),
        ];
        for (n, v) in extra {
            fields.push((n.as_bytes(), v.as_bytes()));
        }
        self.encoder.encode(fields)
    }

    fn get(&mut self, out: &mut Vec<u8>, stream: u32, path: &str) {
        let block = self.block(path, &[]);
        frame::put(out, HEADERS, END_HEADERS | END_STREAM, stream, &block);
    }
}

/// Every frame in `bytes`: (head, payload).
fn frames(bytes: &[u8]) -> Vec<(FrameHead, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pos = 0;
    while let Some(head) = FrameHead::read(&bytes[pos..]) {
        let payload = bytes[pos + HEADER_LEN..pos + HEADER_LEN + head.len].to_vec();
        pos += HEADER_LEN + head.len;
        found.push((head, payload));
    }
    found
}

fn drain(session: &mut Session<u32>) -> Vec<(FrameHead, Vec<u8>)> {
    let bytes = session.unsent().to_vec();
    session.wrote(bytes.len());
    frames(&bytes)
}

fn goaway_code(found: &[(FrameHead, Vec<u8>)]) -> Option<u32> {
    found
        .iter()
        .find(|(h, _)| h.kind == GOAWAY)
        .map(|(_, p)| be32(&p[4..]))
}

fn resets(found: &[(FrameHead, Vec<u8>)]) -> Vec<(u32, u32)> {
    found
        .iter()
        .filter(|(h, _)| h.kind == RST_STREAM)
        .map(|(h, p)| (h.stream, be32(p)))
        .collect()
}

/// A session past the preface, its own first frames taken.
fn started(client: &Client) -> Session<u32> {
    let mut session = Session::new();
    let input = client.start();
    assert_eq!(session.receive(&input), input.len());
    drain(&mut session);
    session
}

#[test]
fn a_request_reads_as_http1_and_its_answer_goes_out_as_frames() {
    let mut client = Client::new();
    let mut session = started(&client);
    let mut input = Vec::new();
    client.get(&mut input, 1, "/index.html");
    assert_eq!(session.receive(&input), input.len());
    assert_eq!(session.take_events(), vec![Event::Opened(1)]);
    session.adopt(1, 100);
    let mut head = Vec::new();
    assert_eq!(session.read(1, &mut head, 4096), Read::Bytes(head.len()));
    assert_eq!(
        String::from_utf8_lossy(&head),
        "GET /index.html HTTP/1.1\r\nhost: localhost\r\n\r\n"
    );
    assert_eq!(session.read(1, &mut head, 4096), Read::End);

    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    let n = session.write(1, &[IoSlice::new(answer)]).expect("room");
    assert_eq!(n, answer.len());
    let found = drain(&mut session);
    let kinds: Vec<(u8, u8)> = found.iter().map(|(h, _)| (h.kind, h.flags)).collect();
    assert_eq!(kinds, [(HEADERS, END_HEADERS), (DATA, END_STREAM)]);
    assert_eq!(found[1].1, b"hello");
    let mut decoder = loona_hpack::Decoder::new();
    let fields = decoder.decode(&found[0].1).expect("hpack");
    let names: Vec<&[u8]> = fields.iter().map(|(n, _)| n.as_slice()).collect();
    assert_eq!(names, [&b":status"[..], b"content-length"]);
    session.release(1);
    assert!(session.is_idle());
    assert!(
        drain(&mut session).is_empty(),
        "a finished stream needs no reset"
    );
}

#[test]
fn a_body_waits_for_the_window_and_the_stream_is_woken() {
    let mut client = Client::new();
    let mut session = started(&client);
    let mut input = Vec::new();
    client.get(&mut input, 1, "/big");
    session.receive(&input);
    session.take_events();
    session.adopt(1, 7);
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
    session.write(1, &[IoSlice::new(head)]).expect("head");
    let body = vec![b'x'; 100_000];
    let sent = session.write(1, &[IoSlice::new(&body)]).expect("some");
    assert_eq!(sent, 65_535, "the initial window");
    assert!(session.write(1, &[IoSlice::new(&body[sent..])]).is_err());
    drain(&mut session);
    assert!(session.take_writable().is_empty(), "no window yet");
    let mut update = Vec::new();
    frame::put_window_update(&mut update, 0, 100_000);
    frame::put_window_update(&mut update, 1, 100_000);
    session.receive(&update);
    assert_eq!(session.take_writable(), vec![7]);
    let rest = session
        .write(1, &[IoSlice::new(&body[sent..])])
        .expect("room");
    assert_eq!(sent + rest, body.len());
    let found = drain(&mut session);
    assert!(found.last().is_some_and(|(h, _)| h.flags & END_STREAM != 0));
    assert!(found.iter().all(|(h, _)| h.len <= MAX_FRAME));
}

#[test]
fn a_bad_preface_is_a_protocol_error() {
    let mut session: Session<u32> = Session::new();
    session.receive(b"GET / HTTP/1.1\r\n\r\n");
    assert!(session.failed());
    assert_eq!(goaway_code(&drain(&mut session)), Some(PROTOCOL_ERROR));
}

#[test]
fn an_hpack_bomb_resets_its_stream_and_keeps_the_connection() {
    let mut client = Client::new();
    let mut session = started(&client);
    // One large field into the client's table, then a block that names
    // it again and again: tiny on the wire, megabytes decoded.
    let big = "v".repeat(3000);
    let mut input = Vec::new();
    let first = client.block("/", &[("x-big", &big)]);
    frame::put(&mut input, HEADERS, END_HEADERS | END_STREAM, 1, &first);
    let repeated: Vec<(&str, &str)> = (0..150).map(|_| ("x-big", big.as_str())).collect();
    let bomb = client.block("/", &repeated);
    assert!(bomb.len() < 4096, "the bomb is small: {}", bomb.len());
    frame::put(&mut input, HEADERS, END_HEADERS | END_STREAM, 3, &bomb);
    session.receive(&input);
    assert!(!session.failed());
    assert_eq!(resets(&drain(&mut session)), [(3, ENHANCE_YOUR_CALM)]);
    // One that decodes to megabytes is not decoded to its end: the
    // connection ends.
    let repeated: Vec<(&str, &str)> = (0..2000).map(|_| ("x-big", big.as_str())).collect();
    let mut input = Vec::new();
    frame::put(
        &mut input,
        HEADERS,
        END_HEADERS | END_STREAM,
        5,
        &client.block("/", &repeated),
    );
    session.receive(&input);
    assert!(session.failed());
    assert_eq!(goaway_code(&drain(&mut session)), Some(ENHANCE_YOUR_CALM));
}

#[test]
fn a_continuation_flood_ends_the_connection() {
    let client = Client::new();
    let mut session = started(&client);
    let mut input = Vec::new();
    frame::put(&mut input, HEADERS, 0, 1, &[0x82]);
    for _ in 0..200 {
        frame::put(&mut input, CONTINUATION, 0, 1, &[]);
    }
    session.receive(&input);
    assert_eq!(goaway_code(&drain(&mut session)), Some(ENHANCE_YOUR_CALM));
}

#[test]
fn rapid_resets_end_the_connection() {
    let mut client = Client::new();
    let mut session = started(&client);
    let mut stream = 1;
    while !session.failed() && stream < 2000 {
        let mut input = Vec::new();
        client.get(&mut input, stream, "/");
        frame::put_reset(&mut input, stream, 8); // CANCEL
        session.receive(&input);
        stream += 2;
    }
    assert!(session.failed(), "still open after {} resets", stream / 2);
    assert!(stream < 400, "took {} resets", stream / 2);
    assert_eq!(goaway_code(&drain(&mut session)), Some(ENHANCE_YOUR_CALM));
}

#[test]
fn a_ping_flood_ends_the_connection() {
    let client = Client::new();
    let mut session = started(&client);
    let mut input = Vec::new();
    for _ in 0..2000 {
        frame::put(&mut input, PING, 0, 0, &[0; 8]);
    }
    session.receive(&input);
    assert_eq!(goaway_code(&drain(&mut session)), Some(ENHANCE_YOUR_CALM));
}

#[test]
fn streams_beyond_the_limit_are_refused() {
    let mut client = Client::new();
    let mut session = started(&client);
    let mut input = Vec::new();
    for i in 0..=MAX_STREAMS {
        client.get(&mut input, 2 * i + 1, "/");
    }
    session.receive(&input);
    let opened = session
        .take_events()
        .iter()
        .filter(|e| matches!(e, Event::Opened(_)))
        .count();
    assert_eq!(opened, MAX_STREAMS as usize);
    let last = 2 * MAX_STREAMS + 1;
    assert_eq!(resets(&drain(&mut session)), [(last, REFUSED_STREAM)]);
}

#[test]
fn a_request_body_is_read_chunked_and_credited_back() {
    let mut client = Client::new();
    let mut session = started(&client);
    let mut input = Vec::new();
    let block = client.encoder.encode([
        (&b":method"[..], &b"POST"[..]),
        (b":scheme", b"http"),
        (b":path", b"/a.cgi"),
        (b":authority", b"h"),
    ]);
    frame::put(&mut input, HEADERS, END_HEADERS, 1, &block);
    frame::put(&mut input, DATA, 0, 1, b"hello");
    frame::put(&mut input, DATA, END_STREAM, 1, b"!");
    session.receive(&input);
    session.take_events();
    session.adopt(1, 1);
    let mut read = Vec::new();
    while let Read::Bytes(_) = session.read(1, &mut read, 4096) {}
    let text = String::from_utf8_lossy(&read);
    assert!(
        text.ends_with("transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n"),
        "{text}"
    );
}

#[test]
fn a_client_s_goaway_changes_nothing() {
    let client = Client::new();
    let mut session = started(&client);
    let mut input = Vec::new();
    frame::put_goaway(&mut input, 0, 0xff);
    frame::put(&mut input, PING, 0, 0, b"pingpong");
    session.receive(&input);
    assert!(!session.failed() && !session.going_away());
    let found = drain(&mut session);
    assert_eq!(goaway_code(&found), None);
    assert!(found
        .iter()
        .any(|(h, p)| h.kind == PING && h.flags & ACK != 0 && p == b"pingpong"));
}
