//! Command-line options and their validation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

use crate::event::Backend;
use crate::http::keep_alive::Limits;
use crate::tls_config::{self, CertFiles, TlsFiles};
use crate::token::MAX_LISTENERS;

/// amped: an event-driven HTTP/1.1 server for static files, in the style
/// of the Flash web server (AMPED). One process serves every client; disk
/// lookups run in separate helper processes.
#[derive(Parser, Debug)]
// A later occurrence of an option overrides an earlier one: the
// configuration file's options go first, the command line's after.
#[command(name = "server", version, args_override_self = true)]
pub struct Args {
    /// Address and port to listen on for plain HTTP (IPv4, or IPv6 in
    /// brackets: `[::]:8080`); repeat it to listen on several. Port 0
    /// picks a free port; the real ones are printed on stdout as
    /// `listening on http://ADDR:PORT/ ...`. Default: 127.0.0.1:8000,
    /// unless --listen-tls is given.
    #[arg(long, value_name = "ADDR:PORT", action = clap::ArgAction::Append)]
    pub listen: Vec<SocketAddr>,

    /// Address and port to listen on for HTTPS; repeat it for several.
    /// Needs --tls-cert and --tls-key.
    #[arg(long, value_name = "ADDR:PORT", action = clap::ArgAction::Append)]
    pub listen_tls: Vec<SocketAddr>,

    /// A PEM certificate chain for HTTPS (the server's certificate first);
    /// repeat it, each with its --tls-key in the same order, for several
    /// certificates, chosen by the name the client asks for (SNI). The
    /// first is the default one. Re-read on SIGHUP.
    #[arg(long, value_name = "PATH", action = clap::ArgAction::Append)]
    pub tls_cert: Vec<PathBuf>,

    /// The PEM private key (PKCS#8, SEC1 or RSA) of the --tls-cert at the
    /// same position.
    #[arg(long, value_name = "PATH", action = clap::ArgAction::Append)]
    pub tls_key: Vec<PathBuf>,

    /// Fail the TLS handshake of a client whose name matches no
    /// certificate (or that sends none), instead of answering it with
    /// the default certificate.
    #[arg(long)]
    pub tls_strict_sni: bool,

    /// Answer every request on a plain HTTP listener with a redirect to
    /// the same host and path over HTTPS, on the first TLS listener's
    /// port (301 for GET and HEAD, 308 for other methods, which keeps
    /// the method and body). Needs a TLS listener.
    #[arg(long)]
    pub redirect_to_https: bool,

    /// Send `Strict-Transport-Security` with this value on every HTTPS
    /// response (never over plain HTTP), for example
    /// `max-age=31536000; includeSubDomains`: `max-age=SECONDS`, then
    /// optionally `includeSubDomains` and `preload`.
    #[arg(long, value_name = "VALUE")]
    pub hsts: Option<String>,

    /// Document root: the directory whose files are served.
    #[arg(long, default_value = "www", value_name = "DIR")]
    pub root: PathBuf,

    /// Number of disk helper processes (1 to 64).
    #[arg(long, default_value_t = 2, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub helpers: u16,

    /// Most disk helper processes: the pool grows past --helpers while
    /// file windows wait to be read from disk, and shrinks back when the
    /// extra helpers have been idle for a few seconds (1 to 256).
    #[arg(long, default_value_t = 16, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub helpers_max: u16,

    /// Readiness backend for the event loop.
    #[arg(long, value_enum, default_value_t = EventHandler::Epoll, value_name = "KIND")]
    pub event_handler: EventHandler,

    /// Memory for cached file contents, in bytes or with a K, M or G
    /// suffix (64M, 1G). At least 64K.
    #[arg(long, default_value = "64M", value_name = "SIZE", value_parser = parse_size)]
    pub cache_size: u64,

    /// Memory for the windows of large files read from disk by helpers
    /// and not yet sent, for the whole server (512K window each; at least
    /// 512K). Beyond it, downloads wait their turn to read.
    #[arg(long, default_value = "64M", value_name = "SIZE", value_parser = parse_size)]
    pub window_memory: u64,

    /// Most files larger than --inline-max the cache keeps open, each
    /// with its descriptor, so a request for one needs no helper (1 to
    /// 1000000; the descriptor limit must leave room for them).
    #[arg(long, default_value_t = 4096, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub cache_files: u32,

