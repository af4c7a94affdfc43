//! CGI output streams, under each event backend:
//!
//! - as the script writes it: the client has the first part of the body
//!   while the script still waits (for a gate file the test creates only
//!   afterwards) to write the second;
//! - at the client's pace: a script writing 64 MiB to a client that reads
//!   nothing for 2 s is held back (it is still running), the server's
//!   memory stays within 32 MiB of what it was, other requests are served
//!   quickly meanwhile, and then the client reads every byte exactly;
//! - cut by `--cgi-timeout` after the response began: the connection
//!   closes without the final chunk, so the client sees the truncation,
//!   and the script's processes are gone.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tests::cgi::{wait_until, CgiSite, Reaper, TEXT_HEAD};
use tests::http_client::request_bytes;
use tests::procfs::vm_rss_bytes;
use tests::streaming::read_head;
use tests::{assert_bytes_eq, per_backend, Connection, ServerProcess, DEADLINE};

/// A raw client socket with a read timeout, for reading a response piece
/// by piece.
fn raw_request(server: &ServerProcess, path: &str, read_wait: Duration) -> TcpStream {
    let mut stream = server.connect_raw();
    stream
        .set_read_timeout(Some(read_wait))
        .expect("set_read_timeout");
    stream
        .write_all(request_bytes("GET", path, &[]).as_bytes())
        .expect("send the request");
    stream
}

