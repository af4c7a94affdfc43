//! `--dir-listing`, under each event backend: a directory without
//! index.html is answered with an HTML listing the helper produced
//! (sorted, directories first, names escaped in the text and
//! percent-encoded in the links, sizes shown, dot-files and symbolic
//! links left out), whose links work; a directory with an index is served
//! as before; without the option such a directory is still 403.

use tests::docroot::TempDocroot;
use tests::{per_backend, ServerProcess};

fn listing_root() -> TempDocroot {
    let root = TempDocroot::new("dir-listing");
    root.write("files/b.txt", b"twelve bytes");
    root.write("files/a&b <c>.txt", b"x");
    root.write("files/.secret", b"hidden");
    root.write("files/sub/index.html", b"<p>sub index</p>");
    std::os::unix::fs::symlink("/etc/passwd", root.path().join("files/link")).expect("symlink");
    root
}

fn directories_without_index_are_listed(backend: &str) {
    let root = listing_root();
    let server = ServerProcess::serve_with(root.path(), backend, &["--dir-listing"]);
    let mut conn = server.connect();
    let response = conn.get("/files/");
    response.assert_status(200);
    assert_eq!(
        response.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let page = response.body_text();
    assert!(page.contains("<title>Index of /files/</title>"), "{page}");
    assert!(page.contains("<a href=\"../\">"), "{page}");
    let escaped = "<a href=\"a%26b%20%3Cc%3E.txt\">a&amp;b &lt;c&gt;.txt</a>";
    assert!(page.contains(escaped), "{page}");
    assert!(page.contains("<a href=\"b.txt\">b.txt</a>"), "{page}");
    assert!(page.contains("<td>12</td>"), "b.txt's size:\n{page}");
    for hidden in [".secret", "link"] {
        assert!(!page.contains(hidden), "{hidden} listed:\n{page}");
    }
    let at = |name: &str| {
        page.find(name)
            .unwrap_or_else(|| panic!("{name} in\n{page}"))
    };
    assert!(
        at("sub/") < at("a&amp;b") && at("a&amp;b") < at("b.txt"),
        "{page}"
    );
    // The links lead where they say.
    conn.get("/files/a%26b%20%3Cc%3E.txt").assert_status(200);
    let sub = conn.get("/files/sub/");
    sub.assert_status(200);
    assert_eq!(sub.body_text(), "<p>sub index</p>");
    // HEAD: the listing's length, no body.
    conn.send(b"HEAD /files/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let head = conn.read_head_response();
    head.assert_status(200);
    assert_eq!(head.content_length(), Some(response.body.len() as u64));
}

fn without_the_option_such_directories_are_403(backend: &str) {
    let root = listing_root();
    let server = ServerProcess::serve(root.path(), backend);
    let response = server.connect().get("/files/");
    response.assert_error_page(403);
}

per_backend!(
    directories_without_index_are_listed,
    without_the_option_such_directories_are_403,
);
