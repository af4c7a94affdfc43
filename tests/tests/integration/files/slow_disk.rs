//! Never waiting on the disk (issue 9), shown with a real slow disk: a
//! FUSE mount (slowfs, 10 ms in every read unless said, `direct_io`) at
//! `/slow/` under a document root whose `/small.html` is an ordinary
//! cached file, and a file on an ordinary disk whose pages were dropped.
//! Under each event backend:
//!
//! - cached requests never wait on the slow disk: `/small.html` fetched
//!   over and over while four cold files download from a 25 ms-per-read
//!   disk, each fetch under 250 ms (a loop that waited for one window of
//!   that disk would stall 100 ms, for a turn of four windows 400 ms),
//!   every body exact, and the helpers (not the loop) read every
//!   cold byte (`/send/windows_by_helpers`, `/send/bytes_by_helpers`; no
//!   `/send/windows_straight`);
//! - a lookup of another path is never queued behind a slow read: files
//!   never asked for before, on an ordinary disk, each answered under
//!   250 ms while four cold files download;
//! - a file on an ordinary disk with its pages dropped is read by helpers
//!   and arrives exact;
//! - a range and a HEAD of a cold file are right;
//! - a client that leaves mid-download cancels its reads: the helper
//!   queue empties (`/send/queue`), slowfs stops reading before the end
//!   of the file, and the server still answers;
//! - the helper pool grows with disk work up to `--helpers-max` and
//!   shrinks back to `--helpers` when idle (`/helpers_running`);
//! - a helper SIGKILLed while it has the cold file open loses nothing: the
//!   download completes exact;
//! - a window read that hangs (held by the test hook) is given up after
//!   `--helper-timeout`: the stuck helper is restarted, the download's
//!   connection closes short of its length (its head is out, so no 503 can
//!   be sent), other requests are served meanwhile, and once reads answer
//!   again the file downloads whole.
//!
//! And, with no server, the fixture itself: slowfs serves the right bytes,
//! slowly, counts them, and leaves no mount behind.
//!
//! Without FUSE these fail saying what to install, unless
//! `AMPED_TESTS_NO_FUSE=1` says skipping them is intended.

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::panic;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tests::docroot::{pseudo_random_bytes, write_file};
use tests::http_client::request_bytes;
use tests::page_cache::{disk_backed_temp_dir, evict, filesystem_type, resident_pages};
use tests::procfs::{is_alive, live_children_named, poll_until, send_signal};
use tests::slow_disk::{
    is_fuse_mount, slow_disk_available, SlowDisk, SlowFile, SlowSite, FUSE_MAX_READ, SMALL_HTML,
};
use tests::socket::{connect_with_small_receive_buffer, larger_than_socket_buffers};
use tests::status::helper_restarts;
use tests::status::{status_json, status_number, STATUS_PATH};
use tests::streaming::{fill_to, read_head, RawHead};
use tests::{
    assert_bytes_eq, per_backend, Connection, HelperGate, ServerProcess, TempDocroot, DEADLINE,
};

/// Milliseconds slowfs sleeps in every read (of at most 128 KiB).
const DELAY_MS: u32 = 10;
const MIB: usize = 1 << 20;
/// The latency tests' disk: slower than the others', so that their bound
/// can allow for a busy machine and still tell a loop that waits on the
/// disk from one that does not. A loop that read one 512 KiB window from
/// it (four reads of 128 KiB, one after another) would stall 100 ms; one
/// that sent a window for each of four downloads in a turn, 400 ms.
const LATENCY_DELAY_MS: u32 = 25;
/// The most a cached response or a lookup may take beside the cold
/// downloads: ten times one read of that disk. (A 100 ms bound with 10 ms
/// reads failed at 103 ms on this 2-CPU machine at load average 6.5, where
/// the debug server waits for a CPU that long.)
const CACHED_BOUND: Duration = Duration::from_millis(250);
/// At most this many cached requests, however long the downloads take.
const MAX_CACHED_REQUESTS: u32 = 20_000;

/// A server on `site` with the status page at [`STATUS_PATH`].
fn serve(root: &Path, backend: &str, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--status-path", STATUS_PATH];
    args.extend_from_slice(extra);
    ServerProcess::serve_with(root, backend, &args)
}

