//! Unit tests of a file body's windows: planned, read by a helper,
//! delivered, written in order; no helpers or event loop involved.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use protocol::Storage;

use super::{Flushed, Output};
use crate::send::{
    Delivered, FdSink, FileBody, FrontNeeds, OpenFile, PlanWindows, WindowBudget, WindowBytes,
    STRAIGHT_WINDOW,
};

fn open_file(content: &[u8], storage: Storage) -> Rc<OpenFile> {
    let path = std::env::temp_dir().join(format!(
        "amped-send-{}-{}",
        std::process::id(),
        content.len()
    ));
    let mut file = std::fs::File::create(&path).expect("create");
    file.write_all(content).expect("write");
    let fd: OwnedFd = std::fs::File::open(&path).expect("open").into();
    let _ = std::fs::remove_file(&path);
    let meta = protocol::FileMeta {
        size: content.len() as u64,
        mtime_secs: 0,
        mtime_nanos: 0,
        inode: 1,
        device: 1,
    };
    Rc::new(OpenFile::open(fd, storage, "f".into(), meta))
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A planner that asks "helpers" for everything, recording the reads.
struct Recorder {
    reads: Vec<(u64, u64)>,
    budget: WindowBudget<u32>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            reads: Vec::new(),
            budget: WindowBudget::new(u64::MAX),
        }
    }
}

impl PlanWindows for Recorder {
    fn plan(&mut self, body: &mut FileBody) {
        while body.windows() < 2 && body.planned_to() < body.end() {
            let start = body.planned_to();
            let end = (start + 1000).min(body.end());
            let Some(lease) = self.budget.take_front(1, end - start) else {
                body.wait_for_memory();
                return;
            };
            body.push_reading(end, lease);
            self.reads.push((start, end));
        }
    }
}

#[test]
fn windows_read_by_helpers_go_out_in_order_whatever_order_they_arrive_in() {
    let bytes = content(2500);
    let file = open_file(&bytes, Storage::Uncertain);
    let mut out = Output::default();
    out.push_owned(b"head:".to_vec());
    out.push_file(Rc::clone(&file), 100, 2600.min(bytes.len() as u64));
    let (a, mut b) = UnixStream::pair().expect("socketpair");
    let mut planner = Recorder::default();
    let fd = a.as_raw_fd();
    assert_eq!(
        out.write_to(&mut FdSink(fd), u64::MAX, &mut planner)
            .expect("write"),
        Flushed::WaitingForDisk
    );
    assert!(out.waits_for_disk());
    assert_eq!(planner.reads, [(100, 1100), (1100, 2100)]);
    let body = out.front_file().expect("front body");
    // The read-ahead arrives first: still nothing can go.
    assert_eq!(
        body.deliver(1100, WindowBytes::Owned(bytes[1100..2100].to_vec())),
        Delivered::Filled
    );
    assert_eq!(body.front_needs(), FrontNeeds::Disk);
    assert_eq!(
        body.deliver(5, WindowBytes::Owned(vec![1])),
        Delivered::Unexpected
    );
    assert_eq!(
        body.deliver(100, WindowBytes::Owned(bytes[100..1100].to_vec())),
        Delivered::Filled
    );
    assert_eq!(
        out.write_to(&mut FdSink(fd), u64::MAX, &mut planner)
            .expect("write"),
        Flushed::WaitingForDisk,
        "the third window is being read"
    );
    assert_eq!(planner.reads.last(), Some(&(2100, 2500)));
    let body = out.front_file().expect("front body");
    assert_eq!(
        body.deliver(2100, WindowBytes::Owned(bytes[2100..].to_vec())),
        Delivered::Filled
    );
    out.push_owned(b":tail".to_vec());
    assert_eq!(
        out.write_to(&mut FdSink(fd), u64::MAX, &mut planner)
            .expect("write"),
        Flushed::All
    );
    drop(a);
    let mut got = Vec::new();
    b.read_to_end(&mut got).expect("read");
    let mut want = b"head:".to_vec();
    want.extend_from_slice(&bytes[100..]);
    want.extend_from_slice(b":tail");
    assert_eq!(got, want);
}

#[test]
fn a_body_asks_once_for_its_segments_to_be_joined() {
    let file = open_file(&content(10), Storage::Uncertain);
    let mut body = FileBody::new(file, 0, 10);
    assert!(body.join_segments_once());
    assert!(!body.join_segments_once());
}

#[test]
fn a_short_read_means_the_file_shrank() {
    let bytes = content(3000);
    let file = open_file(&bytes, Storage::Uncertain);
    let mut budget = WindowBudget::new(1000);
    let mut body = FileBody::new(file, 0, 3000);
    body.push_reading(1000, budget.take_front(1, 1000).expect("room"));
    assert_eq!(
        body.deliver(0, WindowBytes::Owned(bytes[..999].to_vec())),
        Delivered::Short
    );
}

