//! systemd integration, with the real binaries: a listening socket the
//! test made, passed as descriptor 3 with `LISTEN_FDS=1` and `LISTEN_PID`
//! set to the server's own pid, is served (and one meant for another pid
//! is not used); `READY=1` reaches a notification socket the test binds
//! (a path, or an abstract name), and `STOPPING=1` follows SIGTERM. The
//! children see none of these variables. With `--workers 2`, both
//! workers serve the passed socket.

use std::fs;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::Command;
use std::time::Duration;

use tests::binaries::pass_fd_as;
use tests::procfs::{live_children, send_signal, wait_for_live_children};
use tests::{server_bin, ServerProcess, TempDocroot, DEADLINE};

/// Where the passed socket must be (`SD_LISTEN_FDS_START`).
const LISTEN_FD: i32 = 3;

/// Whether process `pid` started with a variable named `name`.
fn started_with_var(pid: i32, name: &str) -> bool {
    let prefix = format!("{name}=");
    fs::read(format!("/proc/{pid}/environ"))
        .map(|env| {
            env.split(|&b| b == 0)
                .any(|var| var.starts_with(prefix.as_bytes()))
        })
        .unwrap_or(false)
}

/// Asserts that no child of `server` (its helpers, its runner) started
/// with any of `names`.
fn children_clean(server: &ServerProcess, names: &[&str]) {
    let pid = i32::try_from(server.pid()).expect("pid");
    // The default two helpers.
    wait_for_live_children(pid, "helper", 2);
    let children = live_children(pid);
    assert!(!children.is_empty(), "the server has children");
    for child in children {
        for name in names {
            assert!(
                !started_with_var(child.pid, name),
                "child {} ({}) inherited {name}",
                child.pid,
                child.comm
            );
        }
    }
}

/// Starts the server through `sh`, which sets `LISTEN_PID` to `pid_expr`
/// (`$$` is the shell's pid, which `exec` keeps for the server) and
/// `LISTEN_FDS=1`, with `listener` as descriptor 3.
fn start_activated(
    root: &TempDocroot,
    backend: &str,
    listener: &TcpListener,
    pid_expr: &str,
    extra: &[&str],
) -> ServerProcess {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(format!(
            "export LISTEN_PID={pid_expr} LISTEN_FDS=1; exec \"$0\" \"$@\""
        ))
        .arg(server_bin())
        .arg("--root")
        .arg(root.path())
        .args([
            "--event-handler",
            backend,
            "--listen",
            "127.0.0.1:0",
            "--access-log",
            "off",
        ])
        .args(extra);
    pass_fd_as(&mut command, listener.as_raw_fd(), LISTEN_FD);
    ServerProcess::start_command(command)
}

fn serves_a_passed_socket(backend: &str) {
    let root = TempDocroot::new("socket-activation");
    root.write("hello.txt", b"through systemd's socket\n");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = start_activated(&root, backend, &listener, "$$", &[]);
    drop(listener);
    assert_eq!(
        server.port(),
        port,
        "the server listens on the passed socket"
    );
    let response = server.connect().get("/hello.txt");
    response.assert_status(200);
    assert_eq!(response.body_text(), "through systemd's socket\n");
    children_clean(&server, &["LISTEN_PID", "LISTEN_FDS"]);
}

tests::per_backend!(serves_a_passed_socket);

/// With `--workers 2`, the parent takes the passed socket and both
/// workers serve it (neither binds one of its own).
#[test]
fn workers_serve_a_passed_socket() {
    let root = TempDocroot::new("socket-activation-workers");
    root.write("hello.txt", b"through systemd's socket, by a worker\n");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = start_activated(&root, "epoll", &listener, "$$", &["--workers", "2"]);
    drop(listener);
    assert_eq!(
        server.port(),
        port,
        "the workers listen on the passed socket"
    );
    let parent = i32::try_from(server.pid()).expect("pid");
    let workers = wait_for_live_children(parent, "server", 2);
    assert_eq!(workers.len(), 2, "two workers: {workers:?}");
    for _ in 0..20 {
        let response = server.connect().get("/hello.txt");
        response.assert_status(200);
        assert_eq!(
            response.body_text(),
            "through systemd's socket, by a worker\n"
        );
    }
    // The workers took the socket from their parent, not from systemd's
    // variables, which they never saw.
    for worker in workers {
        for name in ["LISTEN_PID", "LISTEN_FDS"] {
            assert!(
                !started_with_var(worker, name),
                "worker {worker} inherited {name}"
            );
        }
    }
}

#[test]
fn a_socket_for_another_pid_is_not_used() {
    let root = TempDocroot::new("socket-activation-other");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Pid 1 is never the server's.
    let server = start_activated(&root, "epoll", &listener, "1", &[]);
    assert_ne!(server.port(), port, "the server bound its own socket");
    server.connect().get("/missing.txt").assert_status(404);
}

/// Receives one notification, within the deadline.
fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = socket
        .recv(&mut buf)
        .expect("a notification within the deadline");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Runs a server with `NOTIFY_SOCKET=name` and checks READY=1, then
/// STOPPING=1 after SIGTERM, then a clean exit.
fn notifies(socket: &UnixDatagram, name: &str) {
    socket.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let root = TempDocroot::new("notify");
    let mut server = ServerProcess::start_with_env(
        &["--root", root.path().to_str().expect("UTF-8")],
        &[("NOTIFY_SOCKET", name)],
    );
    assert_eq!(receive(socket), "READY=1");
    children_clean(&server, &["NOTIFY_SOCKET"]);
    let pid = i32::try_from(server.pid()).expect("pid");
    assert!(send_signal(pid, libc::SIGTERM), "SIGTERM delivered");
    assert_eq!(receive(socket), "STOPPING=1");
    let status = server.wait_for_exit(DEADLINE).expect("the server exits");
    assert!(status.success(), "{status}");
    socket
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    assert!(socket.recv(&mut [0u8; 64]).is_err(), "nothing more");
}

#[test]
fn readiness_reaches_a_notify_socket_path() {
    let dir = TempDocroot::new("notify-socket");
    let path = dir.outside().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    notifies(&socket, path.to_str().expect("UTF-8"));
}

#[test]
fn readiness_reaches_an_abstract_notify_socket() {
    let name = format!("amped-test-notify-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(&name).expect("abstract name");
    let socket = UnixDatagram::bind_addr(&addr).expect("bind the notify socket");
    notifies(&socket, &format!("@{name}"));
}