/// The counter at `pointer` in the status page now.
fn counter(server: &ServerProcess, pointer: &str) -> u64 {
    status_number(&status_json(server, STATUS_PATH), pointer)
}

/// Fetches `/small.html` on `conn` and checks it.
fn fetch_small(conn: &mut Connection) {
    let response = conn.get("/small.html");
    response.assert_status(200);
    assert_bytes_eq("/small.html", &response.body, SMALL_HTML);
}

/// Downloads `file` on a new connection in a thread of its own and checks
/// every byte.
fn download(server: &ServerProcess, file: &SlowFile) -> JoinHandle<()> {
    let addr = server.addr();
    let file = file.clone();
    thread::spawn(move || {
        let response = Connection::connect(addr).get(&file.url_path);
        response.assert_status(200);
        assert_bytes_eq(&file.url_path, &response.body, &file.bytes);
    })
}

/// Sends `GET file` on `client` and reads the response head, which must
/// be a 200 with the file's length.
fn request_head(client: &mut TcpStream, file: &SlowFile) -> RawHead {
    client
        .set_read_timeout(Some(DEADLINE))
        .expect("set_read_timeout");
    client
        .write_all(request_bytes("GET", &file.url_path, &[]).as_bytes())
        .expect("send the request");
    let head = read_head(client).expect("the response head");
    assert_eq!(head.status, 200, "{}", head.text);
    assert_eq!(
        head.content_length,
        Some(file.bytes.len() as u64),
        "{}",
        head.text
    );
    head
}

/// Joins `threads`, passing on the first one's panic.
fn join_all(threads: Vec<JoinHandle<()>>) {
    for thread in threads {
        if let Err(e) = thread.join() {
            panic::resume_unwind(e);
        }
    }
}

#[test]
fn the_slow_disk_serves_exact_bytes_slowly_and_unmounts() {
    if !slow_disk_available() {
        return;
    }
    let dir = TempDocroot::new("slowfs-self-test");
    let source = dir.outside().join("source");
    let bytes = pseudo_random_bytes(MIB, 5);
    write_file(&source.join("one.bin"), &bytes);
    let mountpoint = dir.path().join("mnt");
    fs::create_dir_all(&mountpoint).expect("create the mountpoint");

    let disk = SlowDisk::mount(&source, &mountpoint, DELAY_MS);
    let mounted_at = disk.mountpoint().to_path_buf();
    let pid = disk.pid();
    assert!(is_fuse_mount(&mounted_at), "not a FUSE mount after mount()");

    let start = Instant::now();
    let read = fs::read(mounted_at.join("one.bin")).expect("read one.bin through slowfs");
    let took = start.elapsed();
    assert_bytes_eq("one.bin through slowfs", &read, &bytes);
    // Every read sleeps the delay, and reads of one reader do not overlap:
    // at least one delay is certain, whatever the machine.
    assert!(
        took >= disk.delay(),
        "1 MiB through slowfs took {took:?}, less than one read's delay"
    );
    // Each FUSE read is at most 128 KiB, so 1 MiB takes at least 8.
    let stats = disk.wait_for_stats("the 1 MiB read", |s| s.bytes >= MIB as u64);
    assert!(
        stats.reads >= MIB as u64 / FUSE_MAX_READ,
        "1 MiB in fewer than {} reads: {stats:?}",
        MIB as u64 / FUSE_MAX_READ
    );

    drop(disk);
    assert!(
        !is_fuse_mount(&mounted_at),
        "{} is still mounted after the disk was dropped",
        mounted_at.display()
    );
    assert!(!is_alive(pid), "slowfs (pid {pid}) outlived its drop");
}

