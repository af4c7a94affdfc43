//! The CGI pump: collects a request body into its spool, moves it into
//! the script once that runs, and the script's output out to the client,
//! as far as both pipes and the client allow, then sets what each pipe
//! waits for. One call does a bounded amount of work; a script with more
//! to give stays watched and is pumped again on the next turn.

use std::time::{Duration, Instant};

use crate::cgi::driver::{Cgi, End, EOF_GRACE};
use crate::cgi::exchange::{BodyError, Exchange, OutputEvent, Stage};
use crate::cgi::pipes::close_pipe;
use crate::cgi::spool::SpoolError;
use crate::connection::{Connection, ExchangeParts, OUTPUT_HIGH_WATER, WRITE_BUDGET};
use crate::event::{Interest, Poller};
use crate::http::status::Status;
use crate::next::{Next, Turn};
use crate::send::MemoryOnly;
use crate::token::EventToken;

/// Request-body bytes held for a script's stdin at most.
const TO_SCRIPT_MAX: usize = 64 * 1024;
/// Bytes read from a script's stdout per read.
const READ_CHUNK: usize = 64 * 1024;
/// Reads from one script per round of the pump.
const READS_PER_ROUND: usize = 8;
/// Rounds of reading and writing per pump: output keeps moving while the
/// client keeps up, but one fast script cannot hold the loop. A script
/// left with output to give stays watched and is pumped again next turn.
const PUMP_ROUNDS: usize = 8;
/// Output that ends this close to the time limit may have been cut by it.
const NEAR_LIMIT: Duration = Duration::from_secs(1);

