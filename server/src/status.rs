//! The status page (off by default; `--status-path`): counters in the
//! spirit of nginx's stub_status, as plain text or, with `?json`, JSON.

use std::fmt::Write;

use std::time::Instant;

use crate::cache::CacheStats;
use crate::config::Config;
use crate::connection::Connection;
use crate::http::head_writer::Stamp;
use crate::http::request::Request;
use crate::http::status::Status;
use crate::next::{Next, Turn};
use crate::output::Output;
use crate::respond::{self, Reply};
use crate::send_path::SendStats;
use crate::supervise::pool_jobs::PoolStats;
use crate::transport::TlsStats;

/// Counters kept by the event loop.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counters {
    pub(crate) accepted: u64,
    /// Connections that went on in HTTP/2.
    pub(crate) h2_connections: u64,
    pub(crate) requests: u64,
    /// Responses by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub(crate) by_class: [u64; 5],
}

impl Counters {
    /// Counts one response.
    pub(crate) fn response(&mut self, status: u16) {
        self.requests += 1;
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class] += 1;
    }
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) uptime_secs: u64,
    pub(crate) counters: Counters,
    pub(crate) gauges: Gauges,
}

/// The status page's settings and the counters behind it.
#[derive(Debug)]
pub(crate) struct StatusPage {
    /// The page's path as a normalised key, if it is on.
    key: Option<String>,
    allow_remote: bool,
    started: Instant,
    counters: Counters,
}

/// What the page shows of the loop's parts.
#[derive(Debug, Clone)]
pub(crate) struct Gauges {
    pub(crate) open_connections: usize,
    /// HTTP/2 streams being served.
    pub(crate) h2_streams: usize,
    pub(crate) cache: CacheStats,
    /// All zero when nothing listens with TLS.
    pub(crate) tls: TlsStats,
    pub(crate) helper_lookups_in_flight: usize,
    pub(crate) helper_restarts: Vec<u64>,
    pub(crate) runner_restarts: u64,
    pub(crate) cgi_running: usize,
    /// Request bodies being collected for scripts not started yet.
    pub(crate) cgi_bodies: usize,
    /// Bytes those bodies hold (memory and spool files).
    pub(crate) cgi_spooled_bytes: u64,
    pub(crate) send: SendStats,
    pub(crate) pool: PoolStats,
}

impl StatusPage {
    pub(crate) fn new(config: &Config) -> StatusPage {
        StatusPage {
            key: config.status_key.clone(),
            allow_remote: config.status_allow_remote,
            started: Instant::now(),
            counters: Counters::default(),
        }
    }

    /// Counts an accepted connection.
    pub(crate) fn accepted(&mut self) {
        self.counters.accepted += 1;
    }

    /// Counts a connection that speaks HTTP/2.
    pub(crate) fn h2_started(&mut self) {
        self.counters.h2_connections += 1;
    }

    /// Counts a response.
    pub(crate) fn responded(&mut self, status: u16) {
        self.counters.response(status);
    }

    /// True when `request` asks for the page.
    pub(crate) fn asked_by(&self, request: &Request) -> bool {
        self.key.as_deref() == Some(request.target.key.as_str())
    }

    /// Answers `request` with the page, to loopback clients unless it is
    /// allowed for all.
    pub(crate) fn serve(
        &self,
        conn: &mut Connection,
        request: Request,
        gauges: Gauges,
        turn: &Turn,
    ) -> Next {
        let snapshot = Snapshot {
            uptime_secs: turn.now.saturating_duration_since(self.started).as_secs(),
            counters: self.counters.clone(),
            gauges,
        };
        let allowed = self.allow_remote || conn.peer().ip().is_loopback();
        let reply = reply(conn.output(), &request, &snapshot, allowed, turn.stamp);
        Next::Respond(reply, request.log)
    }
}

/// Queues the status page answering `request`: 403 unless `allowed`,
/// JSON when the query asks for `json`, plain text otherwise.
fn reply(
    out: &mut Output,
    request: &Request,
    snapshot: &Snapshot,
    allowed: bool,
    stamp: Stamp<'_>,
) -> Reply {
    if !allowed {
        let to = request.error_to(request.keep_alive);
        return respond::error(out, &to, Status::FORBIDDEN, "", stamp);
    }
    let json = request
        .target
        .query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == "json"));
    let (body, content_type) = if json {
        (render_json(snapshot), "application/json")
    } else {
        (render_text(snapshot), "text/plain; charset=utf-8")
    };
    respond::dynamic(out, request, content_type, body.into_bytes(), stamp)
}

