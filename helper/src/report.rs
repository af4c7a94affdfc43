//! Standalone mode: resolve one path given on the command line and print
//! the result for a person to read.

use std::io::{self, Write};

use protocol::calendar::civil_from_secs;
use protocol::{Body, FileMeta, Outcome};

use crate::file_lookup::Resolver;

/// What the standalone run found, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A file or a directory: exit status 0.
    Yes,
    /// Not found, forbidden or failed: exit status 1.
    No,
}

/// Resolves `arg` (a URL-style path: one leading `/` is stripped, no
/// percent-decoding) and writes the report to `out`.
pub fn report(resolver: &Resolver, arg: &str, out: &mut dyn Write) -> io::Result<Found> {
    let path = arg.strip_prefix('/').unwrap_or(arg);
    let shown = format!("/{path}");
    let resolution = resolver.resolve(path, None);
    match &resolution.outcome {
        Outcome::File { meta, body } => {
            let kind = if path.is_empty() || path.ends_with('/') {
                "regular file (the directory's index.html)"
            } else {
                "regular file"
            };
            writeln!(out, "file: {shown}")?;
            writeln!(out, "kind: {kind}")?;
            write_meta(out, meta)?;
            match body {
                Body::Inline(bytes) => writeln!(out, "body: inline ({} bytes)", bytes.len())?,
                Body::Descriptor { storage } => writeln!(
                    out,
                    "body: descriptor (would be passed to the server); storage: {storage:?}"
                )?,
                Body::ByPath => writeln!(
                    out,
                    "body: read window by window by the helpers (storage that cannot tell residency)"
                )?,
            }
            Ok(Found::Yes)
        }
        Outcome::Directory => {
            writeln!(
                out,
                "directory: {shown} (without a trailing slash; the server redirects to {shown}/)"
            )?;
            Ok(Found::Yes)
        }
        Outcome::Unchanged => {
            writeln!(out, "unchanged: {shown}")?;
            Ok(Found::Yes)
        }
        Outcome::NotFound => {
            writeln!(out, "not found: {shown}")?;
            Ok(Found::No)
        }
        Outcome::Forbidden { reason } => {
            writeln!(out, "forbidden: {shown} ({reason})")?;
            Ok(Found::No)
        }
        Outcome::Failed { reason } => {
            writeln!(out, "failed: {shown} ({reason})")?;
            Ok(Found::No)
        }
    }
}

fn write_meta(out: &mut dyn Write, meta: &FileMeta) -> io::Result<()> {
    let unit = if meta.size == 1 { "byte" } else { "bytes" };
    writeln!(out, "size: {} {unit}", meta.size)?;
    writeln!(out, "modified: {}", format_utc(meta.mtime_secs))?;
    writeln!(out, "inode: {} (device {})", meta.inode, meta.device)
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_utc(secs: i64) -> String {
    let t = civil_from_secs(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_709_251_199), "2024-02-29 23:59:59 UTC");
        assert_eq!(format_utc(1_795_797_894), "2026-11-27 16:44:54 UTC");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(format_utc(4_102_444_800), "2100-01-01 00:00:00 UTC");
    }
}
