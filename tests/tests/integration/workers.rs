//! `--workers N`: N server processes under one parent serve the port
//! together, each with its own helpers, and the kernel spreads the
//! connections among them; the listening line is printed once; a worker
//! that dies is restarted; SIGHUP is passed on (each worker reopens the
//! logs); SIGTERM drains them all and the parent exits 0; a bad count is
//! a usage error.

use std::fs;
use std::path::Path;

use tests::procfs::{
    is_alive, live_children_named, poll_until, send_signal, wait_for_live_children,
};
use tests::status::{status_json, status_number};
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
    // The kernel spreads connections over the workers: each status page
    // counts its own worker's, so none has seen them all (one worker
    // taking all 50 would happen once in 2^49).
    let most = (0..30)
        .map(|_| status_number(&status_json(&server, "/status"), "/accepted_connections"))
        .max();
    assert!(
        most < Some(50),
        "one worker accepted every connection: {most:?}"
    );

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

tests::per_backend!(workers_serve_restart_and_drain);

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
