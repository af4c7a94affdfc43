//! The listening socket: bound with a deep backlog, accepted from with
//! `accept4` so every client socket starts non-blocking and close-on-exec;
//! [`Acceptor`] pauses accepting when descriptors run out and closes the
//! socket when the server drains.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use crate::event::{Interest, Poller};
use crate::token::EventToken;

/// Pending connections the kernel may queue.
const BACKLOG: libc::c_int = 4096;
/// Connections accepted per readiness report of the listener. One, as
/// nginx does by default: the listener is level-triggered, so a backlog
/// is reported again on the next turn, and a lone connection costs no
/// second `accept4` that would only fail with EAGAIN.
pub(crate) const ACCEPT_BATCH: usize = 1;
/// After running out of descriptors, accepting pauses this long.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The listening socket in the loop.
#[derive(Debug)]
pub(crate) struct Acceptor {
    /// Closed (`None`) once draining starts.
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    paused_until: Option<Instant>,
    /// Its place among the server's listeners (its poller token).
    index: usize,
    /// Its connections speak TLS.
    tls: bool,
}

impl Acceptor {
    /// Takes a socket already listening (bound here, passed by systemd,
    /// or by the `--workers` parent) as listener `index`;
    /// [`register`](Self::register) puts it in the poller.
    pub(crate) fn adopt(listener: TcpListener, index: usize, tls: bool) -> io::Result<Acceptor> {
        set_nodelay(&listener)?;
        Ok(Acceptor {
            local_addr: listener.local_addr()?,
            listener: Some(listener),
            paused_until: None,
            index,
            tls,
        })
    }

    /// The address actually bound (with the real port).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// True when its connections speak TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls
    }

    pub(crate) fn register(&self, poller: &mut dyn Poller) -> io::Result<()> {
        match &self.listener {
            Some(listener) => {
                let token = EventToken::Listener(self.index).to_token();
                poller.register(listener.as_raw_fd(), token, Interest::READABLE)
            }
            None => Ok(()),
        }
    }

    fn watch(&self, poller: &mut dyn Poller, interest: Interest) -> io::Result<()> {
        match &self.listener {
            Some(listener) => {
                let token = EventToken::Listener(self.index).to_token();
                poller.reregister(listener.as_raw_fd(), token, interest)
            }
            None => Ok(()),
        }
    }

    /// Accepts one client, if one is waiting. Out of descriptors, it
    /// pauses accepting for [`ACCEPT_PAUSE`] and reports nothing.
    pub(crate) fn accept(
        &mut self,
        poller: &mut dyn Poller,
        now: Instant,
    ) -> io::Result<Option<(TcpStream, SocketAddr)>> {
        let Some(listener) = self.listener.as_ref() else {
            return Ok(None);
        };
        match accept(listener) {
            Err(e) if out_of_descriptors(&e) => {
                error_log!("cannot accept: {e}; pausing for {ACCEPT_PAUSE:?}");
                let _ = self.watch(poller, Interest::NONE);
                self.paused_until = Some(now + ACCEPT_PAUSE);
                Ok(None)
            }
            result => result,
        }
    }

    /// When a pause ends, if accepting is paused.
    pub(crate) fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Resumes accepting once a pause is over.
    pub(crate) fn resume_if_due(&mut self, poller: &mut dyn Poller, now: Instant) {
        if self.paused_until.is_some_and(|t| t <= now) {
            self.paused_until = None;
            let _ = self.watch(poller, Interest::READABLE);
        }
    }

    /// Closes the listening socket: new clients fail to connect at once
    /// rather than wait in the backlog until the server is gone.
    pub(crate) fn close(&mut self, poller: &mut dyn Poller) {
        if let Some(listener) = self.listener.take() {
            let _ = poller.deregister(listener.as_raw_fd());
        }
        self.paused_until = None;
    }
}

