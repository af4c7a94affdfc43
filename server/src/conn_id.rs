//! A connection's identity, for whatever refers to a connection from
//! outside it (a helper's waiter list, a deadline, a CGI run): its slot
//! in the connection table and the slot's generation when the connection
//! was put there, so that an identity outlives its connection harmlessly:
//! looking it up in the table (`conn_table.rs`) finds nothing once the
//! connection is gone, even if its slot was reused.

/// A connection's slot and that slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ConnId {
    slot: usize,
    generation: u32,
}

impl ConnId {
    /// The identity of the connection put in `slot` at `generation`.
    pub(crate) fn new(slot: usize, generation: u32) -> ConnId {
        ConnId { slot, generation }
    }

    /// The slot, which the connection's poller tokens are made from.
    pub(crate) fn slot(self) -> usize {
        self.slot
    }
}
