//! Static files: a request answered from the cache when its entry is
//! fresh, otherwise parked on the connection while a helper looks the
//! path up; the helper's answer fills the cache and is served to every
//! connection that waited for it.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::cache::{Cache, CacheStats, Entry, Found};
use crate::conn_id::ConnId;
use crate::connection::Connection;
use crate::event::Poller;
use crate::http::accept_encoding::Gzip;
use crate::http::head_writer::Stamp;
use crate::http::path::is_directory_key;
use crate::http::request::Request;
use crate::http::status::Status;
use crate::next::{Next, Turn};
use crate::respond::{self, Coding};
use crate::supervise::pool_jobs::LookupDone;
use crate::supervise::Supervision;

/// The cache and the lookups behind it.
pub(crate) struct StaticFiles {
    cache: Cache,
    /// How long a request waits for a helper before it is answered 503.
    helper_timeout: Duration,
    /// `--gzip-static`: `f.gz` answers for `f` when the client takes
    /// gzip.
    gzip_static: bool,
}

impl StaticFiles {
    /// Serving from `cache`.
    pub(crate) fn new(cache: Cache, helper_timeout: Duration, gzip_static: bool) -> StaticFiles {
        StaticFiles {
            cache,
            helper_timeout,
            gzip_static,
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Answers `request` from the cache, or has it wait for a helper.
    /// With `--gzip-static`, a client that takes gzip is answered with
    /// `f.gz` (an ordinary entry of its own) when it is a file, else
    /// with `f`.
    pub(crate) fn serve(
        &mut self,
        conn: &mut Connection,
        request: Request,
        supervision: &mut Supervision,
        turn: &mut Turn,
    ) -> Next {
        let Some(variant) = self.gzip_variant(&request) else {
            return self.serve_plain(conn, request, supervision, turn);
        };
        let cached = self.cache.get(&variant);
        match cached.as_ref().filter(|e| e.is_fresh(turn.now)) {
            Some(entry) if matches!(entry.found, Found::File(_)) => {
                let reply =
                    respond::respond(conn.output(), &request, entry, Coding::Gzip, turn.stamp);
                Next::Respond(reply, request.log)
            }
            Some(_) => self.serve_plain(conn, request, supervision, turn),
            None => self.look_up(conn, request, variant, cached, supervision, turn),
        }
    }

    /// Answers `request` with the file its key names.
    fn serve_plain(
        &mut self,
        conn: &mut Connection,
        request: Request,
        supervision: &mut Supervision,
        turn: &mut Turn,
    ) -> Next {
        let cached = self.cache.get(&request.target.key);
        if let Some(entry) = cached.as_ref().filter(|e| e.is_fresh(turn.now)) {
            let reply =
                respond::respond(conn.output(), &request, entry, self.identity(), turn.stamp);
            return Next::Respond(reply, request.log);
        }
        let key = request.target.key.clone();
        self.look_up(conn, request, key, cached, supervision, turn)
    }

    /// Parks `request` on the connection while a helper looks `key` up.
    fn look_up(
        &self,
        conn: &mut Connection,
        request: Request,
        key: String,
        cached: Option<Rc<Entry>>,
        supervision: &mut Supervision,
        turn: &mut Turn,
    ) -> Next {
        let known = cached.and_then(|e| e.meta());
        conn.await_helper(request);
        let deadline = turn.now + self.helper_timeout;
        supervision.lookup(
            &key,
            known,
            conn.id(),
            Some(deadline),
            turn.poller,
            turn.now,
        );
        Next::Await(deadline)
    }

    /// The key of the gzip variant to try for `request`, if any: not for
    /// directories, nor for what is already `.gz`.
    fn gzip_variant(&self, request: &Request) -> Option<String> {
        let key = &request.target.key;
        let wanted = self.gzip_static
            && request.gzip == Gzip::Accepted
            && !is_directory_key(key)
            && !key.ends_with(".gz");
        wanted.then(|| format!("{key}.gz"))
    }

    /// How a file goes out as it is: with `Vary` when the option is on.
    fn identity(&self) -> Coding {
        if self.gzip_static {
            Coding::IdentityVary
        } else {
            Coding::Identity
        }
    }

    /// A connection that waited for the lookup of `key` gets its answer:
    /// `entry`, or, when it waited for a gzip variant that is not a file,
    /// the plain file (looked up again if need be).
    pub(crate) fn answer(
        &mut self,
        conn: &mut Connection,
        key: &str,
        entry: &Entry,
        supervision: &mut Supervision,
        turn: &mut Turn,
    ) -> Next {
        let Some(request) = conn.take_waiting() else {
            return Next::Unchanged;
        };
        let coding = if request.target.key == key {
            self.identity()
        } else if matches!(entry.found, Found::File(_)) {
            Coding::Gzip
        } else {
            return self.serve_plain(conn, *request, supervision, turn);
        };
        let reply = respond::respond(conn.output(), &request, entry, coding, turn.stamp);
        Next::Respond(reply, request.log)
    }

    /// A request waited too long for a helper: 503, and the connection
    /// closes.
    pub(crate) fn timed_out(&mut self, conn: &mut Connection, stamp: Stamp<'_>) -> Next {
        let Some(request) = conn.take_waiting() else {
            return Next::Unchanged;
        };
        let to = request.error_to(false);
        let status = Status::SERVICE_UNAVAILABLE;
        let reply = respond::error(conn.output(), &to, status, "Retry-After: 5\r\n", stamp);
        Next::Respond(reply, request.log)
    }

    /// Takes a helper's answer into the cache. Returns the key, the entry
    /// and the connections to serve it to, or `None` when the lookup had to be
    /// made again.
    pub(crate) fn complete(
        &mut self,
        completion: LookupDone,
        supervision: &mut Supervision,
        poller: &mut dyn Poller,
        now: Instant,
    ) -> Option<(String, Rc<Entry>, Vec<ConnId>)> {
        let LookupDone {
            key,
            outcome,
            fd,
            waiters,
        } = completion;
        match self.cache.fill(key.clone(), outcome, fd, now) {
            Ok(entry) => Some((key, entry, waiters)),
            Err(key) => {
                for waiter in waiters {
                    supervision.lookup(&key, None, waiter, None, poller, now);
                }
                None
            }
        }
    }
}
