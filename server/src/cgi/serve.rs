//! The event-loop side of CGI: starting a request's script through the
//! runner, streaming the request body into the script's stdin and its
//! output back to the client, with back-pressure both ways, and ending
//! the exchange (normally, on a bad header block, on a timeout, or when
//! the client goes away). Nothing here blocks: both pipes are
//! non-blocking and sit in the poller beside the client sockets.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::signal::Signal;
use protocol::{CgiRun, Refusal};

use crate::cgi::chunked::ChunkedDecoder;
use crate::cgi::env::{build_env, CgiEnvInput};
use crate::cgi::exchange::{Exchange, OutputEvent, Stage};
use crate::cgi::runner_link::RunnerEvent;
use crate::connection::{Connection, Phase};
use crate::event::{Event, Interest, Poller, Token};
use crate::http::path::parse_target;
use crate::http::request::{Framing, Method, Request};
use crate::http::status::Status;
use crate::respond;
use crate::server::{conn_token, Server, OUTPUT_HIGH_WATER, SUB_STDIN, SUB_STDOUT};

/// Request-body bytes held for a script's stdin at most.
const TO_SCRIPT_MAX: usize = 64 * 1024;
/// Bytes read from a script's stdout per read.
const READ_CHUNK: usize = 64 * 1024;
/// Reads from one script per turn of the loop.
const READS_PER_TURN: usize = 8;
/// How long to wait for end-of-file on a script's output after it exited
/// (a background child may hold the pipe open).
pub const EOF_GRACE: Duration = Duration::from_secs(2);
/// Output that ends this close to the time limit may have been cut by it.
const NEAR_LIMIT: Duration = Duration::from_secs(1);
/// Local redirects followed for one request at most.
const MAX_LOCAL_REDIRECTS: u8 = 5;

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The script's output ended (or its grace after exit passed).
    Eof,
    /// The script ran past its time.
    TimedOut,
    /// Its header block was malformed.
    BadHead,
}

impl Server {
    /// Starts a CGI request: checks the limits, then reads a chunked body
    /// or hands the script to the runner.
    pub(crate) fn start_cgi(&mut self, idx: usize, request: Request) {
        let now = self.clock.now();
        let max_body = self.config.cgi_max_body;
        let too_large = matches!(request.body, Framing::Length(n) if n > max_body);
        let busy = self.cgi_active >= self.config.cgi_max_procs;
        let status = if too_large {
            Some((Status::PAYLOAD_TOO_LARGE, ""))
        } else if busy {
            Some((Status::SERVICE_UNAVAILABLE, "Retry-After: 1\r\n"))
        } else {
            None
        };
        if let Some((status, extra)) = status {
            // The body was not read: the connection cannot be kept.
            return self.answer_error(idx, &request, status, false, extra);
        }
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let expect_continue = request.cgi.as_ref().is_some_and(|c| c.expect_continue);
        let (stage, body_left, has_body) = match request.body {
            Framing::Chunked => (Stage::Collecting(ChunkedDecoder::default()), 0, true),
            Framing::Length(n) => (Stage::Queued, n, n > 0),
            Framing::None => (Stage::Queued, 0, false),
        };
        if expect_continue && has_body && !request.http10 && conn.input.is_empty() {
            conn.output
                .push_owned(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec());
        }
        let id = self.runner.next_id();
        let collecting = matches!(stage, Stage::Collecting(_));
        conn.phase = Phase::Cgi(Box::new(Exchange::new(id, request, stage, body_left, now)));
        self.cgi_ids.insert(id, (idx, conn.generation));
        self.cgi_active += 1;
        if !collecting {
            self.launch_cgi(idx);
        }
        self.pump_cgi(idx);
    }

    /// Sends the exchange's script to the runner.
    fn launch_cgi(&mut self, idx: usize) {
        let now = self.clock.now();
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let Phase::Cgi(ex) = &mut conn.phase else {
            return;
        };
        let Some(cgi) = ex.request.cgi.as_ref() else {
            return;
        };
        let content_length = match (&ex.stage, ex.request.body) {
            (Stage::Collecting(d), _) => Some(d.decoded),
            (_, Framing::Length(n)) => Some(n),
            _ => None,
        };
        ex.stage = Stage::Queued;
        let script_name = format!("/{}", cgi.script);
        let local = conn.stream.local_addr().unwrap_or(self.config.listen);
        let remote = conn.peer;
        let env = build_env(&CgiEnvInput {
            method: &cgi.method,
            http10: ex.request.http10,
            script_name: &script_name,
            path_info: &cgi.path_info,
            query: ex.request.target.query.as_deref().unwrap_or(""),
            request_uri: &cgi.request_uri,
            headers: &cgi.headers,
            content_length,
            remote,
            local,
            root: &self.config.root,
        });
        let run = CgiRun {
            id: ex.id,
            script: cgi.script.clone(),
            env,
            timeout_ms: self.config.cgi_timeout.as_millis() as u64,
        };
        ex.started = now;
        self.runner.run(run, self.poller.as_mut(), now);
    }

