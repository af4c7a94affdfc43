//! A running `server` on an OS-chosen port, killed when dropped.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use crate::binaries::{collect, kill_child, server_bin, spawn_locked, Collected};
use crate::http_client::{Connection, Response};
use crate::DEADLINE;

/// A `server` child process listening on `127.0.0.1:<port>`.
///
/// Started with `--listen 127.0.0.1:0`, then `--access-log off` unless the
/// test passes its own `--access-log`, then the test's arguments. The port
/// comes from the `listening on http://127.0.0.1:PORT/` line (30 s
/// deadline); stdout and stderr keep being drained in threads. Dropping it
/// kills the server by PID (SIGKILL) and reaps it; if the test is
/// panicking, the server's stderr is printed.
pub struct ServerProcess {
    child: Child,
    port: u16,
    /// The first HTTPS listener's port, if one listens.
    tls_port: Option<u16>,
    stdout: Collected,
    stderr: Collected,
}

impl ServerProcess {
    /// Starts `server --root <root> --event-handler <backend>`.
    pub fn serve(root: &Path, backend: &str) -> Self {
        Self::serve_with(root, backend, &[])
    }

    /// Starts `server --root <root> --event-handler <backend> extra...`.
    pub fn serve_with(root: &Path, backend: &str, extra: &[&str]) -> Self {
        Self::serve_with_env(root, backend, extra, &[])
    }

