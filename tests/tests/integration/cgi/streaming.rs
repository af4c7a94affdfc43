//! CGI output streams, under each event backend:
//!
//! - as the script writes it: the client has the first part of the body
//!   while the script still waits (for a gate file the test creates only
//!   afterwards) to write the second;
//! - at the client's pace: a script writing 64 MiB (more if the kernel's
//!   buffers could hold that much) to a client that reads nothing is held
//!   back (it stops writing, asleep, short of the end), the server's
//!   memory stays within 32 MiB of what it was, other requests are served
//!   quickly meanwhile, and then the client reads every byte exactly;
//! - cut by `--cgi-timeout` after the response began: the connection
//!   closes without the final chunk, so the client sees the truncation,
//!   and the script's processes are gone.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tests::cgi::{CgiSite, Reaper, TEXT_HEAD};
use tests::http_client::request_bytes;
use tests::procfs::{poll_until, vm_rss_bytes, ProcStat};
use tests::socket::{
    connect_with_small_receive_buffer, max_send_buffer, receive_buffer, sysctl_last,
};
use tests::streaming::read_head;
use tests::{assert_bytes_eq, per_backend, Connection, ServerProcess, DEADLINE};

/// A raw client socket with a read timeout, for reading a response piece
/// by piece.
fn raw_request(server: &ServerProcess, path: &str, read_wait: Duration) -> TcpStream {
    send_request(server.connect_raw(), path, read_wait)
}

fn send_request(mut stream: TcpStream, path: &str, read_wait: Duration) -> TcpStream {
    stream
        .set_read_timeout(Some(read_wait))
        .expect("set_read_timeout");
    stream
        .write_all(request_bytes("GET", path, &[]).as_bytes())
        .expect("send the request");
    stream
}

/// Decodes the complete chunks at the start of `raw`: the body so far, and
/// whether the last chunk and the empty trailer have arrived. `None` if
/// what has arrived is not well formed.
fn dechunk_prefix(mut raw: &[u8]) -> Option<(Vec<u8>, bool)> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") else {
            let partial = std::str::from_utf8(raw).ok()?;
            return partial
                .chars()
                .all(|c| c.is_ascii_hexdigit())
                .then_some((body, false));
        };
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        let rest = &raw[line_end + 2..];
        if size == 0 {
            return match rest.len() {
                0 | 1 => Some((body, false)),
                _ => (rest == b"\r\n").then_some((body, true)),
            };
        }
        if rest.len() < size + 2 {
            return Some((body, false));
        }
        if &rest[size..size + 2] != b"\r\n" {
            return None;
        }
        body.extend_from_slice(&rest[..size]);
        raw = &rest[size + 2..];
    }
}

/// Decodes a complete chunked body (ending with the last chunk and an
/// empty trailer); `None` if it is not complete or not well formed.
fn dechunk(raw: &[u8]) -> Option<Vec<u8>> {
    dechunk_prefix(raw).and_then(|(body, ended)| ended.then_some(body))
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
    // The script is held until the test opens the gate; the default 30 s
    // --cgi-timeout must not cut it on a slow machine.
    let server = ServerProcess::serve_with(site.root(), backend, &["--cgi-timeout", "300"]);
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
        dechunk_prefix(b).is_none_or(|(decoded, ended)| ended || decoded.ends_with(b"PART-ONE\n"))
    });
    // The gate does not exist yet, so the script is still running: the
    // first part reaching us at all shows that output streams. What came
    // must be exactly that part, well framed, and not the end of the body.
    let (decoded, ended) = dechunk_prefix(&body).unwrap_or_else(|| {
        panic!(
            "not a well-formed chunked body: {:?}",
            String::from_utf8_lossy(&body)
        )
    });
    assert_eq!(
        String::from_utf8_lossy(&decoded),
        "PART-ONE\n",
        "the body before the gate opened"
    );
    assert!(!ended, "the response ended while the script still ran");
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

