//! SIGTERM in the middle of a 100 MiB download, under each event backend:
//! new connections are refused, the download completes byte-exact, and
//! the server exits 0.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::Instant;

use tests::http_client::request_bytes;
use tests::procfs::{poll_until, send_signal};
use tests::streaming::{fill_to, read_head};
use tests::{per_backend, www_docroot, ServerProcess, DEADLINE};

fn sigterm_lets_a_download_finish_and_exits_0(backend: &str) {
    let www = www_docroot();
    let file = www
        .generated
        .iter()
        .find(|f| f.size == 100 * 1024 * 1024)
        .expect("the 100 MiB generated file");
    let expected = file.contents();
    // Room enough for the rest of the download on a loaded machine; the
    // drain itself is what is under test, not its time limit.
    let mut server = ServerProcess::serve_with(&www.root, backend, &["--shutdown-timeout", "120"]);
    let pid = server.pid_t();
    let addr = server.addr();

    let mut stream = server.connect_raw();
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream
        .write_all(request_bytes("GET", &file.url_path, &[]).as_bytes())
        .expect("send the request");
    let head = read_head(&mut stream).expect("the response head");
    assert_eq!(head.status, 200, "{}", head.text);
    let len = usize::try_from(head.content_length.expect("Content-Length")).expect("fits");
    assert_eq!(len, expected.len(), "{}", head.text);
    let mut body = head.leftover;
    fill_to(&mut stream, &mut body, 4 << 20).expect("the first 4 MiB");

    assert!(send_signal(pid, libc::SIGTERM), "SIGTERM the server");
    let signalled = Instant::now();
    // Once the server has taken the signal in, it accepts nothing more.
    let refused = poll_until(
        DEADLINE,
        || matches!(TcpStream::connect(addr), Err(e) if e.kind() == ErrorKind::ConnectionRefused),
    );
    let refused_after = signalled.elapsed();

    let rest = fill_to(&mut stream, &mut body, len);
    let status = server.wait_for_exit(DEADLINE);

    let mut problems = Vec::new();
    if let Err(e) = &rest {
        problems.push(format!("the download broke off: {e}"));
    } else if body != expected {
        problems.push(format!(
            "the download differs: {}",
            tests::http_client::bytes_mismatch(&body, &expected).unwrap_or_default()
        ));
    }
    match status {
        Some(s) if s.code() == Some(0) => {}
        Some(s) => problems.push(format!("the server exited with {s}, not 0")),
        None => problems.push(format!(
            "the server had not exited {DEADLINE:?} after the download"
        )),
    }
    if !refused {
        problems.push(format!(
            "connect() still succeeded {refused_after:?} after SIGTERM: a draining \
             server must stop listening, so that new connections are refused"
        ));
    }
    assert!(
        problems.is_empty(),
        "SIGTERM during a 100 MiB download:\n{}",
        problems.join("\n")
    );
}

per_backend!(sigterm_lets_a_download_finish_and_exits_0);
