//! The command line:
//! `cgi-runner --root DIR --channel-fd N [--max-scripts N]` (child mode) or
//! `cgi-runner --root DIR [--method M] [--query Q] [--path-info P] [--timeout SECS] SCRIPT`
//! (standalone: run one script and copy its raw output).

use std::path::PathBuf;

use clap::Parser;

/// The default `--max-scripts`.
pub const DEFAULT_MAX_SCRIPTS: usize = 64;

/// The default `--timeout` of standalone mode, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

const LONG_ABOUT: &str = "\
The amped CGI runner: starts CGI scripts for the server, so that the \
event-driven server never forks and never waits on a script.

The server starts one runner itself, with --channel-fd naming the Unix socket \
it inherits. For each CGI request the runner resolves the script beneath \
--root, starts it in a process group of its own with exactly the environment \
the server built (plus PATH, if the server gave none), and passes the write \
end of the script's stdin and the read end of its stdout back to the server, \
which streams the request body in and the response out. The runner keeps the \
script's stderr and writes each line to its own stderr (the server's error \
log) as `cgi: /SCRIPT: LINE`. It reaps the script, reports its exit status, \
kills its whole process group when it runs past its time limit, and kills \
whatever the script left running in its group 2 seconds after it exits.

Run by hand with a SCRIPT instead, the runner starts that one script and \
copies its raw output (CGI headers included) to stdout and its stderr to \
stderr. The script gets a basic CGI environment and nothing of the runner's \
own: GATEWAY_INTERFACE=CGI/1.1, REQUEST_METHOD, QUERY_STRING, PATH_INFO (when \
given), SCRIPT_NAME, SCRIPT_FILENAME, SERVER_PROTOCOL=HTTP/1.1, \
SERVER_SOFTWARE, SERVER_NAME=localhost, SERVER_PORT=80, REMOTE_ADDR=127.0.0.1, \
DOCUMENT_ROOT and PATH. For a --method other than GET and HEAD, the request \
body is read from stdin first and given to the script, with CONTENT_LENGTH.

Every script is resolved beneath --root by the kernel (openat2 with \
RESOLVE_BENEATH): `..`, absolute paths, symbolic links that climb out of the \
root and hidden files (any component starting with a dot) are refused. A \
script must be a regular file with an execute permission bit that applies to \
the runner's user.";

const AFTER_LONG_HELP: &str = "\
Exit status (standalone): 0 the script exited with status 0, 1 it exited with \
another status, was killed or ran past --timeout, 2 usage error, unusable root \
or a script that could not be started (not found, forbidden, bad interpreter).
Exit status (child): 0 when the server closes the channel (every running \
script's process group is killed first), 1 on a protocol error, 2 usage error \
or unusable root, 4 stopped by the test hook below.

Environment:
  AMPED_TEST_RUNNER_DIE_AFTER_SPAWN=FILE
      Test hook, read only by the runner: in child mode, if FILE exists, \
remove it and exit with status 4 right after starting a script, before telling \
the server. The integration tests use it to show that such a run is not sent \
again.

Resource limits: core dumps are disabled (RLIMIT_CORE 0) for the runner and \
so for every script it starts.

Examples:
  cgi-runner --root www /cgi-bin/env.cgi
  cgi-runner --root www --query 'name=world' --path-info /extra /cgi-bin/hello.cgi
  printf 'a=1' | cgi-runner --root www --method POST /cgi-bin/form.cgi";

/// The amped CGI runner.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(
    name = "cgi-runner",
    version,
    about = "The amped CGI runner: starts CGI scripts beneath the document root for the server",
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP
)]
pub struct Cli {
    /// The document root. Only scripts beneath it are ever run.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,

    /// Child mode: serve run requests over this inherited Unix socket (given
    /// by the server, which spawns the runner).
    #[arg(long, value_name = "N", conflicts_with = "script")]
    pub channel_fd: Option<i32>,

    /// Child mode: the most scripts running at once; requests beyond it are
    /// refused as overloaded (the server answers 503).
    #[arg(
        long,
        value_name = "N",
        requires = "channel_fd",
        default_value_t = DEFAULT_MAX_SCRIPTS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096)
    )]
    pub max_scripts: usize,

    /// Standalone mode: the request method (REQUEST_METHOD).
    #[arg(
        long,
        value_name = "METHOD",
        default_value = "GET",
        conflicts_with = "channel_fd"
    )]
    pub method: String,

    /// Standalone mode: the query string, without the `?` (QUERY_STRING).
    #[arg(
        long,
        value_name = "STRING",
        default_value = "",
        conflicts_with = "channel_fd"
    )]
    pub query: String,

    /// Standalone mode: extra path after the script's name, starting with
    /// `/` (PATH_INFO).
    #[arg(long, value_name = "PATH", conflicts_with = "channel_fd")]
    pub path_info: Option<String>,

    /// Standalone mode: kill the script's process group after this many
    /// seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = DEFAULT_TIMEOUT_SECS,
        value_parser = clap::value_parser!(u64).range(1..=86_400),
        conflicts_with = "channel_fd"
    )]
    pub timeout: u64,

    /// Standalone mode: the script, as in a URL (`/cgi-bin/env.cgi`). One
    /// leading `/` is stripped; no percent-decoding is done.
    #[arg(value_name = "SCRIPT", required_unless_present = "channel_fd")]
    pub script: Option<String>,
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
    fn child_and_standalone_forms_parse() {
        let cli = Cli::try_parse_from(["cgi-runner", "--root", "www", "--channel-fd", "3"])
            .expect("parses");
        assert_eq!(cli.channel_fd, Some(3));
        assert_eq!(cli.max_scripts, DEFAULT_MAX_SCRIPTS);
        let cli = Cli::try_parse_from([
            "cgi-runner",
            "--root",
            "www",
            "--method",
            "POST",
            "--query",
            "a=1",
            "--path-info",
            "/x",
            "--timeout",
            "5",
            "/cgi-bin/env.cgi",
        ])
        .expect("parses");
        assert_eq!(cli.script.as_deref(), Some("/cgi-bin/env.cgi"));
        assert_eq!(cli.method, "POST");
        assert_eq!(cli.query, "a=1");
        assert_eq!(cli.path_info.as_deref(), Some("/x"));
        assert_eq!(cli.timeout, 5);
        let cli = Cli::try_parse_from(["cgi-runner", "--root", "www", "/x.cgi"]).expect("parses");
        assert_eq!(cli.method, "GET");
        assert_eq!(cli.timeout, DEFAULT_TIMEOUT_SECS);
    }

    #[test]
    fn usage_errors_are_refused() {
        for args in [
            &["cgi-runner", "--root", "www"][..],
            &["cgi-runner", "/x.cgi"],
            &["cgi-runner", "--root", "www", "--channel-fd", "3", "/x.cgi"],
            &["cgi-runner", "--root", "www", "--timeout", "0", "/x.cgi"],
            &["cgi-runner", "--root", "www", "--timeout", "soon", "/x.cgi"],
            &[
                "cgi-runner",
                "--root",
                "w",
                "--channel-fd",
                "3",
                "--max-scripts",
                "0",
            ],
            &[
                "cgi-runner",
                "--root",
                "w",
                "--channel-fd",
                "3",
                "--query",
                "a",
            ],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
