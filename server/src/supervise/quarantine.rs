//! What a dead helper may still write, held until its process is reaped.
//! A helper given up on is sent SIGKILL, but one blocked in a FUSE or NFS
//! read sleeps in the kernel until the read returns, and the read's
//! destination is a slot of the memory shared with the server: the slot
//! lent to that read must not carry another window until the process is
//! gone for certain (reaped), or a download would get the late read's
//! bytes.

/// Things (slots) each held until every process that may still write
/// them has been reaped.
#[derive(Debug)]
pub(crate) struct Quarantine<T> {
    held: Vec<(Vec<u32>, T)>,
}

impl<T> Default for Quarantine<T> {
    fn default() -> Self {
        Quarantine { held: Vec::new() }
    }
}

impl<T> Quarantine<T> {
    /// Holds `item` while any of `writers` (process ids not reaped yet)
    /// lives; with none, it is let go at once.
    pub(crate) fn hold(&mut self, writers: Vec<u32>, item: T) {
        if !writers.is_empty() {
            self.held.push((writers, item));
        }
    }

    /// Lets go (drops) what no process `unreaped` still names may write.
    pub(crate) fn release(&mut self, unreaped: impl Fn(u32) -> bool) {
        self.held
            .retain(|(writers, _)| writers.iter().any(|&pid| unreaped(pid)));
    }

    /// Items held now.
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn an_item_is_let_go_only_once_its_writers_are_reaped() {
        let slot = Rc::new(());
        let mut q = Quarantine::default();
        q.hold(vec![10, 11], Rc::clone(&slot));
        q.release(|pid| pid == 10 || pid == 11);
        assert_eq!(Rc::strong_count(&slot), 2, "both writers live");
        q.release(|pid| pid == 11);
        assert_eq!(Rc::strong_count(&slot), 2, "one writer lives");
        q.release(|_| false);
        assert_eq!(Rc::strong_count(&slot), 1, "let go once both are reaped");
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn an_item_with_no_writer_left_is_not_held() {
        let slot = Rc::new(());
        let mut q = Quarantine::default();
        q.hold(Vec::new(), Rc::clone(&slot));
        assert_eq!(Rc::strong_count(&slot), 1);
        assert_eq!(q.len(), 0);
    }
}
