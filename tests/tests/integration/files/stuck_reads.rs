//! A read stuck in the filesystem never writes into another download,
//! under each event backend. A helper blocked in a FUSE read cannot be
//! killed until the read returns, and the read's destination is a slot of
//! the memory shared with the server. Here the first read of `gated.bin`
//! waits on a gate file (slowfs `--gate`); its helper is given up on
//! (`--helper-timeout 1`), the read retried elsewhere and the download
//! completed, its slot written out; 40 clients then
//! ask for ranges of another file larger than their sockets can buffer
//! and read nothing, so that every slot is lent again; the gate opens and the stuck read returns. Every download
//! is byte-exact: the slot of the stuck read stayed out of use until its
//! helper was reaped.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;

use tests::docroot::pseudo_random_bytes;
use tests::http_client::request_bytes;
use tests::procfs::{is_alive, live_children_named, poll_until};
use tests::slow_disk::{slow_disk_available, SlowDisk};
use tests::socket::{connect_with_small_receive_buffer, max_send_buffer, SMALL_RECEIVE_BUFFER};
use tests::status::{helper_restarts, status_json, status_number, STATUS_PATH};
use tests::{assert_bytes_eq, per_backend, Connection, ServerProcess, TempDocroot, DEADLINE};

const WINDOW: usize = 512 << 10;
const CLIENTS: usize = 40;

/// Each client's range: more than the sockets can buffer, and then the
/// three windows a download may hold at once, so that every client ends
/// up holding slots while it reads nothing.
fn range_len() -> usize {
    max_send_buffer() + 2 * SMALL_RECEIVE_BUFFER + 3 * WINDOW
}

/// Opens the gate when dropped, so that a failing test never leaves a
/// read (and so the mount) stuck.
struct Gate(PathBuf);

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = fs::write(&self.0, b"open");
    }
}

fn a_stuck_read_never_writes_into_another_download(backend: &str) {
    if !slow_disk_available() {
        return;
    }
    let root = TempDocroot::new(&format!("stuck-reads-{backend}"));
    let source = root.outside().join("source");
    fs::create_dir_all(&source).expect("mkdir source");
    let gated = vec![b'G'; 2 * WINDOW];
    fs::write(source.join("gated.bin"), &gated).expect("gated.bin");
    let range_len = range_len();
    let other = pseudo_random_bytes(CLIENTS * WINDOW + range_len, 18);
    fs::write(source.join("other.bin"), &other).expect("other.bin");
    let mountpoint = root.path().join("slow");
    fs::create_dir_all(&mountpoint).expect("mkdir slow");
    let gate_path = root.outside().join("gate");
    let gate_option = format!("gated.bin={}", gate_path.display());
    let disk = SlowDisk::mount_with(
        &source,
        &mountpoint,
        1,
        &[OsStr::new("--gate"), OsStr::new(&gate_option)],
    );
    let gate = Gate(gate_path);

    let server = ServerProcess::serve_with(
        root.path(),
        backend,
        &[
            "--helpers",
            "2",
            "--helper-timeout",
            "1",
            "--status-path",
            STATUS_PATH,
        ],
    );
    let first_helpers = live_children_named(server.pid() as i32, "helper");

    // The gated download: its first window read sticks in the filesystem.
    let mut stuck = TcpStream::connect(server.addr()).expect("connect");
    stuck
        .write_all(request_bytes("GET", "/slow/gated.bin", &[]).as_bytes())
        .expect("send");
    let given_up = poll_until(DEADLINE, || {
        helper_restarts(&status_json(&server, STATUS_PATH))
            .iter()
            .sum::<u64>()
            >= 1
    });
    assert!(given_up, "the stuck helper was never given up on");
    // Retried on another helper, the download completes, and the slot it
    // was lent is written out: free, as far as this download goes. (Its
    // window waited as long as --helper-timeout allows a client to wait,
    // so on a busy machine the server may close it instead; the retried
    // read still answers and frees the slot.)
    match Connection::from_stream(stuck).try_read_response(false) {
        Ok(response) => {
            response.assert_status(200);
            assert_bytes_eq("gated.bin", &response.body, &gated);
        }
        Err(e) => assert!(
            e.to_string().contains("connection closed"),
            "gated.bin: {e}\n{}",
            server.stderr_text()
        ),
    }

    // Every slot lent again, to downloads that hold them.
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| {
            let mut client = connect_with_small_receive_buffer(server.addr());
            let range = format!("bytes={}-{}", i * WINDOW, i * WINDOW + range_len - 1);
            let request = request_bytes("GET", "/slow/other.bin", &[("Range", &range)]);
            client.write_all(request.as_bytes()).expect("send");
            client
        })
        .collect();
    // Each download stops reading ahead once its socket is full and its
    // windows are read: the disk goes quiet with every slot lent.
    disk.wait_until_idle();
    let read = status_number(
        &status_json(&server, STATUS_PATH),
        "/send/windows_by_helpers",
    );
    assert!(read >= 64 + 4, "the downloads read only {read} windows");

    // The stuck read returns; its helper, killed long ago, exits.
    drop(gate);
    let reaped = poll_until(DEADLINE, || first_helpers.iter().any(|&pid| !is_alive(pid)));
    assert!(reaped, "the stuck helper never exited");

    for (i, client) in clients.into_iter().enumerate() {
        let mut conn = Connection::from_stream(client);
        let response = conn.read_response();
        response.assert_status(206);
        let start = i * WINDOW;
        assert_bytes_eq(
            &format!("the range from {start}"),
            &response.body,
            &other[start..start + range_len],
        );
    }
    let status = status_json(&server, STATUS_PATH);
    let released = poll_until(DEADLINE, || {
        status_number(&status_json(&server, STATUS_PATH), "/slots_quarantined") == 0
    });
    assert!(
        released,
        "the stuck read's slot was never released: {status}"
    );
    drop(server);
    drop(disk);
}

per_backend!(a_stuck_read_never_writes_into_another_download);
