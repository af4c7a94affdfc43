//! Client sockets whose kernel buffers the test controls, for tests that
//! need a response to be larger than everything the kernel can hold in
//! flight: a receive buffer made small before connecting (so the window
//! never grows), and the machine's largest buffers read from `/proc/sys`
//! and `getsockopt` instead of taken for granted; and a client that leaves
//! with a reset instead of a FIN.

use std::fs;
use std::io;
use std::mem::size_of;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The receive buffer asked for by [`connect_with_small_receive_buffer`]
/// (the kernel doubles it for its own bookkeeping).
pub const SMALL_RECEIVE_BUFFER: usize = 64 * 1024;

/// A TCP connection to `addr` (IPv4) whose receive buffer is set to
/// [`SMALL_RECEIVE_BUFFER`] before the handshake, so that receive-buffer
/// auto-tuning never grows it.
pub fn connect_with_small_receive_buffer(addr: SocketAddr) -> TcpStream {
    try_connect_small(addr).unwrap_or_else(|e| panic!("connect to {addr} with a small buffer: {e}"))
}

fn try_connect_small(addr: SocketAddr) -> io::Result<TcpStream> {
    let SocketAddr::V4(v4) = addr else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "IPv4 only"));
    };
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let size = libc::c_int::try_from(SMALL_RECEIVE_BUFFER).expect("fits in c_int");
    // SAFETY: setsockopt on our socket with a correctly sized int.
    let rc = unsafe {
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::addr_of!(size).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: connect(2) on our socket with a valid sockaddr_in and its size.
    let rc = unsafe {
        libc::connect(
            raw,
            std::ptr::addr_of!(sin).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpStream::from(fd))
}

/// The last number in a `/proc/sys` file (the maximum of `tcp_wmem`'s
/// `min default max`), if it can be read.
pub fn sysctl_last(path: &str) -> Option<usize> {
    fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// The largest send buffer a server's socket can have here: what TCP
/// auto-tuning may grow it to (`tcp_wmem`'s maximum) or what `SO_SNDBUF`
/// may set (twice `wmem_max`), whichever is larger; generous guesses where
/// `/proc` hides them.
pub fn max_send_buffer() -> usize {
    let tuned = sysctl_last("/proc/sys/net/ipv4/tcp_wmem").unwrap_or(64 << 20);
    let set = sysctl_last("/proc/sys/net/core/wmem_max").unwrap_or(32 << 20);
    tuned.max(2 * set)
}

/// The receive buffer the kernel really gave `stream` (`SO_RCVBUF`).
pub fn receive_buffer(stream: &TcpStream) -> usize {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt(2) on an open socket, into a c_int with its size.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    };
    assert_eq!(
        rc,
        0,
        "getsockopt SO_RCVBUF: {}",
        io::Error::last_os_error()
    );
    usize::try_from(value).expect("a non-negative buffer size")
}

/// A response size no kernel buffering can absorb between the server and
/// a client connected with [`connect_with_small_receive_buffer`]: at least
/// `at_least`, and four times the server's largest send buffer plus the
/// client's receive buffer (doubled by the kernel).
pub fn larger_than_socket_buffers(at_least: usize) -> usize {
    at_least.max(4 * (max_send_buffer() + 2 * SMALL_RECEIVE_BUFFER))
}

/// Closes `stream` with `SO_LINGER {1, 0}`, so the server sees a reset
/// (RST) rather than an orderly end-of-file.
pub fn close_with_reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt with a valid socket and a correctly sized value.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", io::Error::last_os_error());
    drop(stream);
}
