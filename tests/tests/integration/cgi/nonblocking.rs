//! A running CGI script never holds up the event loop, under each event
//! backend: while a script is held (it waits for a release file the test
//! creates only afterwards), 50 static requests on other connections all
//! complete, and the slow script's connection has received nothing; once
//! released, the slow response arrives whole.
//!
//! The hold lasts as long as the check needs, however slow the machine, so
//! the proof is the order of events, not a clock.

use std::time::{Duration, Instant};

use tests::cgi::{wait_for_file, CgiSite, Reaper, TEXT_HEAD};
use tests::{assert_bytes_eq, per_backend, ServerProcess};

/// The script gives up waiting for its release after this long, so that
/// nothing is left behind should the test die without its clean-up. Far
/// beyond what the 50 requests take.
const HOLD_MAX_SECS: u32 = 300;
/// A generous bound on the 50 static requests (a few milliseconds each
/// when idle), only to catch a server that is slow for other reasons on
/// a loaded 2-core machine; the order of events is the proof.
const STATIC_BUDGET: Duration = Duration::from_secs(20);

fn slow_script_does_not_delay_static_requests(backend: &str) {
    let site = CgiSite::new("cgi-nonblocking");
    let _reaper = Reaper::new(&site);
    let started = site.outside().join("slow-started");
    let release = site.outside().join("slow-release");
    site.script(
        "cgi-bin/slow.cgi",
        &format!(
            "touch '{started}'\ni=0\n\
             while [ ! -e '{release}' ] && [ $i -lt {ticks} ]; do sleep 0.05; i=$((i+1)); done\n\
             {TEXT_HEAD}\necho 'slow script done'\n",
            started = started.display(),
            release = release.display(),
            ticks = HOLD_MAX_SECS * 20,
        ),
    );
    let page = b"<p>a static page served while a script sleeps</p>\n".repeat(20);
    site.file("page.html", &page);
    // The script is held for as long as the test likes; the default 30 s
    // --cgi-timeout must not cut it on a slow machine.
    let server = ServerProcess::serve_with(site.root(), backend, &["--cgi-timeout", "600"]);

    let mut slow = server.connect();
    slow.send(b"GET /cgi-bin/slow.cgi HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    // The script is running (and held) from here on.
    wait_for_file(&started);

    let static_start = Instant::now();
    for i in 0..50 {
        let mut conn = server.connect();
        let response = conn.get("/page.html");
        response.assert_status(200);
        assert_bytes_eq(&format!("static request {i}"), &response.body, &page);
    }
    let static_time = static_start.elapsed();
    // The script cannot answer before its release: nothing may have
    // arrived on its connection (no early head, error or close).
    assert!(
        !slow.has_pending_bytes(),
        "the slow script's connection received something while the script was held: {:?}",
        String::from_utf8_lossy(slow.buffered())
    );
    assert!(
        static_time < STATIC_BUDGET,
        "50 static requests took {static_time:?} while a CGI script was held (budget \
         {STATIC_BUDGET:?})"
    );

    std::fs::write(&release, b"").expect("release the script");
    let response = slow.read_response_dechunked();
    response.assert_status(200);
    assert_eq!(response.body_text(), "slow script done\n");
}

per_backend!(slow_script_does_not_delay_static_requests);
