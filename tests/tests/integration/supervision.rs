//! Supervision of the children and of the server itself, under each event
//! backend:
//!
//! - chaos: 50 clients fetch static files (small inline ones and ~1 MiB
//!   ones sent by descriptor) and 10 clients run a CGI script for 20 s
//!   while a random helper is SIGKILLed every 200 ms and the cgi-runner
//!   every 2 s; every response is 200 and byte-exact (but for a script
//!   whose runner was killed as it started it: 502, at most one per
//!   kill, as it may have run), the status page counts the restarts, no
//!   zombie is left and the server still serves;
//! - `kill -9` of the server takes its helpers, its runner and a running
//!   script's process group with it within a second;
//! - SIGTERM in the middle of a 100 MiB download: new connections are
//!   refused, the download completes byte-exact, the server exits 0;
//! - helpers that exit at once on start (`AMPED_TEST_HELPER_EXIT_IF`) are
//!   restarted at once and then with exponential back-off (each gap about
//!   twice the last: 0.1, 0.2, ... 3.2 s, then the 5 s cap), with little
//!   CPU; requests get 503 after `--helper-timeout` instead of hanging,
//!   and service resumes once they can start again;
//! - the status page (`--status-path`), as text and `?json`, and its
//!   counters; 404 without the option;
//! - SIGHUP reopens the access log after it was renamed.
//!
//! The chaos test runs under all three backends; with the harness's
//! default parallelism the whole file takes about a minute.

use std::fs;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tests::docroot::pseudo_random_bytes;
use tests::http_client::request_bytes;
use tests::procfs::{
    children_of, cmdline, is_alive, live_children_named, live_group_members, poll_until, proc_stat,
    runnable_share, send_signal, wait_for_live_children, KillOnDrop,
};
use tests::status::{
    helper_restarts, open_connections_after_a_turn, status_json, status_number, STATUS_PATH,
};
use tests::streaming::{fill_to, read_head};
use tests::{
    assert_bytes_eq, per_backend, www_docroot, Connection, ServerProcess, TempDocroot, DEADLINE,
};

// ----- shared bits -------------------------------------------------------

/// Writes an executable (mode 755) script at `rel` beneath the root.
fn script(docroot: &TempDocroot, rel: &str, text: &str) {
    let path = docroot.write(rel, text.as_bytes());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod 755 {}: {e}", path.display()));
}

fn server_pid(server: &ServerProcess) -> i32 {
    i32::try_from(server.pid()).expect("pid fits in pid_t")
}

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

// ----- 1. chaos ----------------------------------------------------------

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

fn describe_mismatch(got: &[u8], expected: &[u8]) -> String {
    let first_diff = got
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(expected.len()));
    format!(
        "{} body bytes, expected {}; first difference at offset {first_diff}",
        got.len(),
        expected.len()
    )
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
                    describe_mismatch(&r.body, &expected),
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
    script(&docroot, "cgi-bin/chaos.cgi", CHAOS_CGI);
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
    let pid = server_pid(&server);
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

// ----- 2. kill -9 of the server ------------------------------------------

/// The script's processes: the runner's live children and everyone in
/// their process groups (each script leads its own group).
fn script_processes(runner: i32) -> Vec<(i32, String)> {
    let mut found: Vec<(i32, String)> = Vec::new();
    for child in children_of(runner).into_iter().filter(|p| p.is_live()) {
        for member in live_group_members(child.pid) {
            found.push((member.pid, member.comm));
        }
        found.push((child.pid, child.comm));
    }
    found.sort_unstable();
    found.dedup();
    found
}

