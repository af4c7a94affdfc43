//! The messages exchanged between the server and its children.
//!
//! Every child starts with a handshake: the server sends [`Hello`] first,
//! the child checks the version and answers with its own [`Hello`].

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Bumped whenever a message changes shape.
pub const PROTOCOL_VERSION: u32 = 1;

/// What a child is.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Helper,
    CgiRunner,
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
}

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
}

impl Message for ToHelper {}

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

/// Helper to server.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum FromHelper {
    Hello(Hello),
    Lookup(LookupReply),
}

impl Message for FromHelper {
    fn descriptor_count(&self) -> usize {
        match self {
            FromHelper::Lookup(LookupReply {
                outcome:
                    Outcome::File {
                        body: Body::Descriptor,
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
}

/// How a file's bytes come back.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The whole file, in the message.
    Inline(Vec<u8>),
    /// An open, read-only descriptor attached to the frame.
    Descriptor,
}