impl Cgi {
    /// Moves everything that can move: body to the script, output to the
    /// client; ends the exchange when the output is over; then sets what
    /// each pipe waits for.
    pub(crate) fn pump(&mut self, conn: &mut Connection, turn: &mut Turn) -> Next {
        let slot = conn.id().slot();
        let Some(ExchangeParts {
            exchange: ex,
            input,
            output,
            mut sink,
            peer_closed,
        }) = conn.exchange_parts()
        else {
            return Next::Unchanged;
        };
        if matches!(ex.stage, Stage::Collecting(_)) {
            match ex.collect(input, self.config.max_body) {
                Ok(0) => {}
                Ok(used) => {
                    input.drain(..used);
                    ex.body_deadline = Some(turn.now + self.config.body_timeout);
                }
                Err(e) => {
                    if let BodyError::Spool(SpoolError::Io(why)) = &e {
                        error_log!("cannot spool a request body for a script: {why}");
                    }
                    return self.bad_body(conn, e.status(), turn);
                }
            }
            if ex.body_complete() {
                return self.launch_collected(conn, turn);
            }
            if peer_closed {
                // A half-close ended the body before its last chunk.
                return self.body_cut_short(conn, turn);
            }
            return Next::Continue;
        }
        // The body is whole by now: a half-close no longer matters.
        feed_script(ex, turn.poller);
        // Script output: to the client, while the client keeps up.
        let mut end = None;
        for _ in 0..PUMP_ROUNDS {
            let mut full = false;
            for _ in 0..READS_PER_ROUND {
                full = output.queued() > OUTPUT_HIGH_WATER;
                let Some(script) = ex.script().filter(|_| !full) else {
                    break;
                };
                let Some(stdout) = script.stdout.as_mut() else {
                    break;
                };
                self.buf.resize(READ_CHUNK, 0);
                match stdout.read(&mut self.buf) {
                    Ok(0) => {
                        close_pipe(turn.poller, &mut script.stdout);
                        break;
                    }
                    Ok(n) => match ex.on_output(&self.buf[..n], output, turn.stamp) {
                        OutputEvent::Progress => {}
                        OutputEvent::LocalRedirect(path) => {
                            return self.redirect(conn, &path, turn);
                        }
                        OutputEvent::BadHead(why) => {
                            error_log!(
                                "{:?}: bad CGI header block: {why}",
                                format!("/{}", ex.request.target.key)
                            );
                            end = Some(End::BadHead);
                            break;
                        }
                    },
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        end = Some(End::Eof);
                        break;
                    }
                }
            }
            if end.is_some() || !full {
                break;
            }
            // Hand the client what is queued; read on if it took enough.
            if !output.is_empty()
                && output
                    .write_to(sink.as_dyn(), WRITE_BUDGET, &mut MemoryOnly)
                    .is_err()
            {
                return Next::Close;
            }
            if output.queued() > OUTPUT_HIGH_WATER {
                break;
            }
        }
        let end = end.or_else(|| self.output_over(ex, turn.now));
        if let Some(end) = end {
            return self.end(conn, end, turn);
        }
        // What each pipe waits for.
        let stdin_want = match ex.body_waiting() {
            true => Interest::WRITABLE,
            false => Interest::NONE,
        };
        let stdout_want = match output.queued() > OUTPUT_HIGH_WATER {
            true => Interest::NONE,
            false => Interest::READABLE,
        };
        let watched = ex.script().is_none_or(|script| {
            let stdin = EventToken::ScriptStdin(slot).to_token();
            let stdout = EventToken::ScriptStdout(slot).to_token();
            script
                .stdin
                .as_mut()
                .is_none_or(|pipe| pipe.watch(turn.poller, stdin, stdin_want))
                && script
                    .stdout
                    .as_mut()
                    .is_none_or(|pipe| pipe.watch(turn.poller, stdout, stdout_want))
        });
        if !watched {
            return self.end(conn, End::BadHead, turn);
        }
        Next::Continue
    }

    /// The client shut down its side before its whole request body came:
    /// a short body, answered 400 as nginx and lighttpd answer a body cut
    /// short (no script has started for it).
    fn body_cut_short(&mut self, conn: &mut Connection, turn: &mut Turn) -> Next {
        self.bad_body(conn, Status::BAD_REQUEST, turn)
    }

    /// After the loop wrote to the client: a script whose output was held
    /// back while the client was behind is watched again once the queue
    /// is low (its readiness brings the next pump).
    pub(crate) fn rearm(&mut self, conn: &mut Connection, poller: &mut dyn Poller) {
        let slot = conn.id().slot();
        let Some(ExchangeParts {
            exchange, output, ..
        }) = conn.exchange_parts()
        else {
            return;
        };
        if output.queued() > OUTPUT_HIGH_WATER {
            return;
        }
        if let Some(stdout) = exchange.script().and_then(|s| s.stdout.as_mut()) {
            let token = EventToken::ScriptStdout(slot).to_token();
            // A refusal leaves the script to its deadline.
            let _ = stdout.watch(poller, token, Interest::READABLE);
        }
    }

    /// Whether a running script's output is over, and how.
    fn output_over(&self, ex: &mut Exchange, now: Instant) -> Option<End> {
        let script = ex.script()?;
        let output_over = script.stdout.is_none();
        let grace_over = ex.eof_deadline.is_some_and(|t| t <= now);
        // The output may have ended because the runner killed the script
        // at its time limit. Without a header block (502 or 504?), or
        // near the limit (a complete response, or a cut one that must not
        // look complete?), wait briefly for the exit report before
        // deciding.
        let near_limit = now + NEAR_LIMIT >= ex.started + self.config.timeout;
        let wants_report = ex.exited.is_none() && (!ex.responded() || near_limit);
        if output_over && wants_report && ex.eof_deadline.is_none() {
            ex.eof_deadline = Some(now + EOF_GRACE);
            None
        } else if (output_over && !wants_report) || grace_over {
            Some(match ex.exited {
                Some((_, true)) => End::TimedOut,
                _ => End::Eof,
            })
        } else {
            None
        }
    }
}

/// Moves request-body bytes from the spool to the script, until the pipe
/// is full or the whole body is in.
fn feed_script(ex: &mut Exchange, poller: &mut dyn Poller) {
    let mut first = true;
    loop {
        let before = ex.to_script.len();
        ex.take_body(TO_SCRIPT_MAX);
        let moved = ex.to_script.len() > before;
        let body_complete = ex.body_complete();
        let Stage::Running(script) = &mut ex.stage else {
            return;
        };
        if !first && !moved {
            return;
        }
        first = false;
        let mut blocked = false;
        match script.stdin.as_mut() {
            // The script closed its stdin: the rest of the body is dropped.
            None => {
                ex.to_script.clear();
                ex.spool = None;
            }
            Some(stdin) => match stdin.write_some(&ex.to_script) {
                Ok(n) => {
                    blocked = n < ex.to_script.len();
                    ex.to_script.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => blocked = true,
                Err(_) => {
                    ex.to_script.clear();
                    ex.spool = None;
                    close_pipe(poller, &mut script.stdin);
                }
            },
        }
        if body_complete && ex.to_script.is_empty() && ex.spool.is_none() {
            close_pipe(poller, &mut script.stdin);
        }
        if blocked {
            return;
        }
    }
}
