//! Descriptors passed with SCM_RIGHTS: through a socketpair in this
//! process, through the non-blocking reader, and back from a real child
//! process; plus the ways a peer can get descriptors wrong.

mod common;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{content, descriptor_reply, pair, TempFile};
use protocol::fdpass::send_with_fds;
use protocol::{
    encode_frame, Body, Channel, Error, FrameReader, FromHelper, FromRunner, Hello, LookupReply,
    Message, Outcome, ReadStatus, Received, Role, ToHelper, STARTED_STDIN, STARTED_STDOUT,
};

fn read_all(fd: OwnedFd) -> Vec<u8> {
    let mut file = File::from(fd);
    file.seek(SeekFrom::Start(0)).expect("seek");
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .expect("read passed descriptor");
    bytes
}

fn is_cloexec(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GETFD on a descriptor we hold open.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    assert!(flags >= 0, "F_GETFD failed");
    flags & libc::FD_CLOEXEC != 0
}

#[test]
fn a_descriptor_arrives_through_the_blocking_channel() {
    let bytes = content(300_000);
    let temp = TempFile::new("blocking", &bytes);
    let file = File::open(&temp.0).expect("open");
    let (a, b) = pair();
    let mut tx = Channel::new(a);
    let mut rx = Channel::new(b);
    let message = descriptor_reply(9, bytes.len() as u64);
    tx.send(&message, &[file.as_fd()]).expect("send");
    // Our copy can go: the receiver has its own.
    drop(file);
    let received = rx.recv::<FromHelper>().expect("recv").expect("a message");
    assert_eq!(received.message, message);
    let fd = received.fds.into_iter().next().expect("a descriptor");
    assert!(
        is_cloexec(fd.as_fd()),
        "received descriptors are close-on-exec"
    );
    assert_eq!(read_all(fd), bytes);
}

#[test]
fn descriptors_interleaved_with_plain_messages_stay_with_their_frames() {
    let first = TempFile::new("first", b"first file");
    let second = TempFile::new("second", b"second file");
    let (a, b) = pair();
    let mut tx = Channel::new(a);
    let mut rx = Channel::new(b);
    let plain = FromHelper::Lookup(LookupReply {
        id: 2,
        outcome: Outcome::NotFound,
    });
    tx.send(
        &descriptor_reply(1, 10),
        &[File::open(&first.0).expect("open").as_fd()],
    )
    .expect("send");
    tx.send(&plain, &[]).expect("send");
    tx.send(
        &descriptor_reply(3, 11),
        &[File::open(&second.0).expect("open").as_fd()],
    )
    .expect("send");
    let one = rx.recv::<FromHelper>().expect("recv").expect("msg");
    let two = rx.recv::<FromHelper>().expect("recv").expect("msg");
    let three = rx.recv::<FromHelper>().expect("recv").expect("msg");
    assert_eq!(
        read_all(one.fds.into_iter().next().expect("fd")),
        b"first file"
    );
    assert_eq!(two.message, plain);
    assert!(two.fds.is_empty());
    assert_eq!(
        read_all(three.fds.into_iter().next().expect("fd")),
        b"second file"
    );
}

#[test]
fn a_descriptor_arrives_through_the_nonblocking_reader() {
    let bytes = content(5000);
    let temp = TempFile::new("nonblocking", &bytes);
    let (a, b) = pair();
    b.set_nonblocking(true).expect("nonblocking");
    let mut reader = FrameReader::new();
    assert_eq!(
        reader.read_from(b.as_fd(), true).expect("read"),
        ReadStatus::WouldBlock
    );
    assert!(reader
        .next_message::<FromHelper>()
        .expect("nothing yet")
        .is_none());

    let mut tx = Channel::new(a);
    let message = descriptor_reply(77, bytes.len() as u64);
    tx.send(&message, &[File::open(&temp.0).expect("open").as_fd()])
        .expect("send");

    let deadline = Instant::now() + common::READ_TIMEOUT;
    let received = loop {
        if let Some(received) = reader.next_message::<FromHelper>().expect("decode") {
            break received;
        }
        match reader.read_from(b.as_fd(), true).expect("read") {
            ReadStatus::Closed => panic!("closed before the message"),
            ReadStatus::WouldBlock | ReadStatus::Data(_) => {}
        }
        assert!(Instant::now() < deadline, "message never arrived");
    };
    assert_eq!(received.message, message);
    assert_eq!(
        read_all(received.fds.into_iter().next().expect("a descriptor")),
        bytes
    );
    assert_eq!(
        reader.read_from(b.as_fd(), true).expect("read"),
        ReadStatus::WouldBlock
    );
}