    /// Most client connections and HTTP/2 streams open at once; more
    /// connections get 503 and are closed, more streams are refused
    /// (RST_STREAM) (1 to 1000000).
    #[arg(long, default_value_t = 4096, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Access log (in the `--access-log-format`): a file path, `-` for
    /// stdout, or `off`.
    #[arg(long, default_value = "off", value_name = "PATH|-|off")]
    pub access_log: String,

    /// Seconds an idle keep-alive connection stays open (1 to 3600).
    #[arg(long, default_value_t = 15, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub keepalive_timeout: u64,

    /// Seconds a client has to send a complete request head (1 to 3600).
    #[arg(long, default_value_t = 20, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,

    /// Seconds a response may make no progress towards a slow client
    /// before the connection is closed (1 to 3600).
    #[arg(long, default_value_t = 60, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub send_timeout: u64,

    /// Files up to this many bytes come back from the helpers inline and
    /// are kept in memory; larger ones are passed as open descriptors and
    /// sent with sendfile (1K to 1M).
    #[arg(long, default_value = "64K", value_name = "SIZE", value_parser = parse_size)]
    pub inline_max: u64,

    /// The helper binary (default: `helper` beside this executable).
    #[arg(long, value_name = "PATH")]
    pub helper_bin: Option<PathBuf>,

    /// Seconds a CGI script may run before its whole process group is
    /// killed (1 to 3600).
    #[arg(long, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub cgi_timeout: u64,

    /// CGI scripts running at once; requests beyond get 503 (1 to 10000).
    #[arg(long, default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub cgi_max_procs: u32,

    /// Largest request body accepted for a CGI script (413 beyond). A
    /// request body is collected whole before the script starts: its
    /// first 16K in memory, the rest in a file in --cgi-spool-dir.
    #[arg(long, default_value = "64M", value_name = "SIZE", value_parser = parse_size)]
    pub cgi_max_body: u64,

    /// The CGI runner binary (default: `cgi-runner` beside this executable).
    #[arg(long, value_name = "PATH")]
    pub cgi_runner_bin: Option<PathBuf>,

    /// Seconds a request waits for a disk helper (for example while every
    /// helper is being restarted) before it gets 503 (1 to 600).
    #[arg(long, default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub helper_timeout: u64,

    /// Seconds SIGTERM or SIGINT waits for responses in flight before the
    /// server exits anyway (0 to 3600).
    #[arg(long, default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_timeout: u64,

    /// Serve a status page at this path (for example /server-status).
    /// Off unless given.
    #[arg(long, value_name = "PATH")]
    pub status_path: Option<String>,

    /// Answer the status page for any client, not only loopback ones.
    #[arg(long)]
    pub status_allow_remote: bool,

    /// When started as root: bind the port, then run as this user (the
    /// children too).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// List a directory that has no index.html (its visible entries, as
    /// HTML) instead of answering 403.
    #[arg(long)]
    pub dir_listing: bool,

    /// Access log format: `combined` (the Combined Log Format) or `json`
    /// (one object a line).
    #[arg(long, value_enum, default_value_t = AccessLogFormat::Combined, value_name = "FORMAT")]
    pub access_log_format: AccessLogFormat,

    /// Error log file (appended to; reopened on SIGHUP), for the server
    /// and its children alike. Default: stderr.
    #[arg(long, value_name = "PATH")]
    pub error_log: Option<PathBuf>,

    /// Front processes accepting from one listening socket, each
    /// with its own helpers and cgi-runner, under one parent that restarts
    /// them; `auto` is one per CPU (1 to 256).
    #[arg(long, default_value = "1", value_name = "N|auto", value_parser = parse_workers)]
    pub workers: u16,

    /// Internal: the kinds (`http`, `https`) of the listening sockets a
    /// worker is handed, in order.
    #[arg(long, hide = true, value_name = "KINDS", value_delimiter = ',')]
    pub worker_sockets: Vec<String>,

    /// Internal: one of the `--workers` (accepts from the listener its
    /// parent handed it and reports readiness on the socketpair it was
    /// handed, rather than printing the listening line).
    #[arg(long, hide = true)]
    pub worker: bool,

    /// Read options from this TOML file first; its keys are the long
    /// options' names (`keepalive-timeout = 15`), and the command line
    /// overrides it.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Check the configuration (the file and the options together) and
    /// exit: 0 if it is good, 2 with one line saying what is wrong.
    #[arg(long)]
    pub check_config: bool,

    /// Print the man page (roff) and exit.
    #[arg(long)]
    pub print_man_page: bool,

