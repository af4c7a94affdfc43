//! The slots of the buffer the server shares with its helpers
//! ([`protocol::SharedBuffer`]): a window read by a helper goes straight
//! into a slot lent to that read, and is written to the client from
//! there, so its bytes are not copied through the helper's socket. A slot
//! goes back to the free list when its window is written (or dropped).
//! With every slot lent, windows come back in the replies instead.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use protocol::SharedBuffer;

use super::sink::Sink;

/// Slots in the buffer: three windows for each of about twenty cold
/// downloads at once (32 MiB of 512 KiB slots, used only as touched).
pub(crate) const SLOT_COUNT: usize = 64;

/// The shared buffer and which of its slots are free.
#[derive(Debug)]
pub(crate) struct WindowSlots {
    buffer: SharedBuffer,
    fd: OwnedFd,
    slot_len: usize,
    free: RefCell<Vec<usize>>,
}

impl WindowSlots {
    /// A buffer of `count` slots of `slot_len` bytes; `None` (windows then
    /// travel in the replies) when it cannot be made.
    pub(crate) fn create(count: usize, slot_len: usize) -> Option<Rc<WindowSlots>> {
        let len = count.checked_mul(slot_len)?;
        match SharedBuffer::create(c"amped-windows", len) {
            Ok((buffer, fd)) => Some(Rc::new(WindowSlots {
                buffer,
                fd,
                slot_len,
                free: RefCell::new((0..count).rev().collect()),
            })),
            Err(e) => {
                error_log!("no shared buffer for file windows ({e}); they travel in replies");
                None
            }
        }
    }

    /// The memfd, to pass to a helper.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The buffer's size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.buffer.len()
    }

    /// Lends a free slot for a read of `len` bytes, if one fits.
    pub(crate) fn take(self: &Rc<Self>, len: usize) -> Option<Slot> {
        if len > self.slot_len {
            return None;
        }
        let index = self.free.borrow_mut().pop()?;
        Some(Slot {
            slots: Rc::clone(self),
            index,
        })
    }

    /// Slots free now.
    #[cfg(test)]
    pub(crate) fn free(&self) -> usize {
        self.free.borrow().len()
    }
}

/// One slot, lent to one read and then to the window it holds.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Rc<WindowSlots>,
    index: usize,
}

impl Slot {
    /// Where the slot starts in the shared buffer.
    pub(crate) fn offset(&self) -> usize {
        self.index * self.slots.slot_len
    }

    /// How many of `len` bytes the slot holds (at most a slot's size).
    pub(crate) fn fit(&self, len: usize) -> usize {
        len.min(self.slots.slot_len)
    }

    /// Writes `len` bytes of the slot from `pos` to `sink` (as much as it
    /// takes). The bytes are handed on by address: the memory is shared
    /// with the helpers, so no Rust slice is made over it.
    pub(crate) fn write_to(
        &self,
        sink: &mut dyn Sink,
        pos: usize,
        len: usize,
    ) -> io::Result<usize> {
        let inside = pos
            .checked_add(len)
            .is_some_and(|end| end <= self.slots.slot_len);
        let span = inside.then(|| self.slots.buffer.span(self.offset() + pos, len));
        let Some(Some(start)) = span else {
            return Err(io::Error::other("a write past the end of its slot"));
        };
        // SAFETY: `start..start + len` lies inside the mapping (span checked
        // it), which lives as long as `self.slots`.
        unsafe { sink.write_shared(start, len) }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.free.borrow_mut().push(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::FdSink;
    use std::os::fd::AsRawFd;

    #[test]
    fn slots_are_lent_once_and_come_back() {
        let slots = WindowSlots::create(2, 4096).expect("shared buffer");
        assert!(slots.take(4097).is_none(), "too long for a slot");
        let a = slots.take(4096).expect("first");
        let b = slots.take(10).expect("second");
        assert_ne!(a.offset(), b.offset());
        assert!(slots.take(10).is_none(), "all lent");
        drop(a);
        assert_eq!(slots.free(), 1);
        let c = slots.take(10).expect("back");
        assert_eq!(c.fit(3), 3);
        assert_eq!(c.fit(5000), 4096);
        let (mut read, write) = std::io::pipe().expect("a pipe");
        let mut sink = FdSink(write.as_raw_fd());
        assert_eq!(c.write_to(&mut sink, 4090, 6).expect("written"), 6);
        let mut got = [1u8; 6];
        std::io::Read::read_exact(&mut read, &mut got).expect("read");
        assert_eq!(got, [0; 6]);
        assert!(c.write_to(&mut sink, 4090, 7).is_err(), "past the slot");
        assert_eq!(slots.len(), 8192);
    }
}
