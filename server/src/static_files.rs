//! Static files: a request answered from the cache when its entry is
//! fresh, otherwise parked on the connection while a helper looks the
//! path up; the helper's answer fills the cache and is served to every
//! connection that waited for it.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::cache::{Cache, CacheStats, Entry};
use crate::conn_table::ConnId;
use crate::connection::Connection;
use crate::event::Poller;
use crate::http::request::Request;
use crate::http::status::Status;
use crate::next::{Io, Next};
use crate::respond;
use crate::supervise::helper_pool::LookupDone;
use crate::supervise::Supervision;

/// The cache and the lookups behind it.
pub(crate) struct StaticFiles {
    cache: Cache,
    /// How long a request waits for a helper before it is answered 503.
    helper_timeout: Duration,
}

impl StaticFiles {
    pub(crate) fn new(cache_size: usize, helper_timeout: Duration) -> StaticFiles {
        StaticFiles {
            cache: Cache::new(cache_size),
            helper_timeout,
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Answers `request` from the cache, or has it wait for a helper.
    pub(crate) fn serve(
        &mut self,
        conn: &mut Connection,
        request: Request,
        helpers: &mut Supervision,
        io: &mut Io,
    ) -> Next {
        let cached = self.cache.get(&request.target.key);
        if let Some(entry) = cached.as_ref().filter(|e| e.is_fresh(io.now)) {
            let reply = respond::respond(conn.output(), &request, entry, io.date);
            return Next::Respond(reply, request.log);
        }
        let known = cached.and_then(|e| e.meta());
        let key = request.target.key.clone();
        conn.await_helper(request);
        let deadline = io.now + self.helper_timeout;
        helpers.lookup(&key, known, conn.id(), Some(deadline), io.poller, io.now);
        Next::Await(deadline)
    }

    /// A connection that waited for `entry` gets its answer.
    pub(crate) fn answer(conn: &mut Connection, entry: &Entry, date: &str) -> Next {
        match conn.take_waiting() {
            Some(request) => {
                let reply = respond::respond(conn.output(), &request, entry, date);
                Next::Respond(reply, request.log)
            }
            None => Next::Unchanged,
        }
    }

    /// A request waited too long for a helper: 503, and the connection
    /// closes.
    pub(crate) fn timed_out(&mut self, conn: &mut Connection, date: &str) -> Next {
        let Some(request) = conn.take_waiting() else {
            return Next::Unchanged;
        };
        let to = request.error_to(false);
        let status = Status::SERVICE_UNAVAILABLE;
        let reply = respond::error(conn.output(), &to, status, "Retry-After: 5\r\n", date);
        Next::Respond(reply, request.log)
    }

    /// Takes a helper's answer into the cache. Returns the entry and the
    /// connections to serve it to, or `None` when the lookup had to be
    /// made again.
    pub(crate) fn complete(
        &mut self,
        completion: LookupDone,
        helpers: &mut Supervision,
        poller: &mut dyn Poller,
        now: Instant,
    ) -> Option<(Rc<Entry>, Vec<ConnId>)> {
        let LookupDone {
            key,
            outcome,
            fd,
            waiters,
        } = completion;
        match self.cache.fill(key, outcome, fd, now) {
            Ok(entry) => Some((entry, waiters)),
            Err(key) => {
                for waiter in waiters {
                    helpers.lookup(&key, None, waiter, None, poller, now);
                }
                None
            }
        }
    }
}
