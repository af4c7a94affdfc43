//! The status page (`--status-path`), under each event backend, as text
//! and `?json`, and its counters; 404 without the option.

use std::time::Duration;

use tests::procfs::poll_until;
use tests::status::{
    helper_restarts, open_connections_after_a_turn, status_json, status_number, STATUS_PATH,
};
use tests::{assert_bytes_eq, per_backend, ServerProcess, TempDocroot, DEADLINE};

fn status_page_text_json_and_counters(backend: &str) {
    let docroot = TempDocroot::new(&format!("status-{backend}"));
    let page = b"<p>a page for the counters</p>\n";
    docroot.write("page.html", page);
    let server = ServerProcess::serve_with(
        docroot.path(),
        backend,
        &["--helpers", "2", "--status-path", STATUS_PATH],
    );

    let text = server.connect().get(STATUS_PATH);
    text.assert_status(200);
    assert!(
        text.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "status page Content-Type:\n{}",
        text.head_text()
    );
    let body = text.body_text();
    let line = |prefix: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}...` line in the status page:\n{body}"))
            .to_owned()
    };
    let numbers = |rest: &str| -> Vec<u64> {
        rest.split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    let uptime = line("uptime: ");
    assert!(
        uptime
            .strip_suffix(" s")
            .is_some_and(|n| n.parse::<u64>().is_ok()),
        "uptime line: {uptime:?}"
    );
    for prefix in [
        "open connections: ",
        "requests: ",
        "helper lookups in flight: ",
        "cgi-runner restarts: ",
        "cgi running: ",
    ] {
        let rest = line(prefix);
        assert!(
            rest.parse::<u64>().is_ok(),
            "`{prefix}{rest}` is not a count"
        );
    }
    let responses = line("responses: ");
    assert!(
        responses.starts_with("1xx ")
            && ["2xx ", "3xx ", "4xx ", "5xx "]
                .iter()
                .all(|c| responses.contains(c))
            && numbers(&responses).len() == 5,
        "responses line: {responses:?}"
    );
    let cache = line("cache: ");
    assert!(
        ["hits ", "misses ", "bytes ", "entries "]
            .iter()
            .all(|c| cache.contains(c))
            && numbers(&cache).len() == 4,
        "cache line: {cache:?}"
    );
    assert_eq!(line("helper restarts: "), "0 0", "two helpers, no restarts");
    assert_eq!(line("cgi-runner restarts: "), "0");

    // The JSON says the same things, and its counters move.
    let before = status_json(&server, STATUS_PATH);
    for pointer in [
        "/uptime_secs",
        "/open_connections",
        "/requests",
        "/responses/1xx",
        "/responses/2xx",
        "/responses/3xx",
        "/responses/4xx",
        "/responses/5xx",
        "/cache/hits",
        "/cache/misses",
        "/cache/bytes",
        "/cache/entries",
        "/helper_lookups_in_flight",
        "/cgi_runner_restarts",
        "/cgi_running",
    ] {
        status_number(&before, pointer);
    }
    // The page's own connection and an idle one are open (polled: the
    // connections of earlier status fetches may not be closed yet).
    let _idle = server.connect();
    let mut open = 0;
    assert!(
        poll_until(DEADLINE, || {
            open = open_connections_after_a_turn(&server);
            open == 2
        }),
        "open_connections with one idle client besides the status page: {open}"
    );
    assert_eq!(helper_restarts(&before), [0, 0], "{before}");

    let mut conn = server.connect();
    let first = conn.get("/page.html");
    first.assert_status(200);
    assert_bytes_eq("/page.html", &first.body, page);
    conn.get("/missing.html").assert_status(404);
    // A second fetch inside the entry's freshness is a cache hit; retried
    // in case a slow machine let the entry go stale in between.
    let mut after = status_json(&server, STATUS_PATH);
    let hit = poll_until(Duration::from_secs(5), || {
        conn.get("/page.html").assert_status(200);
        after = status_json(&server, STATUS_PATH);
        status_number(&after, "/cache/hits") > status_number(&before, "/cache/hits")
    });
    assert!(hit, "no cache hit counted:\nbefore {before}\nafter {after}");
    let grew = |pointer: &str, by: u64| {
        assert!(
            status_number(&after, pointer) >= status_number(&before, pointer) + by,
            "{pointer} did not grow by {by}:\nbefore {before}\nafter {after}"
        );
    };
    grew("/requests", 3);
    grew("/responses/2xx", 2);
    grew("/responses/4xx", 1);
    grew("/cache/misses", 1);
    assert!(status_number(&after, "/cache/entries") >= 1, "{after}");
    assert!(
        status_number(&after, "/cache/bytes") >= page.len() as u64,
        "{after}"
    );

    // Without --status-path the path is an ordinary (missing) file.
    let plain = ServerProcess::serve(docroot.path(), backend);
    plain.connect().get(STATUS_PATH).assert_error_page(404);
    plain
        .connect()
        .get(&format!("{STATUS_PATH}?json"))
        .assert_error_page(404);
}

per_backend!(status_page_text_json_and_counters);