#[test]
fn resident_windows_are_sent_straight_and_checked_again_past_the_window() {
    let bytes = content(3 * STRAIGHT_WINDOW as usize / 2);
    let file = open_file(&bytes, Storage::Memory);
    let mut body = FileBody::new(Rc::clone(&file), 0, bytes.len() as u64);
    assert_eq!(body.front_needs(), FrontNeeds::Window(0));
    body.push_straight(STRAIGHT_WINDOW);
    assert_eq!(body.front_needs(), FrontNeeds::Nothing);
    assert!(body.should_look_ahead());
    body.looked_ahead();
    assert!(!body.should_look_ahead(), "nothing planned since the look");
    let (a, mut b) = UnixStream::pair().expect("socketpair");
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        b.read_to_end(&mut got).map(|_| got)
    });
    while body.front_needs() == FrontNeeds::Nothing {
        body.write_to(&mut FdSink(a.as_raw_fd())).expect("write");
    }
    assert_eq!(body.front_needs(), FrontNeeds::Window(STRAIGHT_WINDOW));
    body.push_straight(bytes.len() as u64);
    assert!(
        body.should_look_ahead(),
        "past a new window is looked at again"
    );
    while body.remaining() > 0 {
        body.write_to(&mut FdSink(a.as_raw_fd())).expect("write");
    }
    drop(a);
    let got = reader.join().expect("reader").expect("read");
    assert!(got == bytes, "the bytes differ");
}

#[test]
fn a_window_holds_its_budget_until_its_last_byte_is_written() {
    let bytes = content(2500);
    let file = open_file(&bytes, Storage::Uncertain);
    let mut out = Output::default();
    out.push_file(Rc::clone(&file), 0, 2500);
    let (a, mut b) = UnixStream::pair().expect("socketpair");
    let mut planner = Recorder {
        budget: WindowBudget::new(1000),
        ..Recorder::default()
    };
    let fd = a.as_raw_fd();
    assert_eq!(
        out.write_to(&mut FdSink(fd), u64::MAX, &mut planner)
            .expect("write"),
        Flushed::WaitingForDisk
    );
    assert_eq!(planner.reads, [(0, 1000)], "room for one window only");
    assert_eq!(planner.budget.used(), 1000);
    let body = out.front_file().expect("front body");
    body.deliver(0, WindowBytes::Owned(bytes[..1000].to_vec()));
    assert_eq!(planner.budget.used(), 1000, "read, not yet written");
    assert_eq!(
        out.write_to(&mut FdSink(fd), u64::MAX, &mut planner)
            .expect("write"),
        Flushed::WaitingForDisk
    );
    assert_eq!(planner.reads.last(), Some(&(1000, 2000)), "the next window");
    assert_eq!(
        planner.budget.used(),
        1000,
        "the first window gave its room back"
    );
    drop(out);
    assert_eq!(
        planner.budget.used(),
        0,
        "a dropped body gives its room back"
    );
    drop(a);
    let mut got = Vec::new();
    b.read_to_end(&mut got).expect("read");
    assert!(got == bytes[..1000], "the first window went out");
}

#[test]
fn a_front_window_without_room_waits_for_memory() {
    let file = open_file(&content(3000), Storage::Uncertain);
    let mut out = Output::default();
    out.push_file(file, 0, 3000);
    let mut planner = Recorder {
        budget: WindowBudget::new(1000),
        ..Recorder::default()
    };
    let held = planner.budget.take_front(7, 1000);
    let (a, _b) = UnixStream::pair().expect("socketpair");
    assert_eq!(
        out.write_to(&mut FdSink(a.as_raw_fd()), u64::MAX, &mut planner)
            .expect("write"),
        Flushed::WaitingForDisk
    );
    assert!(out.waits_for_memory());
    assert!(!out.waits_for_disk());
    drop(held);
    assert_eq!(planner.budget.turn(), Some(1));
    out.write_to(&mut FdSink(a.as_raw_fd()), u64::MAX, &mut planner)
        .expect("write");
    assert!(out.waits_for_disk(), "read once there was room");
    assert!(!out.waits_for_memory());
}

#[test]
fn a_full_socket_means_the_client_does_not_keep_up() {
    let bytes = content(1 << 20);
    let file = open_file(&bytes, Storage::Memory);
    let mut body = FileBody::new(file, 0, bytes.len() as u64);
    body.push_straight(bytes.len() as u64);
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("nonblocking");
    assert!(body.client_keeps_up());
    // Nobody reads `b`: the socket fills (and should it hold the whole
    // body, the loop ends there and the assertion says so).
    while body.remaining() > 0 && body.write_to(&mut FdSink(a.as_raw_fd())).is_ok() {}
    assert!(!body.client_keeps_up());
    drop(b);
}