/// What `big.cgi` writes: this line over and over, cut at [`big_size`].
const BIG_LINE: &str = "amped streams a big script output 0123456789abcdef";
/// The least the big script writes.
const BIG_MIN: usize = 64 * 1024 * 1024;
/// How much the server's memory may grow while its client reads nothing.
const RSS_GROWTH: u64 = 32 * 1024 * 1024;
/// Pages are served beside the stalled script for at least this long.
const STALL: Duration = Duration::from_secs(2);
/// ... and at least this many, so that their median means something.
const MIN_PAGES: usize = 20;
/// The script counts as held back once its `head` has written nothing
/// more, asleep, for this long.
const HELD_FOR: Duration = Duration::from_secs(1);
/// The median page time beside the stalled script. A page from the cache
/// takes a few milliseconds; 250 ms is far above what two CPU hogs and
/// parallel tests on two cores add, and far below what a server that
/// waits on the script or the slow client (even for part of each turn)
/// would show. A median, because one page may be unlucky with the
/// scheduler on a loaded machine; [`PAGE_MAX`] bounds the worst.
const PAGE_MEDIAN: Duration = Duration::from_millis(250);
/// No page may take this long: a server blocked on the stalled client
/// would hold a page until the test's 30 s read timeout (the client reads
/// only after the pages); 10 s is generous for one page on a loaded
/// machine and still well short of that.
const PAGE_MAX: Duration = Duration::from_secs(10);

/// How many bytes of the script's output may sit between its `head` and
/// the test without any back-pressure reaching `head`: the script's stdout
/// pipe (at most `pipe-max-size`, should the server enlarge it), the
/// server's memory as far as the test allows it to grow, the server's
/// socket send buffer (at most the larger of tcp_wmem's maximum and twice
/// `wmem_max`) and the client's receive buffer (as the kernel really set
/// it). The fallbacks are generous guesses for a /proc that hides them.
fn absorbable(client: &TcpStream) -> usize {
    let pipe = sysctl_last("/proc/sys/fs/pipe-max-size").unwrap_or(16 << 20);
    pipe + RSS_GROWTH as usize + max_send_buffer() + receive_buffer(client)
}

fn big_output(size: usize) -> Vec<u8> {
    let line = format!("{BIG_LINE}\n");
    let mut out = line.repeat(size / line.len() + 1).into_bytes();
    out.truncate(size);
    out
}

/// The bytes `pid` has written so far (`wchar` in `/proc/PID/io`).
fn written(pid: i32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))?
        .trim()
        .parse()
        .ok()
}

