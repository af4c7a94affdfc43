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
//!    cannot); [`within_limits`]: the connection's own limits, the most
//!    requests (`--keepalive-requests`) and the longest life
//!    (`--keepalive-time`), checked as each request is taken;
//! 2. [`after_head`]: a response body that can only end with the
//!    connection (HTTP/1.0, no length); [`unless_nph`]: an nph script's own
//!    head, which the server does not frame;
//! 3. [`after_exchange`]: a response cut short, or a request body not all
//!    read;
//! 4. [`after_reply`]: a draining server keeps nothing.

use std::time::Duration;

use crate::http::request_body::Framing;

/// A connection's own keep-alive limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests one connection may carry (`--keepalive-requests`).
    pub(crate) requests: u64,
    /// How long after it was accepted a connection may still be kept
    /// (`--keepalive-time`); `None` for no limit.
    pub(crate) time: Option<Duration>,
}

/// The client's wish: HTTP/1.1 keeps unless `Connection: close`; HTTP/1.0
/// closes unless `Connection: keep-alive` (and `close` wins).
pub(crate) fn asked(http10: bool, keep_alive_header: bool, close_header: bool) -> bool {
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
pub(crate) fn body_can_be_skipped(
    framing: Framing,
    max_discarded: u64,
    expect_continue: bool,
) -> bool {
    match framing {
        Framing::None => true,
        Framing::Length(n) => n <= max_discarded && !expect_continue,
        Framing::Chunked => false,
    }
}

/// The connection's limits: the response to its request number `number`
/// (from 1) is its last when that is the most requests allowed, or when
/// the connection, `age` old, has outlived the keep-alive time.
pub(crate) fn within_limits(kept: bool, number: u64, age: Duration, limits: &Limits) -> bool {
    kept && number < limits.requests && limits.time.is_none_or(|time| age < time)
}

/// After the head: a body that ends only with the connection
/// (`close_delimited`) closes it.
pub(crate) fn after_head(kept: bool, close_delimited: bool) -> bool {
    kept && !close_delimited
}

/// An nph script writes its own head, which the server does not frame:
/// its response ends only with the connection.
pub(crate) fn unless_nph(kept: bool, nph: bool) -> bool {
    kept && !nph
}

/// After the exchange: a response cut short (not ended as framed) or a
/// request body not all read closes the connection.
pub(crate) fn after_exchange(kept: bool, complete: bool, request_body_read: bool) -> bool {
    kept && complete && request_body_read
}

/// After the reply is queued: a draining server keeps nothing.
pub(crate) fn after_reply(kept: bool, draining: bool) -> bool {
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
    fn the_last_allowed_request_closes() {
        let limits = Limits {
            requests: 3,
            time: None,
        };
        let young = Duration::ZERO;
        assert!(within_limits(true, 1, young, &limits));
        assert!(within_limits(true, 2, young, &limits));
        assert!(!within_limits(true, 3, young, &limits));
        assert!(!within_limits(true, 4, young, &limits));
        assert!(!within_limits(false, 1, young, &limits));
        let once = Limits {
            requests: 1,
            time: None,
        };
        assert!(!within_limits(true, 1, young, &once));
    }

    #[test]
    fn an_old_connection_closes_after_its_next_response() {
        let limits = Limits {
            requests: 1000,
            time: Some(Duration::from_secs(10)),
        };
        assert!(within_limits(true, 5, Duration::from_secs(9), &limits));
        assert!(!within_limits(true, 5, Duration::from_secs(10), &limits));
        assert!(!within_limits(true, 5, Duration::from_secs(60), &limits));
        let unlimited = Limits {
            time: None,
            ..limits
        };
        assert!(within_limits(
            true,
            5,
            Duration::from_secs(1 << 30),
            &unlimited
        ));
    }

    #[test]
    fn later_stages_only_rule_out() {
        assert!(after_head(true, false));
        assert!(!after_head(true, true));
        assert!(!after_head(false, false));
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
