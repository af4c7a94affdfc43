//! Reading one window of a file for the server: the server sends large
//! files window by window and never touches pages that may be on disk;
//! such a window comes here, and its bytes go back in the reply (the one
//! way that never blocks the server, whatever the filesystem: see the
//! server's `send` module).
//!
//! The bytes go into the request's slot of the buffer the server shares
//! with its helpers when there is one (no copy through the socket), or
//! into the reply.
//!
//! The file is the descriptor that came with the request, or, for a file
//! on storage where the server keeps no descriptor, the path opened again
//! and checked to be the same version. Those reopened files are kept in a
//! small cache, so that a download's windows do not open the file each.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;

use protocol::{FileMeta, ReadRequest, ReadResult, SharedBuffer, MAX_READ_LEN};

use crate::file_lookup::Resolver;

/// Files reopened by path kept open at once (a few downloads' worth).
const OPEN_FILES: usize = 8;

/// The files reopened by path, most recently used last.
#[derive(Debug, Default)]
pub struct OpenFiles {
    files: Vec<(String, FileMeta, File)>,
}

impl OpenFiles {
    /// The file `request` names, open: from the cache, or opened again.
    fn get(&mut self, resolver: &Resolver, request: &ReadRequest) -> Result<&File, String> {
        let found = self
            .files
            .iter()
            .position(|(path, meta, _)| *path == request.path && *meta == request.known);
        let entry = match found {
            Some(i) => self.files.remove(i),
            None => {
                let file = resolver.reopen(&request.path, request.known)?;
                (request.path.clone(), request.known, file)
            }
        };
        if self.files.len() >= OPEN_FILES {
            self.files.remove(0);
        }
        self.files.push(entry);
        Ok(&self.files[self.files.len() - 1].2)
    }
}

/// Reads the window `request` asks for: from `fd` (the descriptor that
/// came with it), or from the file its path names; into its slot of
/// `shared` when it has one there.
pub fn read_window(
    request: &ReadRequest,
    fd: Option<OwnedFd>,
    resolver: &Resolver,
    open: &mut OpenFiles,
    shared: Option<&SharedBuffer>,
) -> ReadResult {
    if request.len > MAX_READ_LEN {
        return ReadResult::Failed(format!(
            "a read of {} bytes is more than the {MAX_READ_LEN} allowed",
            request.len
        ));
    }
    let described;
    let file = match (fd, request.with_descriptor) {
        (Some(fd), true) => {
            described = File::from(fd);
            &described
        }
        (None, false) => match open.get(resolver, request) {
            Ok(file) => file,
            Err(reason) => return ReadResult::Failed(reason),
        },
        _ => return ReadResult::Failed("the read came without its descriptor".into()),
    };
    let len = request.len as usize;
    let slot = request.slot.and_then(|at| usize::try_from(at).ok());
    // SAFETY: the server lends this slot to this read alone and does not
    // read it until the reply.
    let in_slot = slot
        .zip(shared)
        .and_then(|(at, b)| unsafe { b.slice_mut(at, len) });
    let failed =
        |e: io::Error| ReadResult::Failed(format!("read of /{} failed: {e}", request.path));
    match in_slot {
        Some(buf) => match read_at(file, request.offset, buf) {
            Ok(n) => ReadResult::InSlot(n as u32),
            Err(e) => failed(e),
        },
        None => {
            let mut buf = vec![0u8; len];
            match read_at(file, request.offset, &mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    ReadResult::Bytes(buf)
                }
                Err(e) => failed(e),
            }
        }
    }
}