    /// Readiness on the runner's socket.
    pub(crate) fn runner_event(&mut self, ev: Event) {
        let now = self.clock.now();
        let mut events = Vec::new();
        self.runner
            .handle_event(ev, self.poller.as_mut(), now, &mut events);
        self.runner_due = Some(self.runner_due.map_or(now, |t| t.min(now)));
        for event in events {
            match event {
                RunnerEvent::Started {
                    id,
                    pid,
                    stdin,
                    stdout,
                } => self.cgi_started(id, pid, stdin, stdout),
                RunnerEvent::Refused { id, refusal } => self.cgi_refused(id, refusal),
                RunnerEvent::Exited {
                    id,
                    exit,
                    timed_out,
                } => {
                    let Some(idx) = self.cgi_connection(id) else {
                        continue;
                    };
                    if let Some(Phase::Cgi(ex)) = self.conns[idx].as_mut().map(|c| &mut c.phase) {
                        ex.exited = Some((exit, timed_out));
                        ex.eof_deadline = Some(now + EOF_GRACE);
                    }
                    self.pump_cgi(idx);
                }
            }
        }
    }

    /// The connection still waiting on CGI run `id`, if any.
    fn cgi_connection(&self, id: u64) -> Option<usize> {
        let &(idx, generation) = self.cgi_ids.get(&id)?;
        let conn = self.conns.get(idx)?.as_ref()?;
        match &conn.phase {
            Phase::Cgi(ex) if conn.generation == generation && ex.id == id => Some(idx),
            _ => None,
        }
    }

    fn cgi_started(&mut self, id: u64, pid: u32, stdin: OwnedFd, stdout: OwnedFd) {
        let Some(idx) = self.cgi_connection(id) else {
            // The client went away: dropping the pipes ends the script's I/O.
            return;
        };
        let queued = matches!(
            self.conns[idx].as_ref().map(|c| &c.phase),
            Some(Phase::Cgi(ex)) if matches!(ex.stage, Stage::Queued)
        );
        if !queued {
            error_log!("amped: cgi-runner reported run {id} started twice; ignored");
            return;
        }
        let stdin = File::from(stdin);
        let stdout = File::from(stdout);
        let nonblocking = set_nonblocking(&stdin).and_then(|_| set_nonblocking(&stdout));
        let fits = self
            .poller
            .fd_limit()
            .is_none_or(|limit| stdin.as_raw_fd() < limit && stdout.as_raw_fd() < limit);
        if nonblocking.is_err() || !fits {
            return self.cgi_failed(idx, Status::SERVICE_UNAVAILABLE);
        }
        if let Some(Phase::Cgi(ex)) = self.conns[idx].as_mut().map(|c| &mut c.phase) {
            ex.stage = Stage::Running;
            ex.pid = Some(pid);
            ex.stdin = Some(stdin);
            ex.stdout = Some(stdout);
        }
        self.pump_cgi(idx);
    }

    fn cgi_refused(&mut self, id: u64, refusal: Refusal) {
        let Some(idx) = self.cgi_connection(id) else {
            return;
        };
        let status = match refusal {
            Refusal::NotFound => Status::NOT_FOUND,
            Refusal::Forbidden(_) => Status::FORBIDDEN,
            Refusal::ExecFailed(why) => {
                error_log!("amped: CGI run {id} could not start: {why}");
                Status::INTERNAL_ERROR
            }
            Refusal::Overloaded => Status::SERVICE_UNAVAILABLE,
        };
        self.cgi_failed(idx, status);
    }

