//! Whether a connection outlives a response: every rule, in one place.
//!
//! The decision is taken in stages, each knowing more, and a later stage
//! can only rule the connection out, never back in (so a `Connection:
//! close` once announced is never contradicted):
//!
//! 1. [`asked`]: what the client asked for (HTTP/1.1 keeps unless
//!    `Connection: close`; HTTP/1.0 closes unless `Connection:
//!    keep-alive`), and [`body_can_be_skipped`]: whether its request body
//!    could be skipped if it is not read (a chunked body, one larger than
//!    what is discarded, or one the client holds back for `100 Continue`,
//!    cannot);
//! 2. [`after_head`]: a response body that can only end with the
//!    connection (HTTP/1.0, no length); [`unless_nph`]: an nph script's own
//!    head, which the server does not frame;
//! 3. [`after_exchange`]: a response cut short, or a request body not all
//!    read;
//! 4. [`after_reply`]: a draining server keeps nothing.

use crate::http::body::BodyEncoder;
use crate::http::request::Framing;

/// The client's wish: HTTP/1.1 keeps unless `Connection: close`; HTTP/1.0
/// closes unless `Connection: keep-alive` (and `close` wins).
pub fn asked(http10: bool, keep_alive_header: bool, close_header: bool) -> bool {
    if http10 {
        keep_alive_header && !close_header
    } else {
        !close_header
    }
}

/// Whether a request whose body may go unread can still be followed by
/// another: only if skipping its body is possible, that is, if it has a
/// length no larger than `max_discarded` and the client is not waiting for
/// `100 Continue` before it sends it (it may never send it).
pub fn body_can_be_skipped(framing: Framing, max_discarded: u64, expect_continue: bool) -> bool {
    match framing {
        Framing::None => true,
        Framing::Length(n) => n <= max_discarded && !expect_continue,
        Framing::Chunked => false,
    }
}

/// After the head: a body that ends only with the connection closes it.
pub fn after_head(kept: bool, encoder: BodyEncoder) -> bool {
    kept && encoder != BodyEncoder::CloseDelimited
}

/// An nph script writes its own head, which the server does not frame:
/// its response ends only with the connection.
pub fn unless_nph(kept: bool, nph: bool) -> bool {
    kept && !nph
}

/// After the exchange: a response cut short (not ended as framed) or a
/// request body not all read closes the connection.
pub fn after_exchange(kept: bool, complete: bool, request_body_read: bool) -> bool {
    kept && complete && request_body_read
}

/// After the reply is queued: a draining server keeps nothing.
pub fn after_reply(kept: bool, draining: bool) -> bool {
    kept && !draining
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_asks() {
        assert!(asked(false, false, false));
        assert!(!asked(false, true, true));
        assert!(!asked(true, false, false));
        assert!(asked(true, true, false));
        assert!(!asked(true, true, true));
    }

    #[test]
    fn an_unskippable_body_closes() {
        assert!(body_can_be_skipped(Framing::None, 10, false));
        assert!(body_can_be_skipped(Framing::Length(10), 10, false));
        assert!(!body_can_be_skipped(Framing::Length(11), 10, false));
        assert!(!body_can_be_skipped(Framing::Length(1), 10, true));
        assert!(!body_can_be_skipped(Framing::Chunked, 10, false));
    }

    #[test]
    fn later_stages_only_rule_out() {
        assert!(after_head(true, BodyEncoder::Chunked));
        assert!(!after_head(true, BodyEncoder::CloseDelimited));
        assert!(!after_head(false, BodyEncoder::Length(3)));
        assert!(unless_nph(true, false));
        assert!(!unless_nph(true, true));
        assert!(after_exchange(true, true, true));
        assert!(!after_exchange(true, false, true));
        assert!(!after_exchange(true, true, false));
        assert!(!after_exchange(false, true, true));
        assert!(after_reply(true, false));
        assert!(!after_reply(true, true));
        assert!(!after_reply(false, false));
    }
}