    /// Like [`serve_with`](Self::serve_with), with extra environment
    /// variables (for example the helpers' test hooks, which they inherit).
    pub fn serve_with_env(
        root: &Path,
        backend: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("--root"),
            root.as_os_str(),
            OsStr::new("--event-handler"),
            OsStr::new(backend),
        ];
        args.extend(extra.iter().map(OsStr::new));
        Self::start_with_env(&args, env)
    }

    /// Starts the server with `args` after the fixture's own
    /// `--listen 127.0.0.1:0 [--access-log off]`.
    pub fn start<S: AsRef<OsStr>>(args: &[S]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// Like [`start`](Self::start), with extra environment variables (for
    /// example `AMPED_TEST_HELPER_DELAY`, which the helpers inherit).
    pub fn start_with_env<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> Self {
        Self::start_listening("127.0.0.1:0", args, env)
    }

    /// Like [`start_with_env`](Self::start_with_env), listening on
    /// `listen` (say `0.0.0.0:0`) instead of `127.0.0.1:0`. The port comes
    /// from the listening line whatever its host; [`addr`](Self::addr)
    /// stays on 127.0.0.1, which an any-address listener also accepts.
    pub fn start_listening<S: AsRef<OsStr>>(
        listen: &str,
        args: &[S],
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_binary(&server_bin(), listen, args, env)
    }

    /// Like [`start_listening`](Self::start_listening), running the server
    /// binary at `bin` (which finds its helper and runner beside itself).
    pub fn start_binary<S: AsRef<OsStr>>(
        bin: &Path,
        listen: &str,
        args: &[S],
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(bin);
        command.args(["--listen", listen]);
        if !args
            .iter()
            .any(|a| a.as_ref() == OsStr::new("--access-log"))
        {
            command.args(["--access-log", "off"]);
        }
        command
            .args(args)
            .env_remove("AMPED_TEST_HELPER_DELAY")
            .env_remove("AMPED_TEST_HELPER_GATE")
            .env_remove("AMPED_TEST_HELPER_EXIT_IF")
            .envs(env.iter().copied());
        Self::start_command(command)
    }

    /// Starts `command` (a server, or a shell that execs one, with every
    /// argument already given) with stdin closed and stdout and stderr
    /// collected, and waits for its listening line.
    pub fn start_command(mut command: Command) -> Self {
        let args: Vec<_> = command.get_args().map(OsStr::to_owned).collect();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_locked(&mut command);

        let (stderr, _) = collect(child.stderr.take());
        let stdout = Collected::default();
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let reader = child.stdout.take().expect("stdout is piped");
        let sink = stdout.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        sink.push(line.as_bytes());
                        let _ = lines_tx.send(line.trim_end_matches(['\r', '\n']).to_owned());
                    }
                }
            }
        });

        let mut server = ServerProcess {
            child,
            port: 0,
            tls_port: None,
            stdout,
            stderr,
        };
        let start = Instant::now();
        let first = match lines_rx.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(e) => {
                // Give a dying server a moment to finish writing stderr.
                let status = server.wait_exit(start);
                panic!(
                    "server {:?} printed no listening line within {DEADLINE:?} ({e}); \
                     exit status: {status}\nstderr:\n{}",
                    args,
                    server.stderr.text()
                );
            }
        };
        let urls = parse_listening_line(&first).unwrap_or_else(|| {
            panic!(
                "first stdout line is not `listening on http://HOST:PORT/ ...`: {first:?}\n\
                 stderr:\n{}",
                server.stderr.text()
            )
        });
        assert!(
            urls.iter().all(|(_, port)| *port != 0),
            "the listening line must show the real ports: {first:?}"
        );
        let first_of = |tls: bool| urls.iter().find(|(t, _)| *t == tls).map(|(_, p)| *p);
        server.tls_port = first_of(true);
        server.port = first_of(false).or(server.tls_port).unwrap_or(0);
        server
    }

    /// Describes how the child ended, waiting a little for it if it is
    /// still running (used only in failure messages).
    fn wait_exit(&mut self, since: Instant) -> String {
        while since.elapsed() < DEADLINE + std::time::Duration::from_secs(1) {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) => thread::sleep(std::time::Duration::from_millis(20)),
                Err(e) => return format!("unknown ({e})"),
            }
        }
        "still running".to_owned()
    }

    /// The port from the listening line (its first plain HTTP one, if
    /// any).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The first HTTPS port from the listening line.
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("the server listens for HTTPS")
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's pid as `/proc`, `kill` and the `procfs` helpers take it.
    pub fn pid_t(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits in pid_t")
    }

    /// True while the server process has not exited.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (polling every 10 ms) up to `deadline` for the server to exit
    /// on its own and returns how it ended, or `None` if it still runs.
    pub fn wait_for_exit(&mut self, deadline: std::time::Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if start.elapsed() < deadline => {
                    thread::sleep(std::time::Duration::from_millis(10));
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.text()
    }

    /// Everything the server wrote to stdout so far.
    pub fn stdout_text(&self) -> String {
        self.stdout.text()
    }

    /// A new client connection (30 s read and write timeouts).
    pub fn connect(&self) -> Connection {
        Connection::connect(self.addr())
    }

    /// Sends `raw` as it is on a new connection and reads one response;
    /// returns the connection too, to check what follows.
    pub fn send_raw(&self, raw: impl AsRef<[u8]>) -> (Connection, Response) {
        let mut conn = self.connect();
        conn.send(raw.as_ref());
        let response = conn.read_response();
        (conn, response)
    }

    /// A bare connected socket, for tests that manage their own I/O.
    pub fn connect_raw(&self) -> TcpStream {
        TcpStream::connect(self.addr())
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.addr()))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        kill_child(&mut self.child);
        if thread::panicking() {
            eprintln!(
                "--- server (port {}) stderr ---\n{}--- end of server stderr ---",
                self.port,
                self.stderr.text()
            );
        }
    }
}

/// The URLs of a `listening on http://HOST:PORT/ https://HOST:PORT/ ...`
/// line: whether each is HTTPS, and its port.
pub fn parse_listening_line(line: &str) -> Option<Vec<(bool, u16)>> {
    let urls = line.strip_prefix("listening on ")?;
    urls.split(' ')
        .map(|url| {
            let (tls, rest) = match url.strip_prefix("https://") {
                Some(rest) => (true, rest),
                None => (false, url.strip_prefix("http://")?),
            };
            let (_, port) = rest.strip_suffix('/')?.rsplit_once(':')?;
            Some((tls, port.parse().ok()?))
        })
        .collect()
}
