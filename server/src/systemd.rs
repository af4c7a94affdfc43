//! systemd's two protocols, written by hand (each is an environment
//! variable or two and a few system calls; the crates for them bring more
//! than they save): socket activation, where the listening socket arrives
//! as descriptor 3 with `LISTEN_FDS` and `LISTEN_PID` (as `sd_listen_fds`
//! reads them), and readiness notification, `READY=1` and `STOPPING=1`
//! sent as datagrams to `NOTIFY_SOCKET` (a path, or an abstract name
//! starting with `@`), as `sd_notify` does.
//!
//! Both read and unset their variables once, at start-up while the
//! process has one thread, so that the children never see them.

use std::io;
use std::net::TcpListener;
use std::os::fd::{BorrowedFd, FromRawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use anyhow::{bail, Result};
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::socket::{getsockopt, sockopt};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// The listening sockets systemd passed, if it passed any to this
/// process, each with whether it speaks TLS: a socket whose name
/// (`FileDescriptorName=` in its unit, `LISTEN_FDNAMES`) is `https` or
/// `tls`, or begins with `https-` or `tls-`, does; any other is plain HTTP.
pub(crate) fn inherited_listeners() -> Result<Option<Vec<(TcpListener, bool)>>> {
    let fds = std::env::var("LISTEN_FDS").ok();
    let pid = std::env::var("LISTEN_PID").ok();
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    for name in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        std::env::remove_var(name);
    }
    let (Some(fds), Some(pid)) = (fds, pid) else {
        return Ok(None);
    };
    // Meant for another process (an exec'ing wrapper's parent, say).
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None);
    }
    let count: i32 = match fds.trim().parse() {
        Ok(n) if (0..=crate::token::MAX_LISTENERS as i32).contains(&n) => n,
        Ok(n) if n > 0 => bail!(
            "systemd passed {n} sockets (LISTEN_FDS); amped takes at most {}",
            crate::token::MAX_LISTENERS
        ),
        _ => bail!("LISTEN_FDS={fds} is not a number of descriptors"),
    };
    if count == 0 {
        return Ok(None);
    }
    let mut names = names.split(':');
    let mut listeners = Vec::with_capacity(count as usize);
    for fd in LISTEN_FDS_START..LISTEN_FDS_START + count {
        let tls = names.next().is_some_and(names_tls);
        listeners.push((adopt_listener(fd, "a socket passed by systemd")?, tls));
    }
    Ok(Some(listeners))
}

/// True for a socket name that marks TLS.
fn names_tls(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["https", "tls"]
        .iter()
        .any(|tag| name == *tag || name.starts_with(&format!("{tag}-")))
}

/// Makes descriptor `fd` (passed as `what`: by systemd, or by the
/// `--workers` parent) the listener: a listening socket, made
/// close-on-exec and non-blocking.
pub(crate) fn adopt_listener(fd: i32, what: &str) -> Result<TcpListener> {
    // SAFETY: only used for the checks below; a descriptor that is not
    // open makes fcntl fail with EBADF, which is reported.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let source = what;
    let bad =
        |step: &str, e: nix::Error| anyhow::anyhow!("{source} (descriptor {fd}): {step}: {e}");
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|e| bad("F_SETFD", e))?;
    let listening =
        getsockopt(&borrowed, sockopt::AcceptConn).map_err(|e| bad("not a socket", e))?;
    if !listening {
        bail!("{source} (descriptor {fd}) is not listening");
    }
    let flags = fcntl(borrowed, FcntlArg::F_GETFL).map_err(|e| bad("F_GETFL", e))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(borrowed, FcntlArg::F_SETFL(flags)).map_err(|e| bad("F_SETFL", e))?;
    // SAFETY: it was handed to this process (systemd's LISTEN_PID is
    // ours, or the workers' parent put it there); nothing else owns it.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}

/// Where readiness is reported, if systemd asked for it.
#[derive(Debug)]
pub(crate) struct Notifier {
    socket: UnixDatagram,
    /// Where to send; `None` for a socket already connected (one end of
    /// the socketpair a `--workers` parent hands each worker).
    address: Option<SocketAddr>,
}

impl Notifier {
    /// Reads and unsets `NOTIFY_SOCKET`. None when it is not set; an
    /// unusable one is reported on the error log and ignored (the service
    /// then fails its start-up timeout, which names the cause).
    pub(crate) fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        std::env::remove_var("NOTIFY_SOCKET");
        match Notifier::open(&path.to_string_lossy()) {
            Ok(notifier) => Some(notifier),
            Err(e) => {
                error_log!("NOTIFY_SOCKET={}: {e}", path.to_string_lossy());
                None
            }
        }
    }

    fn open(path: &str) -> io::Result<Notifier> {
        let address = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name)?,
            None if path.starts_with('/') => SocketAddr::from_pathname(path)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "neither an absolute path nor an abstract name (@NAME)",
                ))
            }
        };
        let socket = UnixDatagram::unbound()?;
        // A receiver whose queue is full must not stall the event loop.
        socket.set_nonblocking(true)?;
        Ok(Notifier {
            socket,
            address: Some(address),
        })
    }

    /// Reports on descriptor `fd`, a connected datagram socket this
    /// process was handed (a worker's end of its parent's socketpair).
    pub(crate) fn inherited(fd: i32) -> Result<Notifier> {
        // SAFETY: only used for the check below; a descriptor that is not
        // open makes fcntl fail with EBADF, which is reported.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
            .map_err(|e| anyhow::anyhow!("the readiness socket (descriptor {fd}): {e}"))?;
        // SAFETY: the parent handed this descriptor to this process for
        // this use; nothing else in the process owns it.
        let socket = unsafe { UnixDatagram::from_raw_fd(fd) };
        socket.set_nonblocking(true)?;
        Ok(Notifier {
            socket,
            address: None,
        })
    }

    /// A datagram its parent left on a worker's socketpair before the
    /// worker started (the session-ticket key), if one waits.
    pub(crate) fn handed(&self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 256];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(buf[..n].to_vec())
    }

    /// Sends `state` (`READY=1`, `STOPPING=1`). A failure is logged: the
    /// server goes on serving either way.
    pub(crate) fn notify(&self, state: &str) {
        let sent = match &self.address {
            Some(address) => self.socket.send_to_addr(state.as_bytes(), address),
            None => self.socket.send(state.as_bytes()),
        };
        if let Err(e) = sent {
            error_log!("cannot tell systemd {state}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abstract_and_path_names_are_reached() {
        let name = format!("amped-notify-test-{}", std::process::id());
        let abstract_addr = SocketAddr::from_abstract_name(&name).expect("addr");
        let receiver = UnixDatagram::bind_addr(&abstract_addr).expect("bind abstract");
        Notifier::open(&format!("@{name}"))
            .expect("open")
            .notify("READY=1");
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");
        assert!(Notifier::open("relative/path").is_err());
    }
}
