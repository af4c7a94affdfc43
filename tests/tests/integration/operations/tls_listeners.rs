//! HTTPS beside plain HTTP on several listening sockets, under each event
//! backend:
//!
//! - four listeners, plain and TLS on IPv4 and IPv6 loopback
//!   (`--listen 127.0.0.1:0 --listen '[::1]:0' --listen-tls '[::1]:0'
//!   --listen-tls 127.0.0.1:0`): the listening line names each, in that
//!   order, with its real port, and curl gets the same page through each
//!   (the TLS ones verified against the test CA). The machine must have
//!   `::1`: the test fails saying so if `/proc/net/if_inet6` lacks it;
//! - systemd socket activation with TLS: two listening sockets the test
//!   made, passed as descriptors 3 and 4 with `LISTEN_FDS=2` and
//!   `LISTEN_FDNAMES=http:https`, are the server's only listeners (the
//!   listening line names their ports), the first served as plain HTTP,
//!   the second as HTTPS; a plain request on the TLS socket gets the 400
//!   that says so.

use std::fs;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use tests::tls::{curl, make_certs, TestCerts};
use tests::{per_backend, server_bin, ServerProcess, TempDocroot};

const PAGE: &[u8] = b"<h1>one page, every listener</h1>\n";

/// The URLs of the server's listening line (its first stdout line).
fn listening_urls(server: &ServerProcess) -> Vec<String> {
    let stdout = server.stdout_text();
    let line = stdout.lines().next().unwrap_or_default();
    line.strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("not a listening line: {line:?}"))
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// The port at the end of `scheme://HOST:PORT/`.
fn port_of(url: &str) -> u16 {
    url.trim_end_matches('/')
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url:?}"))
}

/// What curl downloads as `index.html` through the listener at `url`
/// (`http://HOST:PORT/` or `https://HOST:PORT/`), failing on an HTTP
/// error. Over TLS it asks for `localhost`, sent to `ip` (`127.0.0.1` or
/// `[::1]`), and verifies the certificate against `certs`' CA.
fn fetch(site: &TempDocroot, certs: &TestCerts, url: &str, ip: &str) -> Vec<u8> {
    let mut args = vec!["-sS", "--fail", "--max-time", "30", "-g"];
    let resolve = format!("localhost:{}:{ip}", port_of(url));
    let target = if url.starts_with("https://") {
        args.extend([
            "--cacert",
            certs.ca.to_str().expect("utf-8"),
            "--resolve",
            &resolve,
        ]);
        format!("https://localhost:{}/index.html", port_of(url))
    } else {
        format!("{url}index.html")
    };
    args.push(&target);
    curl(site, &args)
}

fn has_ipv6_loopback() -> bool {
    fs::read_to_string("/proc/net/if_inet6").is_ok_and(|t| {
        t.lines()
            .any(|l| l.starts_with("00000000000000000000000000000001 "))
    })
}

fn every_listener_serves_the_same_page(backend: &str) {
    assert!(
        has_ipv6_loopback(),
        "this test needs IPv6 loopback (::1), which /proc/net/if_inet6 does not list"
    );
    let site = TempDocroot::new("tls-listeners");
    site.write("index.html", PAGE);
    let certs = make_certs(&site.outside(), "a");
    let (_, cert, key) = certs.paths();
    // The fixture adds `--listen 127.0.0.1:0` first.
    let server = ServerProcess::serve_with(
        site.path(),
        backend,
        &[
            "--listen",
            "[::1]:0",
            "--listen-tls",
            "[::1]:0",
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
    );
    let urls = listening_urls(&server);
    let expected = [
        "http://127.0.0.1:",
        "http://[::1]:",
        "https://[::1]:",
        "https://127.0.0.1:",
    ];
    assert_eq!(
        urls.len(),
        expected.len(),
        "the listening line names each listener: {urls:?}"
    );
    for (url, prefix) in urls.iter().zip(expected) {
        assert!(
            url.starts_with(prefix) && url.ends_with('/') && port_of(url) != 0,
            "{url:?} is not {prefix}PORT/ (the whole line: {urls:?})"
        );
    }
    let mut ports: Vec<u16> = urls.iter().map(|u| port_of(u)).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 4, "four different ports: {urls:?}");
    for url in &urls {
        let ip = if url.contains("[::1]") {
            "[::1]"
        } else {
            "127.0.0.1"
        };
        assert_eq!(
            fetch(&site, &certs, url, ip),
            PAGE,
            "the page through {url}"
        );
    }
}

/// Makes each `(fd, target)` of `fds` open as `target` in the child,
/// inherited across exec: all are first copied above every target, so
/// that no `dup2` overwrites a descriptor another one still needs.
fn pass_fds(command: &mut Command, fds: Vec<(RawFd, RawFd)>) {
    // SAFETY: only fcntl and dup2, async-signal-safe, run between fork
    // and exec.
    unsafe {
        command.pre_exec(move || {
            let mut high = Vec::with_capacity(fds.len());
            for &(fd, target) in &fds {
                let copy = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100);
                if copy < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high.push((copy, target));
            }
            for (copy, target) in high {
                if libc::dup2(copy, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

fn socket_activation_passes_a_plain_and_a_tls_socket(backend: &str) {
    let site = TempDocroot::new("tls-activation");
    site.write("index.html", PAGE);
    let certs = make_certs(&site.outside(), "a");
    let (_, cert, key) = certs.paths();
    let plain = TcpListener::bind("127.0.0.1:0").expect("bind");
    let tls = TcpListener::bind("127.0.0.1:0").expect("bind");
    let plain_port = plain.local_addr().expect("addr").port();
    let tls_port = tls.local_addr().expect("addr").port();

    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(
            "export LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=http:https; \
             exec \"$0\" \"$@\"",
        )
        .arg(server_bin())
        .arg("--root")
        .arg(site.path())
        .args([
            "--event-handler",
            backend,
            "--access-log",
            "off",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ]);
    pass_fds(
        &mut command,
        vec![(plain.as_raw_fd(), 3), (tls.as_raw_fd(), 4)],
    );
    let server = ServerProcess::start_command(command);
    drop((plain, tls));

    assert_eq!(
        listening_urls(&server),
        [
            format!("http://127.0.0.1:{plain_port}/"),
            format!("https://127.0.0.1:{tls_port}/"),
        ],
        "the listening line names the two passed sockets, and only them"
    );
    assert_eq!(server.port(), plain_port);
    assert_eq!(server.tls_port(), tls_port);
    let response = server.connect().get("/index.html");
    response.assert_status(200);
    assert_eq!(response.body, PAGE, "plain HTTP on descriptor 3");
    let url = format!("https://127.0.0.1:{tls_port}/");
    assert_eq!(
        fetch(&site, &certs, &url, "127.0.0.1"),
        PAGE,
        "HTTPS on descriptor 4"
    );
    // The TLS socket speaks only TLS.
    let mut conn =
        tests::Connection::connect(std::net::SocketAddr::from(([127, 0, 0, 1], tls_port)));
    conn.send(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let refused = conn.read_response();
    refused.assert_status(400);
    assert!(
        refused
            .body_text()
            .contains("The plain HTTP request was sent to HTTPS port"),
        "{}",
        refused.body_text()
    );
}

per_backend!(
    every_listener_serves_the_same_page,
    socket_activation_passes_a_plain_and_a_tls_socket,
);
