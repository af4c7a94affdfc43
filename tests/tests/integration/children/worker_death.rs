//! A worker killed under load: with `--workers 2`, client threads keep
//! requests going, on keep-alive connections and on one-request
//! connections, while one worker is SIGKILLed. Every request on a
//! connection the other worker had accepted is answered 200 with the
//! right bytes, before, across and after the kill; so is every request on
//! a connection opened after the killed worker was seen dead; the parent
//! starts a replacement, which serves too.
//!
//! How the test tells whose connection failed: the status page and the
//! responses cannot name the worker, so after a keep-alive connection's
//! first answer the test looks up, among the workers' descriptors, which
//! worker holds its server end
//! ([`tcp_connection_holder`]). A connection may fail only if the killed
//! worker held it, or if it was opened before the worker was seen dead
//! and no worker was found holding it (it sat in the killed worker's
//! accept queue, or its holder died before the lookup). One-request
//! connections are not looked up (a lookup reads the whole TCP table):
//! one may fail only if it was opened before the death was seen. Wrong
//! answers (a status other than 200, other bytes) are never allowed.
//!
//! The kill comes while keep-alive connections held by both workers are
//! in use; they then keep their connections (no turnover) until the
//! replacement runs, so the surviving worker's connection is proven to
//! carry requests from before the kill to after it.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

use tests::http_client::request_bytes;
use tests::procfs::{
    is_alive, live_children_named, poll_until, send_signal, tcp_connection_holder,
    wait_for_live_children,
};
use tests::{Connection, ServerProcess, TempDocroot, DEADLINE};

const KEEP_ALIVE_THREADS: usize = 4;
const NEW_CONNECTION_THREADS: usize = 2;
/// Requests on one keep-alive connection before its thread opens another
/// (while connections may turn over), so that the connections in use at
/// any moment are spread over both workers.
const REQUESTS_PER_CONNECTION: u32 = 30;
/// Successful one-request connections opened after the killed worker was
/// seen dead that the test waits for before it stops the load.
const NEW_CONNECTIONS_AFTER: u64 = 40;

/// The load's phases, set by the test's main thread.
const WARMING: u8 = 0;
/// Keep-alive connections are kept (the kill is coming or came).
const HOLDING: u8 = 1;
/// The killed worker was seen dead; connections are still kept.
const DEAD: u8 = 2;
/// The replacement runs: connections turn over again.
const RESTARTED: u8 = 3;
const STOPPING: u8 = 4;

/// What the client threads share with the test.
struct Shared {
    addr: SocketAddr,
    parent: i32,
    files: Vec<(String, Vec<u8>)>,
    phase: AtomicU8,
    /// The worker holding each keep-alive thread's connection in use,
    /// once it has answered. Threads decide to turn a connection over
    /// under this lock, so the test sees a consistent picture.
    holders: Mutex<Vec<Option<i32>>>,
    /// One-request connections opened after the death was seen, answered.
    answered_after_death: AtomicU64,
}

impl Shared {
    fn phase(&self) -> u8 {
        self.phase.load(Ordering::SeqCst)
    }

    fn holders(&self) -> MutexGuard<'_, Vec<Option<i32>>> {
        self.holders.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Stops the load when dropped, also when the test panics.
struct StopOnDrop<'a>(&'a Shared);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.phase.store(STOPPING, Ordering::SeqCst);
    }
}

enum Failure {
    /// The connection broke (refused, reset, closed early, timed out).
    Broken(String),
    /// An answer, but not 200 with the file's bytes.
    Wrong(String),
}

/// One client connection, as the test saw it.
struct ConnLog {
    keep_alive: bool,
    client_port: u16,
    opened: Instant,
    holder: Option<i32>,
    answered: u32,
    last_answer: Option<Instant>,
    failure: Option<Failure>,
}

impl ConnLog {
    /// One line saying what happened on the connection.
    fn describe(&self) -> String {
        let failure = match &self.failure {
            None => "no failure".to_owned(),
            Some(Failure::Broken(what)) => format!("broken: {what}"),
            Some(Failure::Wrong(what)) => format!("wrong answer: {what}"),
        };
        format!(
            "{} connection from port {}, held by {:?}, {} answered: {failure}",
            if self.keep_alive {
                "keep-alive"
            } else {
                "one-request"
            },
            self.client_port,
            self.holder,
            self.answered
        )
    }
}

