//! The access log, under each event backend: with `--access-log FILE`, two
//! requests become two lines in the Combined Log Format (client address,
//! `- -`, bracketed date, quoted request line, status, body bytes, quoted
//! referer and user agent), written within a few seconds; with
//! `--access-log -` the lines go to stdout after the listening line.

use std::thread;
use std::time::{Duration, Instant};

use tests::{per_backend, site_docroot, ServerProcess, TempDocroot};

const LOG_WAIT: Duration = Duration::from_secs(10);

/// One parsed Combined Log Format line.
#[derive(Debug)]
struct LogLine {
    host: String,
    date: String,
    request: String,
    status: u16,
    bytes: String,
    referer: String,
    user_agent: String,
}

/// Takes a `"..."` field (no escaped quotes expected in these tests).
fn quoted(rest: &str) -> Option<(&str, &str)> {
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some((&rest[..end], &rest[end + 1..]))
}

fn parse_combined(line: &str) -> Option<LogLine> {
    let (host, rest) = line.split_once(' ')?;
    let rest = rest.strip_prefix("- - [")?;
    let (date, rest) = rest.split_once("] ")?;
    let (request, rest) = quoted(rest)?;
    let rest = rest.strip_prefix(' ')?;
    let (status, rest) = rest.split_once(' ')?;
    let (bytes, rest) = rest.split_once(' ')?;
    let (referer, rest) = quoted(rest)?;
    let (user_agent, rest) = quoted(rest.strip_prefix(' ')?)?;
    if !rest.is_empty() || status.len() != 3 {
        return None;
    }
    Some(LogLine {
        host: host.to_owned(),
        date: date.to_owned(),
        request: request.to_owned(),
        status: status.parse().ok()?,
        bytes: bytes.to_owned(),
        referer: referer.to_owned(),
        user_agent: user_agent.to_owned(),
    })
}

/// `27/Nov/2026:16:44:54 +0000`.
fn is_clf_date(date: &str) -> bool {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = date.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 26
        && digits(0..2)
        && b[2] == b'/'
        && MONTHS.contains(&&date[3..6])
        && b[6] == b'/'
        && digits(7..11)
        && b[11] == b':'
        && digits(12..14)
        && b[14] == b':'
        && digits(15..17)
        && b[17] == b':'
        && digits(18..20)
        && b[20] == b' '
        && (b[21] == b'+' || b[21] == b'-')
        && digits(22..26)
}

/// Makes the two requests: a 200 with referer and agent, then a 404.
/// Returns the body lengths.
fn two_requests(server: &ServerProcess) -> (usize, usize) {
    let mut conn = server.connect();
    let ok = conn.request(
        "GET",
        "/index.html",
        &[
            ("Referer", "http://example.test/from"),
            ("User-Agent", "amped-test/1.0"),
        ],
    );
    ok.assert_status(200);
    let missing = conn.request("GET", "/nope.html", &[]);
    missing.assert_error_page(404);
    (ok.body.len(), missing.body.len())
}

fn check_lines(text: &str, ok_len: usize, missing_len: usize) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "two requests, two lines:\n{text}");
    let first = parse_combined(lines[0])
        .unwrap_or_else(|| panic!("not Combined Log Format: {:?}", lines[0]));
    let second = parse_combined(lines[1])
        .unwrap_or_else(|| panic!("not Combined Log Format: {:?}", lines[1]));
    for entry in [&first, &second] {
        assert_eq!(entry.host, "127.0.0.1", "{entry:?}");
        assert!(is_clf_date(&entry.date), "bad date in {entry:?}");
    }
    assert_eq!(first.request, "GET /index.html HTTP/1.1");
    assert_eq!(first.status, 200);
    assert_eq!(first.bytes, ok_len.to_string(), "body bytes of the 200");
    assert_eq!(first.referer, "http://example.test/from");
    assert_eq!(first.user_agent, "amped-test/1.0");
    assert_eq!(second.request, "GET /nope.html HTTP/1.1");
    assert_eq!(second.status, 404);
    assert_eq!(
        second.bytes,
        missing_len.to_string(),
        "body bytes of the 404"
    );
    assert_eq!(second.referer, "-");
    assert_eq!(second.user_agent, "-");
}

/// Waits until `read()` yields two complete lines (or the deadline).
fn wait_for_two_lines(read: impl Fn() -> String) -> String {
    let start = Instant::now();
    loop {
        let text = read();
        if text.ends_with('\n') && text.lines().count() >= 2 {
            return text;
        }
        assert!(
            start.elapsed() < LOG_WAIT,
            "the access log has not got two lines after {LOG_WAIT:?}:\n{text:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn access_log_file_is_combined_format(backend: &str) {
    let scratch = TempDocroot::new("access-log");
    let log = scratch.outside().join("access.log");
    let server = ServerProcess::serve_with(
        &site_docroot().root,
        backend,
        &["--access-log", log.to_str().expect("UTF-8 temp path")],
    );
    let (ok_len, missing_len) = two_requests(&server);
    let text = wait_for_two_lines(|| std::fs::read_to_string(&log).unwrap_or_default());
    check_lines(&text, ok_len, missing_len);
}

fn access_log_to_stdout(backend: &str) {
    let server = ServerProcess::serve_with(&site_docroot().root, backend, &["--access-log", "-"]);
    let (ok_len, missing_len) = two_requests(&server);
    let text = wait_for_two_lines(|| {
        let out = server.stdout_text();
        // Drop the listening line.
        out.split_once('\n')
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_default()
    });
    check_lines(&text, ok_len, missing_len);
}

per_backend!(access_log_file_is_combined_format, access_log_to_stdout);
