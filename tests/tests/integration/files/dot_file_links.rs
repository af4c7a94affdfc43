//! The dot-file rule holds through symbolic links, under each event
//! backend: a link inside the root to `.env`, to a file inside `.git/`,
//! or to a `.hidden/` directory (and a file through it) is refused with
//! 403, as the dot-file itself is, and never carries the secret; a link
//! to an ordinary file is served; the directory listing shows exactly
//! the links that are served, and a link to a dot-script never runs.

use std::fs;
use std::os::unix::fs::symlink;

use tests::cgi::{CgiSite, TEXT_HEAD};
use tests::{per_backend, ServerProcess};

const SECRET: &str = "SECRET=do-not-serve";

fn links_to_dot_files_are_refused_and_not_listed(backend: &str) {
    let site = CgiSite::new("dot-file-links");
    let root = site.root();
    site.file(".env", SECRET.as_bytes());
    site.file(".git/config", SECRET.as_bytes());
    site.file(".hidden/inner.txt", SECRET.as_bytes());
    site.file("plain.txt", b"plain\n");
    fs::create_dir_all(root.join("links")).expect("mkdir links");
    symlink("../.env", root.join("links/env-link")).expect("env-link");
    symlink("../.git/config", root.join("links/git-link")).expect("git-link");
    symlink("../.hidden", root.join("links/hidden-dir")).expect("hidden-dir");
    symlink("../plain.txt", root.join("links/plain-link")).expect("plain-link");
    site.script(
        "cgi-bin/.secret.cgi",
        &format!("{TEXT_HEAD}\necho {SECRET}\n"),
    );
    symlink(".secret.cgi", root.join("cgi-bin/run.cgi")).expect("run.cgi");
    let server = ServerProcess::serve_with(root, backend, &["--dir-listing"]);
    let mut conn = server.connect();

    conn.get("/.env").assert_status(403);
    for path in [
        "/links/env-link",
        "/links/git-link",
        "/links/hidden-dir/inner.txt",
        "/links/hidden-dir/",
        "/cgi-bin/run.cgi",
    ] {
        for method in ["GET", "HEAD"] {
            let response = conn.request(method, path, &[]);
            assert_eq!(
                response.status,
                403,
                "{method} {path}: {}",
                response.head_text()
            );
            assert!(
                !response.body_text().contains(SECRET),
                "{method} {path} carried the secret"
            );
        }
    }
    let plain = conn.get("/links/plain-link");
    plain.assert_status(200);
    assert_eq!(plain.body_text(), "plain\n");

    let listing = conn.get_dechunked("/links/");
    listing.assert_status(200);
    let page = listing.body_text();
    assert!(
        page.contains("plain-link"),
        "a served link is listed:\n{page}"
    );
    for hidden in ["env-link", "git-link", "hidden-dir"] {
        assert!(
            !page.contains(hidden),
            "{hidden} is listed but refused:\n{page}"
        );
    }
}

per_backend!(links_to_dot_files_are_refused_and_not_listed);
