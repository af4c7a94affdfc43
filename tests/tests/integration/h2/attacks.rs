//! The known HTTP/2 attacks, each from a frame-level client, under each
//! event backend; each is answered with GOAWAY or RST_STREAM and its
//! RFC 9113 error code, the server's memory stays bounded, and a client
//! on another connection is answered meanwhile.
//!
//! - Rapid reset (CVE-2023-44487): streams opened and reset at once, in
//!   batches, until GOAWAY(ENHANCE_YOUR_CALM), long before 5,000.
//! - CONTINUATION flood (CVE-2024-27316): a header block that never ends
//!   is cut off with GOAWAY(ENHANCE_YOUR_CALM) within 64 KiB.
//! - HPACK bomb: a 3,000-byte field put in the client's table, then a
//!   block of a few hundred bytes naming it 150 times (450 KB decoded):
//!   RST_STREAM(ENHANCE_YOUR_CALM) on that stream; the connection goes
//!   on, and its next stream is answered. One naming it 2,000 times (6 MB)
//!   is not decoded to its end: GOAWAY(ENHANCE_YOUR_CALM).
//! - PING, SETTINGS and empty-DATA floods: GOAWAY(ENHANCE_YOUR_CALM).
//! - Too many streams: with the client's window at zero, 128 streams are
//!   held open; the 129th gets RST_STREAM(REFUSED_STREAM), and the 128
//!   finish, whole, once the window opens.
//! - Resets the client provokes (a WINDOW_UPDATE of 0 on each of its
//!   streams in flight) cost as its own do: GOAWAY(ENHANCE_YOUR_CALM).
//! - Streams count against `--max-connections` with the connections (as
//!   nginx counts them): past it, RST_STREAM(REFUSED_STREAM).
//! - A frame larger than the server's maximum: GOAWAY(FRAME_SIZE_ERROR).

use serde_json::Value;
use tests::docroot::pseudo_random_bytes;
use tests::h2::{
    goaway_code, h2_client, sha256_hex, ENHANCE_YOUR_CALM, FRAME_SIZE_ERROR, REFUSED_STREAM,
};
use tests::procfs::vm_rss_bytes;
use tests::{per_backend, ServerProcess, TempDocroot};

const PAGE: &[u8] = b"<!DOCTYPE html><title>calm</title><p>still here</p>\n";
const ECHO: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\ncat\n";
/// What an attack may add to the server's resident memory.
const RSS_BOUND: u64 = 32 << 20;

struct Target {
    site: TempDocroot,
    server: ServerProcess,
}

fn target(tag: &str, backend: &str) -> Target {
    let site = TempDocroot::new(tag);
    site.write("index.html", PAGE);
    site.write("big.bin", &pseudo_random_bytes(200_000, 3));
    tests::cgi::write_executable(
        &site.path().join("cgi-bin/echo.cgi"),
        ECHO.as_bytes(),
        0o755,
    );
    let server = ServerProcess::serve(site.path(), backend);
    Target { site, server }
}