    /// Print the completion script for SHELL and exit.
    #[arg(long, value_enum, value_name = "SHELL")]
    pub print_completions: Option<clap_complete::Shell>,

    /// Seconds in all a connection may spend reading and dropping a
    /// request body it does not use (a GET's body, the rest of a refused
    /// upload), however often its bytes come (1 to 3600).
    #[arg(long, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub discard_timeout: u64,

    /// Requests one keep-alive connection may carry; the response to the
    /// last says `Connection: close` (over HTTP/2: streams, then GOAWAY)
    /// (1 to 1000000000).
    #[arg(long, default_value_t = 1000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub keepalive_requests: u64,

    /// Seconds after which a keep-alive connection is closed after its
    /// next response, however busy it is (over HTTP/2: GOAWAY, then closed
    /// once its streams are answered) (1 to 604800). Off unless given.
    #[arg(long, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub keepalive_time: Option<u64>,

    /// Directory for the unlinked temporary files that hold request
    /// bodies for CGI scripts past their first 16K (default: the
    /// system's temporary directory). Best on a local filesystem.
    #[arg(long, value_name = "DIR")]
    pub cgi_spool_dir: Option<PathBuf>,

    /// Bytes of CGI request bodies held at once, all requests
    /// together (memory and spool files); a body that would pass it gets
    /// 503.
    #[arg(long, default_value = "1G", value_name = "SIZE", value_parser = parse_size)]
    pub cgi_spool_max: u64,

    /// Seconds a CGI request body may stop arriving before the
    /// request gets 408 and is closed (1 to 3600).
    #[arg(long, default_value_t = 60, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub cgi_body_timeout: u64,

    /// Serve `f.gz`, when it is there beside `f`, for a request for `f`
    /// from a client that accepts gzip (`Content-Encoding: gzip`); every
    /// answer for a file then says `Vary: Accept-Encoding`.
    #[arg(long)]
    pub gzip_static: bool,
}

/// The `--event-handler` choices.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventHandler {
    Select,
    Poll,
    Epoll,
}

impl From<EventHandler> for Backend {
    fn from(e: EventHandler) -> Backend {
        match e {
            EventHandler::Select => Backend::Select,
            EventHandler::Poll => Backend::Poll,
            EventHandler::Epoll => Backend::Epoll,
        }
    }
}

/// The `--access-log-format` choices.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    Combined,
    Json,
}

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Off,
    Stdout,
    File(PathBuf),
}

/// One listening address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListenOn {
    pub(crate) addr: SocketAddr,
    /// HTTPS rather than plain HTTP.
    pub(crate) tls: bool,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Plain ones first, then TLS ones, each in the order given.
    pub(crate) listeners: Vec<ListenOn>,
    /// Certificates, when something listens with TLS.
    pub(crate) tls: Option<TlsFiles>,
    /// `--redirect-to-https`.
    pub(crate) redirect_to_https: bool,
    /// `--hsts`: the `Strict-Transport-Security` value, checked.
    pub(crate) hsts: Option<String>,
    pub root: PathBuf,
    pub helpers: usize,
    /// At least `helpers`.
    pub helpers_max: usize,
    pub backend: Backend,
    pub cache_size: usize,
    /// Bytes of file windows read and not yet sent, server-wide.
    pub window_memory: u64,
    /// Most descriptor entries in the cache.
    pub cache_files: usize,
    pub max_connections: usize,
    pub access_log: LogTarget,
    pub access_log_format: AccessLogFormat,
    pub error_log: Option<PathBuf>,
    pub workers: usize,
    pub worker: bool,
    /// A worker's listening sockets: true for each that speaks TLS.
    pub worker_sockets: Vec<bool>,
    pub keepalive_timeout: Duration,
    pub header_timeout: Duration,
    pub send_timeout: Duration,
    pub inline_max: usize,
    pub helper_bin: PathBuf,
    pub cgi_timeout: Duration,
    pub cgi_max_procs: usize,
    pub cgi_max_body: u64,
    pub cgi_runner_bin: PathBuf,
    pub helper_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// The status page's path as a normalised key (no leading slash).
    pub status_key: Option<String>,
    pub status_allow_remote: bool,
    pub user: Option<String>,
    pub dir_listing: bool,
    pub discard_timeout: Duration,
    /// `--keepalive-requests` and `--keepalive-time`.
    pub keepalive_limits: Limits,

    /// Where CGI request bodies are spooled (a directory that takes
    /// temporary files).
    pub cgi_spool_dir: PathBuf,
    pub cgi_spool_max: u64,
    pub cgi_body_timeout: Duration,
    pub gzip_static: bool,
}