/// Sends the `n`th request of a connection and checks its answer.
fn exchange(shared: &Shared, conn: &mut Connection, n: u32) -> Result<(), Failure> {
    let (path, bytes) = &shared.files[n as usize % shared.files.len()];
    conn.try_send(request_bytes("GET", path, &[]).as_bytes())
        .map_err(|e| Failure::Broken(format!("sending GET {path}: {e}")))?;
    let response = conn
        .try_read_response(false)
        .map_err(|e| Failure::Broken(format!("reading GET {path}: {e}")))?;
    if response.status != 200 || response.body != *bytes {
        return Err(Failure::Wrong(format!(
            "GET {path}: {} with {} bytes (want 200 with {})",
            response.status,
            response.body.len(),
            bytes.len()
        )));
    }
    Ok(())
}

/// Opens a connection; a refused one is logged as broken.
fn open(shared: &Shared, keep_alive: bool) -> Result<(Connection, ConnLog), ConnLog> {
    let mut log = ConnLog {
        keep_alive,
        client_port: 0,
        opened: Instant::now(),
        holder: None,
        answered: 0,
        last_answer: None,
        failure: None,
    };
    match TcpStream::connect(shared.addr) {
        Ok(stream) => {
            log.client_port = stream.local_addr().map_or(0, |a| a.port());
            Ok((Connection::from_stream(stream), log))
        }
        Err(e) => {
            log.failure = Some(Failure::Broken(format!("connect: {e}")));
            Err(log)
        }
    }
}

/// Keep-alive connections, one at a time, each turned over after
/// [`REQUESTS_PER_CONNECTION`] while the phase allows; on a failure, a
/// new one.
fn keep_alive_client(shared: &Shared, slot: usize) -> Vec<ConnLog> {
    let mut logs = Vec::new();
    let started = Instant::now();
    while shared.phase() != STOPPING && started.elapsed() < 2 * DEADLINE {
        let (mut conn, mut log) = match open(shared, true) {
            Ok(opened) => opened,
            Err(log) => {
                logs.push(log);
                continue;
            }
        };
        loop {
            if let Err(failure) = exchange(shared, &mut conn, log.answered) {
                log.failure = Some(failure);
                shared.holders()[slot] = None;
                break;
            }
            log.answered += 1;
            log.last_answer = Some(Instant::now());
            if log.answered == 1 {
                let workers = live_children_named(shared.parent, "server");
                log.holder = tcp_connection_holder(log.client_port, &workers);
                shared.holders()[slot] = log.holder;
            }
            let mut holders = shared.holders();
            let phase = shared.phase();
            let turn_over =
                matches!(phase, WARMING | RESTARTED) && log.answered >= REQUESTS_PER_CONNECTION;
            if phase == STOPPING || turn_over {
                holders[slot] = None;
                break;
            }
        }
        logs.push(log);
    }
    logs
}

/// One request a connection, as fast as they are answered.
fn new_connection_client(shared: &Shared) -> Vec<ConnLog> {
    let mut logs = Vec::new();
    let started = Instant::now();
    while shared.phase() != STOPPING && started.elapsed() < 2 * DEADLINE {
        let after_death = shared.phase() >= DEAD;
        let (mut conn, mut log) = match open(shared, false) {
            Ok(opened) => opened,
            Err(log) => {
                logs.push(log);
                continue;
            }
        };
        match exchange(shared, &mut conn, u32::try_from(logs.len()).unwrap_or(0)) {
            Ok(()) => {
                log.answered = 1;
                log.last_answer = Some(Instant::now());
                if after_death {
                    shared.answered_after_death.fetch_add(1, Ordering::SeqCst);
                }
            }
            Err(failure) => log.failure = Some(failure),
        }
        logs.push(log);
    }
    logs
}

/// Whether `log`'s failure (if any) is one the kill explains.
fn failure_allowed(log: &ConnLog, killed: i32, dead_at: Instant) -> bool {
    match &log.failure {
        None => true,
        Some(Failure::Wrong(_)) => false,
        Some(Failure::Broken(_)) => match log.holder {
            Some(holder) => holder == killed,
            None => log.opened < dead_at,
        },
    }
}