/// The middle value (the upper one of an even count).
fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn a_slow_client_slows_the_script_not_the_server(backend: &str) {
    let site = CgiSite::new("cgi-stream-big");
    let reaper = Reaper::new(&site);
    site.script("cgi-bin/small.cgi", &format!("{TEXT_HEAD}\necho small\n"));
    let page = b"<p>a page served beside a big script</p>\n".repeat(10);
    site.file("page.html", &page);
    // The 64 MiB must not be cut by the default 30 s --cgi-timeout while
    // the client stalls and then reads on a loaded machine.
    let server = ServerProcess::serve_with(site.root(), backend, &["--cgi-timeout", "300"]);
    let pid = i32::try_from(server.pid()).expect("pid fits in pid_t");

    // The slow client's socket first: the script's size depends on it.
    let slow = connect_with_small_receive_buffer(server.addr());
    // Twice what the buffers could hold, so that a script held back by
    // back-pressure can never have written everything.
    let big_size = BIG_MIN.max(2 * absorbable(&slow));
    site.script(
        "cgi-bin/big.cgi",
        &format!("{TEXT_HEAD}\nyes '{BIG_LINE}' | head -c {big_size}\n"),
    );

    // Warm up both paths, then take the baseline.
    server.connect().get("/page.html").assert_status(200);
    server
        .connect()
        .get_dechunked("/cgi-bin/small.cgi")
        .assert_status(200);
    let baseline = vm_rss_bytes(pid).expect("the server's VmRSS");

    let slow = send_request(slow, "/cgi-bin/big.cgi", DEADLINE);
    let is_head = |p: &ProcStat| p.cmdline().starts_with("head ");
    let mut head_pid = None;
    assert!(
        poll_until(DEADLINE, || {
            head_pid = reaper.running().iter().find(|p| is_head(p)).map(|p| p.pid);
            head_pid.is_some()
        }),
        "big.cgi's `head` was never seen running (had it finished already?)"
    );
    let head_pid = head_pid.expect("found above");

    // The client reads nothing (the behaviour under test). Meanwhile other
    // clients are served, the memory is watched, and the script's `head`
    // is watched until it is held back: asleep, every process of the
    // script asleep, and nothing more written for HELD_FOR.
    let stalled = Instant::now();
    let mut peak = baseline;
    let mut times = Vec::new();
    let mut last_written = None;
    let mut still_since = Instant::now();
    let held_at = loop {
        let asked = Instant::now();
        let response = server.connect().get("/page.html");
        times.push(asked.elapsed());
        response.assert_status(200);
        assert_bytes_eq("a page beside the big script", &response.body, &page);
        peak = peak.max(vm_rss_bytes(pid).expect("the server's VmRSS"));

        let script = reaper.running();
        let Some(now_written) =
            written(head_pid).filter(|_| script.iter().any(|p| p.pid == head_pid))
        else {
            panic!(
                "big.cgi's `head` ended while its client read nothing: its {big_size} bytes \
                 went somewhere (server VmRSS {baseline} -> {peak} bytes)"
            );
        };
        let all_asleep = script.iter().all(|p| p.state == 'S');
        if !all_asleep || last_written != Some(now_written) {
            last_written = Some(now_written);
            still_since = Instant::now();
        }
        if still_since.elapsed() >= HELD_FOR
            && stalled.elapsed() >= STALL
            && times.len() >= MIN_PAGES
        {
            break now_written;
        }
        assert!(
            stalled.elapsed() < DEADLINE,
            "big.cgi was never held back within {DEADLINE:?}: `head` wrote {now_written} of \
             {big_size} bytes; processes {script:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    peak = peak.max(vm_rss_bytes(pid).expect("the server's VmRSS"));
    let summary = format!(
        "baseline VmRSS {baseline} bytes, peak {peak}; {} pages served beside it, median \
         {:?}, slowest {:?}; the script held after writing {held_at} of {big_size} bytes",
        times.len(),
        median(&times),
        times.iter().max().expect("pages were served"),
    );
    eprintln!("{backend}: {summary}");
    // That `head` is held, alive, short of its end, is the proof of
    // back-pressure (checked in the loop); the rest is about the server.
    assert!(
        median(&times) < PAGE_MEDIAN,
        "pages were slow beside a stalled script ({summary})"
    );
    assert!(
        times.iter().all(|t| *t < PAGE_MAX),
        "a page took {PAGE_MAX:?} or more beside a stalled script ({summary})"
    );
    assert!(
        peak < baseline + RSS_GROWTH,
        "the server buffered the script's output ({summary})"
    );

    let mut conn = Connection::from_stream(slow);
    let response = conn
        .try_read_response_dechunked(false)
        .unwrap_or_else(|e| panic!("the big script's response: {e}"));
    response.assert_status(200);
    assert_bytes_eq("/cgi-bin/big.cgi", &response.body, &big_output(big_size));
    // And the server is fine.
    server.connect().get("/page.html").assert_status(200);
}

/// The time limit of the script cut after its response began: it must
/// have started and written its first line by then, which takes
/// milliseconds, so 5 s leaves room for a loaded machine.
const CUT: Duration = Duration::from_secs(5);
/// How long the cut script would sleep: far beyond [`CUT_CLOSED_MAX`].
const CUT_SCRIPT_SLEEP: u64 = 120;
/// The connection must be closed within this of the request: the cut at
/// [`CUT`] plus 25 s for killing, reaping and closing on a loaded machine,
/// and still far short of the script's own end.
const CUT_CLOSED_MAX: Duration = Duration::from_secs(30);

fn timeout_after_the_response_began_truncates_visibly(backend: &str) {
    let site = CgiSite::new("cgi-stream-timeout");
    let reaper = Reaper::new(&site);
    site.script(
        "cgi-bin/stall.cgi",
        &format!(
            "{TEXT_HEAD}\necho 'the beginning of a body'\nsleep {CUT_SCRIPT_SLEEP}\necho 'never'\n"
        ),
    );
    let cut = CUT.as_secs().to_string();
    let server = ServerProcess::serve_with(site.root(), backend, &["--cgi-timeout", &cut]);
    let sent = Instant::now();
    let mut stream = raw_request(&server, "/cgi-bin/stall.cgi", CUT_CLOSED_MAX);
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
                    "the connection was still open {:?} into a script cut at {CUT:?}; body so \
                     far {:?}",
                    sent.elapsed(),
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
    // Not before the limit (the script started after the request was
    // sent; 100 ms for timer granularity), and well before the script's
    // own end.
    assert!(
        closed >= CUT - Duration::from_millis(100) && closed < CUT_CLOSED_MAX,
        "closed {closed:?} after the request with --cgi-timeout {cut}"
    );
    assert!(
        poll_until(DEADLINE, || reaper.running().is_empty()),
        "the script's processes outlived its timeout: {:?}",
        reaper.running()
    );
}

per_backend!(
    output_streams_as_the_script_writes_it,
    a_slow_client_slows_the_script_not_the_server,
    timeout_after_the_response_began_truncates_visibly,
);
