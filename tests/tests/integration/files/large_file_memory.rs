//! A 1 GiB file streams with flat server memory, under each event backend:
//! a sparse 1 GiB file is fetched with GET and read piece by piece (counted
//! and checked to be all zero bytes, never held in memory) while the
//! server's VmRSS is sampled from `/proc`; the body is exactly 1 GiB and the
//! server's peak RSS stays within 64 MiB of what it was before.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tests::http_client::request_bytes;
use tests::procfs::vm_rss_bytes;
use tests::streaming::{read_head, stream_body};
use tests::{per_backend, ServerProcess, TempDocroot, DEADLINE};

const GIB: u64 = 1 << 30;
/// How much the server's RSS may grow during the download.
const RSS_ALLOWANCE: u64 = 64 << 20;
/// How often the server's RSS is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

fn a_1_gib_file_streams_with_flat_server_memory(backend: &str) {
    let docroot = TempDocroot::new(&format!("1gib-{backend}"));
    let path = docroot.path().join("sparse.bin");
    File::create(&path)
        .and_then(|f| f.set_len(GIB))
        .unwrap_or_else(|e| panic!("create a sparse {}: {e}", path.display()));
    docroot.write("small.txt", b"warm-up\n");
    let server = ServerProcess::serve(docroot.path(), backend);
    let pid = i32::try_from(server.pid()).expect("pid fits in pid_t");

    // One request first, so that what any request allocates once is in the
    // baseline.
    server.connect().get("/small.txt").assert_status(200);
    let baseline = vm_rss_bytes(pid).expect("the server's VmRSS");

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = vm_rss_bytes(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                thread::sleep(SAMPLE_EVERY);
            }
        })
    };

    let started = Instant::now();
    let mut stream = server.connect_raw();
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream
        .write_all(request_bytes("GET", "/sparse.bin", &[]).as_bytes())
        .expect("send the request");
    let head = read_head(&mut stream).expect("the response head");
    assert_eq!(head.status, 200, "{}", head.text);
    assert_eq!(head.content_length, Some(GIB), "{}", head.text);
    let mut nonzero_at = None;
    let mut offset = 0u64;
    let received = stream_body(&mut stream, &head.leftover, GIB, |piece| {
        if nonzero_at.is_none() && piece != &ZEROS[..piece.len()] {
            let i = piece.iter().position(|&b| b != 0).expect("a non-zero byte");
            nonzero_at = Some(offset + i as u64);
        }
        offset += piece.len() as u64;
    })
    .expect("reading the body");
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("the RSS sampler");
    let peak = peak
        .load(Ordering::Relaxed)
        .max(vm_rss_bytes(pid).unwrap_or(0));

    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    eprintln!(
        "{backend}: 1 GiB in {took:?}; server RSS {:.1} MiB before, peak {:.1} MiB",
        mib(baseline),
        mib(peak)
    );
    assert_eq!(received, GIB, "body length");
    assert_eq!(nonzero_at, None, "the sparse file's body is not all zero");
    assert!(
        peak <= baseline + RSS_ALLOWANCE,
        "server RSS grew from {:.1} MiB to {:.1} MiB while sending 1 GiB",
        mib(baseline),
        mib(peak)
    );
}

per_backend!(a_1_gib_file_streams_with_flat_server_memory);