fn cached_requests_never_wait_on_the_slow_disk(backend: &str) {
    let sizes = [4 * MIB, 5 * MIB, 6 * MIB, 8 * MIB];
    let Some(site) = SlowSite::new(&format!("cached-{backend}"), &sizes, LATENCY_DELAY_MS) else {
        return;
    };
    let server = serve(site.root(), backend, &[]);
    let addr = server.addr();
    let mut warm = server.connect();
    fetch_small(&mut warm);

    // One client fetches the cached page again and again on a kept-alive
    // connection for as long as the downloads run (and at most
    // MAX_CACHED_REQUESTS times), timing each fetch.
    let downloads_done = Arc::new(AtomicBool::new(false));
    let cached = {
        let done = downloads_done.clone();
        thread::spawn(move || {
            let mut conn = Connection::connect(addr);
            let (mut count, mut slowest, mut slowest_at) = (0u32, Duration::ZERO, 0u32);
            while !done.load(Ordering::Relaxed) && count < MAX_CACHED_REQUESTS {
                let start = Instant::now();
                let response = conn.get("/small.html");
                let took = start.elapsed();
                response.assert_status(200);
                assert_bytes_eq(&format!("/small.html #{count}"), &response.body, SMALL_HTML);
                if took > slowest {
                    (slowest, slowest_at) = (took, count);
                }
                count += 1;
                if response.connection_has("close") {
                    conn = Connection::connect(addr);
                }
            }
            (count, slowest, slowest_at)
        })
    };

    // Each cold file is downloaded once only, so every byte of it comes
    // off the slow disk.
    let downloads: Vec<_> = site.files().iter().map(|f| download(&server, f)).collect();
    let downloaded = panic::catch_unwind(panic::AssertUnwindSafe(|| join_all(downloads)));
    downloads_done.store(true, Ordering::Relaxed);
    let (count, slowest, slowest_at) = match cached.join() {
        Ok(result) => result,
        Err(e) => panic::resume_unwind(e),
    };
    if let Err(e) = downloaded {
        panic::resume_unwind(e);
    }

    assert!(count > 0, "no cached request ran during the downloads");
    assert!(
        slowest <= CACHED_BOUND,
        "a cached /small.html took {slowest:?} (request #{slowest_at} of {count}) while \
         {} cold files came off a {LATENCY_DELAY_MS} ms-per-read disk; the bound is \
         {CACHED_BOUND:?}",
        site.files().len()
    );

    // Every cold byte must have come through a helper. slowfs opens files
    // with direct_io, so a helper's read() leaves no page in the page
    // cache (and mmap+mincore on such a file can only report pages out):
    // the server can never know a window of these files to be resident,
    // and each file was sent once, so no earlier send left pages behind
    // either. Hence no window was sent straight (a straight send here
    // would be a sendfile blocking on the slow disk), and the helpers read
    // at least every byte of every file (more if a window was read twice).
    // (The only windows in this server are those of the cold files:
    // small.html is held in memory, below --inline-max.)
    let status = status_json(&server, STATUS_PATH);
    let total: u64 = site.files().iter().map(|f| f.bytes.len() as u64).sum();
    let windows = status_number(&status, "/send/windows_by_helpers");
    let bytes = status_number(&status, "/send/bytes_by_helpers");
    let straight = status_number(&status, "/send/windows_straight");
    assert_eq!(
        straight, 0,
        "windows of never-resident files were sent straight (blocking in sendfile): {status}"
    );
    assert!(windows > 0, "no window was read by a helper: {status}");
    assert!(
        bytes >= total,
        "helpers read {bytes} bytes of the {total} cold bytes sent: {status}"
    );
    eprintln!(
        "{backend}: {count} cached requests, slowest {slowest:?}; helpers read {windows} \
         windows, {bytes} bytes for {total} cold bytes"
    );
}

