//! The command line: `helper --root DIR [--channel-fd N] [--inline-max BYTES] [PATH]`.
//!
//! With `--channel-fd` the helper is a child of the server and serves
//! lookups over that inherited socket; with a `PATH` it resolves that one
//! path and prints the result for a person to read.

use std::path::PathBuf;

use clap::Parser;

/// The largest `--inline-max` accepted: an inline body must fit in one
/// protocol frame, with room to spare for the rest of the reply.
pub const MAX_INLINE: u64 = (protocol::MAX_FRAME_LEN - 4096) as u64;

/// The default `--inline-max`: files up to this size travel inline.
pub const DEFAULT_INLINE_MAX: u64 = 64 * 1024;

const LONG_ABOUT: &str = "\
The amped disk helper: resolves a path beneath the document root, stats it and \
opens it, so that the event-driven server never blocks on the disk.

The server starts several helpers itself, each with --channel-fd naming the \
Unix socket it inherits. Run by hand with a PATH instead, the helper answers \
that one lookup and prints the result.

Every path is resolved beneath --root by the kernel (openat2 with \
RESOLVE_BENEATH): `..`, absolute symbolic links and links that climb out of the \
root are refused, as are hidden files (any component starting with a dot).";

const AFTER_LONG_HELP: &str = "\
Exit status (standalone): 0 found (a file or a directory), 1 not found, \
forbidden or failed, 2 usage error or unusable root.
Exit status (child): 0 when the server closes the channel, 1 on a protocol \
error, 2 usage error or unusable root, 3 stopped by the exit test hook.

Environment:
  AMPED_TEST_HELPER_DELAY=SUBSTRING:MILLIS
      Test hook, read only by the helper: sleep MILLIS milliseconds before \
answering any lookup whose path contains SUBSTRING. The integration tests use \
it to prove that the server never waits on a slow helper.
  AMPED_TEST_HELPER_GATE=SUBSTRING:FILE
      Test hook, read only by the helper: hold any lookup whose path \
contains SUBSTRING until FILE exists (at most 120 s). The integration tests \
use it to keep a lookup in flight for exactly as long as they need.
  AMPED_TEST_HELPER_EXIT_IF=FILE
      Test hook, read only by the helper: in child mode, exit at once with \
status 3 if FILE exists. The integration tests use it to make restarted \
helpers die and check the server's back-off.
  AMPED_TEST_HELPER_MISNUMBER=SUBSTRING
      Test hook, read only by the helper: answer any lookup whose path \
contains SUBSTRING under the id before its own. The integration tests use it \
to show that the server takes a reply only from the helper its job went to.

Examples:
  helper --root www /index.html     show what a lookup of /index.html returns
  helper --root www /docs/          the index of a directory";

/// The amped disk helper.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(
    name = "helper",
    version,
    about = "The amped disk helper: resolves, stats and opens files beneath the document root",
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP
)]
pub struct Cli {
    /// The document root. Nothing outside it is ever opened.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,

    /// Child mode: serve lookups over this inherited Unix socket (given by the
    /// server, which spawns the helper).
    #[arg(long, value_name = "N", conflicts_with = "path")]
    pub channel_fd: Option<i32>,

    /// Child mode: this helper's number in the server's pool; its
    /// error-log lines are then written as `helper-N`.
    #[arg(long, value_name = "N", requires = "channel_fd")]
    pub slot: Option<usize>,

    /// Files up to this many bytes are answered inline (their bytes in the
    /// reply); larger ones as an open descriptor for the server's sendfile.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = DEFAULT_INLINE_MAX,
        value_parser = clap::value_parser!(u64).range(0..=MAX_INLINE)
    )]
    pub inline_max: u64,

    /// Answer a directory that has no index.html with a listing of its
    /// visible entries (the server renders it) instead of refusing it.
    #[arg(long)]
    pub dir_listing: bool,

    /// Standalone mode: the path to look up, as in a URL (`/index.html`,
    /// `/docs/` for a directory's index). One leading `/` is stripped;
    /// no percent-decoding is done.
    #[arg(value_name = "PATH", required_unless_present = "channel_fd")]
    pub path: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn standalone_and_child_forms_parse() {
        let cli = Cli::try_parse_from(["helper", "--root", "www", "/index.html"]).expect("parses");
        assert_eq!(cli.path.as_deref(), Some("/index.html"));
        assert_eq!(cli.inline_max, DEFAULT_INLINE_MAX);
        let cli = Cli::try_parse_from([
            "helper",
            "--root",
            "www",
            "--channel-fd",
            "3",
            "--inline-max",
            "10",
        ])
        .expect("parses");
        assert_eq!(cli.channel_fd, Some(3));
        assert_eq!(cli.inline_max, 10);
    }

    #[test]
    fn usage_errors_are_refused() {
        assert!(Cli::try_parse_from(["helper", "--root", "www"]).is_err());
        assert!(Cli::try_parse_from(["helper", "/index.html"]).is_err());
        assert!(
            Cli::try_parse_from(["helper", "--root", "www", "--channel-fd", "3", "/x"]).is_err()
        );
        let too_big = (MAX_INLINE + 1).to_string();
        assert!(
            Cli::try_parse_from(["helper", "--root", "www", "--inline-max", &too_big, "/x"])
                .is_err()
        );
    }
}
