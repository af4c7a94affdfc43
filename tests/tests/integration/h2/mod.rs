//! HTTP/2: real clients (curl, nghttp, headless Chromium) getting what
//! HTTP/1.1 gets, and a frame-level client (Python's `h2` framing)
//! sending what hostile clients send: floods, resets, HPACK bombs,
//! windows held at zero, too many streams; flow control, GOAWAY on a
//! drain, and streams that never wait for each other's disk reads.

mod attacks;
mod clients;
mod streams;