fn lookups_never_wait_behind_slow_reads(backend: &str) {
    let sizes = [6 * MIB, 6 * MIB, 8 * MIB, 8 * MIB];
    let Some(site) = SlowSite::new(&format!("lookups-{backend}"), &sizes, LATENCY_DELAY_MS) else {
        return;
    };
    // Two permanent helpers, as by default: the slow reads must not take
    // both, however many wait.
    let server = serve(site.root(), backend, &["--helpers", "2"]);
    let downloads: Vec<_> = site.files().iter().map(|f| download(&server, f)).collect();
    // Once reads are in flight, each new path is a lookup that the cache
    // cannot answer.
    assert!(
        poll_until(DEADLINE, || counter(&server, "/send/windows_by_helpers")
            > 0),
        "no window read began"
    );
    let (mut slowest, mut count) = (Duration::ZERO, 0u32);
    while count < 200 && downloads.iter().any(|d| !d.is_finished()) {
        let name = format!("fresh-{count}.html");
        let body = format!("fresh page {count}\n");
        write_file(&site.root().join(&name), body.as_bytes());
        let start = Instant::now();
        let response = server.connect().get(&format!("/{name}"));
        slowest = slowest.max(start.elapsed());
        response.assert_status(200);
        assert_bytes_eq(&name, &response.body, body.as_bytes());
        count += 1;
    }
    let reading_at_the_end = counter(&server, "/send/windows_by_helpers");
    join_all(downloads);
    assert!(count > 0, "the downloads ended before any lookup was made");
    assert!(
        slowest <= CACHED_BOUND,
        "a lookup of a new path took {slowest:?} (of {count}) while cold files came off a \
         {LATENCY_DELAY_MS} ms-per-read disk; the bound is {CACHED_BOUND:?}"
    );
    eprintln!(
        "{backend}: {count} lookups beside the downloads, slowest {slowest:?}; \
         {reading_at_the_end} windows read by then"
    );
}

fn a_cold_file_on_a_plain_disk_is_read_by_helpers(backend: &str) {
    let base = disk_backed_temp_dir();
    let docroot = TempDocroot::new_in(&base, &format!("evicted-{backend}"));
    let bytes = pseudo_random_bytes(16 * MIB, 97);
    let path = docroot.write("cold.bin", &bytes);
    evict(&path).unwrap_or_else(|e| panic!("drop the pages of {}: {e}", path.display()));
    let (resident, pages) =
        resident_pages(&path).unwrap_or_else(|e| panic!("mincore on {}: {e}", path.display()));
    assert!(
        resident < pages,
        "the pages of {} stayed in memory after fsync and POSIX_FADV_DONTNEED ({resident} of \
         {pages} resident; filesystem type {:#x}): this test needs a temp dir on a disk, not \
         tmpfs (set TMPDIR)",
        path.display(),
        filesystem_type(&path).unwrap_or(0)
    );

    let server = serve(docroot.path(), backend, &[]);
    let response = server.connect().get("/cold.bin");
    response.assert_status(200);
    assert_bytes_eq("/cold.bin", &response.body, &bytes);
    // Read-ahead may bring later windows in while a helper reads the first
    // (those go straight), so only "some by helpers" is certain.
    let status = status_json(&server, STATUS_PATH);
    let windows = status_number(&status, "/send/windows_by_helpers");
    let bytes = status_number(&status, "/send/bytes_by_helpers");
    let straight = status_number(&status, "/send/windows_straight");
    assert!(
        windows > 0 && bytes > 0,
        "{pages} pages, {resident} resident before the download, yet no window was read by a \
         helper: {status}"
    );
    eprintln!(
        "{backend}: {resident}/{pages} pages resident before; {windows} windows ({bytes} \
         bytes) by helpers, {straight} straight"
    );
}

fn ranges_and_head_of_a_cold_file(backend: &str) {
    let Some(site) = SlowSite::new(&format!("range-{backend}"), &[4 * MIB], DELAY_MS) else {
        return;
    };
    let server = serve(site.root(), backend, &[]);
    let file = &site.files()[0];
    let size = file.bytes.len();

    let mut conn = server.connect();
    let range = conn.request("GET", &file.url_path, &[("Range", "bytes=1000-200000")]);
    range.assert_status(206);
    assert_eq!(
        range.header("Content-Range"),
        Some(format!("bytes 1000-200000/{size}").as_str()),
        "{}",
        range.head_text()
    );
    assert_bytes_eq(
        "bytes 1000-200000",
        &range.body,
        &file.bytes[1000..=200_000],
    );

    let head = conn.request("HEAD", &file.url_path, &[]);
    head.assert_status(200);
    assert_eq!(
        head.content_length(),
        Some(size as u64),
        "{}",
        head.head_text()
    );
    // Had the HEAD carried a body, this response would not parse.
    fetch_small(&mut conn);
    assert!(
        !conn.has_pending_bytes(),
        "bytes after the responses: a HEAD came with a body"
    );
}

