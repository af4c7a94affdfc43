//! Scale-out behind HAProxy: two amped instances behind the configuration
//! of `dist/haproxy/haproxy.cfg` itself (its server ports replaced by the
//! instances' and its frontend bound to a listening socket the test
//! passes as descriptor 3, `bind fd@3`), with the status page as the
//! health check. Client threads keep requests going through HAProxy, on
//! keep-alive and one-request connections, while one instance is
//! SIGKILLed; HAProxy marks it down and, retrying on the other instance,
//! loses not one request: every answer is 200 with the file's bytes.
//! Also: docs/operations.md shows that same configuration.
//!
//! The file is 1 KiB, written by amped in one call: a response cut off
//! half-way, which no proxy can replay once it has begun to reach the
//! client, cannot happen to it. The test needs haproxy (Debian's package,
//! as `.ci/run` installs it); without it, it fails saying so, unless
//! `AMPED_TESTS_NO_HAPROXY=1` asks to skip it.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Instant;

use tests::binaries::{pass_fd_as, spawn_locked};
use tests::http_client::request_bytes;
use tests::procfs::{poll_until, send_signal};
use tests::status::{status_json, status_number};
use tests::{workspace_root, Connection, ServerProcess, TempDocroot, DEADLINE};

/// The descriptor HAProxy's frontend is bound to (`bind fd@3`).
const FRONT_FD: i32 = 3;
const KEEP_ALIVE_THREADS: usize = 2;
const NEW_CONNECTION_THREADS: usize = 2;
/// Requests on one keep-alive connection before its thread opens another.
const REQUESTS_PER_CONNECTION: u32 = 50;
/// Requests the first instance answers (its status page says) before it
/// is killed: the load is running through both.
const KILL_AFTER: u64 = 300;
/// Requests answered through HAProxy after it marked the instance down,
/// before the load stops.
const ANSWERED_AFTER_DOWN: u64 = 200;

/// HAProxy's path, or `None` after saying why the test is skipped;
/// panics when it is missing and skipping was not asked for.
fn haproxy() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let found = on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("haproxy"))
        .find(|bin| bin.is_file());
    if found.is_some() {
        return found;
    }
    if std::env::var("AMPED_TESTS_NO_HAPROXY").as_deref() == Ok("1") {
        eprintln!("skipped: the HAProxy test needs haproxy (AMPED_TESTS_NO_HAPROXY=1)");
        return None;
    }
    panic!(
        "the HAProxy test needs haproxy: install it with `apt-get install haproxy` (as .ci/run \
         does), or set AMPED_TESTS_NO_HAPROXY=1 to skip it knowingly"
    );
}

fn example_config() -> String {
    let path = workspace_root().join("dist/haproxy/haproxy.cfg");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// HAProxy in the foreground, its stderr in a file; killed when dropped.
struct Haproxy {
    child: Child,
    log: PathBuf,
}

impl Haproxy {
    fn start(bin: &Path, config: &str, front: &TcpListener, dir: &Path) -> Self {
        let config_path = dir.join("haproxy.cfg");
        fs::write(&config_path, config).expect("write haproxy.cfg");
        let log = dir.join("haproxy.log");
        let mut command = Command::new(bin);
        command
            .arg("-db")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("haproxy.stdout")).expect("create haproxy.stdout"))
            .stderr(File::create(&log).expect("create haproxy.log"));
        pass_fd_as(&mut command, front.as_raw_fd(), FRONT_FD);
        Haproxy {
            child: spawn_locked(&mut command),
            log,
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- haproxy log ---\n{}--- end ---", self.log_text());
        }
    }
}

/// One GET on `conn`: Ok if 200 with `want`, else what went wrong.
fn get(conn: &mut Connection, want: &[u8]) -> Result<(), String> {
    conn.try_send(request_bytes("GET", "/1k.bin", &[]).as_bytes())
        .map_err(|e| format!("sending: {e}"))?;
    let response = conn
        .try_read_response(false)
        .map_err(|e| format!("reading: {e}"))?;
    if response.status != 200 || response.body != want {
        return Err(format!(
            "{} with {} bytes (want 200 with {})",
            response.status,
            response.body.len(),
            want.len()
        ));
    }
    Ok(())
}

/// What the client threads share with the test.
struct Load<'a> {
    front: SocketAddr,
    want: &'a [u8],
    stop: AtomicBool,
    answered: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Load<'_> {
    fn running(&self, started: Instant) -> bool {
        !self.stop.load(Ordering::SeqCst) && started.elapsed() < 2 * DEADLINE
    }

    /// Connects and runs up to `requests` requests; a failure is recorded
    /// and ends the connection.
    fn connection(&self, requests: u32) {
        let mut conn = match TcpStream::connect(self.front) {
            Ok(stream) => Connection::from_stream(stream),
            Err(e) => return self.failed(format!("connect: {e}")),
        };
        for n in 0..requests {
            if let Err(e) = get(&mut conn, self.want) {
                return self.failed(format!("request {n} of a connection: {e}"));
            }
            self.answered.fetch_add(1, Ordering::SeqCst);
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    fn failed(&self, what: String) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what);
    }
}

