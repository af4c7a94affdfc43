//! The server never blocks on a helper, under each event backend: with the
//! test hook `AMPED_TEST_HELPER_DELAY=slow:3000` holding back every lookup
//! of a path containing "slow", a request for /slow.html is in flight while
//! 50 requests for a cached page on other connections all complete, well
//! before the slow response, which then arrives correctly; and a client
//! that stops reading a 32 MiB response does not hold up other clients.

use std::time::{Duration, Instant};

use tests::docroot::pseudo_random_bytes;
use tests::http_client::request_bytes;
use tests::{assert_bytes_eq, per_backend, site_docroot, ServerProcess, TempDocroot};

const DELAY: Duration = Duration::from_millis(3000);

fn cached_requests_do_not_wait_for_a_slow_helper(backend: &str) {
    let site = site_docroot();
    let cached = site.file("cached.html");
    let server = ServerProcess::serve_with_env(
        &site.root,
        backend,
        &["--helpers", "2"],
        &[("AMPED_TEST_HELPER_DELAY", "slow:3000")],
    );

    // Warm the cache.
    let warm = server.connect().get("/cached.html");
    warm.assert_status(200);
    assert_bytes_eq("warm-up", &warm.body, &cached);

    let mut slow = server.connect();
    let sent = Instant::now();
    slow.send(request_bytes("GET", "/slow.html", &[]).as_bytes());

    for i in 0..50 {
        let response = server.connect().get("/cached.html");
        response.assert_status(200);
        assert_bytes_eq(&format!("cached fetch {i}"), &response.body, &cached);
    }
    let fast_done = sent.elapsed();
    // The ordering check below is the proof; this bound only catches a
    // server that is slow for other reasons.
    assert!(
        fast_done < Duration::from_millis(4000),
        "50 cached requests took {fast_done:?} while a helper was busy"
    );
    assert!(
        !slow.has_pending_bytes(),
        "the slow response arrived before the 50 cached ones finished \
         ({fast_done:?}): the delay hook did not hold the helper back"
    );

    let response = slow.read_response();
    let slow_done = sent.elapsed();
    response.assert_status(200);
    assert_bytes_eq("/slow.html", &response.body, &site.file("slow.html"));
    assert!(
        slow_done >= DELAY - Duration::from_millis(300),
        "the slow response came after {slow_done:?}: the helper was not held back"
    );
}

fn a_stalled_client_does_not_block_others(backend: &str) {
    let docroot = TempDocroot::new("stalled");
    let big = pseudo_random_bytes(32 * 1024 * 1024, 11);
    docroot.write("big.bin", &big);
    let page = b"<p>small page</p>\n";
    docroot.write("page.html", page);
    let server = ServerProcess::serve(docroot.path(), backend);

    // A client asks for 32 MiB and then reads nothing for a while: far more
    // than the socket buffers hold, so the server has to stop and wait.
    let mut stalled = server.connect();
    stalled.send(request_bytes("GET", "/big.bin", &[]).as_bytes());
    let start = Instant::now();
    for i in 0..50 {
        let response = server.connect().get("/page.html");
        response.assert_status(200);
        assert_bytes_eq(&format!("fetch {i}"), &response.body, page);
    }
    let others_done = start.elapsed();
    assert!(
        others_done < Duration::from_millis(4000),
        "50 small requests took {others_done:?} beside a stalled client"
    );
    // The stalled client still gets every byte.
    let response = stalled.read_response();
    response.assert_status(200);
    assert_bytes_eq("/big.bin", &response.body, &big);
}

per_backend!(
    cached_requests_do_not_wait_for_a_slow_helper,
    a_stalled_client_does_not_block_others,
);
