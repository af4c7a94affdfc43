//! The messages exchanged between the server and its children.
//!
//! Every child starts with a handshake: the server sends [`Hello`] first,
//! the child checks it and answers with its own [`Hello`], which the server
//! checks in turn. Both ends check with [`Hello::check_peer`]; the
//! message types that open with a hello are [`Greeting`]s.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{Error, FromRunner, ToRunner};

/// Bumped whenever a message changes shape (2: window reads, storage
/// kinds, [`Outcome::Listing`]; 3: the runner's `Accepted`).
pub const PROTOCOL_VERSION: u32 = 3;

/// What a child is.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Helper,
    CgiRunner,
}

impl Role {
    /// The process in a sentence ("expected hello from the server").
    fn described(self) -> &'static str {
        match self {
            Role::Server => "the server",
            Role::Helper => "a helper",
            Role::CgiRunner => "the cgi-runner",
        }
    }
}

/// The first message on every channel, in both directions.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u32,
    pub role: Role,
    pub pid: u32,
}

impl Hello {
    /// A hello from this process in the given role.
    pub fn new(role: Role) -> Self {
        Hello {
            version: PROTOCOL_VERSION,
            role,
            pid: std::process::id(),
        }
    }

    /// Checks that the peer speaks our protocol version.
    pub fn check_version(&self) -> Result<(), Error> {
        if self.version != PROTOCOL_VERSION {
            return Err(Error::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: self.version,
            });
        }
        Ok(())
    }

    /// The whole check of a peer's hello, the same on both ends of every
    /// channel: our protocol version ([`Error::VersionMismatch`]), and the
    /// role we expect at the other end ([`Error::Handshake`]).
    pub fn check_peer(&self, expected: Role) -> Result<(), Error> {
        self.check_version()?;
        if self.role != expected {
            return Err(Error::Handshake(format!(
                "expected hello from {}, got {:?}",
                expected.described(),
                self.role
            )));
        }
        Ok(())
    }
}

/// A message type whose channel opens with a [`Hello`]: the four
/// directions, [`ToHelper`], [`FromHelper`], [`ToRunner`]
/// and [`FromRunner`].
pub trait Greeting: Message {
    /// Our hello, as this message type.
    fn from_hello(hello: Hello) -> Self;

    /// The hello this message is, if it is one.
    fn hello(&self) -> Option<&Hello>;

    /// What the message is, for an error ("expected hello, got a lookup").
    fn kind(&self) -> &'static str;
}

/// Implements [`Greeting`] for a message enum with a `Hello(Hello)`
/// variant, given what each other variant is called.
macro_rules! greeting {
    ($message:ident { $($other:pat => $kind:literal),+ $(,)? }) => {
        impl Greeting for $message {
            fn from_hello(hello: Hello) -> Self {
                $message::Hello(hello)
            }

            fn hello(&self) -> Option<&Hello> {
                match self {
                    $message::Hello(hello) => Some(hello),
                    _ => None,
                }
            }

            fn kind(&self) -> &'static str {
                match self {
                    $message::Hello(_) => "hello",
                    $($other => $kind),+
                }
            }
        }
    };
}

greeting!(ToHelper {
    ToHelper::Lookup(_) => "lookup",
    ToHelper::Read(_) => "read",
    ToHelper::SharedBuffer { .. } => "shared buffer",
});
greeting!(FromHelper {
    FromHelper::Lookup(_) => "lookup reply",
    FromHelper::Read(_) => "read reply",
});
greeting!(ToRunner { ToRunner::Run(_) => "run" });
greeting!(FromRunner {
    FromRunner::Started { .. } => "started",
    FromRunner::Refused { .. } => "refusal",
    FromRunner::Exited { .. } => "exit report",
    FromRunner::Accepted { .. } => "acceptance",
});

/// The most descriptors one message may carry. A decoded message that
/// claims more is a protocol error.
pub const MAX_DESCRIPTORS_PER_MESSAGE: usize = 2;

