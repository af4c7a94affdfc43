//! Malformed input is an error value, never a panic, and only the channel
//! it arrived on is affected: truncated frames, oversized length prefixes,
//! garbage bodies, a missing descriptor, and frames that trickle in.

mod common;

use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{getsockopt, setsockopt, sockopt};

use common::{assert_channel_works, descriptor_reply, pair};
use protocol::frame::HEADER_LEN;
use protocol::{
    decode_body, encode_frame, Channel, Error, FrameReader, FrameWriter, FromHelper, Hello,
    LookupRequest, ReadStatus, Role, ToHelper, MAX_FRAME_LEN,
};

fn lookup_frame() -> Vec<u8> {
    encode_frame(&ToHelper::Lookup(LookupRequest {
        id: 99,
        path: "some/where/index.html".into(),
        known: Some(common::meta()),
    }))
    .expect("encode")
}

#[test]
fn a_peer_closing_mid_frame_is_truncated() {
    let frame = lookup_frame();
    for cut in [
        1,
        HEADER_LEN - 1,
        HEADER_LEN,
        HEADER_LEN + 1,
        frame.len() - 1,
    ] {
        let (mut tx, rx) = pair();
        let (other_tx, other_rx) = pair();
        tx.write_all(&frame[..cut]).expect("write");
        drop(tx);
        let mut channel = Channel::new(rx);
        match channel.recv::<ToHelper>() {
            Err(Error::Truncated(pending)) => assert_eq!(pending, cut),
            other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
        }
        assert_channel_works(other_tx, other_rx);
    }
}

#[test]
fn a_whole_frame_then_a_cut_one_gives_the_first_then_truncated() {
    let frame = lookup_frame();
    let (mut tx, rx) = pair();
    tx.write_all(&frame).expect("write");
    tx.write_all(&frame[..5]).expect("write");
    drop(tx);
    let mut channel = Channel::new(rx);
    assert!(channel.recv::<ToHelper>().expect("first frame").is_some());
    assert!(matches!(
        channel.recv::<ToHelper>(),
        Err(Error::Truncated(5))
    ));
}

#[test]
fn an_oversized_length_prefix_is_refused_at_once() {
    for len in [MAX_FRAME_LEN as u32 + 1, u32::MAX] {
        let (mut tx, rx) = pair();
        let (other_tx, other_rx) = pair();
        // Only the prefix: a reader that tried to wait for (or allocate)
        // the body would block until the read timeout instead.
        tx.write_all(&len.to_le_bytes()).expect("write");
        let started = Instant::now();
        let mut channel = Channel::new(rx);
        match channel.recv::<FromHelper>() {
            Err(Error::FrameTooLarge(n)) => assert_eq!(n, len as usize),
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        // A reader that waited for the body would sit until the pair's
        // 30 s read timeout; half of that is still generous for one
        // 4-byte read on a loaded machine.
        let took = started.elapsed();
        assert!(
            took < common::READ_TIMEOUT / 2,
            "refused only after {took:?}"
        );
        assert!(protocol::frame::body_len(len.to_le_bytes()).is_err());
        assert_channel_works(other_tx, other_rx);
    }
}

#[test]
fn a_prefix_of_exactly_the_maximum_is_accepted_and_waits() {
    let (mut tx, rx) = pair();
    rx.set_nonblocking(true).expect("nonblocking");
    tx.write_all(&(MAX_FRAME_LEN as u32).to_le_bytes())
        .expect("write");
    let mut reader = FrameReader::new();
    assert_eq!(
        reader.read_from(rx.as_fd(), true).expect("read"),
        ReadStatus::Data(HEADER_LEN)
    );
    assert!(reader
        .next_message::<FromHelper>()
        .expect("not an error")
        .is_none());
    assert_eq!(reader.pending(), HEADER_LEN);
    drop(tx);
    assert_eq!(
        reader.read_from(rx.as_fd(), true).expect("read"),
        ReadStatus::Closed
    );
    assert!(matches!(reader.finish(), Err(Error::Truncated(HEADER_LEN))));
}

/// Frames a body as-is, without checking it.
fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

#[test]
fn garbage_bodies_are_decode_errors() {
    let valid = encode_frame(&FromHelper::Hello(Hello::new(Role::Helper))).expect("encode");
    let mut trailing = valid[HEADER_LEN..].to_vec();
    trailing.push(0);
    let bodies: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 16],
        vec![9],          // no such variant
        vec![0, 0xfb],    // a varint marker with nothing after it
        vec![1, 1, 0, 0], // a lookup reply that stops short
        // A lookup reply whose inline body claims 2^40 bytes: refused by
        // the codec's limit, not allocated.
        vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 253, 0, 0, 0, 0, 0, 1, 0, 0],
        // A string that is not UTF-8.
        vec![1, 1, 5, 2, 0xc3, 0x28],
        trailing,
    ];
    for body in bodies {
        let (mut tx, rx) = pair();
        let (other_tx, other_rx) = pair();
        tx.write_all(&raw_frame(&body)).expect("write");
        let mut channel = Channel::new(rx);
        match channel.recv::<FromHelper>() {
            Err(Error::Decode(_)) => {}
            other => panic!("body {body:?}: expected Decode, got {other:?}"),
        }
        assert!(matches!(
            decode_body::<FromHelper>(&body),
            Err(Error::Decode(_))
        ));
        assert_channel_works(other_tx, other_rx);
    }
}

