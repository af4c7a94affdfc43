//! Slow readers of one directory listing share its page, under each event
//! backend: 30 clients (each with a small receive buffer) ask for the
//! listing of 10,000 files with long names, a page larger than the
//! sockets can buffer, and read
//! nothing, and the server's memory grows by far less than one copy of
//! the page each (each had its own copy once: 30 readers of a 16.8 MB
//! page took it from 71 MB to 563 MB); then each reads the page whole,
//! byte for byte the same.

use std::fs;
use std::io::Write;
use std::net::TcpStream;

use tests::http_client::request_bytes;
use tests::procfs::{poll_until, vm_rss_bytes};
use tests::socket::{connect_with_small_receive_buffer, max_send_buffer, SMALL_RECEIVE_BUFFER};
use tests::status::{status_json, status_number, STATUS_PATH};
use tests::{per_backend, Connection, ServerProcess, TempDocroot, DEADLINE};

const ENTRIES: usize = 10_000;
const READERS: usize = 30;

fn slow_readers_share_one_listing_page(backend: &str) {
    let root = TempDocroot::new(&format!("listing-memory-{backend}"));
    let dir = root.path().join("many");
    fs::create_dir_all(&dir).expect("mkdir many");
    for i in 0..ENTRIES {
        // 240 ampersands: 1,200 bytes as text and 720 in the link, so
        // that the page outgrows what the sockets' buffers can hold.
        let name = format!("{}{i:05}", "&".repeat(240));
        fs::write(dir.join(name), b"").expect("an entry");
    }
    let server = ServerProcess::serve_with(
        root.path(),
        backend,
        &["--dir-listing", "--status-path", STATUS_PATH],
    );
    let pid = i32::try_from(server.pid()).expect("pid");
    // The page, cached by this first request.
    let page = server.connect().get_dechunked("/many/");
    page.assert_status(200);
    let size = page.body.len() as u64;
    let buffered = (max_send_buffer() + 2 * SMALL_RECEIVE_BUFFER) as u64;
    assert!(
        size > 2 * buffered,
        "a page of {size} bytes, larger than the {buffered} bytes the kernel may buffer"
    );
    let baseline = vm_rss_bytes(pid).expect("the server's VmRSS");

    let readers: Vec<TcpStream> = (0..READERS)
        .map(|_| {
            let mut reader = connect_with_small_receive_buffer(server.addr());
            reader
                .write_all(request_bytes("GET", "/many/", &[]).as_bytes())
                .expect("send the request");
            reader
        })
        .collect();
    // Wait until every reader's answer is queued: the page's count of
    // 2xx answers (which does not count the page's own) includes the
    // first fetch, the readers and the status pages fetched before.
    let mut fetched = 0u64;
    let queued = poll_until(DEADLINE, || {
        let answered = status_number(&status_json(&server, STATUS_PATH), "/responses/2xx");
        fetched += 1;
        answered >= 1 + READERS as u64 + (fetched - 1)
    });
    assert!(queued, "the readers' answers were never all queued");
    let grown = vm_rss_bytes(pid).expect("VmRSS").saturating_sub(baseline);
    assert!(
        grown < 3 * size,
        "{READERS} readers of a {size}-byte page grew the server by {grown} bytes"
    );

    for stream in readers {
        let mut reader = Connection::from_stream(stream);
        let response = reader.read_response_dechunked();
        response.assert_status(200);
        assert!(response.body == page.body, "a reader got a different page");
    }
}

per_backend!(slow_readers_share_one_listing_page);