    /// Ends the exchange with an error page (nothing was sent yet).
    fn cgi_failed(&mut self, idx: usize, status: Status) {
        let Some(mut ex) = self.take_exchange(idx) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let keep_alive = ex.keep_alive && ex.body_complete() && ex.to_script.is_empty();
        if keep_alive {
            conn.discard = ex.body_left;
        }
        let extra = if status == Status::SERVICE_UNAVAILABLE {
            "Retry-After: 1\r\n"
        } else {
            ""
        };
        ex.to_script.clear();
        self.answer_error(idx, &ex.request, status, keep_alive, extra);
        self.advance(idx);
    }

    /// Moves everything that can move: body to the script, output to the
    /// client; ends the exchange when the output is over; then sets what
    /// each descriptor waits for.
    pub(crate) fn pump_cgi(&mut self, idx: usize) {
        let now = self.clock.now();
        let max_body = self.config.cgi_max_body;
        let cgi_timeout = self.config.cgi_timeout;
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let Connection {
            phase,
            input,
            output,
            ..
        } = conn;
        let Phase::Cgi(ex) = phase else {
            return;
        };
        // Request body: from the client's input to the script, until the
        // pipe is full or the input holds no more of it.
        let mut first = true;
        loop {
            let used = match ex.take_body(input, TO_SCRIPT_MAX) {
                Ok(used) => used,
                Err(_) => return self.cgi_bad_body(idx, Status::BAD_REQUEST),
            };
            input.drain(..used);
            if !matches!(ex.stage, Stage::Running) || (!first && used == 0) {
                break;
            }
            first = false;
            let mut blocked = false;
            match ex.stdin.as_mut() {
                // The script closed its stdin: the rest of the body is dropped.
                None => ex.to_script.clear(),
                Some(stdin) => match write_some(stdin, &ex.to_script) {
                    Ok(n) => {
                        blocked = n < ex.to_script.len();
                        ex.to_script.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => blocked = true,
                    Err(_) => {
                        ex.to_script.clear();
                        close_pipe(self.poller.as_mut(), &mut ex.stdin, &mut ex.stdin_interest);
                    }
                },
            }
            if ex.body_complete() && ex.to_script.is_empty() {
                close_pipe(self.poller.as_mut(), &mut ex.stdin, &mut ex.stdin_interest);
            }
            if blocked {
                break;
            }
        }
        if matches!(ex.stage, Stage::Collecting(_)) {
            if ex.to_script.len() as u64 > max_body {
                return self.cgi_bad_body(idx, Status::PAYLOAD_TOO_LARGE);
            }
            if ex.body_complete() {
                self.launch_cgi(idx);
            }
            return self.flush(idx);
        }
        // Script output: to the client, while the client keeps up.
        let mut end = None;
        let mut redirect = None;
        let date = self.clock.http_date();
        for _ in 0..READS_PER_TURN {
            if output.queued() > OUTPUT_HIGH_WATER {
                break;
            }
            let Some(stdout) = ex.stdout.as_mut() else {
                break;
            };
            let buf = &mut self.cgi_buf;
            buf.resize(READ_CHUNK, 0);
            match stdout.read(buf) {
                Ok(0) => {
                    close_pipe(
                        self.poller.as_mut(),
                        &mut ex.stdout,
                        &mut ex.stdout_interest,
                    );
                    break;
                }
                Ok(n) => match ex.on_output(&buf[..n], output, date) {
                    OutputEvent::Progress => {}
                    OutputEvent::LocalRedirect(path) => {
                        redirect = Some(path);
                        break;
                    }
                    OutputEvent::BadHead(why) => {
                        error_log!(
                            "amped: {:?}: bad CGI header block: {why}",
                            format!("/{}", ex.request.target.key)
                        );
                        end = Some(End::BadHead);
                        break;
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    end = Some(End::Eof);
                    break;
                }
            }
        }
        if end.is_none() && matches!(ex.stage, Stage::Running) {
            let output_over = ex.stdout.is_none();
            let grace_over = ex.eof_deadline.is_some_and(|t| t <= now);
            // The output may have ended because the runner killed the
            // script at its time limit. Without a header block (502 or
            // 504?), or near the limit (a complete response, or a cut one
            // that must not look complete?), wait briefly for the exit
            // report before deciding.
            let near_limit = now + NEAR_LIMIT >= ex.started + cgi_timeout;
            let wants_report = ex.exited.is_none() && (!ex.responded() || near_limit);
            if output_over && wants_report && ex.eof_deadline.is_none() {
                ex.eof_deadline = Some(now + EOF_GRACE);
            } else if (output_over && !wants_report) || grace_over {
                end = Some(match ex.exited {
                    Some((_, true)) => End::TimedOut,
                    _ => End::Eof,
                });
            }
        }
        if let Some(path) = redirect {
            return self.local_redirect(idx, &path);
        }
        if let Some(end) = end {
            return self.end_cgi(idx, end);
        }
        // What each pipe waits for.
        let stdin_want = if ex.to_script.is_empty() {
            Interest::NONE
        } else {
            Interest::WRITABLE
        };
        let stdout_want = if output.queued() > OUTPUT_HIGH_WATER {
            Interest::NONE
        } else {
            Interest::READABLE
        };
        let poller = self.poller.as_mut();
        let watched = watch_pipe(
            poller,
            ex.stdin.as_ref(),
            conn_token(idx, SUB_STDIN),
            &mut ex.stdin_interest,
            stdin_want,
        ) && watch_pipe(
            poller,
            ex.stdout.as_ref(),
            conn_token(idx, SUB_STDOUT),
            &mut ex.stdout_interest,
            stdout_want,
        );
        if !watched {
            return self.end_cgi(idx, End::BadHead);
        }
        self.flush(idx);
        // Writing may have made room for more output.
        let more = self.conns.get(idx).and_then(Option::as_ref).is_some_and(|c| {
            matches!(&c.phase, Phase::Cgi(ex) if ex.stdout.is_some() && ex.stdout_interest == Interest::NONE)
                && c.output.queued() <= OUTPUT_HIGH_WATER
        });
        if more {
            self.pump_cgi(idx);
        }
    }

    /// A chunked body that is malformed or too large: answer and close.
    fn cgi_bad_body(&mut self, idx: usize, status: Status) {
        let Some(ex) = self.take_exchange(idx) else {
            return;
        };
        self.answer_error(idx, &ex.request, status, false, "");
        self.flush(idx);
    }

    /// The script's output is over: finish the response.
    fn end_cgi(&mut self, idx: usize, end: End) {
        let Some(mut ex) = self.take_exchange(idx) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let timed_out = end == End::TimedOut || matches!(ex.exited, Some((_, true)));
        // A response cut short by the time limit must not look complete:
        // no last chunk, and the connection closes.
        let finished = match end {
            End::BadHead => None,
            _ if timed_out => None,
            _ => ex.on_eof(&mut conn.output),
        };
        let status = if timed_out {
            Status::GATEWAY_TIMEOUT
        } else {
            Status::BAD_GATEWAY
        };
        let reply = match finished {
            Some(keep_alive) => {
                // Keep the connection only if the client's body is all in.
                let keep_alive = keep_alive && !timed_out && ex.body_complete();
                respond::Reply {
                    status: Status {
                        code: ex.status,
                        reason: "",
                    },
                    keep_alive,
                    body_bytes: ex.body_bytes,
                }
            }
            None if ex.responded() => respond::Reply {
                status: Status {
                    code: ex.status,
                    reason: "",
                },
                keep_alive: false,
                body_bytes: ex.body_bytes,
            },
            None => {
                if !timed_out {
                    error_log!(
                        "amped: {:?}: the script sent no valid header block",
                        format!("/{}", ex.request.target.key)
                    );
                }
                let head_only = ex.request.method == Method::Head;
                respond::error(
                    &mut conn.output,
                    status,
                    false,
                    ex.request.http10,
                    head_only,
                    "",
                    self.clock.http_date(),
                )
            }
        };
        self.finish_reply(idx, reply, ex.request.log.as_ref());
        self.advance(idx);
    }

    /// Serves the path a script named in a local redirect, as a GET.
    fn local_redirect(&mut self, idx: usize, path: &str) {
        let Some(ex) = self.take_exchange(idx) else {
            return;
        };
        let mut request = ex.request;
        let redirects = request.redirects + 1;
        let target = match parse_target(path) {
            Ok(target) if redirects <= MAX_LOCAL_REDIRECTS => target,
            _ => {
                error_log!(
                    "amped: {:?}: bad local redirect to {path:?}",
                    format!("/{}", request.target.key)
                );
                self.answer_error(idx, &request, Status::INTERNAL_ERROR, false, "");
                return self.advance(idx);
            }
        };
        let cgi = crate::http::request::split_script(&target.key);
        request.cgi = match (cgi, request.cgi.take()) {
            (Some((script, path_info)), Some(mut parts)) => {
                parts.script = script;
                parts.path_info = path_info;
                parts.method = if request.method == Method::Head {
                    "HEAD"
                } else {
                    "GET"
                }
                .into();
                parts.request_uri = path.to_string();
                parts.headers.retain(|(n, _)| {
                    !n.eq_ignore_ascii_case("content-length")
                        && !n.eq_ignore_ascii_case("content-type")
                });
                Some(parts)
            }
            _ => None,
        };
        if request.method == Method::Other {
            request.method = Method::Get;
        }
        request.target = target;
        request.redirects = redirects;
        request.body = Framing::None;
        if let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) {
            conn.phase = Phase::Reading;
        }
        self.serve(idx, request);
        self.advance(idx);
    }

    /// Detaches the exchange from its connection: pipes closed and out of
    /// the poller, bookkeeping undone. The connection goes back to
    /// `Reading`; the caller queues the response.
    pub(crate) fn take_exchange(&mut self, idx: usize) -> Option<Box<Exchange>> {
        let conn = self.conns.get_mut(idx).and_then(Option::as_mut)?;
        if !matches!(conn.phase, Phase::Cgi(_)) {
            return None;
        }
        let Phase::Cgi(mut ex) = std::mem::replace(&mut conn.phase, Phase::Reading) else {
            return None;
        };
        close_pipe(self.poller.as_mut(), &mut ex.stdin, &mut ex.stdin_interest);
        close_pipe(
            self.poller.as_mut(),
            &mut ex.stdout,
            &mut ex.stdout_interest,
        );
        self.cgi_ids.remove(&ex.id);
        self.runner.cancel(ex.id);
        self.cgi_active = self.cgi_active.saturating_sub(1);
        if ex.keep_alive && !ex.body_complete() {
            conn.discard = ex.body_left;
        }
        conn.request_started = None;
        Some(ex)
    }

    /// The client of a CGI exchange went away: the script is asked to stop
    /// (SIGTERM to its process group; the runner still enforces the time
    /// limit) so that it does not hold a slot nobody will read from.
    pub(crate) fn abandon_cgi(&mut self, idx: usize) {
        let Some(conn) = self.conns.get(idx).and_then(Option::as_ref) else {
            return;
        };
        if let Phase::Cgi(ex) = &conn.phase {
            if let (Some(pid), None) = (ex.pid, ex.exited) {
                signal_group(pid, Signal::SIGTERM);
            }
        }
        self.take_exchange(idx);
    }

    /// A CGI exchange's deadline passed.
    pub(crate) fn cgi_timed_out(&mut self, idx: usize) {
        let now = self.clock.now();
        let Some(Phase::Cgi(ex)) = self
            .conns
            .get(idx)
            .and_then(Option::as_ref)
            .map(|c| &c.phase)
        else {
            return;
        };
        if ex.eof_deadline.is_some_and(|t| t <= now) {
            self.pump_cgi(idx);
            return;
        }
        // The runner should have killed it; it may be gone (a script of a
        // dead runner is ours now), so make sure.
        if let (Some(pid), None) = (ex.pid, ex.exited) {
            signal_group(pid, Signal::SIGKILL);
        }
        self.end_cgi(idx, End::TimedOut);
    }
}

/// Signals a script's process group (its pid is the group's id).
fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), signal);
    }
}

