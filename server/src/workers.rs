//! `--workers N`: N front processes serving one port, each a whole server
//! (its own loop, helpers and cgi-runner) bound with SO_REUSEPORT, so the
//! kernel spreads the connections among them, under this supervising
//! parent. The parent holds the port (a bound socket that does not
//! listen), starts the workers (this executable, with the same arguments
//! and `--workers 1 --worker --listen ADDR`), waits until each reports
//! `READY=1` on a datagram socket of the parent's (the `sd_notify`
//! protocol, see [`systemd`](crate::systemd)), prints the listening line
//! and tells systemd. Then it restarts a worker that dies (the back-off
//! of [`backoff`](crate::backoff)), passes SIGTERM, SIGINT and SIGHUP on,
//! and exits once the workers have drained.
//!
//! The parent does no I/O of its own but this; it waits in `poll` on the
//! signal pipe, with a timeout for the next restart.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{self, UnixDatagram};
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
use crate::listener::bind_reuse_port;
use crate::signals::Signals;
use crate::systemd::{self, Notifier};

/// How long the workers may take to report ready at start-up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often start-up looks at the workers while it waits for them.
const START_POLL: Duration = Duration::from_millis(50);

/// One worker slot: its process (if running), when it started, its
/// back-off, and when it is due to be started again.
struct Worker {
    child: Option<Child>,
    started: Instant,
    backoff: RestartBackoff,
    restart_at: Option<Instant>,
}

/// The supervising parent of `config.workers` workers.
pub struct Pool {
    /// The arguments the workers get before their own (the command line
    /// as given, without the program name).
    args: Vec<OsString>,
    addr: SocketAddr,
    /// Holds the port; never listens.
    _port: TcpListener,
    ready: UnixDatagram,
    ready_name: String,
    workers: Vec<Worker>,
    signals: Signals,
    notifier: Option<Notifier>,
}

impl Pool {
    /// Holds the port and starts the workers; returns once all are ready.
    pub fn start(config: &Config, argv: Vec<OsString>) -> Result<Pool> {
        if systemd::inherited_listener()?.is_some() {
            bail!("--workers takes no socket from systemd (each worker binds the port with SO_REUSEPORT); use a single worker with socket activation");
        }
        let port = bind_reuse_port(config.listen, false)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = port.local_addr()?;
        let notifier = Notifier::from_env();
        let signals = Signals::install().context("cannot install signal handlers")?;
        if let Some(path) = &config.error_log {
            log_file::redirect_stderr(path)
                .with_context(|| format!("cannot open the error log {}", path.display()))?;
        }
        let ready_name = format!("amped-workers-{}", std::process::id());
        let ready = UnixDatagram::bind_addr(&net::SocketAddr::from_abstract_name(&ready_name)?)
            .context("cannot open the workers' readiness socket")?;
        ready.set_read_timeout(Some(START_POLL))?;
        let now = Instant::now();
        let workers = (0..config.workers)
            .map(|_| Worker {
                child: None,
                started: now,
                backoff: RestartBackoff::default(),
                restart_at: None,
            })
            .collect();
        let mut pool = Pool {
            args: argv.into_iter().skip(1).collect(),
            addr,
            _port: port,
            ready,
            ready_name,
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
        // From now on it is only drained (restarted workers report too).
        pool.ready.set_nonblocking(true)?;
        Ok(pool)
    }

    /// The port the workers serve.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Tells systemd (if it asked) that the workers are serving.
    pub fn notify_ready(&self) {
        if let Some(notifier) = &self.notifier {
            notifier.notify("READY=1");
        }
    }

    /// Starts worker `i`.
    fn spawn(&mut self, i: usize) -> Result<()> {
        let exe = std::env::current_exe().context("cannot find the server's own executable")?;
        let mut command = Command::new(exe);
        command
            .args(&self.args)
            .args(["--workers", "1", "--worker", "--listen"])
            .arg(self.addr.to_string())
            .env("NOTIFY_SOCKET", format!("@{}", self.ready_name))
            .stdin(Stdio::null())
            // Its own process group, as the helpers: a Ctrl-C reaches the
            // parent alone, which passes it on.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between
        // fork and exec.
        unsafe {
            command.pre_exec(|| {
                // A worker whose parent is gone drains and exits.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = command.spawn().context("cannot start a worker")?;
        let worker = &mut self.workers[i];
        worker.child = Some(child);
        worker.started = Instant::now();
        worker.restart_at = None;
        Ok(())
    }

    /// Waits for one `READY=1` from each worker; fails if one exits first.
    fn wait_ready(&mut self) -> Result<()> {
        let begin = Instant::now();
        let mut ready = 0;
        let mut buf = [0u8; 64];
        while ready < self.workers.len() {
            if begin.elapsed() > START_TIMEOUT {
                bail!("the workers did not report ready within {START_TIMEOUT:?}");
            }
            if let Ok(n) = self.ready.recv(&mut buf) {
                if &buf[..n] == b"READY=1" {
                    ready += 1;
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
    pub fn run(&mut self) -> Result<()> {
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
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(t) => {
                let ms = u16::try_from(t.as_millis().saturating_add(1)).unwrap_or(u16::MAX);
                PollTimeout::from(ms)
            }
        };
        // SAFETY: the signal pipe's descriptor outlives this call.
        let signals = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.signals.fd()) };
        let mut fds = [
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.ready.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll failed"),
        }
        let mut buf = [0u8; 64];
        while self.ready.recv(&mut buf).is_ok() {}
        Ok(())
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