fn a_client_that_leaves_cancels_its_reads(backend: &str) {
    // Larger than every buffer between the server and the client, several
    // times over: a server that kept reading after the client left would
    // read all of it, one that stopped reads far less.
    let size = larger_than_socket_buffers(8 * MIB);
    let Some(site) = SlowSite::new(&format!("leaves-{backend}"), &[size], DELAY_MS) else {
        return;
    };
    let mut server = serve(site.root(), backend, &[]);
    let file = &site.files()[0];

    let mut client = connect_with_small_receive_buffer(server.addr());
    request_head(&mut client, file);
    drop(client);

    let mut queue = u64::MAX;
    assert!(
        poll_until(DEADLINE, || {
            queue = counter(&server, "/send/queue");
            queue == 0
        }),
        "the helper queue still holds {queue} jobs {DEADLINE:?} after the client left"
    );
    let stats = site.disk().wait_until_idle();
    assert!(
        stats.bytes < size as u64,
        "slowfs read {} of the file's {size} bytes after the client left after the head: \
         the reads were not cancelled",
        stats.bytes
    );
    eprintln!(
        "{backend}: slowfs read {} of {size} bytes ({} reads) for a client that left",
        stats.bytes, stats.reads
    );
    fetch_small(&mut server.connect());
    assert!(server.is_alive(), "the server died");
}

fn the_helper_pool_grows_with_disk_work_and_shrinks_back(backend: &str) {
    let sizes = [4 * MIB; 6];
    let Some(site) = SlowSite::new(&format!("pool-{backend}"), &sizes, DELAY_MS) else {
        return;
    };
    let server = serve(
        site.root(),
        backend,
        &["--helpers", "2", "--helpers-max", "8"],
    );
    let pid = server.pid_t();
    let mut running = 0;
    assert!(
        poll_until(DEADLINE, || {
            running = counter(&server, "/helpers_running");
            running == 2
        }),
        "{running} helpers running at start, not --helpers 2"
    );

    let downloads: Vec<_> = site.files().iter().map(|f| download(&server, f)).collect();
    let mut most = 0;
    poll_until(DEADLINE, || {
        most = most.max(counter(&server, "/helpers_running"));
        most > 2 || downloads.iter().all(JoinHandle::is_finished)
    });
    join_all(downloads);
    assert!(
        most > 2,
        "{} parallel cold downloads never made the pool grow past --helpers 2 \
         (--helpers-max 8; most seen: {most})",
        sizes.len()
    );
    assert!(most <= 8, "{most} helpers running, past --helpers-max 8");
    let grown = Instant::now();

    // Idle again: back to --helpers, in the status page and in the process
    // tree.
    let shrink_deadline = 2 * DEADLINE;
    let mut processes = Vec::new();
    assert!(
        poll_until(shrink_deadline, || {
            running = counter(&server, "/helpers_running");
            processes = live_children_named(pid, "helper");
            running == 2 && processes.len() == 2
        }),
        "{shrink_deadline:?} after the downloads the pool had not shrunk back to 2: \
         helpers_running {running}, helper processes {processes:?}"
    );
    eprintln!(
        "{backend}: the pool grew to {most} helpers (at least) and was back to 2 {:?} after \
         the downloads",
        grown.elapsed()
    );
}

/// True if `pid` has a descriptor open on `path`.
fn has_open(pid: i32, path: &Path) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| fs::read_link(fd.path()).is_ok_and(|target| target == path))
}