/// Set in the environment of the re-executed test binary: the descriptor
/// number of its inherited socket.
const CHILD_SOCKET: &str = "AMPED_PROTOCOL_TEST_CHILD_SOCKET";
/// The file the child opens and passes back.
const CHILD_FILE: &str = "AMPED_PROTOCOL_TEST_CHILD_FILE";

/// Not a test of its own: the child role of
/// `a_descriptor_arrives_from_a_child_process`, which runs this test
/// binary again with only this test selected and the variables set. In an
/// ordinary run it returns at once.
#[test]
fn child_role_sends_a_descriptor() {
    let (Ok(fd), Ok(path)) = (std::env::var(CHILD_SOCKET), std::env::var(CHILD_FILE)) else {
        return;
    };
    let fd: i32 = fd.parse().expect("descriptor number");
    // SAFETY: the parent passed us this socket for our exclusive use.
    let mut channel = Channel::from_fd(unsafe { OwnedFd::from_raw_fd(fd) });
    let Some(Received {
        message: ToHelper::Hello(hello),
        ..
    }) = channel.recv::<ToHelper>().expect("recv")
    else {
        panic!("expected hello")
    };
    hello.check_version().expect("same version");
    channel
        .send(&FromHelper::Hello(Hello::new(Role::Helper)), &[])
        .expect("send");
    let file = File::open(&path).expect("open");
    let size = file.metadata().expect("stat").len();
    channel
        .send(&descriptor_reply(5, size), &[file.as_fd()])
        .expect("send");
    // Wait for the parent to close, so the descriptor is in flight while
    // our copy is already gone.
    drop(file);
    assert!(channel.recv::<ToHelper>().expect("eof").is_none());
}

#[test]
fn a_descriptor_arrives_from_a_child_process() {
    if std::env::var_os(CHILD_SOCKET).is_some() {
        return; // we are the child of another instance of this test
    }
    let bytes = content(123_457);
    let temp = TempFile::new("child", &bytes);
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    ours.set_read_timeout(Some(common::READ_TIMEOUT))
        .expect("timeout");
    let fd = theirs.as_raw_fd();
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "--exact",
        "child_role_sends_a_descriptor",
        "--test-threads=1",
        "--nocapture",
    ])
    .env(CHILD_SOCKET, fd.to_string())
    .env(CHILD_FILE, &temp.0)
    .stdin(Stdio::null())
    .stdout(Stdio::null());
    // SAFETY: fcntl is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn child");
    drop(theirs);

    let mut channel = Channel::new(ours);
    channel
        .send(&ToHelper::Hello(Hello::new(Role::Server)), &[])
        .expect("send");
    let Some(Received {
        message: FromHelper::Hello(hello),
        ..
    }) = channel.recv::<FromHelper>().expect("recv")
    else {
        panic!("expected hello")
    };
    assert_eq!(hello.pid, child.id());
    let received = channel
        .recv::<FromHelper>()
        .expect("recv")
        .expect("a message");
    assert_eq!(received.message, descriptor_reply(5, bytes.len() as u64));
    let fd = received.fds.into_iter().next().expect("a descriptor");
    drop(channel);
    assert!(child.wait().expect("wait").success(), "child role failed");
    // The child is gone; the descriptor still reads the file.
    assert_eq!(read_all(fd), bytes);
}

#[test]
fn a_descriptor_no_message_claims_is_an_error_at_end_of_file() {
    let temp = TempFile::new("unclaimed", b"x");
    let (a, b) = pair();
    let file = File::open(&temp.0).expect("open");
    let frame = encode_frame(&ToHelper::Hello(Hello::new(Role::Server))).expect("encode");
    let sent = send_with_fds(a.as_fd(), &frame, &[file.as_fd()], false).expect("send");
    assert_eq!(sent, frame.len());
    drop(a);
    let mut rx = Channel::new(b);
    assert!(rx
        .recv::<ToHelper>()
        .expect("the hello itself decodes")
        .is_some());
    assert!(matches!(
        rx.recv::<ToHelper>(),
        Err(Error::UnexpectedDescriptor)
    ));
}

/// How many of this process's descriptors refer to `path`.
fn open_descriptors_of(path: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|target| target == path))
        .count()
}