fn set_nonblocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Writes what the pipe takes now.
fn write_some(pipe: &mut File, data: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < data.len() {
        match pipe.write(&data[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && written > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Watches a pipe for `want`. A pipe is in the poller only while it is
/// wanted: a pipe whose other end closed is reported on every wait, even
/// with no interest set. False if the poller refused it.
fn watch_pipe(
    poller: &mut dyn Poller,
    pipe: Option<&File>,
    token: Token,
    current: &mut Interest,
    want: Interest,
) -> bool {
    let Some(pipe) = pipe else {
        return true;
    };
    if *current == want {
        return true;
    }
    let fd = pipe.as_raw_fd();
    let result = if want == Interest::NONE {
        poller.deregister(fd)
    } else if *current == Interest::NONE {
        poller.register(fd, token, want)
    } else {
        poller.reregister(fd, token, want)
    };
    if result.is_ok() {
        *current = want;
    }
    result.is_ok()
}

/// Takes a pipe out of the poller (if it is in) and closes it.
fn close_pipe(poller: &mut dyn Poller, pipe: &mut Option<File>, interest: &mut Interest) {
    if let Some(file) = pipe.take() {
        if *interest != Interest::NONE {
            let _ = poller.deregister(file.as_raw_fd());
        }
        *interest = Interest::NONE;
    }
}
