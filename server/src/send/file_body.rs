//! One file body on a connection's output queue, sent window by window.
//!
//! The body is a byte range of an [`OpenFile`]. Its windows are planned
//! in order from the next byte to write: a window whose pages were just
//! found in memory is sent with `sendfile` ([`Window::Straight`]); any
//! other is read by a helper ([`Window::Reading`]) and its bytes written
//! once they arrive ([`Window::Read`]). The planning itself (residency
//! checks and helper requests) is the send path's ([`super::Planner`]);
//! this type only keeps the windows and writes the front one. A window
//! read by a helper holds a lease on the server's window budget
//! ([`WindowLease`]) until its last byte is written.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::rc::Rc;

use super::open_file::OpenFile;
use super::sink::Sink;
use super::slots::Slot;
use super::window_budget::WindowLease;

/// The most bytes one `sendfile` or `write` call is asked for: on
/// loopback a send also runs the receiver's side of TCP, so one large call
/// holds the loop for milliseconds.
const SEND_CHUNK: u64 = 256 << 10;

/// One planned stretch of the body, starting where the one before ends.
#[derive(Debug)]
enum Window {
    /// Found in memory: `sendfile` up to `end`.
    Straight { end: u64 },
    /// A helper is reading `start..end`.
    Reading {
        start: u64,
        end: u64,
        lease: WindowLease,
    },
    /// Read by a helper; `data[pos..]` is still to be written.
    Read {
        data: WindowBytes,
        pos: usize,
        _lease: WindowLease,
    },
}

/// A window's bytes, as a helper handed them back.
#[derive(Debug)]
pub(crate) enum WindowBytes {
    /// In the reply.
    Owned(Vec<u8>),
    /// The first so many bytes of a slot of the shared buffer.
    InSlot(Slot, usize),
}

#[allow(clippy::len_without_is_empty)]
impl WindowBytes {
    pub(crate) fn len(&self) -> usize {
        match self {
            WindowBytes::Owned(data) => data.len(),
            WindowBytes::InSlot(slot, len) => slot.fit(*len),
        }
    }

    /// Writes from `pos` on, at most `max` bytes, to `sink`.
    fn write_to(&self, sink: &mut dyn Sink, pos: usize, max: usize) -> io::Result<usize> {
        let len = self.len().saturating_sub(pos).min(max);
        match self {
            WindowBytes::Owned(data) => {
                let bytes = data.get(pos..pos + len).unwrap_or(&[]);
                sink.write_slices(&[IoSlice::new(bytes)], false)
            }
            WindowBytes::InSlot(slot, _) => slot.write_to(sink, pos, len),
        }
    }
}

/// What the front of the body needs before it can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrontNeeds {
    /// Nothing: the front window is ready.
    Nothing,
    /// A window planned from this offset.
    Window(u64),
    /// A helper's read of the front window.
    Disk,
    /// Room in the window budget for the window from this offset.
    Memory(u64),
}

/// What a helper's answer did to the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// The bytes fill a window being read.
    Filled,
    /// No window waits for them (an old answer).
    Unexpected,
    /// Fewer bytes than the window: the file shrank. The body cannot be
    /// finished; the connection must close.
    Short,
}

/// A file range on its way out.
#[derive(Debug)]
pub(crate) struct FileBody {
    file: Rc<OpenFile>,
    /// The next byte to write.
    next: u64,
    /// Where the planned windows end (the next window starts there).
    planned: u64,
    end: u64,
    windows: VecDeque<Window>,
    /// `planned` when a look ahead last found the next window in memory
    /// (it is not looked at again until more is planned).
    looked_ahead_at: Option<u64>,
    /// The socket has been set to join this body into full segments
    /// (see `Output::write_to`).
    segments_joined: bool,
    /// The socket took bytes at the last write, rather than refusing
    /// any (it was full): windows may be read ahead for this client.
    kept_up: bool,
    /// The front window waits for room in the window budget.
    waits_for_memory: bool,
}

impl FileBody {
    pub(crate) fn new(file: Rc<OpenFile>, start: u64, end: u64) -> FileBody {
        FileBody {
            file,
            next: start,
            planned: start,
            end,
            windows: VecDeque::new(),
            looked_ahead_at: None,
            segments_joined: false,
            kept_up: true,
            waits_for_memory: false,
        }
    }

    /// True the first time it is asked: the socket is to be set to join
    /// this body into full segments now.
    pub(crate) fn join_segments_once(&mut self) -> bool {
        !std::mem::replace(&mut self.segments_joined, true)
    }

    /// False when the window after the planned ones was found in memory
    /// and nothing has been planned since.
    pub(crate) fn should_look_ahead(&self) -> bool {
        self.looked_ahead_at != Some(self.planned)
    }

    /// The window after the planned ones was found in memory.
    pub(crate) fn looked_ahead(&mut self) {
        self.looked_ahead_at = Some(self.planned);
    }

