//! HTTP/1.x: parsing and validating requests, normalising paths, and
//! writing response heads. Nothing here touches a socket.

pub mod clock;
pub mod conditional;
pub mod mime;
pub mod path;
pub mod request;
pub mod response;
pub mod status;
