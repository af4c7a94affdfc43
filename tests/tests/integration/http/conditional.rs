//! Preconditions beyond the 304 cases, under each event backend, for a
//! small (inline) and a large (descriptor) file: `If-Match` and
//! `If-Unmodified-Since` (412), the order of RFC 9110 section 13.2.2 (a
//! failed `If-Match` is 412 even where `If-None-Match` would give 304),
//! an `If-Modified-Since` in the future ignored, and `If-Range`: a strong
//! matching ETag or the exact Last-Modified date gives the 206, a weak or
//! other ETag or another date the whole file with 200.

use tests::{assert_bytes_eq, per_backend, site_docroot, Connection, Response, ServerProcess};

const FILES: [&str; 2] = ["index.html", "large.bin"];

fn site_server(backend: &str) -> ServerProcess {
    ServerProcess::serve(&site_docroot().root, backend)
}

/// The file's ETag and Last-Modified, from a plain GET.
fn validators(conn: &mut Connection, path: &str) -> (String, String) {
    let response = conn.get(path);
    response.assert_status(200);
    (
        response.expect_header("ETag").to_owned(),
        response.expect_header("Last-Modified").to_owned(),
    )
}

fn assert_whole(response: &Response, path: &str, what: &str) {
    response.assert_status(200);
    assert_bytes_eq(
        &format!("{path} {what}"),
        &response.body,
        &site_docroot().file(&path[1..]),
    );
}

fn if_match_and_if_unmodified_since_give_412(backend: &str) {
    let server = site_server(backend);
    let mut conn = server.connect();
    for file in FILES {
        let path = format!("/{file}");
        let (etag, modified) = validators(&mut conn, &path);
        let weak = format!("W/{etag}");
        let list = format!("\"other\", {etag}");
        for (name, value) in [
            ("If-Match", "\"other\""),
            ("If-Match", weak.as_str()),
            ("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ] {
            let response = conn.request("GET", &path, &[(name, value)]);
            response.assert_error_page(412);
            assert!(
                !response.connection_has("close"),
                "412 keeps the connection"
            );
        }
        for (name, value) in [
            ("If-Match", etag.as_str()),
            ("If-Match", "*"),
            ("If-Match", list.as_str()),
            ("If-Unmodified-Since", modified.as_str()),
        ] {
            assert_whole(&conn.request("GET", &path, &[(name, value)]), &path, name);
        }
        // HEAD gets the 412 without a body.
        conn.send(
            format!("HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-Match: \"x\"\r\n\r\n")
                .as_bytes(),
        );
        conn.read_head_response().assert_status(412);
    }
}

fn preconditions_are_evaluated_in_order(backend: &str) {
    let server = site_server(backend);
    let mut conn = server.connect();
    for file in FILES {
        let path = format!("/{file}");
        let (etag, modified) = validators(&mut conn, &path);
        // A failed If-Match wins over a matching If-None-Match.
        conn.request(
            "GET",
            &path,
            &[("If-Match", "\"x\""), ("If-None-Match", &etag)],
        )
        .assert_error_page(412);
        // A passed If-Match lets If-None-Match answer 304.
        conn.request(
            "GET",
            &path,
            &[("If-Match", &etag), ("If-None-Match", &etag)],
        )
        .assert_status(304);
        // If-Match present: If-Unmodified-Since is not looked at.
        let response = conn.request(
            "GET",
            &path,
            &[
                ("If-Match", &etag),
                ("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ],
        );
        assert_whole(&response, &path, "If-Match over If-Unmodified-Since");
        // If-None-Match present: If-Modified-Since is not looked at.
        let response = conn.request(
            "GET",
            &path,
            &[("If-None-Match", "\"x\""), ("If-Modified-Since", &modified)],
        );
        assert_whole(&response, &path, "If-None-Match over If-Modified-Since");
    }
}

fn if_modified_since_in_the_future_is_ignored(backend: &str) {
    let server = site_server(backend);
    let mut conn = server.connect();
    for file in FILES {
        let path = format!("/{file}");
        let response = conn.request(
            "GET",
            &path,
            &[("If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT")],
        );
        assert_whole(&response, &path, "If-Modified-Since in 2100");
    }
}

fn if_range_decides_between_206_and_200(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    for file in FILES {
        let path = format!("/{file}");
        let whole = site.file(file);
        let (etag, modified) = validators(&mut conn, &path);
        for if_range in [etag.as_str(), modified.as_str()] {
            let response = conn.request(
                "GET",
                &path,
                &[("Range", "bytes=0-9"), ("If-Range", if_range)],
            );
            response.assert_status(206);
            assert_bytes_eq(
                &format!("{path} If-Range {if_range}"),
                &response.body,
                &whole[..10],
            );
        }
        let weak = format!("W/{etag}");
        for if_range in [
            weak.as_str(),
            "\"other\"",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Fri, 01 Jan 2100 00:00:00 GMT",
            "garbage",
        ] {
            let response = conn.request(
                "GET",
                &path,
                &[("Range", "bytes=0-9"), ("If-Range", if_range)],
            );
            assert_whole(&response, &path, &format!("If-Range {if_range}"));
            assert!(response.header("Content-Range").is_none());
        }
    }
}

per_backend!(
    if_match_and_if_unmodified_since_give_412,
    preconditions_are_evaluated_in_order,
    if_modified_since_in_the_future_is_ignored,
    if_range_decides_between_206_and_200,
);
