//! Input buffers lent to connections. A connection holds one only while
//! it has bytes it has not handled (a head still arriving, pipelined
//! requests, a request body on its way to a script); once its input is
//! used up the buffer comes back here, so that an idle keep-alive
//! connection holds no input memory. The loop keeps a few spare buffers,
//! so a connection that reads a whole request and answers it in one turn
//! neither allocates nor copies.

/// The most bytes asked for by one read, and the capacity of a buffer
/// lent out.
pub(super) const READ_CHUNK: usize = 8 * 1024;
/// Spare buffers kept at most; a buffer given back beyond these is freed.
const SPARE_MAX: usize = 4;

/// The loop's spare input buffers.
#[derive(Debug, Default)]
pub(crate) struct InputBuffers {
    spare: Vec<Vec<u8>>,
}

impl InputBuffers {
    /// An empty buffer of [`READ_CHUNK`] capacity: a spare one, or a
    /// new one.
    pub(super) fn take(&mut self) -> Vec<u8> {
        self.spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(READ_CHUNK))
    }

    /// Takes back a buffer whose bytes are all handled. Kept as a spare
    /// only if there is room and it did not grow past [`READ_CHUNK`]
    /// (a long head makes a connection's buffer grow); freed otherwise.
    pub(super) fn give_back(&mut self, mut buffer: Vec<u8>) {
        if self.spare.len() < SPARE_MAX && buffer.capacity() == READ_CHUNK {
            buffer.clear();
            self.spare.push(buffer);
        }
    }

    /// How many spare buffers are kept now.
    #[cfg(test)]
    pub(super) fn spares(&self) -> usize {
        self.spare.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_back_buffer_is_lent_again() {
        let mut buffers = InputBuffers::default();
        let mut first = buffers.take();
        assert_eq!(first.capacity(), READ_CHUNK);
        first.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let at = first.as_ptr();
        buffers.give_back(first);
        assert_eq!(buffers.spares(), 1);
        let again = buffers.take();
        assert_eq!(again.as_ptr(), at, "the same allocation");
        assert!(again.is_empty(), "lent out empty");
        assert_eq!(buffers.spares(), 0);
    }

    #[test]
    fn spares_are_bounded_in_number_and_size() {
        let mut buffers = InputBuffers::default();
        for _ in 0..SPARE_MAX + 3 {
            buffers.give_back(Vec::with_capacity(READ_CHUNK));
        }
        assert_eq!(buffers.spares(), SPARE_MAX);
        let mut buffers = InputBuffers::default();
        buffers.give_back(Vec::with_capacity(4 * READ_CHUNK));
        buffers.give_back(Vec::new());
        assert_eq!(buffers.spares(), 0, "grown or empty buffers are freed");
    }
}