/// Fills `buf` from `offset` on; returns how many bytes were read (fewer
/// than its length only at end of file).
fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    struct Root(std::path::PathBuf);

    impl Root {
        fn new(tag: &str) -> Root {
            let dir =
                std::env::temp_dir().join(format!("amped-window-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("mkdir");
            Root(dir)
        }

        fn write(&self, name: &str, content: &[u8]) -> FileMeta {
            let path = self.0.join(name);
            let mut file = std::fs::File::create(&path).expect("create");
            file.write_all(content).expect("write");
            let stat = std::fs::metadata(&path).expect("stat");
            FileMeta {
                size: stat.len(),
                mtime_secs: stat.mtime(),
                mtime_nanos: stat.mtime_nsec() as u32,
                inode: stat.ino(),
                device: stat.dev(),
            }
        }

        fn resolver(&self) -> Resolver {
            Resolver::open(&self.0, 1024).expect("root")
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn request(path: &str, known: FileMeta, offset: u64, len: u32, fd: bool) -> ReadRequest {
        ReadRequest {
            id: 1,
            path: path.into(),
            known,
            offset,
            len,
            with_descriptor: fd,
            slot: None,
        }
    }

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn a_window_comes_back_whole_or_up_to_the_end() {
        let root = Root::new("whole");
        let bytes = content(300_000);
        let meta = root.write("f.bin", &bytes);
        let (resolver, mut open) = (root.resolver(), OpenFiles::default());
        let fd = || {
            Some(OwnedFd::from(
                File::open(root.0.join("f.bin")).expect("open"),
            ))
        };
        let got = read_window(
            &request("f.bin", meta, 1000, 65536, true),
            fd(),
            &resolver,
            &mut open,
            None,
        );
        assert_eq!(got, ReadResult::Bytes(bytes[1000..1000 + 65536].to_vec()));
        let tail = read_window(
            &request("f.bin", meta, 299_000, 65536, false),
            None,
            &resolver,
            &mut open,
            None,
        );
        assert_eq!(tail, ReadResult::Bytes(bytes[299_000..].to_vec()));
        let past = read_window(
            &request("f.bin", meta, 400_000, 10, false),
            None,
            &resolver,
            &mut open,
            None,
        );
        assert_eq!(past, ReadResult::Bytes(Vec::new()));
    }

    #[test]
    fn a_window_goes_into_its_slot_of_the_shared_buffer() {
        let root = Root::new("slot");
        let bytes = content(10_000);
        let meta = root.write("f.bin", &bytes);
        let (resolver, mut open) = (root.resolver(), OpenFiles::default());
        let (server, fd) = SharedBuffer::create(c"amped-window-test", 16384).expect("buffer");
        let helper = SharedBuffer::map(&fd, 16384).expect("map");
        let mut asked = request("f.bin", meta, 9000, 4096, false);
        asked.slot = Some(8192);
        let got = read_window(&asked, None, &resolver, &mut open, Some(&helper));
        assert_eq!(got, ReadResult::InSlot(1000), "up to the end of the file");
        // SAFETY: the read is over; nothing else uses the buffer.
        assert_eq!(unsafe { server.slice(8192, 1000) }, Some(&bytes[9000..]));
        asked.slot = Some(16000);
        let outside = read_window(&asked, None, &resolver, &mut open, Some(&helper));
        assert!(
            matches!(outside, ReadResult::Bytes(_)),
            "a slot past the end: in the reply"
        );
    }

    #[test]
    fn a_file_changed_since_its_lookup_is_not_read_by_path() {
        let root = Root::new("changed");
        let old = root.write("f.bin", &content(5000));
        let (resolver, mut open) = (root.resolver(), OpenFiles::default());
        std::fs::remove_file(root.0.join("f.bin")).expect("remove");
        root.write("f.bin", &content(6000));
        let got = read_window(
            &request("f.bin", old, 0, 100, false),
            None,
            &resolver,
            &mut open,
            None,
        );
        assert!(
            matches!(&got, ReadResult::Failed(r) if r.contains("changed")),
            "{got:?}"
        );
        let escape = read_window(
            &request("../etc/passwd", old, 0, 100, false),
            None,
            &resolver,
            &mut open,
            None,
        );
        assert!(matches!(escape, ReadResult::Failed(_)), "{escape:?}");
    }

    #[test]
    fn a_bad_read_is_refused_not_attempted() {
        let root = Root::new("bad");
        let meta = root.write("f.bin", b"x");
        let (resolver, mut open) = (root.resolver(), OpenFiles::default());
        let missing = read_window(
            &request("f.bin", meta, 0, 10, true),
            None,
            &resolver,
            &mut open,
            None,
        );
        assert!(matches!(missing, ReadResult::Failed(_)), "{missing:?}");
        let huge = read_window(
            &request("f.bin", meta, 0, MAX_READ_LEN + 1, false),
            None,
            &resolver,
            &mut open,
            None,
        );
        assert!(matches!(huge, ReadResult::Failed(_)), "{huge:?}");
    }
}