impl Config {
    /// Checks the options against the machine: the root exists and is a
    /// directory, the helper binary is there.
    pub fn from_args(args: Args) -> Result<Config> {
        let (listeners, tls) = listeners_and_certificates(&args)?;
        if args.redirect_to_https && tls.is_none() {
            bail!(BadOption::new(
                "redirect-to-https",
                "--redirect-to-https needs HTTPS: --listen-tls with --tls-cert and --tls-key"
            ));
        }
        let hsts = match &args.hsts {
            None => None,
            Some(_) if tls.is_none() => bail!(BadOption::new(
                "hsts",
                "--hsts needs HTTPS: --listen-tls with --tls-cert and --tls-key"
            )),
            Some(value) => Some(checked_hsts(value).map_err(|e| BadOption::new("hsts", e))?),
        };
        let root = std::fs::canonicalize(&args.root).map_err(|e| {
            let root = args.root.display();
            BadOption::new("root", format!("document root {root} not found: {e}"))
        })?;
        if !root.is_dir() {
            let message = format!("document root {} is not a directory", root.display());
            bail!(BadOption::new("root", message));
        }
        if args.helpers_max < args.helpers {
            bail!(
                "--helpers-max ({}) must be at least --helpers ({})",
                args.helpers_max,
                args.helpers
            );
        }
        if args.cache_size < 64 * 1024 {
            bail!(BadOption::new(
                "cache-size",
                "--cache-size must be at least 64K"
            ));
        }
        if args.window_memory < crate::send::READ_WINDOW {
            bail!(BadOption::new(
                "window-memory",
                "--window-memory must be at least 512K (one window)"
            ));
        }
        if !(1024..=1024 * 1024).contains(&args.inline_max) {
            bail!(BadOption::new(
                "inline-max",
                "--inline-max must be between 1K and 1M"
            ));
        }
        let helper_bin = match args.helper_bin {
            Some(path) => path,
            None => sibling_binary("helper")?,
        };
        if !is_executable(&helper_bin) {
            bail!(BadOption::new(
                "helper-bin",
                format!(
                "helper binary {} is missing or not executable (build it with `cargo build --bins`, or pass --helper-bin)",
                helper_bin.display()
            )));
        }
        let cgi_runner_bin = match args.cgi_runner_bin {
            Some(path) => path,
            None => sibling_binary("cgi-runner")?,
        };
        if !is_executable(&cgi_runner_bin) {
            bail!(BadOption::new(
                "cgi-runner-bin",
                format!(
                "cgi-runner binary {} is missing or not executable (build it with `cargo build --bins`, or pass --cgi-runner-bin)",
                cgi_runner_bin.display()
            )));
        }
        let status_key = match args.status_path {
            Some(path) => match crate::http::path::parse_target(&path) {
                Ok(target) if !target.key.is_empty() => Some(target.key),
                _ => bail!(BadOption::new(
                    "status-path",
                    "--status-path must be a path such as /server-status"
                )),
            },
            None => None,
        };
        let access_log = match args.access_log.as_str() {
            "off" => LogTarget::Off,
            "-" => LogTarget::Stdout,
            "" => bail!(BadOption::new(
                "access-log",
                "--access-log needs a path, `-` or `off`"
            )),
            path => LogTarget::File(PathBuf::from(path)),
        };
        if args
            .error_log
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            bail!(BadOption::new("error-log", "--error-log needs a path"));
        }