impl Target {
    /// Runs `mode`, checking that the server's memory grew by less than
    /// [`RSS_BOUND`] and that a plain HTTP/1.1 client is answered after.
    fn attack(&self, mode: &str, args: &[&str]) -> Value {
        let pid = self.server.pid_t();
        let before = vm_rss_bytes(pid).expect("the server's RSS");
        let seen = h2_client(&self.server, &self.site.outside(), mode, args);
        let after = vm_rss_bytes(pid).expect("the server is alive");
        assert!(
            after < before + RSS_BOUND,
            "{mode}: the server grew from {before} to {after} bytes"
        );
        let (_, response) = self
            .server
            .send_raw("GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        assert_eq!(response.status, 200, "{mode}: another client after it");
        assert_eq!(response.body, PAGE, "{mode}");
        seen
    }
}

fn rapid_reset_ends_the_connection(backend: &str) {
    let t = target("h2-rapid-reset", backend);
    let seen = t.attack("rapid_reset", &[]);
    assert_eq!(goaway_code(&seen), Some(ENHANCE_YOUR_CALM), "{seen}");
    // The client sends in batches and sees the GOAWAY late; the last
    // stream it names is where the server stopped.
    let last = seen["goaway"][0].as_u64().unwrap_or(u64::MAX);
    assert!(last < 2 * 500, "took {} resets: {seen}", last / 2);
}

fn a_continuation_flood_ends_the_connection(backend: &str) {
    let t = target("h2-continuation", backend);
    let seen = t.attack("continuation_flood", &[]);
    assert_eq!(goaway_code(&seen), Some(ENHANCE_YOUR_CALM), "{seen}");
    let bytes = seen["bytes"].as_u64().unwrap_or(u64::MAX);
    // 64 KiB of block, and what was in flight when the GOAWAY came.
    assert!(bytes < 200_000, "{seen}");
}

fn an_hpack_bomb_resets_its_stream_only(backend: &str) {
    let t = target("h2-bomb", backend);
    let seen = t.attack("hpack_bomb", &[]);
    assert_eq!(seen["first"], 200, "{seen}");
    assert!(
        seen["bomb_bytes"].as_u64().unwrap_or(u64::MAX) < 2000,
        "{seen}"
    );
    assert_eq!(seen["bomb_reset"], ENHANCE_YOUR_CALM, "{seen}");
    assert_eq!(seen["after"], 200, "the connection goes on: {seen}");
    assert!(seen["goaway"].is_null(), "{seen}");
    // Far larger, it is not decoded to its end: the connection ends.
    assert!(
        seen["huge_bytes"].as_u64().unwrap_or(u64::MAX) < 8000,
        "{seen}"
    );
    assert_eq!(seen["huge_goaway"][1], ENHANCE_YOUR_CALM, "{seen}");
}

fn floods_of_frames_that_do_nothing_end_the_connection(backend: &str) {
    let t = target("h2-floods", backend);
    for (mode, args) in [
        ("ping_flood", &[][..]),
        ("settings_flood", &[]),
        ("empty_data_flood", &["/cgi-bin/echo.cgi"]),
    ] {
        let seen = t.attack(mode, args);
        assert_eq!(
            goaway_code(&seen),
            Some(ENHANCE_YOUR_CALM),
            "{mode}: {seen}"
        );
        let sent = seen["sent"].as_u64().unwrap_or(u64::MAX);
        assert!(sent < 20_000, "{mode}: {seen}");
    }
}

fn streams_beyond_128_are_refused(backend: &str) {
    let t = target("h2-streams", backend);
    let seen = t.attack("max_streams", &["/big.bin"]);
    assert_eq!(seen["refused"], REFUSED_STREAM, "{seen}");
    assert_eq!(seen["held_with_headers"], 128, "{seen}");
    assert_eq!(seen["completed"], 128, "{seen}");
    let expected = sha256_hex(&pseudo_random_bytes(200_000, 3));
    assert_eq!(seen["shas"], serde_json::json!([expected]), "{seen}");
    assert!(seen["goaway"].is_null(), "{seen}");
}

fn resets_the_client_provokes_count_as_its_own(backend: &str) {
    let t = target("h2-provoked", backend);
    let seen = t.attack("provoked_reset", &["/big.bin"]);
    assert_eq!(goaway_code(&seen), Some(ENHANCE_YOUR_CALM), "{seen}");
    let last = seen["goaway"][0].as_u64().unwrap_or(u64::MAX);
    assert!(last < 2 * 500, "took {} streams: {seen}", last / 2);
}

fn streams_count_against_max_connections(backend: &str) {
    let site = TempDocroot::new("h2-max-conns");
    site.write("index.html", PAGE);
    site.write("big.bin", &pseudo_random_bytes(200_000, 3));
    let server = ServerProcess::serve_with(site.path(), backend, &["--max-connections", "20"]);
    let seen = h2_client(
        &server,
        &site.outside(),
        "held_streams",
        &["/big.bin", "40"],
    );
    // The connection itself holds one of the twenty.
    assert_eq!(seen["held"], 19, "{seen}");
    assert_eq!(seen["refused"], 21, "{seen}");
}

fn an_oversized_frame_ends_the_connection(backend: &str) {
    let t = target("h2-oversized", backend);
    let seen = t.attack("oversized_frame", &["/cgi-bin/echo.cgi"]);
    assert_eq!(goaway_code(&seen), Some(FRAME_SIZE_ERROR), "{seen}");
}

per_backend!(
    rapid_reset_ends_the_connection,
    a_continuation_flood_ends_the_connection,
    an_hpack_bomb_resets_its_stream_only,
    floods_of_frames_that_do_nothing_end_the_connection,
    streams_beyond_128_are_refused,
    resets_the_client_provokes_count_as_its_own,
    streams_count_against_max_connections,
    an_oversized_frame_ends_the_connection,
);
