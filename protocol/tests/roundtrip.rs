//! Every message variant survives encode_frame, a real socket and the
//! frame reader, alone, back to back, and at 1 MiB.

mod common;

use std::io::Write;
use std::os::fd::AsFd;

use common::{
    from_helper_samples, from_runner_samples, pair, to_helper_samples, to_runner_samples,
};
use protocol::{
    decode_body, encode_frame, Body, Channel, ExitInfo, FrameReader, FromHelper, FromRunner,
    LookupReply, Message, Outcome, ReadStatus, Received, Refusal, ToHelper, ToRunner,
};

/// Reads with blocking `read_from` until one message is complete.
fn read_one<M: Message>(
    reader: &mut FrameReader,
    sock: std::os::fd::BorrowedFd<'_>,
) -> Received<M> {
    loop {
        if let Some(received) = reader.next_message::<M>().expect("decode") {
            return received;
        }
        match reader.read_from(sock, false).expect("read") {
            ReadStatus::Data(_) => {}
            other => panic!("unexpected {other:?} before the frame was complete"),
        }
    }
}

#[test]
fn every_variant_round_trips_one_frame_at_a_time() {
    let (mut tx, rx) = pair();
    let mut reader = FrameReader::new();
    for message in to_helper_samples() {
        tx.write_all(&encode_frame(&message).expect("encode"))
            .expect("write");
        let received = read_one::<ToHelper>(&mut reader, rx.as_fd());
        assert_eq!(received.message, message);
        assert!(received.fds.is_empty());
    }
    for message in from_helper_samples() {
        tx.write_all(&encode_frame(&message).expect("encode"))
            .expect("write");
        let received = read_one::<FromHelper>(&mut reader, rx.as_fd());
        assert_eq!(received.message, message);
        assert!(received.fds.is_empty());
    }
    for message in to_runner_samples() {
        tx.write_all(&encode_frame(&message).expect("encode"))
            .expect("write");
        let received = read_one::<ToRunner>(&mut reader, rx.as_fd());
        assert_eq!(received.message, message);
        assert!(received.fds.is_empty());
    }
    for message in from_runner_samples() {
        tx.write_all(&encode_frame(&message).expect("encode"))
            .expect("write");
        let received = read_one::<FromRunner>(&mut reader, rx.as_fd());
        assert_eq!(received.message, message);
        assert!(received.fds.is_empty());
    }
    assert_eq!(reader.pending(), 0);
    drop(tx);
    assert_eq!(
        reader.read_from(rx.as_fd(), false).expect("read"),
        ReadStatus::Closed
    );
    reader.finish().expect("clean end");
}

#[test]
fn frames_written_back_to_back_come_out_in_order() {
    let (mut tx, rx) = pair();
    let samples = from_helper_samples();
    let mut all = Vec::new();
    for message in &samples {
        all.extend(encode_frame(message).expect("encode"));
    }
    tx.write_all(&all).expect("write");
    drop(tx);
    let mut channel = Channel::new(rx);
    for expected in &samples {
        let received = channel
            .recv::<FromHelper>()
            .expect("recv")
            .expect("a message");
        assert_eq!(&received.message, expected);
    }
    assert!(channel.recv::<FromHelper>().expect("clean eof").is_none());
}

#[test]
fn the_frame_is_a_little_endian_length_then_the_body() {
    for message in from_helper_samples() {
        let frame = encode_frame(&message).expect("encode");
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - 4);
        assert_eq!(
            decode_body::<FromHelper>(&frame[4..]).expect("decode"),
            message
        );
    }
}

