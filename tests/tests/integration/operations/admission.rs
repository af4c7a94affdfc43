//! Who gets served, under each event backend:
//!
//! - `--max-connections 2`: with two connections open and served, a third
//!   gets a 503 (or is closed) while the first two keep being served; once
//!   one of them closes, a new connection is served again;
//! - the status page answers loopback clients only: a client bound to a
//!   non-loopback address of this machine, connecting to the server on
//!   127.0.0.1 (so the traffic never leaves the loopback interface), gets
//!   403, unless `--status-allow-remote` is given.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::Duration;

use tests::http_client::request_bytes;
use tests::procfs::poll_until;
use tests::{per_backend, site_docroot, Connection, ServerProcess, DEADLINE};

fn third_connection_beyond_max_connections_is_refused(backend: &str) {
    let site = site_docroot();
    let page = site.file("index.html");
    let server = ServerProcess::serve_with(&site.root, backend, &["--max-connections", "2"]);
    // Two connections, each served once: the server holds both.
    let mut first = server.connect();
    let mut second = server.connect();
    first.get("/index.html").assert_status(200);
    second.get("/index.html").assert_status(200);

    let mut third = server.connect();
    // The request may or may not be read before the 503: either way the
    // answer is a 503 and a close, or just a close.
    let _ = third.try_send(request_bytes("GET", "/index.html", &[]).as_bytes());
    match third.try_read_response(false) {
        Ok(response) => {
            response.assert_error_page(503);
            third.expect_closed();
        }
        Err(e) => assert!(
            matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ),
            "the third connection got neither a 503 nor a close: {e}"
        ),
    }

    // The first two are still served.
    for (name, conn) in [("first", &mut first), ("second", &mut second)] {
        let response = conn.get("/index.html");
        response.assert_status(200);
        assert_eq!(response.body, page, "the {name} connection's page");
    }

    // Once one closes, there is room again (the server notices the close
    // asynchronously, so retry until the deadline).
    drop(first);
    let mut last = String::new();
    let served = poll_until(DEADLINE, || {
        let mut conn = Connection::connect(server.addr());
        conn.set_read_timeout(Duration::from_secs(5));
        let result = conn
            .try_send(request_bytes("GET", "/index.html", &[]).as_bytes())
            .and_then(|()| conn.try_read_response(false));
        match result {
            Ok(response) if response.status == 200 => true,
            Ok(response) => {
                last = response.head_text();
                false
            }
            Err(e) => {
                last = e.to_string();
                false
            }
        }
    });
    assert!(
        served,
        "no room for a new connection after one of two closed; last: {last}"
    );
    second.get("/index.html").assert_status(200);
}

/// A non-loopback IPv4 address of this machine, from getifaddrs(3)
/// (read from the local configuration; nothing is sent anywhere).
fn local_non_loopback_ipv4() -> Option<Ipv4Addr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut entry = list;
    while !entry.is_null() && found.is_none() {
        // SAFETY: `entry` is a node of the list getifaddrs returned, alive
        // until freeifaddrs; an AF_INET address is a sockaddr_in.
        unsafe {
            let addr = (*entry).ifa_addr;
            if !addr.is_null() && i32::from((*addr).sa_family) == libc::AF_INET {
                let sin = &*addr.cast::<libc::sockaddr_in>();
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() && !ip.is_unspecified() {
                    found = Some(ip);
                }
            }
            entry = (*entry).ifa_next;
        }
    }
    // SAFETY: frees the list getifaddrs allocated, once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// A non-loopback address to connect from. A machine without one cannot
/// run the test: that fails with a clear message unless
/// `AMPED_TESTS_NO_NETWORK_ADDRESS=1` says skipping it is intended.
fn address_to_connect_from() -> Option<Ipv4Addr> {
    if let Some(ip) = local_non_loopback_ipv4() {
        return Some(ip);
    }
    if std::env::var("AMPED_TESTS_NO_NETWORK_ADDRESS").as_deref() == Ok("1") {
        eprintln!("skipped: no non-loopback IPv4 address (AMPED_TESTS_NO_NETWORK_ADDRESS=1)");
        return None;
    }
    panic!(
        "this machine has no non-loopback IPv4 address to show the status page refusing \
         a remote client; set AMPED_TESTS_NO_NETWORK_ADDRESS=1 to skip this test knowingly"
    );
}

/// Connects to the server on 127.0.0.1 from the local address `from`, so
/// that the server sees a non-loopback peer while the traffic stays on
/// the loopback interface.
fn connect_from(port: u16, from: Ipv4Addr) -> TcpStream {
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns, with
    // valid sockaddr_in pointers and their sizes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let source = sockaddr(from, 0);
        let rc = libc::bind(fd, (&source as *const libc::sockaddr_in).cast(), len);
        assert_eq!(rc, 0, "bind to {from}: {}", std::io::Error::last_os_error());
        let target = sockaddr(Ipv4Addr::LOCALHOST, port);
        let rc = libc::connect(fd, (&target as *const libc::sockaddr_in).cast(), len);
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        stream
    }
}

/// Fetches `path` over a connection from `from` (what the server sees as
/// the peer).
fn fetch_from(port: u16, from: Ipv4Addr, path: &str) -> tests::Response {
    let stream = connect_from(port, from);
    let local = stream.local_addr().expect("local_addr");
    assert_eq!(local.ip(), IpAddr::V4(from), "the client's address");
    let mut conn = Connection::from_stream(stream);
    conn.get(path)
}

fn status_page_is_for_loopback_unless_allowed(backend: &str) {
    let Some(ip) = address_to_connect_from() else {
        return;
    };
    let root = site_docroot().root.as_os_str().to_owned();
    for allow in [false, true] {
        let mut args = vec![
            "--root".into(),
            root.clone(),
            "--event-handler".into(),
            backend.into(),
            "--status-path".into(),
            "/server-status".into(),
        ];
        if allow {
            args.push("--status-allow-remote".into());
        }
        let server = ServerProcess::start(&args);
        let port = server.port();

        // Loopback clients always get the page.
        server.connect().get("/server-status").assert_status(200);
        // Other pages are for everyone.
        fetch_from(port, ip, "/index.html").assert_status(200);
        let response = fetch_from(port, ip, "/server-status");
        if allow {
            response.assert_status(200);
            assert!(
                response.body_text().contains("uptime"),
                "the status page:\n{}",
                response.body_text()
            );
        } else {
            response.assert_error_page(403);
            let json = fetch_from(port, ip, "/server-status?json");
            json.assert_error_page(403);
        }
    }
}

per_backend!(
    third_connection_beyond_max_connections_is_refused,
    status_page_is_for_loopback_unless_allowed,
);