        let cgi_spool_dir = args.cgi_spool_dir.unwrap_or_else(std::env::temp_dir);
        crate::unlinked_file::open_unlinked(&cgi_spool_dir).with_context(|| {
            format!(
                "--cgi-spool-dir {} cannot take temporary files",
                cgi_spool_dir.display()
            )
        })?;
        Ok(Config {
            listeners,
            tls,
            redirect_to_https: args.redirect_to_https,
            hsts,
            root,
            helpers: usize::from(args.helpers),
            helpers_max: usize::from(args.helpers_max),
            backend: args.event_handler.into(),
            cache_size: usize::try_from(args.cache_size).unwrap_or(usize::MAX),
            window_memory: args.window_memory,
            cache_files: args.cache_files as usize,
            max_connections: args.max_connections as usize,
            access_log,
            access_log_format: args.access_log_format,
            error_log: args.error_log,
            workers: usize::from(args.workers),
            worker: args.worker,
            worker_sockets: args.worker_sockets.iter().map(|k| k == "https").collect(),
            keepalive_timeout: Duration::from_secs(args.keepalive_timeout),
            header_timeout: Duration::from_secs(args.header_timeout),
            send_timeout: Duration::from_secs(args.send_timeout),
            inline_max: args.inline_max as usize,
            helper_bin,
            cgi_timeout: Duration::from_secs(args.cgi_timeout),
            cgi_max_procs: args.cgi_max_procs as usize,
            cgi_max_body: args.cgi_max_body,
            cgi_runner_bin,
            helper_timeout: Duration::from_secs(args.helper_timeout),
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
            status_key,
            status_allow_remote: args.status_allow_remote,
            user: args.user,
            dir_listing: args.dir_listing,
            discard_timeout: Duration::from_secs(args.discard_timeout),
            keepalive_limits: Limits {
                requests: args.keepalive_requests,
                time: args.keepalive_time.map(Duration::from_secs),
            },

            cgi_spool_dir,
            cgi_spool_max: args.cgi_spool_max,
            cgi_body_timeout: Duration::from_secs(args.cgi_body_timeout),
            gzip_static: args.gzip_static,
        })
    }
}

/// A `Strict-Transport-Security` value as RFC 6797 6.1 has it:
/// `max-age=SECONDS` once (the number may be quoted), `includeSubDomains`
/// and `preload` at most once each, separated by `;`, in visible ASCII.
/// Returned in its plain form (`max-age=31536000; includeSubDomains`),
/// the directives in the order given.
fn checked_hsts(value: &str) -> std::result::Result<String, String> {
    let fail = |why: &str| Err(format!("--hsts {value:?}: {why}"));
    if !value
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        return fail("only visible ASCII, spaces and tabs");
    }
    let mut parts: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for directive in value.split(';') {
        let (name, argument) = match directive.split_once('=') {
            Some((name, argument)) => (name.trim(), Some(argument.trim())),
            None => (directive.trim(), None),
        };
        let key = name.to_ascii_lowercase();
        if seen.contains(&key) {
            return fail(&format!("{name} is given twice"));
        }
        let part = match (key.as_str(), argument) {
            ("max-age", Some(seconds)) => {
                let bare = match seconds.strip_prefix('"') {
                    Some(quoted) => match quoted.strip_suffix('"') {
                        Some(inner) => inner,
                        None => return fail("an unclosed quote"),
                    },
                    None => seconds,
                };
                if bare.is_empty() || bare.len() > 10 || !bare.bytes().all(|b| b.is_ascii_digit()) {
                    return fail("max-age takes a number of seconds (max-age=31536000)");
                }
                match bare.trim_start_matches('0') {
                    "" => "max-age=0".to_string(),
                    digits => format!("max-age={digits}"),
                }
            }
            ("includesubdomains", None) => "includeSubDomains".to_string(),
            ("preload", None) => "preload".to_string(),
            ("", None) => return fail("an empty directive"),
            _ => {
                return fail(&format!(
                    "unknown directive {:?} (max-age=SECONDS, includeSubDomains, preload)",
                    directive.trim()
                ))
            }
        };
        seen.push(key);
        parts.push(part);
    }
    if !seen.iter().any(|k| k == "max-age") {
        return fail("max-age=SECONDS is required (max-age=31536000)");
    }
    Ok(parts.join("; "))
}

