//! The server's cache: a byte-bounded LRU of lookup results, each file
//! with its contents (or open descriptor) and the file-specific part of
//! its response head ready to send.
//!
//! Entries are fresh for [`FRESH_FOR`]; after that the next request for
//! one re-validates it through a helper before it is served again.

use std::cell::Cell;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use lru::LruCache;
use protocol::{Body, FileMeta, Outcome};

use crate::http::file_headers::FileHeaders;
use crate::http::mime::content_type;
use crate::http::path::is_directory_key;
use crate::listing;
use crate::send::OpenFile;

/// How long an entry is served without asking a helper again.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(1);

/// Bookkeeping cost of an entry beyond its contents.
const ENTRY_OVERHEAD: usize = 256;

/// What a file's kept head (`http/head_memo.rs`) may take beyond the
/// file's own header lines, which it repeats: the status, `Date`,
/// `Server` and `Content-Length` lines, the date it was built for, the
/// shared head's reference counts, and the allocator's share of both.
/// Counted for every file entry, kept or not, so that an entry costs the
/// same going out as coming in.
pub(crate) const KEPT_HEAD_OVERHEAD: usize = 224;

/// A file's bytes.
#[derive(Debug)]
pub(crate) enum Content {
    /// Held in memory (small files).
    Inline(Rc<[u8]>),
    /// An open file, sent window by window (large files; see
    /// [`crate::send`]).
    Descriptor(Rc<OpenFile>),
}

/// A regular file ready to serve.
#[derive(Debug)]
pub(crate) struct FileEntry {
    pub(crate) meta: FileMeta,
    pub(crate) headers: FileHeaders,
    pub(crate) content: Content,
}

/// What a path turned out to be.
#[derive(Debug)]
pub(crate) enum Found {
    File(FileEntry),
    /// A directory without an index, listed (`--dir-listing`): the page.
    Listing(Rc<[u8]>),
    Directory,
    Missing,
    Forbidden,
    Failed,
    /// The file's descriptor was lost on the way from the helper (the
    /// server is at its descriptor limit): 503, and not kept.
    Unavailable,
}

impl Found {
    /// What a helper's answer for `key` means for the cache.
    pub(crate) fn from_outcome(key: &str, outcome: Outcome, fd: Option<OwnedFd>) -> Found {
        match outcome {
            Outcome::File { meta, body } => {
                let content = match (body, fd) {
                    (Body::Inline(bytes), _) => Content::Inline(bytes.into()),
                    (Body::Descriptor { storage }, Some(fd)) => Content::Descriptor(Rc::new(
                        OpenFile::open(fd, storage, key.to_string(), meta),
                    )),
                    (Body::ByPath, _) => {
                        Content::Descriptor(Rc::new(OpenFile::by_path(key.to_string(), meta)))
                    }
                    (Body::Descriptor { .. }, None) => return Found::Unavailable,
                };
                let name = if is_directory_key(key) {
                    "index.html"
                } else {
                    key
                };
                Found::File(FileEntry {
                    meta,
                    headers: FileHeaders::new(&content_type(name), &meta),
                    content,
                })
            }
            Outcome::Directory => Found::Directory,
            Outcome::NotFound => Found::Missing,
            Outcome::Forbidden { .. } => Found::Forbidden,
            Outcome::Failed { reason } => {
                error_log!("lookup of {:?} failed: {reason}", format!("/{key}"));
                Found::Failed
            }
            Outcome::Unchanged => Found::Failed,
            Outcome::Listing { entries, truncated } => {
                Found::Listing(listing::page(key, entries, truncated).into())
            }
        }
    }
}

/// One cached lookup result.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) found: Found,
    /// When the entry stops being fresh: [`FRESH_FOR`] after it was last
    /// checked against the disk (a comparison per hit, no subtraction).
    fresh_until: Cell<Instant>,
}

impl Entry {
    pub(crate) fn new(found: Found, now: Instant) -> Entry {
        Entry {
            found,
            fresh_until: Cell::new(now + FRESH_FOR),
        }
    }