/// A message type that knows how many descriptors travel with it.
pub trait Message: Serialize + DeserializeOwned {
    /// Number of descriptors attached to this message's frame, from 0 to
    /// [`MAX_DESCRIPTORS_PER_MESSAGE`]. They travel in one `SCM_RIGHTS`
    /// block with the frame's first bytes and arrive, in the order they
    /// were given to [`Channel::send`](crate::Channel::send), in
    /// [`Received::fds`](crate::Received::fds).
    fn descriptor_count(&self) -> usize {
        0
    }
}

/// What identifies one version of a file: if any of these change, the
/// cached copy is stale.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub size: u64,
    pub mtime_secs: i64,
    pub mtime_nanos: u32,
    pub inode: u64,
    pub device: u64,
}

/// Server to helper.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum ToHelper {
    Hello(Hello),
    Lookup(LookupRequest),
    /// Read a window of a file (see [`ReadRequest`]).
    Read(ReadRequest),
    /// The buffer windows are read into: a memfd of `len` bytes, attached.
    SharedBuffer {
        len: u64,
    },
}

impl Message for ToHelper {
    fn descriptor_count(&self) -> usize {
        match self {
            ToHelper::Read(read) => usize::from(read.with_descriptor),
            ToHelper::SharedBuffer { .. } => 1,
            _ => 0,
        }
    }
}

/// Asks a helper to resolve a path beneath the document root.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LookupRequest {
    /// Chosen by the server; echoed in the reply.
    pub id: u64,
    /// Percent-decoded, normalised path relative to the root, without a
    /// leading slash. A trailing slash asks for the directory's index.
    pub path: String,
    /// The version the server has cached, if any: when the file still
    /// matches, the helper answers [`Outcome::Unchanged`].
    pub known: Option<FileMeta>,
}

/// Asks a helper to read `len` bytes at `offset` of a file the server is
/// sending whose pages may not be in memory, and to hand the bytes back.
/// The file is the descriptor attached to the frame when
/// `with_descriptor` is set; otherwise the helper opens `path` (as a
/// lookup would) and reads it only if it is still the version `known`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// Chosen by the server; echoed in the reply.
    pub id: u64,
    /// The lookup path the file was found under.
    pub path: String,
    pub known: FileMeta,
    pub offset: u64,
    /// At most [`MAX_READ_LEN`].
    pub len: u32,
    pub with_descriptor: bool,
    /// Where in the shared buffer to put the bytes (they come back in the
    /// reply when this is `None`, or the helper has no such buffer).
    pub slot: Option<u64>,
}

/// The most bytes one [`ReadRequest`] may ask for: the reply must fit in
/// a frame ([`crate::MAX_FRAME_LEN`]) with room to spare.
pub const MAX_READ_LEN: u32 = 2 << 20;

/// The answer to one [`ReadRequest`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReadReply {
    pub id: u64,
    pub result: ReadResult,
}

/// What a window read found.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    /// The bytes from the offset on: fewer than asked only at end of file.
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// This many bytes were put in the request's slot of the shared
    /// buffer (fewer than asked only at end of file).
    InSlot(u32),
    /// The read failed (the reason is for the error log).
    Failed(String),
}

/// Helper to server.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum FromHelper {
    Hello(Hello),
    Lookup(LookupReply),
    Read(ReadReply),
}

impl Message for FromHelper {
    fn descriptor_count(&self) -> usize {
        match self {
            FromHelper::Lookup(LookupReply {
                outcome:
                    Outcome::File {
                        body: Body::Descriptor { .. },
                        ..
                    },
                ..
            }) => 1,
            _ => 0,
        }
    }
}

/// The answer to one [`LookupRequest`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LookupReply {
    pub id: u64,
    pub outcome: Outcome,
}

/// What a lookup found.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A regular file (for a trailing-slash path, the directory's index).
    File { meta: FileMeta, body: Body },
    /// The file still matches the `known` version in the request.
    Unchanged,
    /// The path names a directory and was asked without a trailing slash.
    Directory,
    /// Nothing there.
    NotFound,
    /// There, but not to be served (outside the root, not a regular file,
    /// a directory without an index, no permission).
    Forbidden { reason: String },
    /// The lookup failed for another reason.
    Failed { reason: String },
    /// A directory asked for its index when it has none, listed (only
    /// from a helper started with `--dir-listing`): visible entries,
    /// at most [`MAX_LISTED`] of them (`truncated` when there were more),
    /// in no particular order.
    Listing {
        entries: Vec<DirEntry>,
        truncated: bool,
    },
}