/// Decodes a complete chunked body (ending with the last chunk and an
/// empty trailer); `None` if it is not complete or not well formed.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return (raw == b"\r\n").then_some(body);
        }
        if raw.len() < size + 2 || &raw[size..size + 2] != b"\r\n" {
            return None;
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// Reads from `stream` into `buf` until `done(buf)` holds; panics on
/// end-of-file, an error or a timed-out read first.
fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, what: &str, done: impl Fn(&[u8]) -> bool) {
    let mut piece = [0u8; 16 * 1024];
    while !done(buf) {
        match stream.read(&mut piece) {
            Ok(0) => panic!(
                "{what}: end-of-file after {:?}",
                String::from_utf8_lossy(buf)
            ),
            Ok(n) => buf.extend_from_slice(&piece[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("{what}: {e} after {:?}", String::from_utf8_lossy(buf)),
        }
    }
}

fn output_streams_as_the_script_writes_it(backend: &str) {
    let site = CgiSite::new("cgi-stream-gate");
    let _reaper = Reaper::new(&site);
    let gate = site.outside().join("gate");
    site.script(
        "cgi-bin/gated.cgi",
        &format!(
            "{TEXT_HEAD}\necho 'PART-ONE'\nwhile [ ! -e '{gate}' ]; do sleep 0.05; done\n\
             echo 'PART-TWO'\n",
            gate = gate.display()
        ),
    );
    let server = ServerProcess::serve(site.root(), backend);
    let mut stream = raw_request(&server, "/cgi-bin/gated.cgi", DEADLINE);
    let head = read_head(&mut stream).expect("the response head");
    assert_eq!(head.status, 200, "{}", head.text);
    assert_eq!(
        head.header("Transfer-Encoding"),
        Some("chunked"),
        "{}",
        head.text
    );
    let mut body = head.leftover;
    read_until(&mut stream, &mut body, "the first part", |b| {
        b.windows(9).any(|w| w == b"PART-ONE\n")
    });
    // Only now may the script go on.
    assert!(!gate.exists());
    assert!(
        !body.windows(8).any(|w| w == b"PART-TWO"),
        "the second part came before the gate opened"
    );
    std::fs::write(&gate, b"").expect("open the gate");
    read_until(&mut stream, &mut body, "the rest", |b| {
        b.ends_with(b"0\r\n\r\n")
    });
    let decoded = dechunk(&body).unwrap_or_else(|| {
        panic!(
            "not a well-formed chunked body: {:?}",
            String::from_utf8_lossy(&body)
        )
    });
    assert_eq!(String::from_utf8_lossy(&decoded), "PART-ONE\nPART-TWO\n");
}

/// What `big.cgi` writes: this line over and over, cut at 64 MiB.
const BIG_LINE: &str = "amped streams a big script output 0123456789abcdef";
const BIG_SIZE: usize = 64 * 1024 * 1024;
/// How long the slow client reads nothing.
const STALL: Duration = Duration::from_secs(2);
/// How much the server's memory may grow meanwhile.
const RSS_GROWTH: u64 = 32 * 1024 * 1024;

fn big_output() -> Vec<u8> {
    let line = format!("{BIG_LINE}\n");
    let mut out = line.repeat(BIG_SIZE / line.len() + 1).into_bytes();
    out.truncate(BIG_SIZE);
    out
}

fn a_slow_client_slows_the_script_not_the_server(backend: &str) {
    let site = CgiSite::new("cgi-stream-big");
    let reaper = Reaper::new(&site);
    site.script(
        "cgi-bin/big.cgi",
        &format!("{TEXT_HEAD}\nyes '{BIG_LINE}' | head -c {BIG_SIZE}\n"),
    );
    site.script("cgi-bin/small.cgi", &format!("{TEXT_HEAD}\necho small\n"));
    let page = b"<p>a page served beside a big script</p>\n".repeat(10);
    site.file("page.html", &page);
    let server = ServerProcess::serve(site.root(), backend);
    let pid = i32::try_from(server.pid()).expect("pid fits in pid_t");

    // Warm up both paths, then take the baseline.
    server.connect().get("/page.html").assert_status(200);
    server
        .connect()
        .get_dechunked("/cgi-bin/small.cgi")
        .assert_status(200);
    let baseline = vm_rss_bytes(pid).expect("the server's VmRSS");

    let slow = raw_request(&server, "/cgi-bin/big.cgi", DEADLINE);
    assert!(
        wait_until(DEADLINE, || !reaper.running().is_empty()),
        "big.cgi never started"
    );
    // The client reads nothing for STALL (the behaviour under test);
    // meanwhile other clients are served and the memory is watched.
    let stalled = Instant::now();
    let mut peak = baseline;
    let mut slowest = Duration::ZERO;
    let mut served = 0;
    while stalled.elapsed() < STALL {
        let asked = Instant::now();
        let response = server.connect().get("/page.html");
        slowest = slowest.max(asked.elapsed());
        response.assert_status(200);
        assert_bytes_eq("a page beside the big script", &response.body, &page);
        served += 1;
        peak = peak.max(vm_rss_bytes(pid).expect("the server's VmRSS"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let summary = format!(
        "baseline VmRSS {baseline} bytes, peak {peak}; {served} pages served beside it, \
         the slowest in {slowest:?}"
    );
    eprintln!("{backend}: {summary}");
    assert!(
        slowest < Duration::from_millis(500),
        "pages were slow beside a stalled script ({summary})"
    );
    assert!(
        peak < baseline + RSS_GROWTH,
        "the server buffered the script's output ({summary})"
    );
    // Without back-pressure 64 MiB from `yes` would be done by now.
    assert!(
        !reaper.running().is_empty(),
        "big.cgi finished while its client read nothing: its output went somewhere \
         ({summary})"
    );

    let mut conn = Connection::from_stream(slow);
    let response = conn
        .try_read_response_dechunked(false)
        .unwrap_or_else(|e| panic!("the big script's response: {e}"));
    response.assert_status(200);
    assert_bytes_eq("/cgi-bin/big.cgi", &response.body, &big_output());
    // And the server is fine.
    server.connect().get("/page.html").assert_status(200);
}

fn timeout_after_the_response_began_truncates_visibly(backend: &str) {
    let site = CgiSite::new("cgi-stream-timeout");
    let reaper = Reaper::new(&site);
    site.script(
        "cgi-bin/stall.cgi",
        &format!("{TEXT_HEAD}\necho 'the beginning of a body'\nsleep 30\necho 'never'\n"),
    );
    let server = ServerProcess::serve_with(site.root(), backend, &["--cgi-timeout", "1"]);
    let sent = Instant::now();
    let mut stream = raw_request(&server, "/cgi-bin/stall.cgi", Duration::from_secs(10));
    let head = read_head(&mut stream).expect("the response head");
    assert_eq!(head.status, 200, "{}", head.text);
    assert_eq!(
        head.header("Transfer-Encoding"),
        Some("chunked"),
        "{}",
        head.text
    );
    let mut body = head.leftover;
    let mut piece = [0u8; 4096];
    let ended = loop {
        match stream.read(&mut piece) {
            Ok(0) => break "end-of-file".to_owned(),
            Ok(n) => body.extend_from_slice(&piece[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "the connection was still open 10 s into a script cut at 1 s; body so far \
                     {:?}",
                    String::from_utf8_lossy(&body)
                )
            }
            Err(e) => break e.to_string(),
        }
    };
    let closed = sent.elapsed();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("the beginning of a body"),
        "the part written before the timeout: {text:?}"
    );
    assert!(
        !text.contains("never"),
        "the script ran on past its timeout: {text:?}"
    );
    assert!(
        dechunk(&body).is_none() && !body.ends_with(b"0\r\n\r\n"),
        "a cut response ended with the final chunk, as if complete ({ended}): {text:?}"
    );
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(5),
        "closed {closed:?} after the request with --cgi-timeout 1"
    );
    assert!(
        wait_until(DEADLINE, || reaper.running().is_empty()),
        "the script's processes outlived its timeout: {:?}",
        reaper.running()
    );
}

per_backend!(
    output_streams_as_the_script_writes_it,
    a_slow_client_slows_the_script_not_the_server,
    timeout_after_the_response_began_truncates_visibly,
);
