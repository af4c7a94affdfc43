//! HTTP/1.x: parsing and validating requests, normalising paths, and
//! writing response heads. Nothing here touches a socket.

pub(crate) mod accept_encoding;
pub(crate) mod body;
pub(crate) mod chunked;
pub(crate) mod clock;
pub(crate) mod conditional;
pub(crate) mod error_page;
pub(crate) mod file_headers;
pub(crate) mod head_memo;
pub(crate) mod head_scan;
pub(crate) mod head_writer;
pub(crate) mod header_fields;
pub(crate) mod host;
pub(crate) mod keep_alive;
pub(crate) mod mime;
pub(crate) mod multipart;
pub(crate) mod parse;
pub(crate) mod path;
pub(crate) mod range;
pub(crate) mod request;
pub(crate) mod request_body;
pub(crate) mod script_path;
pub(crate) mod simple_head;
pub(crate) mod status;
pub(crate) mod syntax;