/// The plain-text page.
pub(crate) fn render_text(s: &Snapshot) -> String {
    let mut out = String::new();
    let c = &s.counters;
    let _ = writeln!(out, "uptime: {} s", s.uptime_secs);
    let _ = writeln!(out, "open connections: {}", s.gauges.open_connections);
    let _ = writeln!(out, "accepted connections: {}", c.accepted);
    let _ = writeln!(
        out,
        "http2: connections {} streams open {}",
        c.h2_connections, s.gauges.h2_streams
    );
    let _ = writeln!(out, "requests: {}", c.requests);
    let _ = writeln!(
        out,
        "responses: 1xx {} 2xx {} 3xx {} 4xx {} 5xx {}",
        c.by_class[0], c.by_class[1], c.by_class[2], c.by_class[3], c.by_class[4]
    );
    let _ = writeln!(
        out,
        "cache: hits {} misses {} bytes {} entries {}",
        s.gauges.cache.hits, s.gauges.cache.misses, s.gauges.cache.bytes, s.gauges.cache.entries
    );
    let _ = writeln!(
        out,
        "helper lookups in flight: {}",
        s.gauges.helper_lookups_in_flight
    );
    let restarts = joined(&s.gauges.helper_restarts, " ");
    let _ = writeln!(out, "helper restarts: {restarts}");
    let _ = writeln!(out, "cgi-runner restarts: {}", s.gauges.runner_restarts);
    let _ = writeln!(out, "cgi running: {}", s.gauges.cgi_running);
    let _ = writeln!(
        out,
        "cgi bodies collecting: {} ({} bytes)",
        s.gauges.cgi_bodies, s.gauges.cgi_spooled_bytes
    );
    let _ = writeln!(out, "helpers running: {}", s.gauges.pool.running);
    let _ = writeln!(
        out,
        "window slots held for helpers not reaped: {}",
        s.gauges.pool.slots_quarantined
    );
    let _ = writeln!(
        out,
        "file windows: sent straight {} read by helpers {} ({} bytes)",
        s.gauges.send.windows_straight,
        s.gauges.send.windows_by_helpers,
        s.gauges.send.bytes_by_helpers
    );
    let _ = writeln!(
        out,
        "window memory: {} bytes held, {} downloads waiting for room",
        s.gauges.send.window_bytes, s.gauges.send.window_waits
    );
    let _ = writeln!(
        out,
        "helper queue: {} waiting, longest wait {} ms",
        s.gauges.pool.queued,
        s.gauges.pool.longest_wait.as_millis()
    );
    let t = &s.gauges.tls;
    let errors: Vec<String> = t.named_errors().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(
        out,
        "tls: open {} handshakes full {} resumed {} errors {}",
        t.open,
        t.full_handshakes,
        t.resumed_handshakes,
        errors.join(" ")
    );
    out
}

/// `numbers` in decimal, `separator` between them.
fn joined(numbers: &[u64], separator: &str) -> String {
    let texts: Vec<String> = numbers.iter().map(u64::to_string).collect();
    texts.join(separator)
}

/// The JSON page.
pub(crate) fn render_json(s: &Snapshot) -> String {
    let c = &s.counters;
    let restarts = joined(&s.gauges.helper_restarts, ",");
    format!(
        concat!(
            "{{\"uptime_secs\":{},\"open_connections\":{},\"accepted_connections\":{},",
            "\"http2\":{{\"connections\":{},\"streams\":{}}},",
            "\"requests\":{},\"responses\":{{\"1xx\":{},\"2xx\":{},\"3xx\":{},\"4xx\":{},\"5xx\":{}}},",
            "\"cache\":{{\"hits\":{},\"misses\":{},\"bytes\":{},\"entries\":{}}},",
            "\"helper_lookups_in_flight\":{},\"helper_restarts\":[{}],",
            "\"cgi_runner_restarts\":{},\"cgi_running\":{},\"cgi_bodies\":{},",
            "\"cgi_spooled_bytes\":{},\"helpers_running\":{},\"slots_quarantined\":{},",
            "\"send\":{{\"windows_straight\":{},\"windows_by_helpers\":{},",
            "\"bytes_by_helpers\":{},\"window_bytes\":{},\"window_waits\":{},",
            "\"queue\":{},\"longest_wait_ms\":{}}},",
            "\"tls\":{{\"open\":{},\"full_handshakes\":{},\"resumed_handshakes\":{},",
            "\"errors\":{{{}}}}}}}\n"
        ),
        s.uptime_secs,
        s.gauges.open_connections,
        c.accepted,
        c.h2_connections,
        s.gauges.h2_streams,
        c.requests,
        c.by_class[0],
        c.by_class[1],
        c.by_class[2],
        c.by_class[3],
        c.by_class[4],
        s.gauges.cache.hits,
        s.gauges.cache.misses,
        s.gauges.cache.bytes,
        s.gauges.cache.entries,
        s.gauges.helper_lookups_in_flight,
        restarts,
        s.gauges.runner_restarts,
        s.gauges.cgi_running,
        s.gauges.cgi_bodies,
        s.gauges.cgi_spooled_bytes,
        s.gauges.pool.running,
        s.gauges.pool.slots_quarantined,
        s.gauges.send.windows_straight,
        s.gauges.send.windows_by_helpers,
        s.gauges.send.bytes_by_helpers,
        s.gauges.send.window_bytes,
        s.gauges.send.window_waits,
        s.gauges.pool.queued,
        s.gauges.pool.longest_wait.as_millis(),
        s.gauges.tls.open,
        s.gauges.tls.full_handshakes,
        s.gauges.tls.resumed_handshakes,
        tls_errors_json(&s.gauges.tls)
    )
}

