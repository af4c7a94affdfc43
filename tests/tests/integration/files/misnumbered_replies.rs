//! A helper's reply counts only from the helper its job went to, under
//! each event backend. A lookup of `held/a.txt` is held in one helper
//! (the gate hook); the lookup of `forged/b.txt` that follows goes to the
//! other, which answers it under the id before its own (the misnumber
//! hook): the held lookup's. The server ignores that reply and says so in
//! its log, and once the gate opens the first client gets `a.txt`, byte
//! for byte. (Taken as it came, the reply would have answered `a.txt`
//! with `b.txt`'s file.)

use std::io::Write;
use std::thread;

use tests::http_client::request_bytes;
use tests::procfs::poll_until;
use tests::status::wait_for_lookups_in_flight;
use tests::{per_backend, Connection, HelperGate, TempDocroot, DEADLINE};

const RIGHT: &[u8] = b"the file asked for\n";
const WRONG: &[u8] = b"another file, which a misnumbered reply names\n";

fn a_reply_from_another_helper_is_ignored(backend: &str) {
    let docroot = TempDocroot::new(&format!("misnumbered-{backend}"));
    docroot.write("held/a.txt", RIGHT);
    docroot.write("forged/b.txt", WRONG);
    let gate = HelperGate::new("misnumbered");
    let misnumber = [("AMPED_TEST_HELPER_MISNUMBER", "forged/")];
    let server = gate.serve_with_env(docroot.path(), backend, "held/", &misnumber);
    let addr = server.addr();
    let first = thread::spawn(move || Connection::connect(addr).get("/held/a.txt"));
    wait_for_lookups_in_flight(&server, 1);
    // Its lookup goes to the helper not holding one, which answers it
    // under the held lookup's id. It gets no answer of its own here.
    let mut second = server.connect_raw();
    second
        .write_all(request_bytes("GET", "/forged/b.txt", &[]).as_bytes())
        .expect("send the second request");
    // The misnumbered reply has come once it was ignored, or once it
    // answered the first client (were it taken).
    let ignored = || server.stderr_text().contains("it was not sent; ignored");
    let came = poll_until(DEADLINE, || ignored() || first.is_finished());
    assert!(came, "no misnumbered reply came:\n{}", server.stderr_text());
    gate.open();
    let response = first.join().expect("the first client");
    response.assert_status(200);
    assert_eq!(
        String::from_utf8_lossy(&response.body),
        String::from_utf8_lossy(RIGHT),
        "the first client's body"
    );
    assert!(
        ignored(),
        "the log does not say a reply was ignored:\n{}",
        server.stderr_text()
    );
}

per_backend!(a_reply_from_another_helper_is_ignored);
