//! Chaos, under each event backend: 50 clients fetch static files (small
//! inline ones and ~1 MiB ones sent by descriptor) and 10 clients run a
//! CGI script for 20 s while a random helper is SIGKILLed every 200 ms and
//! the cgi-runner every 2 s; every response is 200 and byte-exact (but for
//! a script whose runner was killed as it started it: 502, at most one per
//! kill, as it may have run), the status page counts the restarts, no
//! zombie is left and the server still serves.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tests::docroot::pseudo_random_bytes;
use tests::http_client::request_bytes;
use tests::procfs::{children_of, live_children_named, poll_until, send_signal};
use tests::status::{helper_restarts, status_json, status_number, STATUS_PATH};
use tests::{assert_bytes_eq, per_backend, Connection, ServerProcess, TempDocroot, DEADLINE};

/// A small deterministic generator (xorshift64) for the chaos choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

const CHAOS_FOR: Duration = Duration::from_secs(20);
const STATIC_CLIENTS: usize = 50;
const CGI_CLIENTS: usize = 10;
/// A random helper is killed every tick...
const KILL_TICK: Duration = Duration::from_millis(200);
/// ...and the cgi-runner every this many ticks (2 s).
const RUNNER_EVERY_TICKS: u32 = 10;
/// Requests per keep-alive connection before a client opens a new one.
const REQUESTS_PER_CONNECTION: u32 = 20;
/// How long a chaos client waits for a response.
const CLIENT_WAIT: Duration = Duration::from_secs(40);

/// Small files come back inline (below the default 64 KiB inline-max),
/// large ones as descriptors sent with sendfile. There are many small
/// files so that, with entries fresh for only a second, the helpers keep
/// getting lookups.
fn chaos_files(docroot: &TempDocroot) -> Vec<(String, Arc<[u8]>)> {
    const SMALL_SIZES: [usize; 8] = [0, 1, 100, 1000, 4096, 10_000, 30_000, 60_000];
    let mut files = Vec::new();
    for i in 0..120 {
        let size = SMALL_SIZES[i % SMALL_SIZES.len()] + i;
        files.push((format!("small/{i}.html"), size));
    }
    for i in 0..4 {
        files.push((format!("large/{i}.bin"), (1 << 20) + i * 4099));
    }
    files
        .into_iter()
        .enumerate()
        .map(|(seed, (rel, size))| {
            let bytes = pseudo_random_bytes(size, 7000 + seed as u64);
            docroot.write(&rel, &bytes);
            (format!("/{rel}"), Arc::from(bytes))
        })
        .collect()
}

/// The CGI script: a known body that echoes the query string (so a
/// response cannot be mistaken for another request's), with its length.
const CHAOS_CGI: &str = r#"#!/bin/sh
sleep 0.1
body="chaos $QUERY_STRING
$(seq 1 2000)"
printf 'Content-Type: text/plain\r\nContent-Length: %s\r\n\r\n%s\n' "$((${#body} + 1))" "$body"
"#;

fn chaos_cgi_body(query: &str) -> Vec<u8> {
    let numbers: Vec<String> = (1..=2000).map(|n: u32| n.to_string()).collect();
    format!("chaos {query}\n{}\n", numbers.join("\n")).into_bytes()
}