    /// False once a write found the socket full (it would block), until
    /// one takes bytes again: reading ahead for a client that takes
    /// nothing only holds memory. (A write that takes part of what it is
    /// offered does not count: on loopback a fast client's socket often
    /// takes less than a whole chunk, and stopping its read-ahead then
    /// let the disk's queue run dry.)
    pub(crate) fn client_keeps_up(&self) -> bool {
        self.kept_up
    }

    /// The front window cannot be read until the window budget has room.
    pub(crate) fn wait_for_memory(&mut self) {
        self.waits_for_memory = true;
    }

    pub(crate) fn file(&self) -> &Rc<OpenFile> {
        &self.file
    }

    /// Bytes still to be written.
    pub(crate) fn remaining(&self) -> u64 {
        self.end - self.next
    }

    /// Where the planned windows end (the next window starts there).
    pub(crate) fn planned_to(&self) -> u64 {
        self.planned
    }

    /// The end of the body.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Windows planned and not yet written.
    pub(crate) fn windows(&self) -> usize {
        self.windows.len()
    }

    /// What the front needs before it can be written.
    pub(crate) fn front_needs(&self) -> FrontNeeds {
        match self.windows.front() {
            None if self.next < self.end && self.waits_for_memory => FrontNeeds::Memory(self.next),
            None if self.next < self.end => FrontNeeds::Window(self.next),
            None => FrontNeeds::Nothing,
            Some(Window::Reading { .. }) => FrontNeeds::Disk,
            Some(_) => FrontNeeds::Nothing,
        }
    }

    /// Plans the next window as found in memory, up to `end`.
    pub(crate) fn push_straight(&mut self, end: u64) {
        if self.planned < end && end <= self.end {
            self.windows.push_back(Window::Straight { end });
            self.planned = end;
            self.waits_for_memory = false;
        }
    }

    /// Plans the next window as read by a helper, up to `end`, its bytes
    /// held under `lease`.
    pub(crate) fn push_reading(&mut self, end: u64, lease: WindowLease) {
        let start = self.planned;
        if start < end && end <= self.end {
            self.windows
                .push_back(Window::Reading { start, end, lease });
            self.planned = end;
            self.waits_for_memory = false;
        }
    }

    /// A helper's bytes for the window from `start`.
    pub(crate) fn deliver(&mut self, start: u64, data: WindowBytes) -> Delivered {
        let found = self.windows.iter_mut().find(|w| match **w {
            Window::Reading { start: s, .. } => s == start,
            _ => false,
        });
        let Some(window) = found else {
            return Delivered::Unexpected;
        };
        let Window::Reading { end, .. } = *window else {
            return Delivered::Unexpected;
        };
        if (data.len() as u64) < end - start {
            return Delivered::Short;
        }
        let data = match data {
            WindowBytes::Owned(mut bytes) => {
                bytes.truncate((end - start) as usize);
                WindowBytes::Owned(bytes)
            }
            WindowBytes::InSlot(slot, _) => WindowBytes::InSlot(slot, (end - start) as usize),
        };
        // The window keeps its lease until its last byte is written.
        if let Window::Reading { lease, .. } = std::mem::replace(window, Window::Straight { end }) {
            *window = Window::Read {
                data,
                pos: 0,
                _lease: lease,
            };
        }
        Delivered::Filled
    }

    /// Writes from the front window to `sink`: `Ok(0)` when the front is
    /// not ready (see [`front_needs`](Self::front_needs)).
    pub(crate) fn write_to(&mut self, sink: &mut dyn Sink) -> io::Result<usize> {
        let written = match self.windows.front_mut() {
            None | Some(Window::Reading { .. }) => return Ok(0),
            Some(Window::Straight { end }) => {
                let count = (*end - self.next).min(SEND_CHUNK);
                let Some(fd) = self.file.fd() else {
                    // Never planned: such a file is never resident.
                    return Err(io::Error::other("no descriptor to send from"));
                };
                sink.send_file(fd.as_raw_fd(), self.next, count)
            }
            Some(Window::Read { data, pos, .. }) => data.write_to(sink, *pos, SEND_CHUNK as usize),
        };
        let n = match written {
            Ok(n) => n,
            Err(e) => {
                self.kept_up &= e.kind() != io::ErrorKind::WouldBlock;
                return Err(e);
            }
        };
        self.kept_up = n > 0;
        self.advance(n as u64);
        Ok(n)
    }

    fn advance(&mut self, n: u64) {
        self.next += n;
        let done = match self.windows.front_mut() {
            Some(Window::Straight { end }) => *end <= self.next,
            Some(Window::Read { data, pos, .. }) => {
                *pos += n as usize;
                *pos >= data.len()
            }
            _ => false,
        };
        if done {
            self.windows.pop_front();
        }
    }
}