#[test]
fn a_one_mebibyte_inline_body_round_trips() {
    let bytes = common::content(1 << 20);
    let message = FromHelper::Lookup(LookupReply {
        id: 42,
        outcome: Outcome::File {
            meta: common::meta(),
            body: Body::Inline(bytes.clone()),
        },
    });
    let (tx, rx) = pair();
    // Through the raw reader, fed by a writer thread (the socket buffer
    // is much smaller than the frame).
    let frame = encode_frame(&message).expect("encode");
    let writer = std::thread::spawn(move || {
        let mut tx = tx;
        tx.write_all(&frame).expect("write");
        tx
    });
    let mut reader = FrameReader::new();
    let received = read_one::<FromHelper>(&mut reader, rx.as_fd());
    assert_eq!(received.message, message);
    let tx = writer.join().expect("writer thread");

    // And through the blocking channel in both directions.
    let mut sender = Channel::new(tx);
    let mut receiver = Channel::new(rx);
    let writer = std::thread::spawn(move || sender.send(&message, &[]).map(|()| sender));
    let received = receiver
        .recv::<FromHelper>()
        .expect("recv")
        .expect("a message");
    writer.join().expect("writer thread").expect("send");
    match received.message {
        FromHelper::Lookup(LookupReply {
            outcome:
                Outcome::File {
                    body: Body::Inline(got),
                    ..
                },
            ..
        }) => assert!(got == bytes),
        other => panic!("unexpected {:?}", std::mem::discriminant(&other)),
    }
}

#[test]
fn a_body_above_the_frame_limit_cannot_be_encoded() {
    let message = FromHelper::Lookup(LookupReply {
        id: 1,
        outcome: Outcome::File {
            meta: common::meta(),
            body: Body::Inline(vec![0u8; protocol::MAX_FRAME_LEN + 1]),
        },
    });
    let err = encode_frame(&message).expect_err("too large to encode");
    assert!(
        matches!(
            err,
            protocol::Error::FrameTooLarge(_) | protocol::Error::Encode(_)
        ),
        "{err:?}"
    );
    // Channel::send refuses it before writing anything.
    let (tx, rx) = pair();
    let mut channel = Channel::new(tx);
    assert!(channel.send(&message, &[]).is_err());
    rx.set_nonblocking(true).expect("nonblocking");
    let mut reader = FrameReader::new();
    assert_eq!(
        reader.read_from(rx.as_fd(), true).expect("read"),
        ReadStatus::WouldBlock
    );
}

#[test]
fn cgi_messages_round_trip_through_the_blocking_channel() {
    let (a, b) = pair();
    let mut server = Channel::new(a);
    let mut runner = Channel::new(b);
    for message in to_runner_samples() {
        server.send(&message, &[]).expect("send");
        let received = runner.recv::<ToRunner>().expect("recv").expect("a message");
        assert_eq!(received.message, message);
        assert!(received.fds.is_empty());
    }
    for message in from_runner_samples() {
        runner.send(&message, &[]).expect("send");
        let received = server
            .recv::<FromRunner>()
            .expect("recv")
            .expect("a message");
        assert_eq!(received.message, message);
        assert!(received.fds.is_empty());
    }
    drop(runner);
    assert!(server.recv::<FromRunner>().expect("clean eof").is_none());
}

#[test]
fn cgi_descriptor_counts() {
    for message in to_runner_samples() {
        assert_eq!(message.descriptor_count(), 0, "{message:?}");
    }
    for message in from_runner_samples() {
        assert_eq!(message.descriptor_count(), 0, "{message:?}");
    }
    let started = FromRunner::Started { id: 1, pid: 42 };
    assert_eq!(started.descriptor_count(), 2);
    assert_eq!(protocol::STARTED_STDIN, 0);
    assert_eq!(protocol::STARTED_STDOUT, 1);
}

#[test]
fn cgi_refusals_and_exits_read_well() {
    assert_eq!(Refusal::NotFound.to_string(), "not found");
    assert!(Refusal::Forbidden("not executable".into())
        .to_string()
        .contains("not executable"));
    assert!(Refusal::ExecFailed("bad interpreter".into())
        .to_string()
        .contains("bad interpreter"));
    assert!(Refusal::Overloaded.to_string().contains("too many"));
    assert_eq!(ExitInfo::Code(3).to_string(), "exit status 3");
    assert_eq!(ExitInfo::Signal(9).to_string(), "killed by signal 9");
    assert!(ExitInfo::Code(0).success());
    assert!(!ExitInfo::Code(1).success());
    assert!(!ExitInfo::Signal(15).success());
}
