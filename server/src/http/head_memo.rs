//! The head of a file's most common response, kept with the file for the
//! second its `Date` names (and the lines its connection adds): a 200
//! with the whole file as it is, to an HTTP/1.1 keep-alive GET. Within that second, answering the same again
//! costs a comparison of the date and a reference count instead of
//! building the head (see `respond`).

use std::cell::RefCell;
use std::rc::Rc;

use super::head_writer::Stamp;

/// One kept head and the date it carries; empty until first needed.
#[derive(Debug, Default)]
pub(crate) struct HeadMemo(RefCell<Option<Kept>>);

/// A copy starts empty: the kept head belongs to the entry it was built
/// for (its `Content-Length` is that entry's), and a copy may be given
/// to another.
impl Clone for HeadMemo {
    fn clone(&self) -> HeadMemo {
        HeadMemo::default()
    }
}

#[derive(Debug)]
struct Kept {
    date: Box<str>,
    adds_lines: bool,
    head: Rc<[u8]>,
}

impl HeadMemo {
    /// The head kept, if it was built with `stamp`.
    pub(crate) fn get(&self, stamp: Stamp<'_>) -> Option<Rc<[u8]>> {
        let kept = self.0.borrow();
        kept.as_ref()
            .filter(|k| *k.date == *stamp.date && k.adds_lines == stamp.adds_lines())
            .map(|k| Rc::clone(&k.head))
    }

    /// Keeps `head`, built with `stamp`, in place of what was kept.
    pub(crate) fn keep(&self, stamp: Stamp<'_>, head: Rc<[u8]>) {
        *self.0.borrow_mut() = Some(Kept {
            date: stamp.date.into(),
            adds_lines: stamp.adds_lines(),
            head,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_given_back_only_for_its_own_date() {
        let memo = HeadMemo::default();
        let monday = Stamp::plain("Mon, 30 Nov 2026 10:00:00 GMT");
        let later = Stamp::plain("Mon, 30 Nov 2026 10:00:01 GMT");
        let later_over_tls = Stamp {
            lines: b"Strict-Transport-Security: max-age=1\r\n",
            ..later
        };
        assert!(memo.get(monday).is_none());
        memo.keep(monday, Rc::from(&b"head 1"[..]));
        assert_eq!(memo.get(monday).as_deref(), Some(&b"head 1"[..]));
        assert!(memo.get(later).is_none());
        memo.keep(later, Rc::from(&b"head 2"[..]));
        assert_eq!(memo.get(later).as_deref(), Some(&b"head 2"[..]));
        assert!(memo.get(monday).is_none());
        assert!(
            memo.get(later_over_tls).is_none(),
            "other lines, another head"
        );
        assert!(memo.clone().get(later).is_none(), "a copy starts empty");
    }
}
