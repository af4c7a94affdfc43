//! The server never blocks on a helper or on a slow client, under each
//! event backend:
//!
//! - with the test hook `AMPED_TEST_HELPER_GATE` holding every lookup of a
//!   path containing "slow" until the test opens the gate, a request for
//!   /slow.html is in flight (counted by the status page) while 50
//!   requests for a cached page on other connections all complete; the
//!   slow response comes only after the gate opens, and is correct;
//! - a client that stops reading a response far larger than every kernel
//!   buffer between it and the server (its own receive buffer made small)
//!   does not hold up 50 other clients, and still gets every byte once it
//!   reads.
//!
//! Neither needs a clock: a server that waited would never answer the
//! other clients, and their reads would time out.

use std::io::Write;

use tests::docroot::pseudo_random_bytes;
use tests::http_client::request_bytes;
use tests::socket::{connect_with_small_receive_buffer, larger_than_socket_buffers};
use tests::status::wait_for_lookups_in_flight;
use tests::streaming::{read_head, stream_body};
use tests::{
    assert_bytes_eq, per_backend, site_docroot, HelperGate, ServerProcess, TempDocroot, DEADLINE,
};

fn cached_requests_do_not_wait_for_a_slow_helper(backend: &str) {
    let site = site_docroot();
    let cached = site.file("cached.html");
    let gate = HelperGate::new("never-blocks");
    let server = gate.serve(&site.root, backend, "slow");

    // Warm the cache.
    let warm = server.connect().get("/cached.html");
    warm.assert_status(200);
    assert_bytes_eq("warm-up", &warm.body, &cached);

    let mut slow = server.connect();
    slow.send(request_bytes("GET", "/slow.html", &[]).as_bytes());
    wait_for_lookups_in_flight(&server, 1);

    // The lookup stays held until the gate opens: each of these would time
    // out if the server waited for it.
    for i in 0..50 {
        let response = server.connect().get("/cached.html");
        response.assert_status(200);
        assert_bytes_eq(&format!("cached fetch {i}"), &response.body, &cached);
    }
    assert!(
        !slow.has_pending_bytes(),
        "the response to /slow.html came while its lookup was held at the gate"
    );

    gate.open();
    let response = slow.read_response();
    response.assert_status(200);
    assert_bytes_eq("/slow.html", &response.body, &site.file("slow.html"));
}

fn a_stalled_client_does_not_block_others(backend: &str) {
    let docroot = TempDocroot::new("stalled");
    let size = larger_than_socket_buffers(32 << 20);
    let big = pseudo_random_bytes(size, 11);
    docroot.write("big.bin", &big);
    let page = b"<p>small page</p>\n";
    docroot.write("page.html", page);
    let server = ServerProcess::serve(docroot.path(), backend);

    // A client asks for the big file and reads nothing until the others
    // are done: the server has to stop sending and wait for it.
    let mut stalled = connect_with_small_receive_buffer(server.addr());
    stalled
        .set_read_timeout(Some(DEADLINE))
        .expect("set_read_timeout");
    stalled
        .write_all(request_bytes("GET", "/big.bin", &[]).as_bytes())
        .expect("send the request");
    for i in 0..50 {
        let response = server.connect().get("/page.html");
        response.assert_status(200);
        assert_bytes_eq(&format!("fetch {i}"), &response.body, page);
    }

    // The stalled client still gets every byte.
    let head = read_head(&mut stalled).expect("the big response's head");
    assert_eq!(head.status, 200, "{}", head.text);
    assert_eq!(head.content_length, Some(size as u64), "{}", head.text);
    let mut offset = 0usize;
    let mut first_difference = None;
    let received = stream_body(&mut stalled, &head.leftover, size as u64, |piece| {
        if first_difference.is_none() && piece != &big[offset..offset + piece.len()] {
            first_difference = Some(offset);
        }
        offset += piece.len();
    })
    .expect("reading the big body");
    assert_eq!(received, size as u64, "/big.bin length");
    assert_eq!(first_difference, None, "/big.bin differs from the file");
}

per_backend!(
    cached_requests_do_not_wait_for_a_slow_helper,
    a_stalled_client_does_not_block_others,
);