/// The most entries one [`Outcome::Listing`] carries: with names of up to
/// 255 bytes the reply stays well inside a frame.
pub const MAX_LISTED: usize = 10_000;

/// One entry of a directory listing.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
    /// Bytes (0 for a directory).
    pub size: u64,
    pub mtime_secs: i64,
}

/// How a file's bytes come back.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The whole file, in the message.
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// An open, read-only descriptor attached to the frame, and what
    /// kind of storage the file lives on ([`Storage::Memory`] or
    /// [`Storage::PageCache`]).
    Descriptor { storage: Storage },
    /// A large file on [`Storage::Uncertain`] storage: no descriptor comes
    /// back (closing one can wait on the filesystem, as FUSE's flush and
    /// NFS's commit do), and the server asks helpers for every window by
    /// path.
    ByPath,
}

/// What kind of storage a file lives on, which decides how the server
/// may tell whether its pages are in memory (see the server's send path).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// In memory by nature (tmpfs, ramfs): every page is resident.
    Memory,
    /// A local block filesystem using the ordinary page cache (ext2/3/4,
    /// xfs, btrfs): `mincore` on a mapping tells which pages are resident.
    PageCache,
    /// Anything else (FUSE, NFS, SMB, 9p, overlayfs, an unknown type):
    /// residency cannot be told, so every window is read by a helper.
    Uncertain,
}

impl Storage {
    /// The storage of a filesystem with `statfs` type `f_type`.
    pub fn of_filesystem(f_type: i64) -> Storage {
        const TMPFS: i64 = 0x0102_1994;
        const RAMFS: i64 = 0x8584_58f6;
        const EXT: i64 = 0xEF53;
        const XFS: i64 = 0x5846_5342;
        const BTRFS: i64 = 0x9123_683E;
        match f_type {
            TMPFS | RAMFS => Storage::Memory,
            EXT | XFS | BTRFS => Storage::PageCache,
            _ => Storage::Uncertain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_listing_fits_a_frame() {
        let entry = DirEntry {
            name: "n".repeat(255),
            is_dir: false,
            size: u64::MAX,
            mtime_secs: i64::MIN,
        };
        let reply = FromHelper::Lookup(LookupReply {
            id: u64::MAX,
            outcome: Outcome::Listing {
                entries: vec![entry; MAX_LISTED],
                truncated: true,
            },
        });
        assert!(crate::encode_frame(&reply).is_ok());
    }

    #[test]
    fn a_peer_is_checked_for_version_then_role() {
        let hello = Hello::new(Role::Helper);
        assert!(hello.check_peer(Role::Helper).is_ok());
        let wrong_role = hello.check_peer(Role::Server).expect_err("wrong role");
        assert_eq!(
            wrong_role.to_string(),
            "unexpected message during handshake: expected hello from the server, got Helper"
        );
        let mut old = Hello::new(Role::Server);
        old.version = PROTOCOL_VERSION + 1;
        // The version is checked first, whatever the role.
        for expected in [Role::Server, Role::CgiRunner] {
            assert!(matches!(
                old.check_peer(expected),
                Err(Error::VersionMismatch { .. })
            ));
        }
    }

    #[test]
    fn greetings_wrap_and_find_the_hello() {
        let hello = Hello::new(Role::Server);
        let message = ToHelper::from_hello(hello.clone());
        assert_eq!(message.hello(), Some(&hello));
        assert_eq!(message.kind(), "hello");
        let lookup = ToHelper::Lookup(LookupRequest {
            id: 1,
            path: String::new(),
            known: None,
        });
        assert_eq!(lookup.hello(), None);
        assert_eq!(lookup.kind(), "lookup");
        assert_eq!(FromHelper::from_hello(hello.clone()).hello(), Some(&hello));
    }
}