/// Binds `addr` and starts listening, non-blocking. No SO_REUSEPORT: no
/// later bind of the port, by any process, can take a share of its
/// connections (the `--workers` share this one socket instead).
/// An IPv6 address listens for IPv6 only (as nginx's `ipv6only=on`), so
/// that `0.0.0.0:80` and `[::]:80` can both be given.
pub(crate) fn bind_listening(addr: SocketAddr) -> io::Result<TcpListener> {
    match addr {
        SocketAddr::V4(_) => listen(TcpListener::bind(addr)?),
        SocketAddr::V6(v6) => listen(bind_v6_only(v6)?),
    }
}

/// A TCP socket bound to an IPv6 address with IPV6_V6ONLY (and
/// SO_REUSEADDR, as std's bind sets).
fn bind_v6_only(addr: std::net::SocketAddrV6) -> io::Result<TcpListener> {
    // SAFETY: socket(2) returns a new descriptor, owned at once below.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    let on: libc::c_int = 1;
    let set = |level, name| {
        // SAFETY: setsockopt with a pointer to a live c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        match rc {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    };
    set(libc::SOL_SOCKET, libc::SO_REUSEADDR)?;
    set(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)?;
    let sin6 = libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: addr.port().to_be(),
        sin6_flowinfo: addr.flowinfo(),
        sin6_addr: libc::in6_addr {
            s6_addr: addr.ip().octets(),
        },
        sin6_scope_id: addr.scope_id(),
    };
    // SAFETY: bind with a pointer to a live sockaddr_in6 and its size.
    let rc = unsafe {
        libc::bind(
            fd,
            (&sin6 as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(listener)
}

/// Makes a bound socket a non-blocking listener with a deep backlog.
fn listen(listener: TcpListener) -> io::Result<TcpListener> {
    listener.set_nonblocking(true)?;
    // A second listen() only raises the backlog std chose.
    // SAFETY: plain syscall on a socket we own.
    if unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) } < 0 {
        return Err(io::Error::last_os_error());
    }
    set_nodelay(&listener)?;
    Ok(listener)
}

/// Sets TCP_NODELAY on the listener, for the sockets it accepts.
fn set_nodelay(listener: &TcpListener) -> io::Result<()> {
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux,
    // which saves a setsockopt per connection. Without it, the last small
    // segment of a response sent in two writes (head, then sendfile) could
    // wait for the client's delayed ACK.
    let on: libc::c_int = 1;
    // SAFETY: setsockopt with a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Accepts one connection, if one is waiting.
fn accept(listener: &TcpListener) -> io::Result<Option<(TcpStream, SocketAddr)>> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage is large enough for any address; len says so.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            storage.as_mut_ptr().cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            _ => Err(err),
        };
    }
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    // SAFETY: the kernel filled in `len` bytes of the address.
    let storage = unsafe { storage.assume_init() };
    let peer = match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let sin: libc::sockaddr_in =
                unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
            SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))),
                u16::from_be(sin.sin_port),
            )
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)),
                u16::from_be(sin6.sin6_port),
            )
        }
        _ => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
    };
    Ok(Some((stream, peer)))
}

/// True for the accept errors that mean the process or the machine is out
/// of descriptors or memory (accepting pauses), as opposed to a failure of
/// one connection.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Lets the server hold as many descriptors (client sockets above all) as
/// the hard limit allows; returns the limit it then has (None if it
/// cannot be read).
pub(crate) fn raise_descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls with a valid pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return Some(raised.rlim_cur);
            }
        }
    }
    Some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_are_nonblocking_with_nodelay() {
        let listener = bind_listening("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let client = TcpStream::connect(addr).expect("connect");
        let accepted = loop {
            if let Some(accepted) = accept(&listener).expect("accept") {
                break accepted;
            }
            std::thread::yield_now();
        };
        let (stream, peer) = accepted;
        assert_eq!(peer, client.local_addr().expect("client addr"));
        assert!(stream.nodelay().expect("nodelay"), "TCP_NODELAY inherited");
        // SAFETY: F_GETFL on a descriptor we own.
        let flags = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_GETFL) };
        assert_ne!(flags & libc::O_NONBLOCK, 0, "non-blocking");
        // SAFETY: F_GETFD on a descriptor we own.
        let fd_flags = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(fd_flags & libc::FD_CLOEXEC, 0, "close-on-exec");
    }
}