#[test]
fn random_bodies_never_panic() {
    // A small xorshift generator: deterministic, no extra dependency.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut samples: Vec<Vec<u8>> = Vec::new();
    for message in common::from_helper_samples() {
        samples.push(encode_frame(&message).expect("encode")[HEADER_LEN..].to_vec());
    }
    for message in common::to_helper_samples() {
        samples.push(encode_frame(&message).expect("encode")[HEADER_LEN..].to_vec());
    }
    for round in 0..20_000 {
        let body: Vec<u8> = if round % 2 == 0 {
            // Pure noise.
            let len = (next() % 64) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            // A valid body with a few bytes flipped or cut short.
            let mut body = samples[(next() as usize) % samples.len()].clone();
            for _ in 0..(next() % 4) {
                if !body.is_empty() {
                    let i = (next() as usize) % body.len();
                    body[i] = next() as u8;
                }
            }
            if next() % 3 == 0 {
                let keep = (next() as usize) % (body.len() + 1);
                body.truncate(keep);
            }
            body
        };
        let _ = decode_body::<FromHelper>(&body);
        let _ = decode_body::<ToHelper>(&body);
        if round % 50 != 0 {
            continue;
        }
        // Now and then through a real socket and the reader as well.
        let mut reader = FrameReader::new();
        let (mut tx, rx) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        tx.write_all(&raw_frame(&body)).expect("write");
        drop(tx);
        let _ = reader.read_from(rx.as_fd(), false);
        let _ = reader.next_message::<FromHelper>();
    }
}

#[test]
fn a_message_claiming_a_descriptor_without_one_is_missing_descriptor() {
    let (mut tx, rx) = pair();
    let (other_tx, other_rx) = pair();
    // A plain write: the frame says "descriptor" but none is attached.
    tx.write_all(&encode_frame(&descriptor_reply(3, 100)).expect("encode"))
        .expect("write");
    let mut channel = Channel::new(rx);
    assert!(matches!(
        channel.recv::<FromHelper>(),
        Err(Error::MissingDescriptor)
    ));
    assert_channel_works(other_tx, other_rx);
}

#[test]
fn an_empty_nonblocking_socket_would_block() {
    let (tx, rx) = pair();
    rx.set_nonblocking(true).expect("nonblocking");
    let mut reader = FrameReader::new();
    for _ in 0..3 {
        assert_eq!(
            reader.read_from(rx.as_fd(), true).expect("read"),
            ReadStatus::WouldBlock
        );
        assert!(reader
            .next_message::<ToHelper>()
            .expect("no error")
            .is_none());
    }
    assert_eq!(reader.pending(), 0);
    drop(tx);
    assert_eq!(
        reader.read_from(rx.as_fd(), true).expect("read"),
        ReadStatus::Closed
    );
    reader.finish().expect("nothing pending");
}

