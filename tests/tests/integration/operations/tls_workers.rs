//! TLS session resumption across `--workers`, under each event backend:
//! a session ticket one worker issued resumes a connection that the other
//! worker accepted, since the parent hands every worker the same ticket
//! keys.
//!
//! The client is Python's `ssl` module, driven line by line from the test
//! (`new`: a fresh handshake whose session is kept; `resume`: a handshake
//! offering that session), so that each connection stays open while
//! `procfs::tcp_connection_holder` finds which worker holds it, and
//! `session_reused` says whether the handshake resumed. `openssl s_client
//! -sess_in` would close its connection before the holder could be seen.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;

use serde_json::Value;
use tests::binaries::spawn_locked;
use tests::procfs::{poll_until, tcp_connection_holder, wait_for_live_children};
use tests::tls::{make_certs, serve_tls, PYTHON};
use tests::{per_backend, TempDocroot, DEADLINE};

const PAGE: &str = "<p>resumed anywhere</p>\n";

/// Reads commands on stdin; for each, closes the previous connection,
/// opens one (offering the kept session for `resume`), fetches
/// /index.html on it and prints a JSON line: its local port, whether the
/// session was reused, whether it has a ticket, the status line, the body.
const CLIENT: &str = r#"
import json, socket, ssl, sys

port, cafile = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=cafile)
saved = None
conn = None
for line in sys.stdin:
    command = line.strip()
    if conn is not None:
        conn.close()
        conn = None
    if command == "quit":
        break
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    offer = saved if command == "resume" else None
    conn = ctx.wrap_socket(raw, server_hostname="localhost", session=offer)
    conn.sendall(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            raise SystemExit("the connection ended inside the head")
        data += more
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for field in lines[1:]:
        name, value = field.split(":", 1)
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(body) < length:
        more = conn.recv(65536)
        if not more:
            raise SystemExit("the connection ended inside the body")
        body += more
    if command == "new":
        saved = conn.session
    print(json.dumps({
        "port": conn.getsockname()[1],
        "reused": conn.session_reused,
        "ticket": conn.session is not None and conn.session.has_ticket,
        "status": lines[0],
        "body": body.decode("latin-1"),
    }), flush=True)
"#;

/// The Python client, its stdin, and its output lines.
struct Client {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Client {
    fn start(script: &std::path::Path, port: u16, ca: &std::path::Path) -> Client {
        let mut command = Command::new(PYTHON);
        command
            .arg(script)
            .arg(port.to_string())
            .arg(ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = spawn_locked(&mut command);
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Client {
            child,
            stdin,
            lines,
        }
    }

    /// Sends `command` and returns the connection's report; the
    /// connection stays open until the next command.
    fn connect(&mut self, command: &str) -> Value {
        writeln!(self.stdin, "{command}").expect("write to the client");
        self.stdin.flush().expect("flush the client's stdin");
        let line = self
            .lines
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|e| panic!("no answer from the client to {command:?} ({e})"));
        let report: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the client's line ({e}): {line}"));
        assert_eq!(report["status"], "HTTP/1.1 200 OK", "{report}");
        assert_eq!(report["body"], PAGE, "{report}");
        report
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port(report: &Value) -> u16 {
    report["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .expect("a port")
}

fn a_ticket_from_one_worker_resumes_on_the_other(backend: &str) {
    let site = TempDocroot::new("tls-workers");
    site.write("index.html", PAGE.as_bytes());
    let certs = make_certs(&site.outside(), "a");
    let server = serve_tls(site.path(), &certs, backend, &["--workers", "2"]);
    let parent = server.pid_t();
    let workers = wait_for_live_children(parent, "server", 2);
    let script = site.outside().join("resume.py");
    std::fs::write(&script, CLIENT).expect("write the client");
    let mut client = Client::start(&script, server.tls_port(), &certs.ca);

    let first = client.connect("new");
    assert_eq!(first["reused"], false, "a first handshake resumed: {first}");
    assert_eq!(
        first["ticket"], true,
        "no session ticket after a response: {first}"
    );
    let issuer = tcp_connection_holder(port(&first), &workers)
        .unwrap_or_else(|| panic!("no worker of {workers:?} holds {first}"));

    let mut attempts = Vec::new();
    let elsewhere = poll_until(DEADLINE, || {
        let report = client.connect("resume");
        let holder = tcp_connection_holder(port(&report), &workers);
        attempts.push((holder, report["reused"] == true));
        holder.is_some_and(|h| h != issuer)
    });
    assert!(
        elsewhere,
        "no connection landed on the worker that did not issue the ticket ({issuer} of \
         {workers:?}) in {} attempts",
        attempts.len()
    );
    let not_resumed: Vec<_> = attempts.iter().filter(|(_, reused)| !reused).collect();
    assert!(
        not_resumed.is_empty(),
        "handshakes offering worker {issuer}'s session that did not resume, by holder: \
         {not_resumed:?} (all attempts: {attempts:?})"
    );
    eprintln!(
        "{backend}: ticket from worker {issuer}; {} resumed connections, the last on worker \
         {}",
        attempts.len(),
        attempts.last().and_then(|(h, _)| *h).unwrap_or_default()
    );
}

per_backend!(a_ticket_from_one_worker_resumes_on_the_other);