fn a_worker_killed_under_load_loses_no_other_request(backend: &str) {
    let root = TempDocroot::new(&format!("worker-death-{backend}"));
    // A file served from memory and one sent from its descriptor.
    let small: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
    let large: Vec<u8> = (0..100 * 1024u32).map(|i| (i % 241) as u8).collect();
    root.write("1k.bin", &small);
    root.write("100k.bin", &large);
    let server =
        ServerProcess::serve_with(root.path(), backend, &["--workers", "2", "--helpers", "1"]);
    let parent = i32::try_from(server.pid()).expect("pid");
    let first = wait_for_live_children(parent, "server", 2);
    for &worker in &first {
        wait_for_live_children(worker, "helper", 1);
    }
    let (killed, survivor) = (first[0], first[1]);

    let shared = Shared {
        addr: server.addr(),
        parent,
        files: vec![
            ("/1k.bin".to_owned(), small),
            ("/100k.bin".to_owned(), large),
        ],
        phase: AtomicU8::new(WARMING),
        holders: Mutex::new(vec![None; KEEP_ALIVE_THREADS]),
        answered_after_death: AtomicU64::new(0),
    };
    let mut logs: Vec<ConnLog> = Vec::new();
    let mut moments = None;
    thread::scope(|scope| {
        let shared = &shared;
        let mut clients = Vec::new();
        for slot in 0..KEEP_ALIVE_THREADS {
            clients.push(scope.spawn(move || keep_alive_client(shared, slot)));
        }
        for _ in 0..NEW_CONNECTION_THREADS {
            clients.push(scope.spawn(move || new_connection_client(shared)));
        }
        let stop = StopOnDrop(shared);

        // Hold keep-alive connections of both workers, then kill one.
        let spread = poll_until(DEADLINE, || {
            let holders = shared.holders();
            shared.phase.store(HOLDING, Ordering::SeqCst);
            let both = holders.contains(&Some(killed)) && holders.contains(&Some(survivor));
            if !both {
                shared.phase.store(WARMING, Ordering::SeqCst);
            }
            both
        });
        assert!(
            spread,
            "keep-alive connections never held by both workers: {:?}",
            shared.holders()
        );
        let killed_at = Instant::now();
        assert!(send_signal(killed, libc::SIGKILL));
        assert!(
            poll_until(DEADLINE, || !is_alive(killed)),
            "worker {killed} never died"
        );
        let dead_at = Instant::now();
        shared.phase.store(DEAD, Ordering::SeqCst);

        // The parent starts a replacement; the other worker is untouched.
        let mut now = Vec::new();
        let replaced = poll_until(DEADLINE, || {
            now = live_children_named(parent, "server");
            now.len() == 2 && !now.contains(&killed)
        });
        assert!(replaced, "workers after the kill: {now:?}");
        assert!(
            now.contains(&survivor),
            "the other worker went too: {now:?}"
        );
        let replacement = now
            .iter()
            .copied()
            .find(|&pid| pid != survivor)
            .expect("two workers");
        wait_for_live_children(replacement, "helper", 1);
        shared.phase.store(RESTARTED, Ordering::SeqCst);

        // Load goes on until the replacement has answered on a keep-alive
        // connection and enough new connections have been answered.
        let served = poll_until(DEADLINE, || {
            shared.holders().contains(&Some(replacement))
                && shared.answered_after_death.load(Ordering::SeqCst) >= NEW_CONNECTIONS_AFTER
        });
        assert!(
            served,
            "after the restart: keep-alive holders {:?}, {} new connections answered",
            shared.holders(),
            shared.answered_after_death.load(Ordering::SeqCst)
        );
        drop(stop);
        for client in clients {
            logs.extend(client.join().expect("a client thread panicked"));
        }
        moments = Some((killed_at, dead_at));
    });
    let (killed_at, dead_at) = moments.expect("the load ran");

    let unexplained: Vec<String> = logs
        .iter()
        .filter(|log| !failure_allowed(log, killed, dead_at))
        .map(ConnLog::describe)
        .collect();
    let broken = logs.iter().filter(|log| log.failure.is_some()).count();
    let answered: u64 = logs.iter().map(|log| u64::from(log.answered)).sum();
    assert!(
        unexplained.is_empty(),
        "{} of {} connections failed that the killed worker {killed} did not hold \
         (survivor {survivor}; {broken} failed in all, {answered} requests answered):\n{}",
        unexplained.len(),
        logs.len(),
        unexplained.join("\n")
    );
    // The survivor's connection carried requests across the kill.
    let spanned = logs.iter().any(|log| {
        log.keep_alive
            && log.holder == Some(survivor)
            && log.failure.is_none()
            && log.opened < killed_at
            && log.last_answer.is_some_and(|at| at > dead_at)
    });
    assert!(
        spanned,
        "no connection of worker {survivor} was answered across the kill"
    );
    eprintln!(
        "{} connections, {answered} requests answered, {broken} connections broken by the kill",
        logs.len()
    );
}

tests::per_backend!(a_worker_killed_under_load_loses_no_other_request);
