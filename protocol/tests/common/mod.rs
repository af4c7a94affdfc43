//! Shared by the protocol integration tests: temporary files, socket
//! pairs and one sample of every message.

#![allow(dead_code)]

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use protocol::{
    Body, CgiRun, Channel, ExitInfo, FileMeta, FromHelper, FromRunner, Hello, LookupReply,
    LookupRequest, Outcome, Received, Refusal, Role, ToHelper, ToRunner,
};

/// A temporary file, removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str, bytes: &[u8]) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("amped-protocol-{}-{name}-{n}", std::process::id()));
        std::fs::write(&path, bytes).expect("write temp file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// How long a read from a [`pair`] may wait: a deadline for data that is
/// normally there at once, generous for a loaded 2-core machine.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected pair whose reads give up after [`READ_TIMEOUT`], so that a
/// regression fails a test instead of hanging it.
pub fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    for s in [&a, &b] {
        s.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
    }
    (a, b)
}

/// Some recognisable file content.
pub fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

pub fn meta() -> FileMeta {
    FileMeta {
        size: 1234,
        mtime_secs: 1_795_797_894,
        mtime_nanos: 999_999_999,
        inode: u64::MAX,
        device: 0x0803,
    }
}

/// Every server-to-helper message shape.
pub fn to_helper_samples() -> Vec<ToHelper> {
    vec![
        ToHelper::Hello(Hello::new(Role::Server)),
        ToHelper::Lookup(LookupRequest {
            id: 0,
            path: String::new(),
            known: None,
        }),
        ToHelper::Lookup(LookupRequest {
            id: u64::MAX,
            path: "docs/ünïcode dir/index.html".into(),
            known: Some(meta()),
        }),
    ]
}

/// Every helper-to-server message shape that carries no descriptor.
pub fn from_helper_samples() -> Vec<FromHelper> {
    let reply = |id, outcome| FromHelper::Lookup(LookupReply { id, outcome });
    vec![
        FromHelper::Hello(Hello::new(Role::Helper)),
        FromHelper::Hello(Hello::new(Role::CgiRunner)),
        reply(
            1,
            Outcome::File {
                meta: meta(),
                body: Body::Inline(b"<h1>hello</h1>".to_vec()),
            },
        ),
        reply(
            2,
            Outcome::File {
                meta: meta(),
                body: Body::Inline(Vec::new()),
            },
        ),
        reply(3, Outcome::Unchanged),
        reply(4, Outcome::Directory),
        reply(5, Outcome::NotFound),
        reply(
            6,
            Outcome::Forbidden {
                reason: "outside the document root".into(),
            },
        ),
        reply(
            7,
            Outcome::Failed {
                reason: "Input/output error".into(),
            },
        ),
    ]
}

/// Every server-to-runner message shape.
pub fn to_runner_samples() -> Vec<ToRunner> {
    vec![
        ToRunner::Hello(Hello::new(Role::Server)),
        ToRunner::Run(CgiRun {
            id: 0,
            script: String::new(),
            env: Vec::new(),
            timeout_ms: 0,
        }),
        ToRunner::Run(CgiRun {
            id: u64::MAX,
            script: "cgi-bin/ünïcode env.cgi".into(),
            env: vec![
                ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
                ("QUERY_STRING".into(), "a=1&b=%20".into()),
                ("EMPTY".into(), String::new()),
                ("HTTP_X_BINARYISH".into(), "\u{1}\t=;".into()),
            ],
            timeout_ms: u64::MAX,
        }),
    ]
}

/// Every runner-to-server message shape that carries no descriptor.
pub fn from_runner_samples() -> Vec<FromRunner> {
    vec![
        FromRunner::Hello(Hello::new(Role::CgiRunner)),
        FromRunner::Refused {
            id: 1,
            refusal: Refusal::NotFound,
        },
        FromRunner::Refused {
            id: 2,
            refusal: Refusal::Forbidden("not executable".into()),
        },
        FromRunner::Refused {
            id: 3,
            refusal: Refusal::ExecFailed("bad interpreter".into()),
        },
        FromRunner::Refused {
            id: 4,
            refusal: Refusal::Overloaded,
        },
        FromRunner::Exited {
            id: 5,
            exit: ExitInfo::Code(0),
            timed_out: false,
        },
        FromRunner::Exited {
            id: 6,
            exit: ExitInfo::Code(-1),
            timed_out: false,
        },
        FromRunner::Exited {
            id: u64::MAX,
            exit: ExitInfo::Signal(9),
            timed_out: true,
        },
    ]
}

/// A reply whose frame carries a descriptor.
pub fn descriptor_reply(id: u64, size: u64) -> FromHelper {
    FromHelper::Lookup(LookupReply {
        id,
        outcome: Outcome::File {
            meta: FileMeta { size, ..meta() },
            body: Body::Descriptor {
                storage: protocol::Storage::PageCache,
            },
        },
    })
}

/// Proves a channel works: one hello each way.
pub fn assert_channel_works(a: UnixStream, b: UnixStream) {
    let mut a = Channel::new(a);
    let mut b = Channel::new(b);
    let hello = ToHelper::Hello(Hello::new(Role::Server));
    a.send(&hello, &[]).expect("send");
    match b.recv::<ToHelper>() {
        Ok(Some(Received { message, fds })) if fds.is_empty() => assert_eq!(message, hello),
        other => panic!("second channel broken: {other:?}"),
    }
    let reply = FromHelper::Hello(Hello::new(Role::Helper));
    b.send(&reply, &[]).expect("send");
    match a.recv::<FromHelper>() {
        Ok(Some(Received { message, fds })) if fds.is_empty() => assert_eq!(message, reply),
        other => panic!("second channel broken: {other:?}"),
    }
}
