//! Windows of cold files have one memory budget for the whole server
//! (`--window-memory`), under each event backend. 100 clients, each with
//! a small receive buffer, ask for ranges of a file on a FUSE disk (its
//! pages never in memory, so every window is read by a helper) larger
//! than their sockets can buffer, and read nothing: with a budget of 4 MiB
//! the server's memory grows by less than 4 MiB and its slack, while
//! the downloads beyond the budget wait their turn (they once took a heap
//! buffer each: 200 such clients took the server from 4 MB to 143 MB).
//! Closed, they give the budget back. And downloads that do read, six at
//! once through a budget of one window, take turns and arrive byte-exact.

use std::fs::{self, File};
use std::io::Write;
use std::net::TcpStream;
use std::thread;

use tests::docroot::pseudo_random_bytes;
use tests::http_client::request_bytes;
use tests::procfs::{poll_until, vm_rss_bytes};
use tests::slow_disk::{slow_disk_available, SlowDisk};
use tests::socket::{connect_with_small_receive_buffer, max_send_buffer, SMALL_RECEIVE_BUFFER};
use tests::status::{status_json, status_number, STATUS_PATH};
use tests::{assert_bytes_eq, per_backend, Connection, ServerProcess, TempDocroot, DEADLINE};

const WINDOW: u64 = 512 << 10;
const BUDGET: u64 = 4 << 20;
const CLIENTS: u64 = 100;
/// What the server may grow by beyond the budget: the connections'
/// own state and the allocator's rounding.
const SLACK: u64 = 12 << 20;

/// A docroot with `slow/` mounted over `source/` by slowfs.
fn slow_site(tag: &str) -> (TempDocroot, std::path::PathBuf, std::path::PathBuf) {
    let root = TempDocroot::new(tag);
    let source = root.outside().join("source");
    fs::create_dir_all(&source).expect("mkdir source");
    let mountpoint = root.path().join("slow");
    fs::create_dir_all(&mountpoint).expect("mkdir slow");
    (root, source, mountpoint)
}

fn slow_clients_stay_within_the_window_budget(backend: &str) {
    if !slow_disk_available() {
        return;
    }
    let (root, source, mountpoint) = slow_site(&format!("window-budget-{backend}"));
    // Each range is larger than the sockets can buffer and three windows
    // besides, so that no download ever finishes a window it was lent.
    let range_len = max_send_buffer() as u64 + 2 * SMALL_RECEIVE_BUFFER as u64 + 3 * WINDOW;
    File::create(source.join("cold.bin"))
        .and_then(|f| f.set_len(CLIENTS * WINDOW + range_len))
        .expect("a sparse cold.bin");
    let disk = SlowDisk::mount(&source, &mountpoint, 1);
    let budget = BUDGET.to_string();
    let server = ServerProcess::serve_with(
        root.path(),
        backend,
        &["--window-memory", &budget, "--status-path", STATUS_PATH],
    );
    let pid = server.pid_t();
    // What the status page costs the first time is in the baseline.
    status_json(&server, STATUS_PATH);
    let baseline = vm_rss_bytes(pid).expect("the server's VmRSS");

    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| {
            let mut client = connect_with_small_receive_buffer(server.addr());
            let range = format!("bytes={}-", i * WINDOW);
            let request = request_bytes("GET", "/slow/cold.bin", &[("Range", &range)]);
            client.write_all(request.as_bytes()).expect("send");
            client
        })
        .collect();
    // The budget holds 8 windows, so at most 8 downloads have one; every
    // other waits. (Windows written into a socket's buffers give their
    // room back, so the downloads take turns until every socket is full.)
    let most_holders = BUDGET / WINDOW;
    let mut status = status_json(&server, STATUS_PATH);
    let waiting = poll_until(DEADLINE, || {
        status = status_json(&server, STATUS_PATH);
        status_number(&status, "/send/window_waits") >= CLIENTS - most_holders
    });
    assert!(
        waiting,
        "the downloads beyond the budget do not wait: {status}"
    );
    disk.wait_until_idle();
    let status = status_json(&server, STATUS_PATH);
    let held = status_number(&status, "/send/window_bytes");
    assert!(held <= BUDGET, "{held} bytes of windows held: {status}");
    let grown = vm_rss_bytes(pid).expect("VmRSS").saturating_sub(baseline);
    assert!(
        grown < BUDGET + SLACK,
        "{CLIENTS} slow clients on cold ranges grew the server by {grown} bytes"
    );

    // Gone, the clients give back what they held and leave the queue.
    drop(clients);
    let mut status = status_json(&server, STATUS_PATH);
    let released = poll_until(DEADLINE, || {
        status = status_json(&server, STATUS_PATH);
        status_number(&status, "/send/window_bytes") == 0
            && status_number(&status, "/send/window_waits") == 0
    });
    assert!(released, "closed downloads kept the budget: {status}");
    drop(server);
    drop(disk);
}

const READERS: usize = 6;
const FILE_LEN: usize = 3 << 20;

fn downloads_beyond_the_budget_take_turns(backend: &str) {
    if !slow_disk_available() {
        return;
    }
    let (root, source, mountpoint) = slow_site(&format!("window-turns-{backend}"));
    let files: Vec<Vec<u8>> = (0..READERS)
        .map(|i| {
            let bytes = pseudo_random_bytes(FILE_LEN, 40 + i as u64);
            fs::write(source.join(format!("f{i}.bin")), &bytes).expect("a file");
            bytes
        })
        .collect();
    let disk = SlowDisk::mount(&source, &mountpoint, 1);
    let server = ServerProcess::serve_with(
        root.path(),
        backend,
        &[
            "--window-memory",
            "512K",
            "--helpers",
            "3",
            "--status-path",
            STATUS_PATH,
        ],
    );
    let addr = server.addr();
    let readers: Vec<_> = (0..READERS)
        .map(|i| thread::spawn(move || Connection::connect(addr).get(&format!("/slow/f{i}.bin"))))
        .collect();
    for (i, reader) in readers.into_iter().enumerate() {
        let response = reader.join().expect("a reader");
        response.assert_status(200);
        assert_bytes_eq(&format!("f{i}.bin"), &response.body, &files[i]);
    }
    let status = status_json(&server, STATUS_PATH);
    let read = status_number(&status, "/send/windows_by_helpers");
    let windows = (READERS * FILE_LEN) as u64 / WINDOW;
    assert!(
        read >= windows,
        "only {read} windows read by helpers: {status}"
    );
    assert_eq!(status_number(&status, "/send/window_bytes"), 0, "{status}");
    assert_eq!(status_number(&status, "/send/window_waits"), 0, "{status}");
    drop(server);
    drop(disk);
}

per_backend!(
    slow_clients_stay_within_the_window_budget,
    downloads_beyond_the_budget_take_turns
);