    /// True while the entry may be served without asking a helper.
    pub(crate) fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until.get()
    }

    /// Marks the entry as checked against the disk just now.
    pub(crate) fn revalidated(&self, now: Instant) {
        self.fresh_until.set(now + FRESH_FOR);
    }

    /// The file version this entry holds, for re-validation.
    pub(crate) fn meta(&self) -> Option<FileMeta> {
        match &self.found {
            Found::File(f) => Some(f.meta),
            _ => None,
        }
    }

    fn cost(&self) -> usize {
        ENTRY_OVERHEAD
            + match &self.found {
                Found::File(f) => {
                    2 * f.headers.lines.len()
                        + KEPT_HEAD_OVERHEAD
                        + match &f.content {
                            Content::Inline(bytes) => bytes.len(),
                            Content::Descriptor(_) => 0,
                        }
                }
                Found::Listing(page) => page.len(),
                _ => 0,
            }
    }

    fn holds_descriptor(&self) -> bool {
        matches!(
            &self.found,
            Found::File(FileEntry {
                content: Content::Descriptor(_),
                ..
            })
        )
    }
}

/// Counters for the status page and tests.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CacheStats {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) bytes: usize,
    pub(crate) entries: usize,
}

/// The LRU itself.
pub(crate) struct Cache {
    lru: LruCache<String, Rc<Entry>>,
    bytes: usize,
    capacity: usize,
    descriptors: usize,
    /// Most descriptor entries kept open at once (`--cache-files`).
    max_descriptors: usize,
    /// What the header lines added over a transport (`--hsts`) add to a
    /// file's kept head, counted for every file entry as the kept head's
    /// own overhead is.
    kept_lines: usize,
    hits: u64,
    misses: u64,
}