fn kill_9_of_the_server_leaves_no_child_behind(backend: &str) {
    let docroot = TempDocroot::new(&format!("kill9-{backend}"));
    let marker = docroot.outside().join("script-started");
    script(
        &docroot,
        "cgi-bin/sleepy.cgi",
        &format!(
            "#!/bin/sh\n: > '{}'\nsleep 30\nprintf 'Content-Type: text/plain\\r\\n\\r\\nlate\\n'\n",
            marker.display()
        ),
    );
    let server = ServerProcess::serve(docroot.path(), backend);
    let pid = server_pid(&server);

    // A script in flight.
    let mut conn = server.connect();
    conn.send(request_bytes("GET", "/cgi-bin/sleepy.cgi", &[]).as_bytes());
    assert!(
        poll_until(DEADLINE, || marker.exists()),
        "the CGI script did not start"
    );
    let helpers = wait_for_live_children(pid, "helper", 2);
    let runners = wait_for_live_children(pid, "cgi-runner", 1);
    let mut scripts = Vec::new();
    assert!(
        poll_until(DEADLINE, || {
            scripts = script_processes(runners[0]);
            scripts.iter().any(|(_, comm)| comm == "sleep")
        }),
        "no `sleep` under the runner: {scripts:?}"
    );
    let watched: Vec<(i32, String)> = helpers
        .iter()
        .map(|&p| (p, "helper".to_owned()))
        .chain(runners.iter().map(|&p| (p, "cgi-runner".to_owned())))
        .chain(scripts.iter().cloned())
        .collect();
    // Whatever survives the test is killed at the end, by PID.
    let _cleanup = KillOnDrop(watched.iter().map(|(p, _)| *p).collect());

    // Timed from just before the kill; checked every 5 ms, so the time
    // taken is known to within a scan of /proc. On an idle machine they are
    // gone within a few milliseconds; the bound leaves room for a loaded
    // one, where the dying processes wait for a CPU.
    let killed = Instant::now();
    assert!(send_signal(pid, libc::SIGKILL), "kill -9 the server");
    let mut all_gone_after = None;
    while killed.elapsed() < KILL_9_WITHIN {
        if watched.iter().all(|&(p, _)| !is_alive(p)) {
            all_gone_after = Some(killed.elapsed());
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let survivors: Vec<String> = watched
        .iter()
        .filter(|&&(p, _)| is_alive(p))
        .map(|(p, comm)| {
            let ppid = proc_stat(*p).map_or(0, |s| s.ppid);
            format!("{p} {comm} (parent {ppid}): {}", cmdline(*p))
        })
        .collect();
    assert!(
        survivors.is_empty(),
        "{KILL_9_WITHIN:?} after kill -9 of the server these are still alive:\n{}",
        survivors.join("\n")
    );
    if let Some(gone_after) = all_gone_after {
        eprintln!("{backend}: {watched:?} all gone {gone_after:?} after kill -9 of the server");
    }
}

/// How long a killed server's children may take to die with it.
const KILL_9_WITHIN: Duration = Duration::from_secs(5);

// ----- 3. SIGTERM during a download ---------------------------------------

fn sigterm_lets_a_download_finish_and_exits_0(backend: &str) {
    let www = www_docroot();
    let file = www
        .generated
        .iter()
        .find(|f| f.size == 100 * 1024 * 1024)
        .expect("the 100 MiB generated file");
    let expected = file.contents();
    // Room enough for the rest of the download on a loaded machine; the
    // drain itself is what is under test, not its time limit.
    let mut server = ServerProcess::serve_with(&www.root, backend, &["--shutdown-timeout", "120"]);
    let pid = server_pid(&server);
    let addr = server.addr();

    let mut stream = server.connect_raw();
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream
        .write_all(request_bytes("GET", &file.url_path, &[]).as_bytes())
        .expect("send the request");
    let head = read_head(&mut stream).expect("the response head");
    assert_eq!(head.status, 200, "{}", head.text);
    let len = usize::try_from(head.content_length.expect("Content-Length")).expect("fits");
    assert_eq!(len, expected.len(), "{}", head.text);
    let mut body = head.leftover;
    fill_to(&mut stream, &mut body, 4 << 20).expect("the first 4 MiB");

    assert!(send_signal(pid, libc::SIGTERM), "SIGTERM the server");
    let signalled = Instant::now();
    // Once the server has taken the signal in, it accepts nothing more.
    let refused = poll_until(
        DEADLINE,
        || matches!(TcpStream::connect(addr), Err(e) if e.kind() == ErrorKind::ConnectionRefused),
    );
    let refused_after = signalled.elapsed();

    let rest = fill_to(&mut stream, &mut body, len);
    let status = server.wait_for_exit(DEADLINE);

    let mut problems = Vec::new();
    if let Err(e) = &rest {
        problems.push(format!("the download broke off: {e}"));
    } else if body != expected {
        problems.push(format!(
            "the download differs: {}",
            describe_mismatch(&body, &expected)
        ));
    }
    match status {
        Some(s) if s.code() == Some(0) => {}
        Some(s) => problems.push(format!("the server exited with {s}, not 0")),
        None => problems.push(format!(
            "the server had not exited {DEADLINE:?} after the download"
        )),
    }
    if !refused {
        problems.push(format!(
            "connect() still succeeded {refused_after:?} after SIGTERM: a draining \
             server must stop listening, so that new connections are refused"
        ));
    }
    assert!(
        problems.is_empty(),
        "SIGTERM during a 100 MiB download:\n{}",
        problems.join("\n")
    );
}

// ----- 4. helpers that die at once ---------------------------------------

/// The back-offs the README promises before each start while the helpers
/// keep dying: at once after the kill, then 100 ms doubling. The unit
/// tests of `server/src/backoff.rs` prove the schedule exactly (the 5 s
/// cap and the reset after 10 s up included); this test shows the server
/// lives by it, with bounds that hold on a loaded machine: a restart timer
/// never fires early, so start k cannot come before the sum of the
/// back-offs before it (no slack needed), and the upper bounds are wide.
const BACKOFFS_MS: [u64; 7] = [0, 100, 200, 400, 800, 1600, 3200];
/// The back-off after the 7th death: the 5 s cap, not the 6.4 s that
/// doubling would give.
const CAPPED_BACKOFF: Duration = Duration::from_secs(5);
/// How long the 7 starts may take in all: about 6.4 s on an idle machine;
/// far more room than that for a loaded one.
const SEVEN_STARTS_WITHIN: Duration = Duration::from_secs(20);
/// How long after the 7th start the 8th (the cap, then a helper that
/// stays up) may come: 5 s, plus room for a loaded machine.
const EIGHTH_START_WITHIN: Duration = Duration::from_secs(15);

/// The server's error-log lines saying helper `index` exited on the hook.
fn hook_exits(server: &ServerProcess, index: usize) -> usize {
    let name = format!("helper {index} (pid ");
    server
        .stderr_text()
        .lines()
        .filter(|l| l.contains(&name) && l.ends_with("exited: exit status: 3"))
        .count()
}

fn helpers_dying_on_start_back_off_then_recover(backend: &str) {
    let docroot = TempDocroot::new(&format!("exit-hook-{backend}"));
    let first = b"<p>first</p>\n";
    let second = b"<p>second</p>\n";
    docroot.write("first.html", first);
    docroot.write("second.html", second);
    let flag = docroot.outside().join("helpers-must-exit");
    let server = ServerProcess::start_with_env(
        &[
            "--root".as_ref(),
            docroot.path().as_os_str(),
            "--event-handler".as_ref(),
            backend.as_ref(),
            "--helpers".as_ref(),
            "2".as_ref(),
            "--helper-timeout".as_ref(),
            "2".as_ref(),
            "--status-path".as_ref(),
            STATUS_PATH.as_ref(),
        ],
        &[(
            "AMPED_TEST_HELPER_EXIT_IF",
            flag.to_str().expect("UTF-8 temp path"),
        )],
    );
    let pid = server_pid(&server);
    let helpers = wait_for_live_children(pid, "helper", 2);
    let restarts_before = helper_restarts(&status_json(&server, STATUS_PATH));

    fs::write(&flag, b"").expect("create the hook file");
    // Taken before the kill: every start comes after it.
    let killed = Instant::now();
    for &helper in &helpers {
        assert!(send_signal(helper, libc::SIGKILL), "kill helper {helper}");
    }

    // Meanwhile, no helper can start: an uncached file gets 503 after
    // --helper-timeout (2 s), not a hang (nor a 200 once helpers are back).
    let asker = {
        let addr = server.addr();
        thread::spawn(move || {
            let asked = Instant::now();
            let response = tests::http_client::fetch(addr, "/first.html");
            (response, asked.elapsed())
        })
    };

    // When each helper's starts are first seen on the status page's restart
    // counters (each seen no earlier than it happened).
    let mut seen: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let watch_until = |seen: &mut [Vec<Duration>; 2], want: usize, within: Duration| {
        while seen.iter().any(|t| t.len() < want) {
            let restarts = helper_restarts(&status_json(&server, STATUS_PATH));
            let now = killed.elapsed();
            for (i, times) in seen.iter_mut().enumerate() {
                while (times.len() as u64) < restarts[i] - restarts_before[i] {
                    times.push(now);
                }
            }
            assert!(
                now < within,
                "fewer than {want} starts per helper within {within:?} of the kill: \
                 {seen:?}\nstderr:\n{}",
                server.stderr_text()
            );
            thread::sleep(Duration::from_millis(10));
        }
    };
    watch_until(&mut seen, BACKOFFS_MS.len(), SEVEN_STARTS_WITHIN);

    // Every one of those starts died on the hook: wait until the server has
    // logged all 7 exits of each (so no helper started with the hook set
    // is still up), then lift the hook.
    assert!(
        poll_until(DEADLINE, || (0..2)
            .all(|i| hook_exits(&server, i) >= BACKOFFS_MS.len())),
        "the server did not log 7 hook exits per helper:\n{}",
        server.stderr_text()
    );
    fs::remove_file(&flag).expect("remove the hook file");

    // Nothing to do until the capped back-off ends: the server sleeps in
    // its poller, it does not spin (runnable in few samples, however
    // loaded the machine).
    let runnable = runnable_share(pid, Duration::from_secs(2));
    assert!(
        runnable < 0.5,
        "the server was runnable in {:.0}% of the samples while its helpers waited \
         to be restarted",
        runnable * 100.0
    );

    // The next start of each, after the cap, is a helper that stays up.
    watch_until(
        &mut seen,
        BACKOFFS_MS.len() + 1,
        SEVEN_STARTS_WITHIN + EIGHTH_START_WITHIN,
    );
    let mut up = Vec::new();
    assert!(
        poll_until(DEADLINE, || {
            up = live_children_named(pid, "helper");
            up.len() == 2 && up.iter().all(|p| !helpers.contains(p))
        }),
        "both helpers did not stay up after the hook was lifted: {up:?}"
    );

    let summary = format!("helper starts seen after the kill: {seen:?}");
    eprintln!("{backend}: {summary}");
    for (i, times) in seen.iter().enumerate() {
        let mut earliest = Duration::ZERO;
        for (k, backoff) in BACKOFFS_MS.iter().enumerate() {
            earliest += Duration::from_millis(*backoff);
            assert!(
                times[k] >= earliest,
                "helper {i}: start {} seen {:?} after the kill, before the {earliest:?} \
                 its back-offs add up to ({summary})",
                k + 1,
                times[k]
            );
        }
        let eighth = times[BACKOFFS_MS.len()];
        assert!(
            eighth >= earliest + CAPPED_BACKOFF,
            "helper {i}: the start after the hook was lifted came {eighth:?} after the \
             kill, before the capped back-off of {CAPPED_BACKOFF:?} ({summary})"
        );
        assert!(
            eighth - times[BACKOFFS_MS.len() - 1] < EIGHTH_START_WITHIN,
            "helper {i}: the start after the hook was lifted took too long ({summary})"
        );
    }

    let (response, waited) = asker.join().expect("the 503 client");
    response.assert_error_page(503);
    assert!(
        response.header("Retry-After").is_some(),
        "503 without Retry-After:\n{}",
        response.head_text()
    );
    // The server's timer starts once it has read the request, after
    // `asked`: never before 2 s. The upper bound is only wide enough for a
    // loaded machine; the helpers were not back for another 9 s, so a
    // server without the timeout would have answered 200 much later.
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(8),
        "the 503 took {waited:?} with --helper-timeout 2"
    );

    // Service resumes.
    let response = server.connect().get("/second.html");
    response.assert_status(200);
    assert_bytes_eq("/second.html after recovery", &response.body, second);
}

// ----- 5. the status page ------------------------------------------------

fn status_page_text_json_and_counters(backend: &str) {
    let docroot = TempDocroot::new(&format!("status-{backend}"));
    let page = b"<p>a page for the counters</p>\n";
    docroot.write("page.html", page);
    let server = ServerProcess::serve_with(
        docroot.path(),
        backend,
        &["--helpers", "2", "--status-path", STATUS_PATH],
    );

    let text = server.connect().get(STATUS_PATH);
    text.assert_status(200);
    assert!(
        text.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "status page Content-Type:\n{}",
        text.head_text()
    );
    let body = text.body_text();
    let line = |prefix: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}...` line in the status page:\n{body}"))
            .to_owned()
    };
    let numbers = |rest: &str| -> Vec<u64> {
        rest.split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    let uptime = line("uptime: ");
    assert!(
        uptime
            .strip_suffix(" s")
            .is_some_and(|n| n.parse::<u64>().is_ok()),
        "uptime line: {uptime:?}"
    );
    for prefix in [
        "open connections: ",
        "requests: ",
        "helper lookups in flight: ",
        "cgi-runner restarts: ",
        "cgi running: ",
    ] {
        let rest = line(prefix);
        assert!(
            rest.parse::<u64>().is_ok(),
            "`{prefix}{rest}` is not a count"
        );
    }
    let responses = line("responses: ");
    assert!(
        responses.starts_with("1xx ")
            && ["2xx ", "3xx ", "4xx ", "5xx "]
                .iter()
                .all(|c| responses.contains(c))
            && numbers(&responses).len() == 5,
        "responses line: {responses:?}"
    );
    let cache = line("cache: ");
    assert!(
        ["hits ", "misses ", "bytes ", "entries "]
            .iter()
            .all(|c| cache.contains(c))
            && numbers(&cache).len() == 4,
        "cache line: {cache:?}"
    );
    assert_eq!(line("helper restarts: "), "0 0", "two helpers, no restarts");
    assert_eq!(line("cgi-runner restarts: "), "0");

    // The JSON says the same things, and its counters move.
    let before = status_json(&server, STATUS_PATH);
    for pointer in [
        "/uptime_secs",
        "/open_connections",
        "/requests",
        "/responses/1xx",
        "/responses/2xx",
        "/responses/3xx",
        "/responses/4xx",
        "/responses/5xx",
        "/cache/hits",
        "/cache/misses",
        "/cache/bytes",
        "/cache/entries",
        "/helper_lookups_in_flight",
        "/cgi_runner_restarts",
        "/cgi_running",
    ] {
        status_number(&before, pointer);
    }
    // The page's own connection and an idle one are open (polled: the
    // connections of earlier status fetches may not be closed yet).
    let _idle = server.connect();
    let mut open = 0;
    assert!(
        poll_until(DEADLINE, || {
            open = open_connections_after_a_turn(&server);
            open == 2
        }),
        "open_connections with one idle client besides the status page: {open}"
    );
    assert_eq!(helper_restarts(&before), [0, 0], "{before}");

    let mut conn = server.connect();
    let first = conn.get("/page.html");
    first.assert_status(200);
    assert_bytes_eq("/page.html", &first.body, page);
    conn.get("/missing.html").assert_status(404);
    // A second fetch inside the entry's freshness is a cache hit; retried
    // in case a slow machine let the entry go stale in between.
    let mut after = status_json(&server, STATUS_PATH);
    let hit = poll_until(Duration::from_secs(5), || {
        conn.get("/page.html").assert_status(200);
        after = status_json(&server, STATUS_PATH);
        status_number(&after, "/cache/hits") > status_number(&before, "/cache/hits")
    });
    assert!(hit, "no cache hit counted:\nbefore {before}\nafter {after}");
    let grew = |pointer: &str, by: u64| {
        assert!(
            status_number(&after, pointer) >= status_number(&before, pointer) + by,
            "{pointer} did not grow by {by}:\nbefore {before}\nafter {after}"
        );
    };
    grew("/requests", 3);
    grew("/responses/2xx", 2);
    grew("/responses/4xx", 1);
    grew("/cache/misses", 1);
    assert!(status_number(&after, "/cache/entries") >= 1, "{after}");
    assert!(
        status_number(&after, "/cache/bytes") >= page.len() as u64,
        "{after}"
    );

    // Without --status-path the path is an ordinary (missing) file.
    let plain = ServerProcess::serve(docroot.path(), backend);
    plain.connect().get(STATUS_PATH).assert_error_page(404);
    plain
        .connect()
        .get(&format!("{STATUS_PATH}?json"))
        .assert_error_page(404);
}

// ----- 6. SIGHUP reopens the access log ----------------------------------

fn read_text(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn sighup_reopens_the_access_log(backend: &str) {
    let docroot = TempDocroot::new(&format!("sighup-{backend}"));
    docroot.write("before.html", b"<p>before</p>\n");
    docroot.write("after.html", b"<p>after</p>\n");
    let log = docroot.outside().join("access.log");
    let rotated = docroot.outside().join("access.log.1");
    let server = ServerProcess::serve_with(
        docroot.path(),
        backend,
        &["--access-log", log.to_str().expect("UTF-8 temp path")],
    );
    let log_wait = Duration::from_secs(10);

    server.connect().get("/before.html").assert_status(200);
    assert!(
        poll_until(log_wait, || read_text(&log).contains("\"GET /before.html ")),
        "the first request was not logged: {:?}",
        read_text(&log)
    );
    fs::rename(&log, &rotated).expect("rename the log");
    assert!(
        send_signal(server_pid(&server), libc::SIGHUP),
        "SIGHUP the server"
    );
    assert!(
        poll_until(log_wait, || log.exists()),
        "SIGHUP did not create a new {}",
        log.display()
    );
    server.connect().get("/after.html").assert_status(200);
    assert!(
        poll_until(log_wait, || read_text(&log).contains("\"GET /after.html ")),
        "the request after SIGHUP is not in the new log: new {:?}, old {:?}",
        read_text(&log),
        read_text(&rotated)
    );
    let old = read_text(&rotated);
    let new = read_text(&log);
    assert!(
        old.contains("\"GET /before.html ") && !old.contains("/after.html"),
        "the renamed log: {old:?}"
    );
    assert!(
        !new.contains("/before.html"),
        "the new log repeats old lines: {new:?}"
    );
}

per_backend!(
    chaos_under_kills,
    kill_9_of_the_server_leaves_no_child_behind,
    sigterm_lets_a_download_finish_and_exits_0,
    helpers_dying_on_start_back_off_then_recover,
    status_page_text_json_and_counters,
    sighup_reopens_the_access_log,
);
