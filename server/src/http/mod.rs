//! HTTP/1.x: parsing and validating requests, normalising paths, and
//! writing response heads. Nothing here touches a socket.

pub(crate) mod accept_encoding;
pub(crate) mod body;
pub(crate) mod clock;
pub(crate) mod conditional;
pub(crate) mod head_memo;
pub(crate) mod head_scan;
pub(crate) mod host;
pub(crate) mod keep_alive;
pub(crate) mod mime;
pub(crate) mod multipart;
pub(crate) mod path;
pub(crate) mod range;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod simple_head;
pub(crate) mod status;
pub(crate) mod syntax;