#[test]
fn descriptors_with_no_room_are_closed_and_their_message_comes_without_them() {
    // More descriptors than the reader has room for stand in for a
    // process at its descriptor limit: either way the kernel says
    // MSG_CTRUNC after installing what fits.
    let temp = TempFile::new("ctrunc", b"x");
    let path = std::fs::canonicalize(&temp.0).expect("canonical path");
    let sent = protocol::fdpass::MAX_FDS_PER_READ + 3;
    let files: Vec<File> = (0..sent)
        .map(|_| File::open(&temp.0).expect("open"))
        .collect();
    let fds: Vec<BorrowedFd<'_>> = files.iter().map(|f| f.as_fd()).collect();
    let (a, b) = pair();
    let lost = descriptor_reply(1, 1);
    let frame = encode_frame(&lost).expect("encode");
    send_with_fds(a.as_fd(), &frame, &fds, false).expect("send");
    drop(fds);
    let mut reader = FrameReader::new();
    let result = reader.read_from(b.as_fd(), false);
    assert!(
        matches!(result, Ok(ReadStatus::Data(n)) if n == frame.len()),
        "{result:?}"
    );
    // The message is still read, without its descriptor: the receiver
    // answers for it, and the channel goes on.
    let received = reader
        .next_message::<FromHelper>()
        .expect("a message")
        .expect("whole");
    assert_eq!(received.message, lost);
    assert!(received.fds.is_empty());
    // The descriptors that did fit were closed, not leaked: only our own
    // copies remain open.
    assert_eq!(open_descriptors_of(&path), sent);
    drop(files);
    assert_eq!(open_descriptors_of(&path), 0);
    // The next message brings its descriptor as usual.
    let next = TempFile::new("after-ctrunc", b"after");
    let frame = encode_frame(&descriptor_reply(2, 5)).expect("encode");
    let file = File::open(&next.0).expect("open");
    send_with_fds(a.as_fd(), &frame, &[file.as_fd()], false).expect("send");
    reader.read_from(b.as_fd(), false).expect("read");
    let received = reader
        .next_message::<FromHelper>()
        .expect("a message")
        .expect("whole");
    assert_eq!(
        read_all(received.fds.into_iter().next().expect("fd")),
        b"after"
    );
    common::assert_channel_works(a, b);
}

#[test]
fn recv_with_fds_still_calls_truncation_an_error() {
    let temp = TempFile::new("ctrunc-plain", b"x");
    let files: Vec<File> = (0..protocol::fdpass::MAX_FDS_PER_READ + 1)
        .map(|_| File::open(&temp.0).expect("open"))
        .collect();
    let fds: Vec<BorrowedFd<'_>> = files.iter().map(|f| f.as_fd()).collect();
    let (a, b) = pair();
    send_with_fds(a.as_fd(), b"x", &fds, false).expect("send");
    let mut buf = [0u8; 16];
    let mut got = Vec::new();
    let result = protocol::fdpass::recv_with_fds(b.as_fd(), &mut buf, &mut got, false);
    assert!(matches!(result, Err(Error::ControlTruncated)), "{result:?}");
    assert!(got.is_empty());
}

#[test]
fn a_flood_of_unclaimed_descriptors_is_refused() {
    let temp = TempFile::new("flood", b"x");
    let files: Vec<File> = (0..6).map(|_| File::open(&temp.0).expect("open")).collect();
    let fds: Vec<BorrowedFd<'_>> = files.iter().map(|f| f.as_fd()).collect();
    let (a, b) = pair();
    for _ in 0..4 {
        send_with_fds(a.as_fd(), b"\0", &fds, false).expect("send");
    }
    let mut reader = FrameReader::new();
    let mut result = Ok(ReadStatus::WouldBlock);
    for _ in 0..4 {
        result = reader.read_from(b.as_fd(), false);
        if result.is_err() {
            break;
        }
    }
    assert!(
        matches!(result, Err(Error::UnexpectedDescriptor)),
        "{result:?}"
    );
}

#[test]
fn channel_send_refuses_a_descriptor_count_that_does_not_match() {
    let temp = TempFile::new("mismatch", b"x");
    let file = File::open(&temp.0).expect("open");
    let (a, b) = pair();
    let mut tx = Channel::new(a);
    // Claims one, none given.
    assert!(matches!(
        tx.send(&descriptor_reply(1, 1), &[]),
        Err(Error::Encode(_))
    ));
    // Claims none, one given.
    let plain = FromHelper::Hello(Hello::new(Role::Helper));
    assert!(matches!(
        tx.send(&plain, &[file.as_fd()]),
        Err(Error::Encode(_))
    ));
    // Nothing was written: the next message is the first the peer sees.
    tx.send(&plain, &[]).expect("send");
    let mut rx = Channel::new(b);
    assert_eq!(
        rx.recv::<FromHelper>().expect("recv").expect("msg").message,
        plain
    );
}

