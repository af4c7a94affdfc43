//! Response headers against the contract, under each event backend:
//! `Content-Type` by extension (charset on text types), `Date` and
//! `Server`, validators (`ETag`, `Last-Modified`) and conditional requests
//! (304 on `If-None-Match` / `If-Modified-Since`), and single byte ranges
//! (206, 416); several ranges are `http_ranges.rs`'s, the other
//! preconditions `http_conditional.rs`'s.

use std::time::{Duration, SystemTime};

use tests::{assert_bytes_eq, per_backend, site_docroot, ServerProcess};

fn site_server(backend: &str) -> ServerProcess {
    ServerProcess::serve(&site_docroot().root, backend)
}

fn content_type_follows_extension(backend: &str) {
    let server = site_server(backend);
    let mut conn = server.connect();
    for (path, expected) in [
        ("/index.html", "text/html; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/notes.txt", "text/plain; charset=utf-8"),
        ("/data.json", "application/json; charset=utf-8"),
        ("/image.png", "image/png"),
        ("/blob.zzz", "application/octet-stream"),
        ("/large.bin", "application/octet-stream"),
    ] {
        let response = conn.get(path);
        response.assert_status(200);
        assert_eq!(response.header("Content-Type"), Some(expected), "{path}");
    }
    // JavaScript: text/javascript or application/javascript, with charset.
    let response = conn.get("/app.js");
    let js = response.expect_header("Content-Type");
    assert!(
        js == "text/javascript; charset=utf-8" || js == "application/javascript; charset=utf-8",
        "/app.js Content-Type: {js}"
    );
}

fn date_and_server_headers(backend: &str) {
    let server = site_server(backend);
    let mut conn = server.connect();
    for (path, status) in [("/index.html", 200), ("/nope.html", 404), ("/sub", 301)] {
        let response = conn.get(path);
        response.assert_status(status);
        assert_eq!(
            response.header("Server"),
            Some("amped/0.1.0"),
            "{path}: Server header"
        );
        assert_eq!(response.header_count("Date"), 1, "{path}: one Date header");
        let date = response.expect_header("Date");
        let parsed = httpdate::parse_http_date(date)
            .unwrap_or_else(|e| panic!("{path}: Date {date:?} is not an HTTP-date: {e}"));
        let now = SystemTime::now();
        let skew = now.duration_since(parsed).unwrap_or_else(|e| e.duration());
        assert!(
            skew < Duration::from_secs(60),
            "{path}: Date {date} is {skew:?} away from now"
        );
    }
}

fn validators_are_present(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    for file in ["index.html", "large.bin"] {
        let path = format!("/{file}");
        let response = conn.get(&path);
        response.assert_status(200);
        let etag = response.expect_header("ETag");
        assert!(
            etag.len() > 2
                && etag.ends_with('"')
                && (etag.starts_with('"') || etag.starts_with("W/\"")),
            "{path}: ETag {etag:?} is not a quoted entity tag"
        );
        let mtime = std::fs::metadata(site.root.join(file))
            .expect("metadata")
            .modified()
            .expect("mtime");
        assert_eq!(
            response.header("Last-Modified"),
            Some(httpdate::fmt_http_date(mtime).as_str()),
            "{path}: Last-Modified is the file's mtime"
        );
        assert_eq!(response.header("Accept-Ranges"), Some("bytes"), "{path}");
    }
    // Different files, different tags.
    let a = conn.get("/index.html");
    let b = conn.get("/notes.txt");
    assert_ne!(a.header("ETag"), b.header("ETag"));
}

fn if_none_match_gives_304(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    for file in ["index.html", "large.bin"] {
        let path = format!("/{file}");
        let first = conn.get(&path);
        first.assert_status(200);
        let etag = first.expect_header("ETag").to_owned();

        let response = conn.request("GET", &path, &[("If-None-Match", &etag)]);
        response.assert_status(304);
        // 304 has no body: the next response on the connection parses.
        let list = format!("\"other\", {etag}");
        conn.request("GET", &path, &[("If-None-Match", &list)])
            .assert_status(304);

        let response = conn.request("GET", &path, &[("If-None-Match", "\"not-the-tag\"")]);
        response.assert_status(200);
        assert_bytes_eq(&path, &response.body, &site.file(file));
    }
}

fn if_modified_since_gives_304(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    let first = conn.get("/index.html");
    first.assert_status(200);
    let last_modified = first.expect_header("Last-Modified").to_owned();

    conn.request(
        "GET",
        "/index.html",
        &[("If-Modified-Since", &last_modified)],
    )
    .assert_status(304);
    let response = conn.request(
        "GET",
        "/index.html",
        &[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")],
    );
    response.assert_status(200);
    assert_bytes_eq("/index.html", &response.body, &site.file("index.html"));
}

fn single_ranges_give_206(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    for file in ["index.html", "large.bin"] {
        let path = format!("/{file}");
        let whole = site.file(file);
        let size = whole.len();
        let mid = size / 2;
        for (range, start, end) in [
            ("bytes=0-9".to_owned(), 0, 9),
            (format!("bytes={mid}-"), mid, size - 1),
            ("bytes=-5".to_owned(), size - 5, size - 1),
            (format!("bytes={mid}-{}", mid + 3), mid, mid + 3),
            (format!("bytes=5-{}", size + 1000), 5, size - 1),
        ] {
            let response = conn.request("GET", &path, &[("Range", &range)]);
            response.assert_status(206);
            assert_eq!(
                response.header("Content-Range"),
                Some(format!("bytes {start}-{end}/{size}").as_str()),
                "{path} {range}"
            );
            assert_eq!(
                response.content_length(),
                Some((end - start + 1) as u64),
                "{path} {range}"
            );
            assert_bytes_eq(
                &format!("{path} {range}"),
                &response.body,
                &whole[start..=end],
            );
        }
    }
}

fn unsatisfiable_range_is_416(backend: &str) {
    let server = site_server(backend);
    let mut conn = server.connect();
    let size = site_docroot().file("index.html").len();
    for range in [
        format!("bytes={size}-"),
        format!("bytes={}-{}", size + 10, size + 20),
    ] {
        let response = conn.request("GET", "/index.html", &[("Range", &range)]);
        response.assert_status(416);
        assert_eq!(
            response.header("Content-Range"),
            Some(format!("bytes */{size}").as_str()),
            "{range}"
        );
    }
}

per_backend!(
    content_type_follows_extension,
    date_and_server_headers,
    validators_are_present,
    if_none_match_gives_304,
    if_modified_since_gives_304,
    single_ranges_give_206,
    unsatisfiable_range_is_416,
);