/// What the clients of one kind saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    slowest_ms: AtomicU64,
    first_failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self
            .first_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if first.len() < 20 {
            first.push(what);
        }
    }

    fn failures(&self) -> Vec<String> {
        self.first_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One client: GETs what `pick` names, on keep-alive connections renewed
/// every few requests, until `stop`; every response must be 200 with
/// exactly the expected body.
fn client(
    addr: SocketAddr,
    stop: &AtomicBool,
    tally: &Tally,
    mut pick: impl FnMut(u64) -> (String, Arc<[u8]>),
) {
    let mut conn: Option<Connection> = None;
    let mut on_conn = 0;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let (path, expected) = pick(n);
        n += 1;
        if conn.is_none() {
            match TcpStream::connect(addr) {
                Ok(stream) => {
                    let c = Connection::from_stream(stream);
                    // Longer than the server's own 30 s CGI time limit, so
                    // that a stuck request shows what the server makes of it.
                    c.set_read_timeout(CLIENT_WAIT);
                    conn = Some(c);
                }
                Err(e) => {
                    tally.fail(format!("connect for {path}: {e}"));
                    continue;
                }
            }
            on_conn = 0;
        }
        let c = conn.as_mut().expect("connected above");
        let sent = Instant::now();
        let result = c
            .try_send(request_bytes("GET", &path, &[]).as_bytes())
            .and_then(|()| c.try_read_response(false));
        let ms = u64::try_from(sent.elapsed().as_millis()).unwrap_or(u64::MAX);
        tally.slowest_ms.fetch_max(ms, Ordering::Relaxed);
        match result {
            Ok(r) if r.status == 200 && *r.body == *expected => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                on_conn += 1;
                if r.connection_has("close") || on_conn >= REQUESTS_PER_CONNECTION {
                    conn = None;
                }
            }
            Ok(r) => {
                tally.fail(format!(
                    "{path} after {ms} ms: status {}, {}\n{}",
                    r.status,
                    tests::http_client::bytes_mismatch(&r.body, &expected).unwrap_or_default(),
                    r.head_text()
                ));
                conn = None;
            }
            Err(e) => {
                tally.fail(format!("{path} after {ms} ms: {e}"));
                conn = None;
            }
        }
    }
}