/// Stops the load when dropped, also when the test panics.
struct StopOnDrop<'a, 'b>(&'a Load<'b>);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn an_instance_killed_behind_haproxy_loses_no_request() {
    let Some(bin) = haproxy() else {
        return;
    };
    let root = TempDocroot::new("haproxy");
    let file: Vec<u8> = (0..1024u32).map(|i| (i % 253) as u8).collect();
    root.write("1k.bin", &file);
    let args = ["--status-path", "/server-status"];
    let first = ServerProcess::serve_with(root.path(), "epoll", &args);
    let second = ServerProcess::serve_with(root.path(), "epoll", &args);
    let front = TcpListener::bind("127.0.0.1:0").expect("bind the frontend's socket");
    let config = example_config()
        .replace("bind 127.0.0.1:8080", &format!("bind fd@{FRONT_FD}"))
        .replace("127.0.0.1:8001", &first.addr().to_string())
        .replace("127.0.0.1:8002", &second.addr().to_string());
    assert!(
        config.contains(&format!("bind fd@{FRONT_FD}"))
            && config.contains(&first.addr().to_string())
            && config.contains(&second.addr().to_string()),
        "dist/haproxy/haproxy.cfg no longer has the ports the test replaces:\n{config}"
    );
    let haproxy = Haproxy::start(&bin, &config, &front, &root.outside());
    let load = Load {
        front: front.local_addr().expect("frontend address"),
        want: &file,
        stop: AtomicBool::new(false),
        answered: AtomicU64::new(0),
        failures: Mutex::new(Vec::new()),
    };

    // Answers come through HAProxy, and it checks both instances.
    let mut through = Connection::connect(load.front);
    assert_eq!(get(&mut through, &file), Ok(()), "{}", haproxy.log_text());
    drop(through);
    let checked = poll_until(DEADLINE, || {
        [&first, &second]
            .iter()
            .all(|server| status_number(&status_json(server, "/server-status"), "/requests") >= 2)
    });
    assert!(
        checked,
        "HAProxy never checked both instances:\n{}",
        haproxy.log_text()
    );

    thread::scope(|scope| {
        let load = &load;
        for _ in 0..KEEP_ALIVE_THREADS {
            scope.spawn(move || {
                let started = Instant::now();
                while load.running(started) {
                    load.connection(REQUESTS_PER_CONNECTION);
                }
            });
        }
        for _ in 0..NEW_CONNECTION_THREADS {
            scope.spawn(move || {
                let started = Instant::now();
                while load.running(started) {
                    load.connection(1);
                }
            });
        }
        let _stop = StopOnDrop(load);

        let loaded = poll_until(DEADLINE, || {
            status_number(&status_json(&first, "/server-status"), "/requests") >= KILL_AFTER
        });
        assert!(
            loaded,
            "the first instance never answered {KILL_AFTER} requests"
        );
        assert!(send_signal(
            i32::try_from(first.pid()).expect("pid"),
            libc::SIGKILL
        ));
        let down = poll_until(DEADLINE, || haproxy.log_text().contains("amped1 is DOWN"));
        assert!(
            down,
            "HAProxy never marked the killed instance down:\n{}",
            haproxy.log_text()
        );
        let at_down = load.answered.load(Ordering::SeqCst);
        let served = poll_until(DEADLINE, || {
            load.answered.load(Ordering::SeqCst) >= at_down + ANSWERED_AFTER_DOWN
        });
        assert!(
            served,
            "requests stopped being answered after the instance went down"
        );
    });

    let failures = load
        .failures
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let answered = load.answered.load(Ordering::SeqCst);
    assert!(
        failures.is_empty(),
        "{} requests failed through HAProxy ({answered} answered):\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{answered} requests answered through HAProxy, none failed");
}

/// docs/operations.md shows dist/haproxy/haproxy.cfg as it is, comments
/// aside.
#[test]
fn the_readme_shows_the_haproxy_configuration() {
    let config = example_config();
    let config: Vec<&str> = config
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect();
    let shown = config.join("\n").trim().to_owned();
    let docs = workspace_root().join("docs/operations.md");
    let readme = fs::read_to_string(&docs).expect("docs/operations.md");
    assert!(
        readme.contains(&shown),
        "docs/operations.md does not show dist/haproxy/haproxy.cfg (its lines without comments):\n{shown}"
    );
}
