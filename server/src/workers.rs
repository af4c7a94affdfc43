//! `--workers N`: N front processes serving one port, each a whole server
//! (its own loop, helpers and cgi-runner), under this supervising parent.
//! The parent makes the one listening socket (bound without SO_REUSEPORT,
//! or the one systemd passed), so that no later bind of the port by any
//! process can take a share of its connections; every worker accepts from
//! it. It starts the workers (this executable, with the same arguments
//! and `--workers 1 --worker`), each handed the listener at descriptor
//! [`WORKER_LISTENER_FD`] and its end of a socketpair at
//! [`WORKER_READY_FD`], waits until each reports `READY=1` there (the
//! `sd_notify` message, see [`systemd`](crate::systemd)), prints the
//! listening line and tells systemd. Then it restarts a worker that dies (the back-off
//! of [`backoff`](crate::backoff)), passes SIGTERM, SIGINT and SIGHUP on,
//! and exits once the workers have drained.
//!
//! The parent does no I/O of its own but this; it waits in `poll` on the
//! signal pipe, with a timeout for the next restart.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use protocol::log_file;

use crate::backoff::RestartBackoff;
use crate::config::Config;
use crate::inherited_fds::{WORKER_LISTENERS_FD, WORKER_READY_FD};
use crate::signals::Signals;
use crate::startup::open_listeners;
use crate::systemd::Notifier;
use crate::tls_config::{RotatingTickets, TicketSeed};

/// How long the workers may take to report ready at start-up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often start-up looks at the workers while it waits for them.
const START_POLL: Duration = Duration::from_millis(50);

/// One worker slot: its process (if running), the parent's end of its
/// readiness socketpair, when it started, its back-off, and when it is
/// due to be started again.
struct Worker {
    child: Option<Child>,
    ready: Option<UnixDatagram>,
    started: Instant,
    backoff: RestartBackoff,
    restart_at: Option<Instant>,
}

/// The supervising parent of `config.workers` workers.
pub(crate) struct Pool {
    /// The arguments the workers get before their own (the command line
    /// as given, without the program name).
    args: Vec<OsString>,
    /// The sockets every worker accepts from (the parent never does),
    /// each with whether it speaks TLS.
    listeners: Vec<(TcpListener, bool)>,
    /// The session-ticket keys each worker is started with, when a
    /// listener speaks TLS.
    tickets: Option<RotatingTickets>,
    workers: Vec<Worker>,
    signals: Signals,
    notifier: Option<Notifier>,
}

impl Pool {
    /// Listens (or takes systemd's socket) and starts the workers; returns
    /// once all are ready.
    pub(crate) fn start(config: &Config, argv: Vec<OsString>) -> Result<Pool> {
        let listeners = open_listeners(config)?;
        let tickets = match listeners.iter().any(|(_, tls)| *tls) {
            true => Some(RotatingTickets::new(
                TicketSeed::generate().map_err(anyhow::Error::msg)?,
            )),
            false => None,
        };
        let notifier = Notifier::from_env();
        let signals = Signals::install().context("cannot install signal handlers")?;
        if let Some(path) = &config.error_log {
            log_file::redirect_stderr(path)
                .with_context(|| format!("cannot open the error log {}", path.display()))?;
        }
        let now = Instant::now();
        let workers = (0..config.workers)
            .map(|_| Worker {
                child: None,
                ready: None,
                started: now,
                backoff: RestartBackoff::default(),
                restart_at: None,
            })
            .collect();
        let mut pool = Pool {
            args: argv.into_iter().skip(1).collect(),
            listeners,
            tickets,
            workers,
            signals,
            notifier,
        };
        for i in 0..pool.workers.len() {
            if let Err(e) = pool.spawn(i) {
                pool.stop_all(Signal::SIGKILL);
                return Err(e);
            }
        }
        if let Err(e) = pool.wait_ready() {
            pool.stop_all(Signal::SIGKILL);
            return Err(e);
        }
        Ok(pool)
    }

