//! `--workers N`: N server processes under one parent serve the port
//! together, each with its own helpers, accepting from one socket the
//! parent made (which no other process can join), and both come to hold
//! connections; the listening line is printed once; a worker
//! that dies is restarted; SIGHUP is passed on (each worker reopens the
//! logs); SIGTERM drains them all and the parent exits 0; a bad count is
//! a usage error.

use std::fs;
use std::path::Path;

use tests::procfs::{
    is_alive, live_children_named, poll_until, send_signal, tcp_connection_holder,
    wait_for_live_children,
};
use tests::{run_with_deadline, server_bin, ServerProcess, TempDocroot, DEADLINE};

const WORKERS: usize = 2;

fn start(root: &TempDocroot, backend: &str, error_log: &Path) -> ServerProcess {
    ServerProcess::serve_with(
        root.path(),
        backend,
        &[
            "--workers",
            "2",
            "--helpers",
            "1",
            "--status-path",
            "/status",
            "--error-log",
            error_log.to_str().expect("UTF-8"),
        ],
    )
}

/// The workers (children named `server`), each with its one helper.
fn workers(server: &ServerProcess) -> Vec<i32> {
    let parent = i32::try_from(server.pid()).expect("pid");
    let workers = wait_for_live_children(parent, "server", WORKERS);
    for &worker in &workers {
        wait_for_live_children(worker, "helper", 1);
    }
    workers
}

fn workers_serve_restart_and_drain(backend: &str) {
    let root = TempDocroot::new(&format!("workers-{backend}"));
    root.write("hello.txt", b"from a worker\n");
    let error_log = root.outside().join("error.log");
    let mut server = start(&root, backend, &error_log);
    let first = workers(&server);
    assert_eq!(
        server.stdout_text().matches("listening on").count(),
        1,
        "one listening line: {}",
        server.stdout_text()
    );
    for _ in 0..20 {
        let response = server.connect().get("/hello.txt");
        response.assert_status(200);
        assert_eq!(response.body_text(), "from a worker\n");
    }
    // Both workers accept from the one socket: connections held open
    // (so that each is seen with its holder) come to be held by both.
    let mut held = Vec::new();
    let mut holders = std::collections::BTreeSet::new();
    let both = poll_until(DEADLINE, || {
        let mut conn = server.connect();
        conn.get("/hello.txt").assert_status(200);
        let port = conn.stream().local_addr().expect("local address").port();
        holders.extend(tcp_connection_holder(port, &first));
        held.push(conn);
        holders.len() == WORKERS
    });
    assert!(
        both,
        "only {holders:?} of {first:?} accepted {} connections",
        held.len()
    );
    drop(held);

    // SIGHUP reaches every worker: each logs that it reopened the logs.
    let parent = i32::try_from(server.pid()).expect("pid");
    assert!(send_signal(parent, libc::SIGHUP));
    let reopened = poll_until(DEADLINE, || {
        let log = fs::read_to_string(&error_log).unwrap_or_default();
        first
            .iter()
            .all(|pid| log.contains(&format!("server[{pid}]: SIGHUP: reopened the logs")))
    });
    assert!(
        reopened,
        "{}",
        fs::read_to_string(&error_log).unwrap_or_default()
    );

    // A killed worker is replaced; the other is untouched.
    assert!(send_signal(first[0], libc::SIGKILL));
    let replaced = poll_until(DEADLINE, || {
        let now = live_children_named(parent, "server");
        now.len() == WORKERS && !now.contains(&first[0]) && now.contains(&first[1])
    });
    assert!(
        replaced,
        "workers now: {:?}",
        live_children_named(parent, "server")
    );
    let second = workers(&server);
    for _ in 0..20 {
        server.connect().get("/hello.txt").assert_status(200);
    }

    // SIGTERM: every worker drains and exits, then the parent, with 0.
    assert!(send_signal(parent, libc::SIGTERM));
    let status = server.wait_for_exit(DEADLINE).expect("the parent exits");
    assert!(status.success(), "{status}");
    for pid in second {
        assert!(
            poll_until(DEADLINE, || !is_alive(pid)),
            "worker {pid} exited"
        );
    }
}

tests::per_backend!(
    workers_serve_restart_and_drain,
    no_other_process_joins_the_workers
);

#[test]
fn a_bad_worker_count_is_a_usage_error() {
    for count in ["0", "257", "many"] {
        let output = run_with_deadline(&server_bin(), &["--workers", count], DEADLINE);
        assert_eq!(
            output.status.code(),
            Some(2),
            "--workers {count}: {}",
            output.stderr
        );
        assert_eq!(output.stderr.lines().count(), 1, "{}", output.stderr);
    }
}

/// Binds a socket with SO_REUSEPORT to `port` on 127.0.0.1, as another
/// process of the server's user (a CGI script, say) could: the error, or
/// `Ok` with the socket's descriptor closed.
fn bind_reuse_port(port: u16) -> std::io::Result<()> {
    // SAFETY: plain socket calls on a descriptor this function owns and
    // closes; the address is a live sockaddr_in of the size given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let on: libc::c_int = 1;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&on as *const libc::c_int).cast(),
            len,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        let result = match rc {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        };
        libc::close(fd);
        result
    }
}

/// No other process can join the workers' port (with SO_REUSEPORT, as a
/// script of the same user could), and their readiness reports travel on
/// socketpairs, not on a socket name anyone could send to or take first.
fn no_other_process_joins_the_workers(backend: &str) {
    let root = TempDocroot::new(&format!("workers-join-{backend}"));
    root.write("hello.txt", b"from a worker\n");
    let error_log = root.outside().join("error.log");
    let server = start(&root, backend, &error_log);
    workers(&server);
    let joined = bind_reuse_port(server.port());
    assert_eq!(
        joined.as_ref().map_err(std::io::Error::raw_os_error),
        Err(Some(libc::EADDRINUSE)),
        "a same-user SO_REUSEPORT bind of the workers' port: {joined:?}"
    );
    let unix = fs::read_to_string("/proc/net/unix").expect("/proc/net/unix");
    assert!(
        !unix.contains("@amped-workers"),
        "an abstract readiness socket is bound:\n{unix}"
    );
    server.connect().get("/hello.txt").assert_status(200);
}