/// `"decode":0,"incompatible":0,...`
fn tls_errors_json(t: &TlsStats) -> String {
    let pairs: Vec<String> = t
        .named_errors()
        .map(|(k, n)| format!("\"{k}\":{n}"))
        .collect();
    pairs.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_show_the_counters() {
        let mut counters = Counters::default();
        counters.response(200);
        counters.response(404);
        counters.response(503);
        let gauges = Gauges {
            open_connections: 2,
            h2_streams: 0,
            tls: TlsStats {
                open: 1,
                full_handshakes: 3,
                resumed_handshakes: 2,
                errors: [1, 0, 0, 0, 0, 0, 4, 0, 0],
            },
            cache: CacheStats {
                hits: 5,
                misses: 1,
                bytes: 1024,
                entries: 1,
            },
            helper_lookups_in_flight: 0,
            helper_restarts: vec![0, 3],
            runner_restarts: 1,
            cgi_running: 0,
            cgi_bodies: 0,
            cgi_spooled_bytes: 0,
            send: SendStats {
                windows_straight: 4,
                windows_by_helpers: 2,
                bytes_by_helpers: 524288,
                window_bytes: 1048576,
                window_waits: 2,
            },
            pool: PoolStats {
                queued: 1,
                longest_wait: std::time::Duration::from_millis(12),
                running: 3,
                slots_quarantined: 0,
            },
        };
        let snapshot = Snapshot {
            uptime_secs: 7,
            counters,
            gauges,
        };
        let text = render_text(&snapshot);
        assert!(text.contains("uptime: 7 s\n"));
        assert!(text.contains("responses: 1xx 0 2xx 1 3xx 0 4xx 1 5xx 1\n"));
        assert!(text.contains("helper restarts: 0 3\n"));
        let json = render_json(&snapshot);
        assert!(json.starts_with("{\"uptime_secs\":7,"));
        assert!(json.contains("\"responses\":{\"1xx\":0,\"2xx\":1,\"3xx\":0,\"4xx\":1,\"5xx\":1}"));
        assert!(json.contains("\"helper_restarts\":[0,3]"));
        assert!(text.contains("file windows: sent straight 4 read by helpers 2 (524288 bytes)\n"));
        assert!(text.contains("helper queue: 1 waiting, longest wait 12 ms\n"));
        assert!(text.contains("window memory: 1048576 bytes held, 2 downloads waiting for room\n"));
        assert!(json.contains(concat!(
            "\"helpers_running\":3,\"slots_quarantined\":0,\"send\":{\"windows_straight\":4,\"windows_by_helpers\":2,",
            "\"bytes_by_helpers\":524288,\"window_bytes\":1048576,\"window_waits\":2,",
            "\"queue\":1,\"longest_wait_ms\":12},",
            "\"tls\":{\"open\":1,\"full_handshakes\":3,\"resumed_handshakes\":2,",
            "\"errors\":{\"decode\":1,\"incompatible\":0,\"misbehaved\":0,\"decrypt\":0,",
            "\"alert_received\":0,\"certificate\":0,\"plain_http\":4,\"incomplete\":0,\"other\":0}}}\n"
        )));
        assert!(text.contains(
            "tls: open 1 handshakes full 3 resumed 2 errors decode 1 incompatible 0 misbehaved 0 \
             decrypt 0 alert_received 0 certificate 0 plain_http 4 incomplete 0 other 0\n"
        ));
    }
}