#[test]
fn frames_trickling_in_one_byte_at_a_time_are_assembled() {
    let (mut tx, rx) = pair();
    rx.set_nonblocking(true).expect("nonblocking");
    let messages: Vec<FromHelper> = common::from_helper_samples();
    let mut bytes = Vec::new();
    for message in &messages {
        bytes.extend(encode_frame(message).expect("encode"));
    }
    let mut reader = FrameReader::new();
    let mut got = Vec::new();
    for byte in &bytes {
        tx.write_all(std::slice::from_ref(byte)).expect("write");
        assert_eq!(
            reader.read_from(rx.as_fd(), true).expect("read"),
            ReadStatus::Data(1)
        );
        while let Some(received) = reader.next_message::<FromHelper>().expect("decode") {
            got.push(received.message);
        }
        assert_eq!(
            reader.read_from(rx.as_fd(), true).expect("read"),
            ReadStatus::WouldBlock
        );
    }
    assert_eq!(got, messages);
    assert_eq!(reader.pending(), 0);
}

#[test]
fn a_blocking_channel_assembles_a_slow_trickle() {
    let (tx, rx) = pair();
    let frame = lookup_frame();
    let expected = protocol::decode_body::<ToHelper>(&frame[HEADER_LEN..]).expect("decode");
    let writer = std::thread::spawn(move || {
        let mut tx = tx;
        for byte in frame {
            tx.write_all(&[byte]).expect("write");
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    let mut channel = Channel::new(rx);
    let received = channel
        .recv::<ToHelper>()
        .expect("recv")
        .expect("a message");
    assert_eq!(received.message, expected);
    writer.join().expect("writer");
    assert!(channel.recv::<ToHelper>().expect("clean eof").is_none());
}

#[test]
fn the_frame_writer_queues_and_flushes_without_blocking() {
    let (tx, rx) = pair();
    tx.set_nonblocking(true).expect("nonblocking");
    let mut writer = FrameWriter::new();
    assert!(writer.is_empty());
    assert!(matches!(
        writer.push(&descriptor_reply(1, 1)),
        Err(Error::Encode(_))
    ));
    // A small send buffer, whatever the system's default: on a Unix
    // stream socket it bounds everything queued towards the peer.
    setsockopt(&tx, sockopt::SndBuf, &(16 * 1024)).expect("SO_SNDBUF");
    let sndbuf = getsockopt(&tx, sockopt::SndBuf).expect("SO_SNDBUF");
    let message = |id| {
        ToHelper::Lookup(LookupRequest {
            id,
            path: "x".repeat(200),
            known: None,
        })
    };
    // Far more than the socket buffer holds, as the kernel really set it.
    let frame_len = encode_frame(&message(0)).expect("encode").len();
    let count = 5000.max(4 * sndbuf / frame_len) as u64;
    for id in 0..count {
        writer.push(&message(id)).expect("push");
    }
    assert!(
        !writer.flush(tx.as_fd()).expect("flush"),
        "the socket should fill up"
    );
    let mut channel = Channel::new(rx);
    let mut next_id = 0;
    while next_id < count {
        while !writer.is_empty() && writer.flush(tx.as_fd()).expect("flush") {}
        let received = channel
            .recv::<ToHelper>()
            .expect("recv")
            .expect("a message");
        assert_eq!(received.message, message(next_id));
        next_id += 1;
    }
    assert!(writer.is_empty());
}

#[test]
fn errors_say_what_went_wrong() {
    assert!(Error::FrameTooLarge(5 << 20)
        .to_string()
        .contains(&MAX_FRAME_LEN.to_string()));
    assert!(Error::Truncated(3).to_string().contains('3'));
    let would_block = Error::Io(std::io::Error::from(std::io::ErrorKind::WouldBlock));
    assert!(would_block.is_would_block());
    assert!(!Error::MissingDescriptor.is_would_block());
}