    /// The addresses the workers serve, each with whether it speaks TLS.
    pub(crate) fn local_addrs(&self) -> Vec<(SocketAddr, bool)> {
        self.listeners
            .iter()
            .filter_map(|(l, tls)| Some((l.local_addr().ok()?, *tls)))
            .collect()
    }

    /// Tells systemd (if it asked) that the workers are serving.
    pub(crate) fn notify_ready(&self) {
        if let Some(notifier) = &self.notifier {
            notifier.notify("READY=1");
        }
    }

    /// Starts worker `i`.
    fn spawn(&mut self, i: usize) -> Result<()> {
        let exe = std::env::current_exe().context("cannot find the server's own executable")?;
        let (ours, theirs) =
            UnixDatagram::pair().context("cannot make a worker's readiness socketpair")?;
        ours.set_nonblocking(true)?;
        if let Some(seed) = self
            .tickets
            .as_ref()
            .and_then(RotatingTickets::current_seed)
        {
            // Waits in the worker's end until it reads it at start-up.
            ours.send(&seed.to_bytes())
                .context("cannot hand a worker its ticket key")?;
        }
        let listener_fds: Vec<i32> = self.listeners.iter().map(|(l, _)| l.as_raw_fd()).collect();
        let kinds: Vec<&str> = self
            .listeners
            .iter()
            .map(|(_, tls)| if *tls { "https" } else { "http" })
            .collect();
        let ready_fd = theirs.as_raw_fd();
        let mut command = Command::new(exe);
        command
            .args(&self.args)
            .args(["--workers", "1", "--worker", "--worker-sockets"])
            .arg(kinds.join(","))
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            // Its own process group, as the helpers: a Ctrl-C reaches the
            // parent alone, which passes it on.
            .process_group(0);
        let above = WORKER_LISTENERS_FD + listener_fds.len() as i32;
        // SAFETY: prctl, fcntl and dup2 are async-signal-safe; nothing else
        // runs between fork and exec, and the closure allocates nothing
        // (it only reads `listener_fds`). Every descriptor is first moved
        // above the numbers it goes to, so that putting one in place
        // cannot overwrite another; dup2 leaves each without
        // close-on-exec.
        unsafe {
            command.pre_exec(move || {
                // A worker whose parent is gone drains and exits.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                let ready = libc::fcntl(ready_fd, libc::F_DUPFD_CLOEXEC, above);
                let mut moved = [0i32; crate::token::MAX_LISTENERS];
                for (i, &fd) in listener_fds.iter().enumerate() {
                    moved[i] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, above);
                    if moved[i] < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if ready < 0 || libc::dup2(ready, WORKER_READY_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                for (i, &fd) in moved[..listener_fds.len()].iter().enumerate() {
                    if libc::dup2(fd, WORKER_LISTENERS_FD + i as i32) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = command.spawn().context("cannot start a worker")?;
        drop(theirs);
        let worker = &mut self.workers[i];
        worker.child = Some(child);
        worker.ready = Some(ours);
        worker.started = Instant::now();
        worker.restart_at = None;
        Ok(())
    }

    /// Waits for one `READY=1` from each worker; fails if one exits first.
    fn wait_ready(&mut self) -> Result<()> {
        let begin = Instant::now();
        let mut ready = vec![false; self.workers.len()];
        let mut buf = [0u8; 64];
        while ready.contains(&false) {
            if begin.elapsed() > START_TIMEOUT {
                bail!("the workers did not report ready within {START_TIMEOUT:?}");
            }
            self.wait_reports(Some(START_POLL))?;
            for (worker, ready) in self.workers.iter().zip(&mut ready) {
                let Some(socket) = &worker.ready else {
                    continue;
                };
                while let Ok(n) = socket.recv(&mut buf) {
                    *ready |= &buf[..n] == b"READY=1";
                }
            }
            for worker in &mut self.workers {
                if let Some(Ok(Some(status))) = worker.child.as_mut().map(Child::try_wait) {
                    bail!("a worker exited at start ({status})");
                }
            }
        }
        Ok(())
    }

    /// Supervises until the workers have drained after SIGTERM or SIGINT.
    pub(crate) fn run(&mut self) -> Result<()> {
        let mut draining = false;
        loop {
            let now = Instant::now();
            let timeout = self
                .workers
                .iter()
                .filter_map(|w| w.restart_at)
                .min()
                .map(|t| t.saturating_duration_since(now));
            self.wait(timeout)?;
            let arrived = self.signals.take();
            if arrived.terminate && !draining {
                draining = true;
                if let Some(notifier) = &self.notifier {
                    notifier.notify("STOPPING=1");
                }
                self.signal_all(Signal::SIGTERM);
            }
            if arrived.hangup {
                self.signal_all(Signal::SIGHUP);
                info_log!("SIGHUP: passed on to the workers");
            }
            self.reap(draining);
            if draining {
                if self.workers.iter().all(|w| w.child.is_none()) {
                    return Ok(());
                }
                continue;
            }
            let now = Instant::now();
            for i in 0..self.workers.len() {
                if self.workers[i].restart_at.is_some_and(|t| t <= now) {
                    if let Err(e) = self.spawn(i) {
                        error_log!("{e:#}; trying again");
                        let delay = self.workers[i].backoff.on_death(Duration::ZERO);
                        self.workers[i].restart_at = Some(now + delay);
                    }
                }
            }
        }
    }

    /// Waits for a signal or a worker's report, at most `timeout`
    /// (forever if None), and drains the reports (a restarted worker's
    /// `READY=1`, a draining one's `STOPPING=1`): nothing waits on them.
    fn wait(&self, timeout: Option<Duration>) -> Result<()> {
        self.wait_reports(timeout)?;
        let mut buf = [0u8; 64];
        for socket in self.workers.iter().filter_map(|w| w.ready.as_ref()) {
            while socket.recv(&mut buf).is_ok() {}
        }
        Ok(())
    }

    /// Waits for a signal or a worker's report, at most `timeout`
    /// (forever if None).
    fn wait_reports(&self, timeout: Option<Duration>) -> Result<()> {
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(t) => {
                let ms = u16::try_from(t.as_millis().saturating_add(1)).unwrap_or(u16::MAX);
                PollTimeout::from(ms)
            }
        };
        // SAFETY: the signal pipe's descriptor outlives this call.
        let signals = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.signals.fd()) };
        let reports = self.workers.iter().filter_map(|w| w.ready.as_ref());
        let mut fds: Vec<PollFd> = std::iter::once(signals.as_fd())
            .chain(reports.map(AsFd::as_fd))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(e).context("poll failed"),
        }
    }

    /// Collects the workers that exited; schedules their restart unless
    /// draining.
    fn reap(&mut self, draining: bool) {
        let now = Instant::now();
        for (i, worker) in self.workers.iter_mut().enumerate() {
            let Some(child) = worker.child.as_mut() else {
                continue;
            };
            let status = match child.try_wait() {
                Ok(Some(status)) => status,
                Ok(None) | Err(_) => continue,
            };
            let pid = child.id();
            worker.child = None;
            worker.ready = None;
            if draining {
                continue;
            }
            let delay = worker.backoff.on_death(now.duration_since(worker.started));
            error_log!("worker {i} (pid {pid}) exited: {status}; restarting in {delay:?}");
            worker.restart_at = Some(now + delay);
        }
    }

    fn signal_all(&self, signal: Signal) {
        for child in self.workers.iter().filter_map(|w| w.child.as_ref()) {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), signal);
            }
        }
    }

    /// Stops every worker (after a failed start) and reaps them.
    fn stop_all(&mut self, signal: Signal) {
        self.signal_all(signal);
        for worker in &mut self.workers {
            if let Some(mut child) = worker.child.take() {
                let _ = child.wait();
            }
        }
    }
}