fn a_helper_killed_mid_read_loses_nothing(backend: &str) {
    let Some(site) = SlowSite::new(&format!("kill-{backend}"), &[8 * MIB], DELAY_MS) else {
        return;
    };
    let mut server = serve(site.root(), backend, &[]);
    let pid = server.pid_t();
    let file = site.files()[0].clone();
    let on_disk = site.disk().mountpoint().join("file0.bin");

    let mut client = server.connect_raw();
    // With the head here the lookup is over: a helper that has the file
    // open from now on is reading windows of it for this download (it may
    // also keep it open between two windows).
    let head = request_head(&mut client, &file);
    let size = file.bytes.len();
    let reader = thread::spawn(move || {
        let mut body = head.leftover;
        fill_to(&mut client, &mut body, size).map(|()| body)
    });

    // Reading the file takes well over half a second (64 reads of 10 ms,
    // two at a time at best), a window tens of milliseconds: look often.
    let start = Instant::now();
    let mut victim = None;
    while victim.is_none() && !reader.is_finished() && start.elapsed() < DEADLINE {
        victim = live_children_named(pid, "helper")
            .into_iter()
            .find(|&helper| has_open(helper, &on_disk));
        if victim.is_none() {
            thread::sleep(Duration::from_millis(1));
        }
    }
    if let Some(helper) = victim {
        assert!(send_signal(helper, libc::SIGKILL), "kill helper {helper}");
        eprintln!(
            "{backend}: killed helper {helper}, which had the file open, {:?} into the body",
            start.elapsed()
        );
    }
    let body = match reader.join() {
        Ok(body) => body.unwrap_or_else(|e| panic!("the download whose helper was killed: {e}")),
        Err(e) => panic::resume_unwind(e),
    };
    let victim = victim.unwrap_or_else(|| {
        panic!(
            "no helper was seen with {} open during its download: the helpers do not read \
             the cold windows",
            on_disk.display()
        )
    });
    assert_bytes_eq(&file.url_path, &body, &file.bytes);
    assert!(
        poll_until(DEADLINE, || !is_alive(victim)),
        "helper {victim} survived SIGKILL"
    );
    assert!(server.is_alive(), "the server died with its helper");
    fetch_small(&mut server.connect());
}

fn a_read_that_hangs_is_given_up_after_the_helper_timeout(backend: &str) {
    let Some(site) = SlowSite::new(&format!("hang-{backend}"), &[2 * MIB], DELAY_MS) else {
        return;
    };
    let file = site.files()[0].clone();
    let name = file.url_path.rsplit('/').next().expect("a file name");
    let gate = HelperGate::new(&format!("hang-{backend}"));
    let (var, value) = gate.env(&format!("read:{name}"));
    let timeout = Duration::from_secs(2);
    let server = ServerProcess::serve_with_env(
        site.root(),
        backend,
        &["--helper-timeout", "2", "--status-path", STATUS_PATH],
        &[(var, value.as_str())],
    );
    let mut small = server.connect();
    fetch_small(&mut small);

    let started = Instant::now();
    let mut client = TcpStream::connect(server.addr()).expect("connect");
    let head = request_head(&mut client, &file);
    let mut body = head.leftover.clone();
    // The server serves others while the read hangs.
    fetch_small(&mut small);
    let _ = std::io::Read::read_to_end(&mut client, &mut body);
    let closed_after = started.elapsed();
    assert!(
        body.len() < file.bytes.len(),
        "the whole body came ({} bytes) although every read of it hung",
        body.len()
    );
    assert!(
        closed_after >= timeout,
        "the download closed after {closed_after:?}, before --helper-timeout ({timeout:?})"
    );
    let mut status = status_json(&server, STATUS_PATH);
    assert!(
        poll_until(DEADLINE, || {
            status = status_json(&server, STATUS_PATH);
            helper_restarts(&status).iter().any(|&n| n >= 1)
        }),
        "no helper was restarted for its hung read: {status}"
    );
    fetch_small(&mut small);

    gate.open();
    let response = server.connect().get(&file.url_path);
    response.assert_status(200);
    assert_bytes_eq(&file.url_path, &response.body, &file.bytes);
}

per_backend!(
    a_read_that_hangs_is_given_up_after_the_helper_timeout,
    cached_requests_never_wait_on_the_slow_disk,
    lookups_never_wait_behind_slow_reads,
    a_cold_file_on_a_plain_disk_is_read_by_helpers,
    ranges_and_head_of_a_cold_file,
    a_client_that_leaves_cancels_its_reads,
    the_helper_pool_grows_with_disk_work_and_shrinks_back,
    a_helper_killed_mid_read_loses_nothing,
);