impl Cache {
    /// A cache of `capacity` bytes holding at most `max_descriptors` open
    /// files.
    pub(crate) fn new(capacity: usize, max_descriptors: usize) -> Cache {
        Cache {
            lru: LruCache::unbounded(),
            bytes: 0,
            capacity,
            descriptors: 0,
            max_descriptors,
            kept_lines: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// Counts `bytes` more for every file entry: what the lines added to
    /// every head over a transport (`AddedLines::longest`) make a kept
    /// head longer by.
    pub(crate) fn with_kept_lines(mut self, bytes: usize) -> Cache {
        self.kept_lines = bytes;
        self
    }

    /// What `entry` under `key` is counted for.
    fn cost(&self, key: &str, entry: &Entry) -> usize {
        let kept_lines = match entry.found {
            Found::File(_) => self.kept_lines,
            _ => 0,
        };
        entry.cost() + key.len() + kept_lines
    }

    /// Looks an entry up and marks it most recently used.
    pub(crate) fn get(&mut self, key: &str) -> Option<Rc<Entry>> {
        let found = self.lru.get(key).cloned();
        if found.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        found
    }

    /// Looks an entry up without counting or reordering.
    pub(crate) fn peek(&self, key: &str) -> Option<Rc<Entry>> {
        self.lru.peek(key).cloned()
    }

    /// Takes a helper's answer for `key` in and returns the entry to
    /// serve; `Err` with the key when the answer says "unchanged" of an
    /// entry evicted meanwhile (the lookup must be made again).
    pub(crate) fn fill(
        &mut self,
        key: String,
        outcome: Outcome,
        fd: Option<OwnedFd>,
        now: Instant,
    ) -> Result<Rc<Entry>, String> {
        if let Outcome::Unchanged = outcome {
            let entry = self.peek(&key).ok_or(key)?;
            entry.revalidated(now);
            return Ok(entry);
        }
        let entry = Rc::new(Entry::new(Found::from_outcome(&key, outcome, fd), now));
        if matches!(entry.found, Found::Unavailable) {
            error_log!(
                "{:?}: no descriptor to spare for the file",
                format!("/{key}")
            );
            // The next request asks a helper again.
            self.remove(&key);
        } else {
            self.insert(key, Rc::clone(&entry));
        }
        Ok(entry)
    }

    /// Adds or replaces an entry, evicting the least recently used ones
    /// to stay within the byte budget. An entry larger than an eighth of
    /// the budget is not cached.
    pub(crate) fn insert(&mut self, key: String, entry: Rc<Entry>) {
        self.remove(&key);
        let cost = self.cost(&key, &entry);
        if cost > self.capacity / 8 {
            return;
        }
        self.bytes += cost;
        self.descriptors += usize::from(entry.holds_descriptor());
        self.lru.put(key, entry);
        while self.bytes > self.capacity || self.descriptors > self.max_descriptors {
            let Some((key, evicted)) = self.lru.pop_lru() else {
                break;
            };
            self.account_removal(&key, &evicted);
        }
    }

    pub(crate) fn remove(&mut self, key: &str) {
        if let Some(old) = self.lru.pop(key) {
            self.account_removal(key, &old);
        }
    }

    fn account_removal(&mut self, key: &str, entry: &Entry) {
        self.bytes -= self.cost(key, entry);
        self.descriptors -= usize::from(entry.holds_descriptor());
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits,
            misses: self.misses,
            bytes: self.bytes,
            entries: self.lru.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file entry of `size` bytes whose contents are `content(meta)`.
    fn entry(size: usize, now: Instant, content: impl FnOnce(FileMeta) -> Content) -> Rc<Entry> {
        let meta = FileMeta {
            size: size as u64,
            mtime_secs: 1,
            mtime_nanos: 0,
            inode: 1,
            device: 1,
        };
        Rc::new(Entry::new(
            Found::File(FileEntry {
                meta,
                headers: FileHeaders::new("text/plain", &meta),
                content: content(meta),
            }),
            now,
        ))
    }

    /// A small file, in memory.
    fn file(size: usize, now: Instant) -> Rc<Entry> {
        entry(size, now, |_| Content::Inline(vec![0u8; size].into()))
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let now = Instant::now();
        let mut cache = Cache::new(64 * 1024, 4096);
        cache.insert("a".into(), file(6000, now));
        cache.insert("b".into(), file(6000, now));
        assert!(cache.get("a").is_some());
        for i in 0..10 {
            cache.insert(format!("f{i}"), file(6000, now));
        }
        assert!(cache.stats().bytes <= 64 * 1024);
        assert!(cache.peek("b").is_none(), "b was least recently used");
        assert!(cache.peek("f9").is_some());
    }

    /// An entry for a large file, held open (here by path: no descriptor
    /// is needed to count it).
    fn open_file(size: usize, now: Instant) -> Rc<Entry> {
        entry(size, now, |meta| {
            Content::Descriptor(Rc::new(OpenFile::by_path("f".into(), meta)))
        })
    }

    #[test]
    fn keeps_at_most_the_open_files_it_is_given() {
        let now = Instant::now();
        let mut cache = Cache::new(64 * 1024 * 1024, 3);
        for i in 0..5 {
            cache.insert(format!("big{i}"), open_file(1 << 20, now));
        }
        cache.insert("small".into(), file(100, now));
        assert_eq!(
            cache.stats().entries,
            4,
            "three open files and the small one"
        );
        assert!(
            cache.peek("big1").is_none(),
            "the oldest open files are closed"
        );
        assert!(cache.peek("big2").is_some() && cache.peek("big4").is_some());
        assert!(cache.peek("small").is_some());
    }

    #[test]
    fn oversized_entries_are_not_cached() {
        let now = Instant::now();
        let mut cache = Cache::new(64 * 1024, 4096);
        cache.insert("big".into(), file(20_000, now));
        assert!(cache.peek("big").is_none());
        assert_eq!(cache.stats().bytes, 0);
    }

    #[test]
    fn freshness_expires() {
        let start = Instant::now();
        let entry = file(1, start);
        assert!(entry.is_fresh(start));
        assert!(entry.is_fresh(start + FRESH_FOR - Duration::from_nanos(1)));
        assert!(!entry.is_fresh(start + FRESH_FOR));
        entry.revalidated(start + FRESH_FOR);
        assert!(entry.is_fresh(start + FRESH_FOR));
    }
}