#[test]
fn an_inline_body_travels_without_a_descriptor() {
    let (a, b) = pair();
    let mut tx = Channel::new(a);
    let message = FromHelper::Lookup(LookupReply {
        id: 1,
        outcome: Outcome::File {
            meta: common::meta(),
            body: Body::Inline(b"abc".to_vec()),
        },
    });
    tx.send(&message, &[]).expect("send");
    let mut rx = Channel::new(b);
    let received = rx.recv::<FromHelper>().expect("recv").expect("msg");
    assert_eq!(received.message, message);
    assert!(received.fds.is_empty());
}

/// Two pipes standing in for a started script's stdin and stdout: the
/// ends the runner passes (stdin's write end, stdout's read end) and the
/// ends the "script" keeps.
struct ScriptPipes {
    stdin_write: OwnedFd,
    stdin_read: OwnedFd,
    stdout_write: OwnedFd,
    stdout_read: OwnedFd,
}

impl ScriptPipes {
    fn new() -> ScriptPipes {
        // Close-on-exec: a child process started meanwhile by another test
        // thread must not keep a write end open, or reading to
        // end-of-file here would wait for that child to exit.
        let (stdin_read, stdin_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let (stdout_read, stdout_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        ScriptPipes {
            stdin_write,
            stdin_read,
            stdout_write,
            stdout_read,
        }
    }

    /// The two ends a `Started` carries, in protocol order.
    fn passed(&self) -> [BorrowedFd<'_>; 2] {
        [self.stdin_write.as_fd(), self.stdout_read.as_fd()]
    }
}

/// Checks that `fds` are a working stdin write end (at [`STARTED_STDIN`])
/// and stdout read end (at [`STARTED_STDOUT`]) for `pipes`: bytes written
/// to the first come out of the script's stdin, bytes the script writes to
/// its stdout come out of the second.
fn assert_script_ends(fds: Vec<OwnedFd>, pipes: ScriptPipes, tag: &str) {
    assert_eq!(fds.len(), 2, "{tag}: two descriptors");
    for fd in &fds {
        assert!(is_cloexec(fd.as_fd()), "{tag}: received close-on-exec");
    }
    let mut slots: Vec<Option<OwnedFd>> = fds.into_iter().map(Some).collect();
    let (Some(stdin), Some(stdout)) = (slots[STARTED_STDIN].take(), slots[STARTED_STDOUT].take())
    else {
        panic!("{tag}: STARTED_STDIN and STARTED_STDOUT name the same slot")
    };
    let ScriptPipes {
        stdin_write,
        stdin_read,
        stdout_write,
        stdout_read,
    } = pipes;
    // Our copies of the passed ends go, as the runner's do: the received
    // descriptors alone keep the pipes open.
    drop(stdin_write);
    drop(stdout_read);

    let mut stdin = File::from(stdin);
    stdin
        .write_all(format!("request body {tag}").as_bytes())
        .expect("write to the passed stdin end");
    drop(stdin);
    let mut got = String::new();
    File::from(stdin_read)
        .read_to_string(&mut got)
        .expect("read the script's stdin");
    assert_eq!(got, format!("request body {tag}"));

    let mut script_out = File::from(stdout_write);
    script_out
        .write_all(format!("Content-Type: text/plain\r\n\r\n{tag}").as_bytes())
        .expect("write the script's stdout");
    drop(script_out);
    let mut got = String::new();
    File::from(stdout)
        .read_to_string(&mut got)
        .expect("read from the passed stdout end");
    assert_eq!(got, format!("Content-Type: text/plain\r\n\r\n{tag}"));
}

#[test]
fn two_descriptors_arrive_in_order_through_the_blocking_channel() {
    let (a, b) = pair();
    let mut tx = Channel::new(a);
    let mut rx = Channel::new(b);
    let pipes = ScriptPipes::new();
    let started = FromRunner::Started { id: 7, pid: 1234 };
    tx.send(&started, &pipes.passed()).expect("send");
    let received = rx.recv::<FromRunner>().expect("recv").expect("a message");
    assert_eq!(received.message, started);
    assert_script_ends(received.fds, pipes, "blocking");
}

#[test]
fn two_descriptor_messages_interleaved_with_others_keep_their_own() {
    let (a, b) = pair();
    let mut tx = Channel::new(a);
    let mut rx = Channel::new(b);
    let first = ScriptPipes::new();
    let second = ScriptPipes::new();
    let temp = TempFile::new("interleaved-cgi", b"helper file");
    let exited = FromRunner::Exited {
        id: 1,
        exit: protocol::ExitInfo::Code(0),
        timed_out: false,
    };
    tx.send(&FromRunner::Started { id: 1, pid: 10 }, &first.passed())
        .expect("send");
    tx.send(&exited, &[]).expect("send");
    tx.send(
        &descriptor_reply(9, 11),
        &[File::open(&temp.0).expect("open").as_fd()],
    )
    .expect("send");
    tx.send(&FromRunner::Started { id: 2, pid: 20 }, &second.passed())
        .expect("send");

    let one = rx.recv::<FromRunner>().expect("recv").expect("msg");
    let two = rx.recv::<FromRunner>().expect("recv").expect("msg");
    let three = rx.recv::<FromHelper>().expect("recv").expect("msg");
    let four = rx.recv::<FromRunner>().expect("recv").expect("msg");
    assert_eq!(one.message, FromRunner::Started { id: 1, pid: 10 });
    assert_eq!(two.message, exited);
    assert!(two.fds.is_empty());
    assert_eq!(three.fds.len(), 1);
    assert_eq!(
        read_all(three.fds.into_iter().next().expect("fd")),
        b"helper file"
    );
    assert_eq!(four.message, FromRunner::Started { id: 2, pid: 20 });
    assert_script_ends(one.fds, first, "first");
    assert_script_ends(four.fds, second, "second");
}

#[test]
fn two_descriptors_arrive_through_the_nonblocking_reader() {
    let (a, b) = pair();
    b.set_nonblocking(true).expect("nonblocking");
    let mut tx = Channel::new(a);
    let pipes = ScriptPipes::new();
    let started = FromRunner::Started { id: 3, pid: 99 };
    tx.send(&started, &pipes.passed()).expect("send");
    let mut reader = FrameReader::new();
    let deadline = Instant::now() + common::READ_TIMEOUT;
    let received = loop {
        if let Some(received) = reader.next_message::<FromRunner>().expect("decode") {
            break received;
        }
        match reader.read_from(b.as_fd(), true).expect("read") {
            ReadStatus::Closed => panic!("closed before the message"),
            ReadStatus::WouldBlock | ReadStatus::Data(_) => {}
        }
        assert!(Instant::now() < deadline, "message never arrived");
    };
    assert_eq!(received.message, started);
    assert_script_ends(received.fds, pipes, "nonblocking");
}

#[test]
fn a_started_without_both_descriptors_is_refused_or_missing() {
    let pipes = ScriptPipes::new();
    let (a, b) = pair();
    let mut tx = Channel::new(a);
    let started = FromRunner::Started { id: 1, pid: 1 };
    // The channel refuses a count that does not match, writing nothing.
    for fds in [&[][..], &pipes.passed()[..1]] {
        assert!(matches!(tx.send(&started, fds), Err(Error::Encode(_))));
    }
    let three = [
        pipes.stdin_write.as_fd(),
        pipes.stdout_read.as_fd(),
        pipes.stdin_read.as_fd(),
    ];
    assert!(matches!(tx.send(&started, &three), Err(Error::Encode(_))));
    // A peer that attaches only one is caught by the reader.
    let frame = encode_frame(&started).expect("encode");
    let sent =
        send_with_fds(tx.socket().as_fd(), &frame, &pipes.passed()[..1], false).expect("send");
    assert_eq!(sent, frame.len());
    drop(tx);
    let mut rx = Channel::new(b);
    assert!(matches!(
        rx.recv::<FromRunner>(),
        Err(Error::MissingDescriptor)
    ));
}

/// A message type that claims more descriptors than any message may.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct Greedy(u8);

impl Message for Greedy {
    fn descriptor_count(&self) -> usize {
        protocol::MAX_DESCRIPTORS_PER_MESSAGE + 1
    }
}

#[test]
fn a_message_claiming_too_many_descriptors_is_a_decode_error() {
    let temp = TempFile::new("greedy", b"x");
    let files: Vec<File> = (0..3).map(|_| File::open(&temp.0).expect("open")).collect();
    let fds: Vec<BorrowedFd<'_>> = files.iter().map(|f| f.as_fd()).collect();
    let (a, b) = pair();
    let frame = encode_frame(&Greedy(1)).expect("encode");
    send_with_fds(a.as_fd(), &frame, &fds, false).expect("send");
    drop(a);
    let mut rx = Channel::new(b);
    assert!(matches!(rx.recv::<Greedy>(), Err(Error::Decode(_))));
}
