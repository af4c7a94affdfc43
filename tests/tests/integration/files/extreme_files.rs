//! Files with the extreme values a filesystem allows, under each event
//! backend: modification times after 9999 and before 1970 (tmpfs keeps
//! them; a date in year 10000 once killed the front process), a sparse
//! file of 2^62 bytes, and names of every byte. Each is fetched whole, by
//! HEAD, conditionally and by range, and listed; the server answers every
//! request and is still serving afterwards.

use std::fs::{self, File, FileTimes};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tests::{per_backend, ServerProcess, TempDocroot};

/// A tmpfs that keeps 64-bit times (ext4 clamps them to 2446).
const TMPFS: &str = "/dev/shm";

/// Seconds of the first moment of year 10000.
const YEAR_10000: u64 = 253_402_300_800;

/// The last moment an HTTP date can name.
const LAST_HTTP_DATE: &str = "Fri, 31 Dec 9999 23:59:59 GMT";

fn set_mtime(path: &Path, time: SystemTime) {
    let file = File::options()
        .write(true)
        .open(path)
        .expect("open to set its time");
    file.set_times(FileTimes::new().set_modified(time))
        .expect("set the modification time");
    let got = fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(got, time, "{TMPFS} keeps the time given");
}

fn site() -> TempDocroot {
    assert!(
        Path::new(TMPFS).is_dir(),
        "{TMPFS} (a tmpfs, which keeps times past 2446) is needed"
    );
    let root = TempDocroot::new_in(Path::new(TMPFS), "extreme-files");
    let future = root.write("dates/y10k.txt", b"after 9999\n");
    set_mtime(&future, UNIX_EPOCH + Duration::from_secs(YEAR_10000));
    let far = root.write("dates/far.txt", b"far future\n");
    set_mtime(
        &far,
        UNIX_EPOCH + Duration::from_secs(1_000_000_000_000_000),
    );
    let past = root.write("dates/before-1970.txt", b"before 1970\n");
    set_mtime(&past, UNIX_EPOCH - Duration::from_secs(86_400 * 365 * 100));
    let huge = root.path().join("huge/sparse.bin");
    fs::create_dir_all(huge.parent().expect("a parent")).expect("mkdir huge");
    File::create(&huge)
        .and_then(|f| f.set_len(1 << 62))
        .expect("a sparse file of 2^62 bytes");
    fs::create_dir_all(root.path().join("names")).expect("mkdir names");
    for byte in (1u8..=255).filter(|b| *b != b'/' && *b != b'.') {
        let name = [byte];
        let path = root
            .path()
            .join("names")
            .join(std::ffi::OsStr::from_bytes(&name));
        fs::write(path, name).expect("a one-byte name");
    }
    for name in UNSEEN_NAMES {
        root.write(&format!("names/{name}"), name.as_bytes());
    }
    root
}

/// Names with characters that would not show as themselves in a page: a
/// C1 control and a right-to-left override.
const UNSEEN_NAMES: [&str; 2] = ["c1-\u{85}", "evil\u{202e}gpj.exe"];

/// Every `href` of a listing page, as sent.
fn links(page: &str) -> Vec<&str> {
    page.split("<a href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect()
}

fn extreme_files_are_answered(backend: &str) {
    let root = site();
    let server = ServerProcess::serve_with(root.path(), backend, &["--dir-listing"]);
    let mut conn = server.connect();

    for file in ["/dates/y10k.txt", "/dates/far.txt"] {
        let response = conn.get(file);
        response.assert_status(200);
        assert_eq!(response.expect_header("Last-Modified"), LAST_HTTP_DATE);
        let head = conn.request("HEAD", file, &[]);
        head.assert_status(200);
        let since = conn.request("GET", file, &[("If-Modified-Since", LAST_HTTP_DATE)]);
        assert!(matches!(since.status, 200 | 304), "{}", since.head_text());
        let range = conn.request("GET", file, &[("Range", "bytes=0-2")]);
        range.assert_status(206);
    }
    let past = conn.get("/dates/before-1970.txt");
    past.assert_status(200);
    assert_eq!(
        past.expect_header("Last-Modified"),
        "Thu, 01 Jan 1970 00:00:00 GMT"
    );
    let listing = conn.get_dechunked("/dates/");
    listing.assert_status(200);
    assert!(
        listing.body_text().contains("y10k.txt"),
        "{}",
        listing.body_text()
    );

    let size = 1u64 << 62;
    let head = conn.request("HEAD", "/huge/sparse.bin", &[]);
    head.assert_status(200);
    assert_eq!(head.content_length(), Some(size));
    let last = conn.request("GET", "/huge/sparse.bin", &[("Range", "bytes=-1")]);
    last.assert_status(206);
    assert_eq!(
        last.expect_header("Content-Range"),
        format!("bytes {}-{}/{size}", size - 1, size - 1)
    );
    assert_eq!(last.body, [0]);
    let tail = conn.request(
        "GET",
        "/huge/sparse.bin",
        &[("Range", &format!("bytes={}-", size - 3))],
    );
    tail.assert_status(206);
    assert_eq!(tail.body, [0, 0, 0]);
    let past_end = conn.request(
        "GET",
        "/huge/sparse.bin",
        &[("Range", &format!("bytes={}-", u64::MAX))],
    );
    past_end.assert_status(416);
    let listing = conn.get_dechunked("/huge/");
    listing.assert_status(200);
    assert!(
        listing.body_text().contains(&size.to_string()),
        "{}",
        listing.body_text()
    );

    let names = conn.get_dechunked("/names/");
    names.assert_status(200);
    // No name's control character reaches the page as itself (it once
    // did, raw), and every link fetches its file, byte-exact.
    let page = names.body_text();
    let raw = page
        .chars()
        .filter(|&c| c != '\n')
        .find(|&c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c));
    assert_eq!(raw, None, "a raw control character in the listing");
    assert!(
        page.contains("<a href=\"%09\">\u{2409}</a>"),
        "a tab's stand-in"
    );
    let fetched = links(&page).into_iter().filter(|link| *link != "../");
    let mut count = 0;
    for link in fetched {
        let response = server.connect().get(&format!("/names/{link}"));
        response.assert_status(200);
        let name = percent_decoded(link);
        assert_eq!(response.body, name, "/names/{link}");
        count += 1;
    }
    assert!(count >= 120, "only {count} names listed:\n{page}");
    for byte in (1u8..=255).filter(|b| *b != b'/' && *b != b'.') {
        let response = server.connect().get(&format!("/names/%{byte:02X}"));
        match response.status {
            200 => assert_eq!(response.body, [byte], "/names/%{byte:02X}"),
            400 | 403 | 404 => {}
            other => panic!("/names/%{byte:02X}: {other}"),
        }
    }
    // Still serving.
    server.connect().get("/dates/y10k.txt").assert_status(200);
}

/// `link` with its `%XX` escapes decoded.
fn percent_decoded(link: &str) -> Vec<u8> {
    let bytes = link.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

per_backend!(extreme_files_are_answered);
