//! A running CGI script never holds up the event loop, under each event
//! backend: while a script sleeps 5 s, 50 static requests on other
//! connections all complete, well under those 5 s and before the slow
//! script's response arrives; the slow response then arrives whole.

use std::time::{Duration, Instant};

use tests::cgi::{wait_for_file, CgiSite, TEXT_HEAD};
use tests::{assert_bytes_eq, per_backend, ServerProcess};

/// How long the slow script sleeps.
const SLOW: Duration = Duration::from_secs(5);
/// The 50 static requests must finish within this. The ordering check
/// (they all finish before the sleeping script answers) is the proof;
/// this bound only catches a server that is slow for other reasons.
const STATIC_BUDGET: Duration = Duration::from_millis(4000);

fn slow_script_does_not_delay_static_requests(backend: &str) {
    let site = CgiSite::new("cgi-nonblocking");
    let started = site.outside().join("slow-started");
    site.script(
        "cgi-bin/slow.cgi",
        &format!(
            "touch '{}'\nsleep {}\n{TEXT_HEAD}\necho 'slow script done'\n",
            started.display(),
            SLOW.as_secs()
        ),
    );
    let page = b"<p>a static page served while a script sleeps</p>\n".repeat(20);
    site.file("page.html", &page);
    let server = ServerProcess::serve(site.root(), backend);

    let sent_at = Instant::now();
    let mut slow = server.connect();
    slow.send(b"GET /cgi-bin/slow.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    // The script is running (and sleeping) from here on.
    wait_for_file(&started);

    let static_start = Instant::now();
    for i in 0..50 {
        let mut conn = server.connect();
        let response = conn.get("/page.html");
        response.assert_status(200);
        assert_bytes_eq(&format!("static request {i}"), &response.body, &page);
    }
    let static_time = static_start.elapsed();
    assert!(
        static_time < STATIC_BUDGET,
        "50 static requests took {static_time:?} while a CGI script slept (budget \
         {STATIC_BUDGET:?})"
    );
    assert!(
        !slow.has_pending_bytes(),
        "the slow script's response arrived before the static requests finished \
         ({:?} after sending it)",
        sent_at.elapsed()
    );

    let response = slow.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(response.body_text(), "slow script done\n");
    let slow_time = sent_at.elapsed();
    assert!(
        slow_time >= SLOW - Duration::from_millis(200),
        "the slow script answered after {slow_time:?}, before its {SLOW:?} sleep ended"
    );
}

per_backend!(slow_script_does_not_delay_static_requests);
