//! Reading one window of a file for the server: the server sends large
//! files window by window and never touches pages that may be on disk;
//! such a window comes here with the file's descriptor, and its bytes go
//! back in the reply (the one way that never blocks the server, whatever
//! the filesystem: see the server's `send` module).

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;

use protocol::{ReadRequest, ReadResult, MAX_READ_LEN};

/// Reads the window `request` asks for from `fd` (the descriptor that
/// came with it; `None` if it did not).
pub fn read_window(request: &ReadRequest, fd: Option<OwnedFd>) -> ReadResult {
    let Some(fd) = fd else {
        return ReadResult::Failed("the read came without its descriptor".into());
    };
    if request.len > MAX_READ_LEN {
        return ReadResult::Failed(format!(
            "a read of {} bytes is more than the {MAX_READ_LEN} allowed",
            request.len
        ));
    }
    match read_at(&File::from(fd), request.offset, request.len as usize) {
        Ok(bytes) => ReadResult::Bytes(bytes),
        Err(e) => ReadResult::Failed(format!("read of /{} failed: {e}", request.path)),
    }
}

/// Reads up to `len` bytes at `offset`: fewer only at end of file.
fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn request(offset: u64, len: u32) -> ReadRequest {
        ReadRequest {
            id: 1,
            path: "f".into(),
            offset,
            len,
        }
    }

    fn file_with(content: &[u8]) -> OwnedFd {
        let path = std::env::temp_dir().join(format!(
            "amped-window-read-{}-{}",
            std::process::id(),
            content.len()
        ));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("temp file");
        file.write_all(content).expect("write");
        let _ = std::fs::remove_file(&path);
        file.into()
    }

    #[test]
    fn a_window_comes_back_whole_or_up_to_the_end() {
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let got = read_window(&request(1000, 65536), Some(file_with(&content)));
        assert_eq!(got, ReadResult::Bytes(content[1000..1000 + 65536].to_vec()));
        let tail = read_window(&request(299_000, 65536), Some(file_with(&content)));
        assert_eq!(tail, ReadResult::Bytes(content[299_000..].to_vec()));
        let past = read_window(&request(400_000, 10), Some(file_with(&content)));
        assert_eq!(past, ReadResult::Bytes(Vec::new()));
    }

    #[test]
    fn a_bad_read_is_refused_not_attempted() {
        assert!(matches!(
            read_window(&request(0, 10), None),
            ReadResult::Failed(_)
        ));
        let huge = read_window(&request(0, MAX_READ_LEN + 1), Some(file_with(b"x")));
        assert!(matches!(huge, ReadResult::Failed(_)), "{huge:?}");
    }
}
