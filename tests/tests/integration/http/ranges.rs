//! Byte ranges beyond a single one, under each event backend, for a
//! small cached (inline) file and a large (descriptor, `sendfile`) one
//! alike: several ranges give a `multipart/byteranges` 206 (each part
//! with its Content-Type and Content-Range, the Content-Length the whole
//! body's), overlapping and adjacent ranges are coalesced (into one plain
//! 206 when they make one range), suffix and open ranges work inside a
//! set; a malformed Range header, more than 16 ranges, or ranges that ask
//! for more bytes than the file has (heavy overlap) are ignored: the
//! whole file with 200. HEAD announces the multipart length, sends no
//! body.

use tests::{assert_bytes_eq, per_backend, site_docroot, Connection, Response, ServerProcess};

/// The small (inline) and the large (descriptor) file.
const FILES: [&str; 2] = ["index.html", "large.bin"];

fn site_server(backend: &str) -> ServerProcess {
    ServerProcess::serve(&site_docroot().root, backend)
}

/// One part of a multipart body: its Content-Type, its range and bytes.
struct Part {
    content_type: String,
    start: usize,
    end: usize,
    total: usize,
    bytes: Vec<u8>,
}

/// Splits a `multipart/byteranges` body strictly: each part's length is
/// its Content-Range's, each delimiter exactly where it must be, and
/// nothing after the closing one.
fn parts(response: &Response) -> Vec<Part> {
    let content_type = response.expect_header("Content-Type");
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart: {content_type}"));
    let body = &response.body[..];
    let delimiter = format!("--{boundary}\r\n").into_bytes();
    assert!(
        body.starts_with(&delimiter),
        "body starts with the delimiter"
    );
    let mut at = delimiter.len();
    let mut parts = Vec::new();
    loop {
        let head_end = find(&body[at..], b"\r\n\r\n").expect("a part head") + at;
        let head = String::from_utf8_lossy(&body[at..head_end]).into_owned();
        let field = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("part without {name} in {head:?}"))
                .to_owned()
        };
        let range = field("Content-Range: bytes ");
        let (span, total) = range.split_once('/').expect("range/total");
        let (start, end) = span.split_once('-').expect("start-end");
        let (start, end): (usize, usize) = (start.parse().unwrap(), end.parse().unwrap());
        let data = head_end + 4;
        parts.push(Part {
            content_type: field("Content-Type: "),
            start,
            end,
            total: total.parse().unwrap(),
            bytes: body[data..data + end - start + 1].to_vec(),
        });
        at = data + end - start + 1;
        let next = format!("\r\n--{boundary}").into_bytes();
        assert_eq!(
            &body[at..at + next.len()],
            &next[..],
            "delimiter after a part"
        );
        at += next.len();
        match &body[at..] {
            b"--\r\n" => return parts,
            rest if rest.starts_with(b"\r\n") => at += 2,
            rest => panic!("bad delimiter end: {:?}", String::from_utf8_lossy(rest)),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn get_range(conn: &mut Connection, path: &str, range: &str) -> Response {
    conn.request("GET", path, &[("Range", range)])
}

fn several_ranges_give_multipart(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    for file in FILES {
        let path = format!("/{file}");
        let whole = site.file(file);
        let size = whole.len();
        let plain = conn.get(&path);
        let file_type = plain.expect_header("Content-Type").to_owned();
        // Out of order, a suffix and an open range: sorted in the answer.
        let range = format!("bytes=-3,0-1,{}-{},{}-", size / 2, size / 2 + 4, size - 10);
        let response = get_range(&mut conn, &path, &range);
        response.assert_status(206);
        assert!(
            response.header("Content-Range").is_none(),
            "no top-level Content-Range"
        );
        assert_eq!(response.content_length(), Some(response.body.len() as u64));
        let got = parts(&response);
        let expected = [(0, 1), (size / 2, size / 2 + 4), (size - 10, size - 1)];
        assert_eq!(
            got.len(),
            expected.len(),
            "{path} {range}: -3 merges into {}-",
            size - 10
        );
        for (part, (start, end)) in got.iter().zip(expected) {
            assert_eq!(
                (part.start, part.end, part.total),
                (start, end, size),
                "{path}"
            );
            assert_eq!(part.content_type, file_type, "{path}");
            assert_bytes_eq(
                &format!("{path} part {start}-{end}"),
                &part.bytes,
                &whole[start..=end],
            );
        }
        // The next response on the connection parses: the length was right.
        conn.get(&path).assert_status(200);
        // HEAD: the same length, no body.
        conn.send(
            format!("HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=0-1,5-6\r\n\r\n")
                .as_bytes(),
        );
        let head = conn.read_head_response();
        head.assert_status(206);
        let get = get_range(&mut conn, &path, "bytes=0-1,5-6");
        assert_eq!(head.content_length(), get.content_length(), "{path} HEAD");
        assert_eq!(parts(&get).len(), 2);
    }
}

fn overlapping_and_adjacent_ranges_coalesce(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    for file in FILES {
        let path = format!("/{file}");
        let whole = site.file(file);
        let size = whole.len();
        // Adjacent: one plain 206.
        let response = get_range(&mut conn, &path, "bytes=0-4,5-9");
        response.assert_status(206);
        assert_eq!(
            response.header("Content-Range"),
            Some(format!("bytes 0-9/{size}").as_str())
        );
        assert_bytes_eq(&path, &response.body, &whole[..10]);
        // Overlapping, and a third range apart: two parts.
        let response = get_range(&mut conn, &path, "bytes=20-29,10-24,100-109");
        response.assert_status(206);
        let got: Vec<(usize, usize)> = parts(&response).iter().map(|p| (p.start, p.end)).collect();
        assert_eq!(got, [(10, 29), (100, 109)], "{path}");
    }
}

fn malformed_or_abusive_ranges_give_the_whole_file(backend: &str) {
    let server = site_server(backend);
    let site = site_docroot();
    let mut conn = server.connect();
    let seventeen: Vec<String> = (0..17)
        .map(|i| format!("{}-{}", i * 4, i * 4 + 1))
        .collect();
    let seventeen = format!("bytes={}", seventeen.join(","));
    for file in FILES {
        let path = format!("/{file}");
        let whole = site.file(file);
        let size = whole.len();
        for range in [
            "bytes=5-2".to_owned(),
            "bytes=0-1,junk".to_owned(),
            "bytes=+1-2".to_owned(),
            "pages=1-2".to_owned(),
            "bytes=".to_owned(),
            seventeen.clone(),
            "bytes=0-,0-".to_owned(),
            format!("bytes=0-{},1-{}", size - 2, size - 1),
        ] {
            let response = get_range(&mut conn, &path, &range);
            response.assert_status(200);
            assert!(response.header("Content-Range").is_none(), "{path} {range}");
            assert_bytes_eq(&format!("{path} {range}"), &response.body, &whole);
        }
        // Sixteen ranges are within the cap.
        let sixteen: Vec<String> = (0..16)
            .map(|i| format!("{}-{}", i * 4, i * 4 + 1))
            .collect();
        let response = get_range(&mut conn, &path, &format!("bytes={}", sixteen.join(",")));
        response.assert_status(206);
        assert_eq!(parts(&response).len(), 16);
    }
}

per_backend!(
    several_ranges_give_multipart,
    overlapping_and_adjacent_ranges_coalesce,
    malformed_or_abusive_ranges_give_the_whole_file,
);
