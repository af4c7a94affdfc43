//! Scale: 1000 simultaneous connections under poll and under epoll (all
//! connected first, then each sends a GET, then every response is read and
//! checked); under select, 1100 simultaneous connections, beyond
//! FD_SETSIZE: each gets a correct 200 or a 503 / closed connection, at
//! least 900 get 200, and the server survives and serves a new request.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tests::http_client::request_bytes;
use tests::{raise_nofile_limit, site_docroot, Connection, ServerProcess, DEADLINE};

const FILE: &str = "cached.html";

/// The scale tests take turns: each opens over a thousand connections in
/// this process, and all of them at once could outgrow its descriptor
/// limit.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens `n` connections, all before any request is sent.
fn open_connections(server: &ServerProcess, n: usize) -> Vec<Connection> {
    let limit = raise_nofile_limit();
    assert!(
        limit >= 2 * n as u64 + 256,
        "RLIMIT_NOFILE hard limit {limit} is too low for {n} connections"
    );
    (0..n)
        .map(|i| {
            let stream = TcpStream::connect(server.addr())
                .unwrap_or_else(|e| panic!("connection {i} of {n}: {e}"));
            Connection::from_stream(stream)
        })
        .collect()
}

/// The outcome of one connection.
enum Outcome {
    Ok,
    Refused,
}

/// Reads the response on `conn` within the remaining time, returning how
/// it ended; panics on a wrong response or if time runs out.
fn read_outcome(
    i: usize,
    conn: &mut Connection,
    deadline: Instant,
    allow_refusal: bool,
) -> Outcome {
    let remaining = deadline
        .checked_duration_since(Instant::now())
        .unwrap_or(Duration::from_millis(1))
        .max(Duration::from_millis(1));
    conn.set_read_timeout(remaining);
    match conn.try_read_response(false) {
        Ok(r) if r.status == 200 => {
            assert_eq!(
                r.body,
                site_docroot().file(FILE),
                "connection {i}: wrong body"
            );
            Outcome::Ok
        }
        Ok(r) if allow_refusal && r.status == 503 => Outcome::Refused,
        Ok(r) => panic!("connection {i}: unexpected response\n{}", r.head_text()),
        Err(e)
            if allow_refusal
                && matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::BrokenPipe
                ) =>
        {
            Outcome::Refused
        }
        Err(e) => panic!("connection {i}: {e}"),
    }
}

fn thousand_connections(backend: &str) {
    const N: usize = 1000;
    let _turn = one_at_a_time();
    raise_nofile_limit();
    let server = ServerProcess::serve_with(
        &site_docroot().root,
        backend,
        &["--max-connections", "2000"],
    );
    let mut conns = open_connections(&server, N);
    let request = request_bytes("GET", &format!("/{FILE}"), &[]);
    for conn in &mut conns {
        conn.send(request.as_bytes());
    }
    let deadline = Instant::now() + DEADLINE;
    for (i, conn) in conns.iter_mut().enumerate() {
        read_outcome(i, conn, deadline, false);
    }
    // All still open and usable: a second round on every connection.
    for conn in &mut conns {
        conn.send(request.as_bytes());
    }
    let deadline = Instant::now() + DEADLINE;
    for (i, conn) in conns.iter_mut().enumerate() {
        read_outcome(i, conn, deadline, false);
    }
}

#[test]
fn poll_serves_1000_simultaneous_connections() {
    thousand_connections("poll");
}

#[test]
fn epoll_serves_1000_simultaneous_connections() {
    thousand_connections("epoll");
}

#[test]
fn select_refuses_cleanly_beyond_fd_setsize() {
    const N: usize = 1100;
    let _turn = one_at_a_time();
    raise_nofile_limit();
    let mut server = ServerProcess::serve_with(
        &site_docroot().root,
        "select",
        &["--max-connections", "2000"],
    );
    let mut conns = open_connections(&server, N);
    let request = request_bytes("GET", &format!("/{FILE}"), &[]);
    // A refused connection may already be closed: its write may fail.
    let mut write_failed = vec![false; N];
    for (i, conn) in conns.iter_mut().enumerate() {
        write_failed[i] = conn.try_send(request.as_bytes()).is_err();
    }
    let deadline = Instant::now() + DEADLINE;
    let mut ok = 0;
    let mut refused = 0;
    for (i, conn) in conns.iter_mut().enumerate() {
        if write_failed[i] {
            refused += 1;
            continue;
        }
        match read_outcome(i, conn, deadline, true) {
            Outcome::Ok => ok += 1,
            Outcome::Refused => refused += 1,
        }
    }
    eprintln!("select: {ok} of {N} connections served, {refused} refused");
    assert!(
        ok >= 900,
        "only {ok} of {N} connections got a 200 ({refused} refused)"
    );
    drop(conns);

    assert!(server.is_alive(), "the select server died under load");
    // Once the crowd is gone, a new client is served (the server may need
    // a moment to notice the closed connections).
    let start = Instant::now();
    loop {
        let mut conn = server.connect();
        conn.send(request.as_bytes());
        match conn.try_read_response(false) {
            Ok(r) if r.status == 200 => {
                assert_eq!(r.body, site_docroot().file(FILE));
                break;
            }
            Ok(r) if r.status == 503 => {}
            Err(e)
                if e.kind() == ErrorKind::UnexpectedEof
                    || e.kind() == ErrorKind::ConnectionReset => {}
            Ok(r) => panic!("after the load: unexpected response\n{}", r.head_text()),
            Err(e) => panic!("after the load: {e}"),
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the select server is not serving new clients after the load"
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(server.is_alive(), "the select server died");
}
