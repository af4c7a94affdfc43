//! One budget, for the whole server, for the bytes of file windows that
//! helpers read (`--window-memory`): in a slot of the shared buffer or in
//! a reply, a window's bytes stay in memory until the client has taken
//! them, so slow clients on cold files could otherwise hold any amount.
//!
//! A window is read only with a [`WindowLease`] on its bytes, given back
//! when the lease is dropped (the window written, or its body dropped).
//! A connection whose front window finds the budget spent waits its turn
//! in a queue, oldest first; a read-ahead is never let in ahead of a
//! connection that waits, and never waits itself.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

/// The budget, and who waits for room in it.
#[derive(Debug)]
pub(crate) struct WindowBudget<W> {
    limit: u64,
    used: Rc<Cell<u64>>,
    /// Who waits, with the bytes each asked for, oldest first.
    waiting: VecDeque<(W, u64)>,
}

/// Bytes of the budget held by one window, given back on drop.
#[derive(Debug)]
pub(crate) struct WindowLease {
    used: Rc<Cell<u64>>,
    len: u64,
}

impl Drop for WindowLease {
    fn drop(&mut self) {
        self.used.set(self.used.get().saturating_sub(self.len));
    }
}

impl<W: Copy + PartialEq> WindowBudget<W> {
    pub(crate) fn new(limit: u64) -> WindowBudget<W> {
        WindowBudget {
            limit,
            used: Rc::new(Cell::new(0)),
            waiting: VecDeque::new(),
        }
    }

    fn has_room(&self, len: u64) -> bool {
        self.used.get().saturating_add(len) <= self.limit
    }

    fn lease(&self, len: u64) -> WindowLease {
        self.used.set(self.used.get() + len);
        WindowLease {
            used: Rc::clone(&self.used),
            len,
        }
    }

    /// `len` bytes for the window `who` must send next. Without room, or
    /// while others waited first, `who` joins the queue (once) and gets
    /// nothing; [`turn`](Self::turn) says when to ask again.
    pub(crate) fn take_front(&mut self, who: W, len: u64) -> Option<WindowLease> {
        let first = self.waiting.front().is_none_or(|&(w, _)| w == who);
        if first && self.has_room(len) {
            if !self.waiting.is_empty() {
                self.waiting.pop_front();
            }
            return Some(self.lease(len));
        }
        match self.waiting.iter_mut().find(|(w, _)| *w == who) {
            Some(entry) => entry.1 = len,
            None => self.waiting.push_back((who, len)),
        }
        None
    }

    /// `len` bytes to read ahead: only when nobody waits and there is room.
    pub(crate) fn take_ahead(&mut self, len: u64) -> Option<WindowLease> {
        (self.waiting.is_empty() && self.has_room(len)).then(|| self.lease(len))
    }

    /// The connection whose turn it is: first in the queue, and the
    /// budget now has room for what it asked.
    pub(crate) fn turn(&self) -> Option<W> {
        let &(who, len) = self.waiting.front()?;
        self.has_room(len).then_some(who)
    }

    /// `who` no longer waits (it closed, or needs no read now).
    pub(crate) fn forget(&mut self, who: W) {
        self.waiting.retain(|&(w, _)| w != who);
    }

    /// Bytes leased now.
    pub(crate) fn used(&self) -> u64 {
        self.used.get()
    }

    /// Connections waiting for room.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_given_back_when_dropped() {
        let mut budget = WindowBudget::<u32>::new(10);
        let a = budget.take_front(1, 6);
        assert!(a.is_some());
        assert_eq!(budget.used(), 6);
        assert!(budget.take_front(2, 6).is_none(), "no room for 6 more");
        drop(a);
        assert_eq!(budget.used(), 0);
        assert_eq!(budget.turn(), Some(2));
        assert!(budget.take_front(2, 6).is_some());
        assert_eq!(budget.waiting(), 0, "the one served left the queue");
    }

    #[test]
    fn waiters_are_served_oldest_first() {
        let mut budget = WindowBudget::<u32>::new(10);
        let held = budget.take_front(1, 10);
        assert!(budget.take_front(2, 4).is_none());
        assert!(budget.take_front(3, 4).is_none());
        assert!(budget.take_front(2, 4).is_none(), "asking again");
        assert_eq!(budget.waiting(), 2, "each waits once");
        drop(held);
        assert_eq!(budget.turn(), Some(2));
        // Room for 3 as well, but 2 came first.
        assert!(budget.take_front(3, 4).is_none());
        let two = budget.take_front(2, 4);
        assert!(two.is_some());
        assert_eq!(budget.turn(), Some(3));
        let three = budget.take_front(3, 4);
        assert!(three.is_some());
        assert_eq!(budget.used(), 8);
        drop((two, three));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn read_ahead_never_goes_before_a_waiter() {
        let mut budget = WindowBudget::<u32>::new(10);
        let ahead = budget.take_ahead(4);
        assert!(ahead.is_some(), "nobody waits: room");
        let big = budget.take_front(1, 6);
        assert!(big.is_some());
        assert!(budget.take_ahead(1).is_none(), "the budget is spent");
        assert!(budget.take_front(2, 6).is_none());
        drop((big, ahead));
        assert!(budget.take_ahead(1).is_none(), "2 waits: no read-ahead");
        assert_eq!(budget.waiting(), 1, "a read-ahead never waits");
    }

    #[test]
    fn a_forgotten_waiter_gives_its_turn_to_the_next() {
        let mut budget = WindowBudget::<u32>::new(4);
        let held = budget.take_front(1, 4);
        assert!(budget.take_front(2, 4).is_none());
        assert!(budget.take_front(3, 2).is_none());
        assert_eq!(budget.turn(), None, "no room yet");
        budget.forget(2);
        drop(held);
        assert_eq!(budget.turn(), Some(3));
    }

    #[test]
    fn the_turn_waits_for_room_for_what_was_asked() {
        let mut budget = WindowBudget::<u32>::new(10);
        let a = budget.take_front(1, 5);
        let b = budget.take_front(2, 5);
        assert!(budget.take_front(3, 8).is_none());
        drop(a);
        assert_eq!(budget.turn(), None, "5 free, 8 asked");
        drop(b);
        assert_eq!(budget.turn(), Some(3));
    }
}