fn chaos_under_kills(backend: &str) {
    let docroot = TempDocroot::new(&format!("chaos-{backend}"));
    let files: Arc<Vec<(String, Arc<[u8]>)>> = Arc::new(chaos_files(&docroot));
    let script = docroot.path().join("cgi-bin/chaos.cgi");
    tests::cgi::write_executable(&script, CHAOS_CGI.as_bytes(), 0o755);
    // A lookup can wait for a helper through several kills and back-offs
    // (up to 5 s each); --helper-timeout 30 keeps a loaded machine's
    // slowest lookups from turning into 503s, which this test counts as
    // failures.
    let mut server = ServerProcess::serve_with(
        docroot.path(),
        backend,
        &[
            "--helpers",
            "2",
            "--helper-timeout",
            "30",
            "--status-path",
            STATUS_PATH,
        ],
    );
    let pid = server.pid_t();
    let addr = server.addr();

    let stop = Arc::new(AtomicBool::new(false));
    let static_tally = Arc::new(Tally::default());
    let cgi_tally = Arc::new(Tally::default());
    let mut clients = Vec::new();
    for t in 0..STATIC_CLIENTS {
        let (stop, tally, files) = (stop.clone(), static_tally.clone(), files.clone());
        clients.push(thread::spawn(move || {
            let mut rng = Rng::new(t as u64 + 1);
            client(addr, &stop, &tally, |_| {
                // One request in five is for a large file.
                let (path, bytes) = if rng.below(5) == 0 {
                    &files[files.len() - 1 - rng.below(4)]
                } else {
                    &files[rng.below(files.len() - 4)]
                };
                (path.clone(), bytes.clone())
            });
        }));
    }
    for t in 0..CGI_CLIENTS {
        let (stop, tally) = (stop.clone(), cgi_tally.clone());
        clients.push(thread::spawn(move || {
            client(addr, &stop, &tally, |n| {
                let query = format!("client={t}&n={n}");
                (
                    format!("/cgi-bin/chaos.cgi?{query}"),
                    Arc::from(chaos_cgi_body(&query)),
                )
            });
        }));
    }

    // The killer: the children are looked up afresh in /proc each time. A
    // helper killed every 200 ms never stays up the 10 s that resets its
    // back-off, so the helpers soon spend most of the time waiting (up to
    // 5 s) to be restarted and most ticks find none alive to kill: requests
    // that need a helper wait for one, within the 10 s --helper-timeout.
    let mut rng = Rng::new(0xC4A05 + backend.len() as u64);
    let (mut helper_kills, mut runner_kills) = (0u32, 0u32);
    let chaos_started = Instant::now();
    let mut tick = 0;
    while chaos_started.elapsed() < CHAOS_FOR {
        thread::sleep(KILL_TICK);
        tick += 1;
        let helpers = live_children_named(pid, "helper");
        if !helpers.is_empty() && send_signal(helpers[rng.below(helpers.len())], libc::SIGKILL) {
            helper_kills += 1;
        }
        if tick % RUNNER_EVERY_TICKS == 0 {
            for runner in live_children_named(pid, "cgi-runner") {
                if send_signal(runner, libc::SIGKILL) {
                    runner_kills += 1;
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("a client thread panicked");
    }

    let report = |what: &str, tally: &Tally| {
        format!(
            "{what}: {} ok, {} failed, slowest {} ms",
            tally.ok.load(Ordering::Relaxed),
            tally.failed.load(Ordering::Relaxed),
            tally.slowest_ms.load(Ordering::Relaxed)
        )
    };
    let summary = format!(
        "{backend}: {}; {}; {helper_kills} helper kills, {runner_kills} runner kills",
        report("static", &static_tally),
        report("CGI", &cgi_tally)
    );
    eprintln!("chaos {summary}");
    let status = status_json(&server, STATUS_PATH);
    // A runner killed while it starts a script cannot say whether the
    // script ran; that run is not run again and its client gets 502. The
    // runner starts one script at a time, so each kill loses one at most.
    let (lost, cgi_failures): (Vec<String>, Vec<String>) = cgi_tally
        .failures()
        .into_iter()
        .partition(|f| f.contains(": status 502,"));
    assert!(
        lost.len() <= runner_kills as usize
            && server
                .stderr_text()
                .matches("the cgi-runner died as it started the script")
                .count()
                >= lost.len(),
        "more 502s than runner deaths could explain ({summary}):\n{}",
        lost.join("\n")
    );
    let failures: Vec<String> = static_tally
        .failures()
        .into_iter()
        .chain(cgi_failures)
        .collect();
    assert!(
        failures.is_empty(),
        "failed or wrong responses under chaos ({summary}); the first ones:\n{}\n\
         status page afterwards: {status}",
        failures.join("\n")
    );
    assert!(
        static_tally.ok.load(Ordering::Relaxed) >= 200
            && cgi_tally.ok.load(Ordering::Relaxed) >= 20,
        "too few responses to mean anything ({summary})"
    );
    assert!(
        helper_kills >= 10 && runner_kills >= 3,
        "too few kills to mean anything ({summary})"
    );

    // The server counted the restarts and still serves everything.
    let restarts = helper_restarts(&status);
    assert!(
        restarts.len() == 2 && restarts.iter().all(|&n| n > 0),
        "helper_restarts after {helper_kills} helper kills: {restarts:?}"
    );
    let runner_restarts = status_number(&status, "/cgi_runner_restarts");
    assert!(
        runner_restarts > 0,
        "cgi_runner_restarts after {runner_kills} runner kills: {runner_restarts}"
    );
    let mut conn = server.connect();
    for (path, bytes) in [&files[1], &files[files.len() - 1]] {
        let response = conn.get(path);
        response.assert_status(200);
        assert_bytes_eq(&format!("{path} after the chaos"), &response.body, bytes);
    }
    let response = conn.get("/cgi-bin/chaos.cgi?after");
    response.assert_status(200);
    assert_bytes_eq(
        "the CGI script after the chaos",
        &response.body,
        &chaos_cgi_body("after"),
    );

    // Every dead child (and orphaned script) was reaped.
    let zombies = || {
        children_of(pid)
            .into_iter()
            .filter(|p| !p.is_live())
            .map(|p| format!("{} ({})", p.pid, p.comm))
            .collect::<Vec<_>>()
    };
    assert!(
        poll_until(DEADLINE, || zombies().is_empty()),
        "the server left zombie children: {:?}",
        zombies()
    );
    assert!(server.is_alive(), "the server died during the chaos");
}

per_backend!(chaos_under_kills);
