//! A file's response headers: the parts of its head that depend only on
//! the file, built once when it enters the cache.

use protocol::FileMeta;

use super::clock::http_date;
use super::head_memo::HeadMemo;

/// The parts of a file's response head that depend only on the file,
/// built once when the file enters the cache; and the whole head of its
/// common answer for the current second (`ok_head`, which also depends
/// on the date and on the entry's body length, and starts empty in a
/// copy).
#[derive(Debug, Clone)]
pub(crate) struct FileHeaders {
    pub(crate) etag: String,
    /// `Content-Type`, `Last-Modified`, `ETag` and `Accept-Ranges` lines.
    pub(crate) lines: Vec<u8>,
    /// The length of the `Content-Type` line that starts `lines`.
    content_type_line: usize,
    /// The whole head of a plain 200 for the current second.
    pub(crate) ok_head: HeadMemo,
}

impl FileHeaders {
    pub(crate) fn new(content_type: &str, meta: &FileMeta) -> FileHeaders {
        let etag = format!("\"{:x}-{:x}\"", meta.mtime_secs, meta.size);
        let content_type_line = "Content-Type: \r\n".len() + content_type.len();
        let lines = format!(
            "Content-Type: {content_type}\r\nLast-Modified: {}\r\nETag: {etag}\r\nAccept-Ranges: bytes\r\n",
            http_date(meta.mtime_secs)
        )
        .into_bytes();
        FileHeaders {
            etag,
            lines,
            content_type_line,
            ok_head: HeadMemo::default(),
        }
    }

    /// The file's media type, as its `Content-Type` line says.
    pub(crate) fn content_type(&self) -> &str {
        let value = b"Content-Type: ".len()..self.content_type_line.saturating_sub(2);
        self.lines
            .get(value)
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or_default()
    }

    /// The lines but `Content-Type` (a multipart body has its own).
    pub(crate) fn lines_but_content_type(&self) -> &[u8] {
        self.lines.get(self.content_type_line..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_headers_split_off_their_content_type() {
        let meta = FileMeta {
            size: 16,
            mtime_secs: 95,
            mtime_nanos: 0,
            inode: 1,
            device: 1,
        };
        let h = FileHeaders::new("text/plain; charset=utf-8", &meta);
        assert_eq!(h.content_type(), "text/plain; charset=utf-8");
        assert!(h
            .lines
            .starts_with(b"Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(h.lines_but_content_type().starts_with(b"Last-Modified: "));
        assert_eq!(h.etag, "\"5f-10\"");
    }
}
