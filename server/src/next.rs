//! The words the subsystems and the loop speak: what a subsystem hands a
//! connection back with ([`Next`]), and the slice of the loop it may use
//! meanwhile ([`Turn`]). A subsystem never calls into the loop; the loop
//! acts on what it is told (the shape of lighttpd's handler results,
//! where a local redirect is HANDLER_COMEBACK).

use std::time::Instant;

use crate::event::Poller;
use crate::http::clock::Clock;
use crate::http::head_writer::Stamp;
use crate::http::request::{LogFields, Request};
use crate::respond::Reply;

/// What the loop must do for the connection next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Nothing happened to the connection.
    Unchanged,
    /// Work goes on: set what the connection waits for.
    Continue,
    /// The connection waits (for a helper) until this deadline.
    Await(Instant),
    /// This response is queued: account for it and go on with the
    /// connection.
    Respond(Reply, Option<LogFields>),
    /// A script asked for a local redirect: serve this request instead.
    Redirect(Box<Request>),
    /// The client is gone: close the connection.
    Close,
}

/// One turn of the loop, as a subsystem sees it while it works on a
/// connection: the poller, the time, and what the connection's response
/// heads carry (the `Date` value and the lines it adds).
pub(crate) struct Turn<'a> {
    pub(crate) poller: &'a mut dyn Poller,
    pub(crate) now: Instant,
    /// What this turn's response heads on the connection carry.
    pub(crate) stamp: Stamp<'a>,
}

impl<'a> Turn<'a> {
    /// The context for this turn: the poller, the clock's time, and the
    /// connection's `stamp` (made with the clock's `Date`).
    pub(crate) fn new(poller: &'a mut dyn Poller, clock: &Clock, stamp: Stamp<'a>) -> Self {
        Turn {
            poller,
            now: clock.now(),
            stamp,
        }
    }
}
