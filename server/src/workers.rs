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
use crate::inherited_fds::{WORKER_LISTENER_FD, WORKER_READY_FD};
use crate::listener::bind_listening;
use crate::signals::Signals;
use crate::systemd::{self, Notifier};

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
    addr: SocketAddr,
    /// The socket every worker accepts from; the parent never does.
    listener: TcpListener,
    workers: Vec<Worker>,
    signals: Signals,
    notifier: Option<Notifier>,
}

impl Pool {
    /// Listens (or takes systemd's socket) and starts the workers; returns
    /// once all are ready.
    pub(crate) fn start(config: &Config, argv: Vec<OsString>) -> Result<Pool> {
        let listener = match systemd::inherited_listener()? {
            Some(listener) => listener,
            None => bind_listening(config.listen)
                .with_context(|| format!("cannot listen on {}", config.listen))?,
        };
        let addr = listener.local_addr()?;
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
            addr,
            listener,
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

    /// The port the workers serve.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
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
        let listener_fd = self.listener.as_raw_fd();
        let ready_fd = theirs.as_raw_fd();
        let mut command = Command::new(exe);
        command
            .args(&self.args)
            .args(["--workers", "1", "--worker", "--listen"])
            .arg(self.addr.to_string())
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            // Its own process group, as the helpers: a Ctrl-C reaches the
            // parent alone, which passes it on.
            .process_group(0);
        // SAFETY: prctl, fcntl and dup2 are async-signal-safe; nothing else
        // runs between fork and exec. The readiness end is moved above the
        // listener's number first, so that putting the listener at 3
        // cannot overwrite it; dup2 leaves both without close-on-exec.
        unsafe {
            command.pre_exec(move || {
                // A worker whose parent is gone drains and exits.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                let ready = libc::fcntl(ready_fd, libc::F_DUPFD_CLOEXEC, WORKER_READY_FD + 1);
                // dup2 onto itself would leave close-on-exec set.
                let listener = match listener_fd == WORKER_LISTENER_FD {
                    true => libc::fcntl(listener_fd, libc::F_SETFD, 0),
                    false => libc::dup2(listener_fd, WORKER_LISTENER_FD),
                };
                if ready < 0 || listener < 0 || libc::dup2(ready, WORKER_READY_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
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