/// The listening addresses (the default one when none is given), and the
/// certificates, loaded and checked, when one listens with TLS.
fn listeners_and_certificates(args: &Args) -> Result<(Vec<ListenOn>, Option<TlsFiles>)> {
    let mut listeners: Vec<ListenOn> = args
        .listen
        .iter()
        .map(|&addr| ListenOn { addr, tls: false })
        .chain(
            args.listen_tls
                .iter()
                .map(|&addr| ListenOn { addr, tls: true }),
        )
        .collect();
    if listeners.is_empty() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 8000));
        listeners.push(ListenOn { addr, tls: false });
    }
    if listeners.len() > MAX_LISTENERS {
        bail!(BadOption::new(
            "listen",
            format!("at most {MAX_LISTENERS} listening addresses")
        ));
    }
    for (i, a) in listeners.iter().enumerate() {
        let again = listeners[..i]
            .iter()
            .any(|b| b.addr == a.addr && a.addr.port() != 0);
        if again {
            bail!(BadOption::new(
                "listen",
                format!("{} is given twice", a.addr)
            ));
        }
    }
    if args.tls_cert.len() != args.tls_key.len() {
        bail!(BadOption::new(
            "tls-cert",
            format!(
                "{} --tls-cert but {} --tls-key: each certificate needs its key, in the same order",
                args.tls_cert.len(),
                args.tls_key.len()
            )
        ));
    }
    // Certificates without --listen-tls serve the TLS sockets systemd
    // passes, if it does.
    if args.tls_cert.is_empty() && args.listen_tls.is_empty() {
        return Ok((listeners, None));
    }
    if args.tls_cert.is_empty() {
        bail!(BadOption::new(
            "listen-tls",
            "--listen-tls needs a certificate: --tls-cert and --tls-key"
        ));
    }
    let files = TlsFiles {
        certs: args
            .tls_cert
            .iter()
            .zip(&args.tls_key)
            .map(|(cert, key)| CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            })
            .collect(),
        strict_sni: args.tls_strict_sni,
    };
    match tls_config::check(&files) {
        Ok(warnings) if !args.worker => warnings.iter().for_each(|w| warn_log!("{w}")),
        Ok(_) => {}
        Err(e) => bail!(BadOption::new("tls-cert", e)),
    }
    Ok((listeners, Some(files)))
}

/// A setting refused by [`Config::from_args`], naming its option (the
/// long name without dashes), so that one that came from the
/// configuration file can be reported with the file's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadOption {
    pub key: &'static str,
    pub message: String,
}

impl BadOption {
    fn new(key: &'static str, message: impl Into<String>) -> BadOption {
        BadOption {
            key,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for BadOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BadOption {}

/// The path of a binary that sits beside the running executable.
pub(crate) fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the server's own executable")?;
    let dir = exe
        .parent()
        .context("the server's executable has no parent directory")?;
    Ok(dir.join(name))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Parses `--workers`: a number from 1 to 256, or `auto` (one per CPU).
pub(crate) fn parse_workers(text: &str) -> Result<u16, String> {
    const MAX: u16 = 256;
    if text == "auto" {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        return Ok(u16::try_from(cpus).unwrap_or(MAX).min(MAX));
    }
    match text.parse::<u16>() {
        Ok(n) if (1..=MAX).contains(&n) => Ok(n),
        _ => Err(format!("`{text}` is not 1 to {MAX} or `auto`")),
    }
}

/// Parses a byte size: a number with an optional K, M or G suffix
/// (powers of 1024).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (examples: 1048576, 512K, 64M, 1G)"))?;
    let multiplier: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("`{text}` has an unknown unit (use K, M or G)")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("512K"), Ok(512 * 1024));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn workers_are_a_number_or_auto() {
        use super::parse_workers;
        assert_eq!(parse_workers("3"), Ok(3));
        assert!(parse_workers("auto").is_ok_and(|n| n >= 1));
        assert!(parse_workers("0").is_err());
        assert!(parse_workers("257").is_err());
        assert!(parse_workers("many").is_err());
    }

    #[test]
    fn hsts_values_are_checked_directive_by_directive() {
        use super::checked_hsts;
        assert_eq!(checked_hsts("max-age=60"), Ok("max-age=60".into()));
        assert_eq!(
            checked_hsts("max-age=31536000 ;includeSubDomains;  preload"),
            Ok("max-age=31536000; includeSubDomains; preload".into())
        );
        assert_eq!(checked_hsts("MAX-AGE=\"0\""), Ok("max-age=0".into()));
        assert_eq!(
            checked_hsts("preload; max-age = 0060;\tINCLUDESUBDOMAINS"),
            Ok("preload; max-age=60; includeSubDomains".into())
        );
        for bad in [
            "",
            "includeSubDomains",
            "max-age=",
            "max-age=ten",
            "max-age=-1",
            "max-age=99999999999",
            "max-age=1; max-age=2",
            "max-age=1;",
            "max-age=1; preload=yes",
            "max-age=1; always",
            "max-age=1\r\nX-Injected: 1",
            "max-age\r\n=1",
            "max-age=\r\n 1",
            "max-age=\"5",
            "max-age=5\"",
            "max-age=1; includeSubDomains\u{2028}",
        ] {
            assert!(checked_hsts(bad).is_err(), "{bad:?} was taken");
        }
    }
}
