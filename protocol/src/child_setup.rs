//! A child's start-up, the same for the disk helpers and the CGI runner:
//! arranging to die with the server, adopting the Unix socket the server
//! handed down, and the child's side of the handshake.
//!
//! A child notes its parent at the very start of `main`, then calls
//! [`take_channel`]: it asks for a parent-death signal (the helper wants
//! SIGKILL; the runner SIGTERM, so that it can kill its scripts first),
//! checks that the parent is still the one noted, and takes over the
//! inherited descriptor named by `--channel-fd`. Once it has opened what
//! it serves from, it answers the server's hello with [`handshake`]. The
//! errors say what went wrong; the child's log prefix (see
//! [`error_log`](mod@crate::error_log)) says who.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::signal::Signal;
use nix::sys::stat::{fstat, SFlag};
use nix::unistd::Pid;

use crate::{Channel, Error, Greeting, Role};

/// The exit status of a child whose `--channel-fd` is unusable: a usage
/// error, as clap reports its own.
pub const USAGE_EXIT_STATUS: u8 = 2;

/// The parent died before the child could arrange to die with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server exited before this process could start")]
pub struct Orphaned;

/// Why an inherited descriptor cannot be the channel, for a person to read
/// (for example "descriptor 9: Bad file number").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadChannel(pub String);

/// Why a child could not take up its channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Orphaned(#[from] Orphaned),
    #[error("--channel-fd: {0}")]
    BadChannel(#[from] BadChannel),
}

impl SetupError {
    /// The status the child exits with: 0 when the server is gone (nobody
    /// is left to tell, as at end-of-file on the channel), otherwise
    /// [`USAGE_EXIT_STATUS`].
    pub fn exit_status(&self) -> u8 {
        match self {
            SetupError::Orphaned(_) => 0,
            SetupError::BadChannel(_) => USAGE_EXIT_STATUS,
        }
    }
}

/// Everything a child does with its channel before it may use it:
/// [`die_with_parent`] with `death_signal`, then [`adopt_socket`] of the
/// inherited `fd`, wrapped as a blocking [`Channel`].
pub fn take_channel(
    fd: RawFd,
    ppid_at_start: Pid,
    death_signal: Signal,
) -> Result<Channel, SetupError> {
    die_with_parent(ppid_at_start, death_signal)?;
    Ok(Channel::from_fd(adopt_socket(fd)?))
}

/// The child's side of the handshake: waits for the server's hello
/// (blocking), checks it with [`Hello::check_peer`](crate::Hello::check_peer)
/// and answers with a hello in role `me`. `In` is what the server sends
/// ([`ToHelper`](crate::ToHelper), [`ToRunner`](crate::ToRunner)), `Out`
/// what the child sends back. False when the server closed the channel
/// before saying anything.
///
/// Bytes that arrived with the hello stay in the channel, for
/// [`Channel::recv`] or [`Channel::next_buffered`].
pub fn handshake<In: Greeting, Out: Greeting>(
    channel: &mut Channel,
    me: Role,
) -> Result<bool, Error> {
    let Some(received) = channel.recv::<In>()? else {
        return Ok(false);
    };
    let Some(hello) = received.message.hello() else {
        return Err(Error::Handshake(format!(
            "expected hello, got a {}",
            received.message.kind()
        )));
    };
    hello.check_peer(Role::Server)?;
    channel.send(&Out::from_hello(crate::Hello::new(me)), &[])?;
    Ok(true)
}

/// Arranges for `signal` to be sent to this process when its parent dies.
/// `ppid_at_start` is the parent seen at the very start of `main`: if it
/// has changed by now, the parent died before `PR_SET_PDEATHSIG` could
/// take effect.
///
/// A parent of 1 is not in itself taken as death: in a container the
/// server may be PID 1. A server that died before we started is still
/// noticed, as end-of-file on the channel.
pub fn die_with_parent(ppid_at_start: Pid, signal: Signal) -> Result<(), Orphaned> {
    // Failure here (not Linux?) leaves end-of-file on the channel as the
    // only way to notice the server's death, which is still enough.
    let _ = nix::sys::prctl::set_pdeathsig(signal);
    if nix::unistd::getppid() != ppid_at_start {
        return Err(Orphaned);
    }
    Ok(())
}

/// Takes ownership of the inherited socket `fd`: checks that it is an open
/// socket, and makes it close-on-exec (so that nothing the child starts
/// inherits it) and blocking (the children read and write it with
/// blocking calls, or pass `MSG_DONTWAIT` where they must not wait; a
/// socket inherited in non-blocking mode would make a reader spin).
pub fn adopt_socket(fd: RawFd) -> Result<OwnedFd, BadChannel> {
    if fd < 0 {
        return Err(BadChannel(format!("{fd} is not a descriptor")));
    }
    // SAFETY: only used for the checks below, while `fd` is open; a closed
    // descriptor makes fcntl fail with EBADF, which is reported.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let bad = |e: Errno| BadChannel(format!("descriptor {fd}: {}", e.desc()));
    fcntl(borrowed, FcntlArg::F_GETFD).map_err(bad)?;
    let stat = fstat(borrowed).map_err(bad)?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err(BadChannel(format!("descriptor {fd} is not a socket")));
    }
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(bad)?;
    let flags = OFlag::from_bits_truncate(fcntl(borrowed, FcntlArg::F_GETFL).map_err(bad)?);
    if flags.contains(OFlag::O_NONBLOCK) {
        fcntl(borrowed, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK)).map_err(bad)?;
    }
    // SAFETY: the descriptor is open (checked above) and was handed to this
    // process for its exclusive use by the server; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, AsRawFd, IntoRawFd};
    use std::os::unix::net::UnixStream;

    #[test]
    fn the_parent_seen_at_start_is_still_there() {
        let ppid = nix::unistd::getppid();
        let same = die_with_parent(ppid, Signal::SIGKILL);
        // A parent that is not ours counts as one that has gone.
        let other = Pid::from_raw(ppid.as_raw() + 1);
        let changed = die_with_parent(other, Signal::SIGTERM);
        // Leave this test process as it was before asserting anything.
        nix::sys::prctl::set_pdeathsig(None).expect("clear pdeathsig");
        assert_eq!(same, Ok(()));
        assert_eq!(changed, Err(Orphaned));
    }

    #[test]
    fn a_socket_is_adopted_close_on_exec_and_blocking() {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        theirs.set_nonblocking(true).expect("nonblocking");
        let fd = theirs.into_raw_fd();
        // SAFETY: `fd` is open and owned by nobody else (`theirs` gave it
        // up); clearing close-on-exec touches no memory.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        let owned = adopt_socket(fd).expect("adopted");
        assert_eq!(owned.as_raw_fd(), fd);
        let fd_flags = fcntl(owned.as_fd(), FcntlArg::F_GETFD).expect("F_GETFD");
        assert!(FdFlag::from_bits_truncate(fd_flags).contains(FdFlag::FD_CLOEXEC));
        let fl = fcntl(owned.as_fd(), FcntlArg::F_GETFL).expect("F_GETFL");
        assert!(!OFlag::from_bits_truncate(fl).contains(OFlag::O_NONBLOCK));
        drop(ours);
    }

    #[test]
    fn anything_but_an_open_socket_is_refused() {
        assert_eq!(
            adopt_socket(-1).err(),
            Some(BadChannel("-1 is not a descriptor".into()))
        );
        let file = std::fs::File::open("/dev/null").expect("open /dev/null");
        let fd = file.as_raw_fd();
        assert_eq!(
            adopt_socket(fd).err(),
            Some(BadChannel(format!("descriptor {fd} is not a socket")))
        );
        drop(file);
        let closed = adopt_socket(999_999).expect_err("a closed descriptor");
        assert!(closed.0.starts_with("descriptor 999999: "), "{closed}");
    }

    /// The server's end of a fresh channel, and the child's.
    fn pair() -> (Channel, Channel) {
        let (server, child) = UnixStream::pair().expect("socketpair");
        (Channel::new(server), Channel::new(child))
    }

    fn hello_from(role: Role) -> crate::ToHelper {
        crate::ToHelper::Hello(crate::Hello::new(role))
    }

    #[test]
    fn the_handshake_answers_and_keeps_what_came_with_the_hello() {
        use crate::{FromHelper, LookupRequest, ToHelper};
        let (mut server, mut child) = pair();
        let lookup = ToHelper::Lookup(LookupRequest {
            id: 7,
            path: "index.html".into(),
            known: None,
        });
        server.send(&hello_from(Role::Server), &[]).expect("send");
        server.send(&lookup, &[]).expect("send");
        assert!(handshake::<ToHelper, FromHelper>(&mut child, Role::Helper).expect("handshake"));
        let reply = server.recv::<FromHelper>().expect("recv").expect("a reply");
        match reply.message {
            FromHelper::Hello(hello) => assert_eq!(hello.check_peer(Role::Helper).ok(), Some(())),
            other => panic!("expected a hello, got {other:?}"),
        }
        // The lookup may have been read with the hello: it is still there.
        let next = match child.next_buffered::<ToHelper>().expect("buffered") {
            Some(next) => next,
            None => child.recv::<ToHelper>().expect("recv").expect("the lookup"),
        };
        assert_eq!(next.message, lookup);
    }

    #[test]
    fn the_handshake_refuses_anything_but_the_servers_hello() {
        use crate::{FromRunner, LookupRequest, ToHelper, ToRunner};
        let (server, mut child) = pair();
        drop(server);
        assert!(!handshake::<ToRunner, FromRunner>(&mut child, Role::CgiRunner).expect("eof"));

        let (mut server, mut child) = pair();
        let lookup = ToHelper::Lookup(LookupRequest {
            id: 1,
            path: "x".into(),
            known: None,
        });
        server.send(&lookup, &[]).expect("send");
        let err = handshake::<ToHelper, crate::FromHelper>(&mut child, Role::Helper)
            .expect_err("a lookup first");
        assert_eq!(
            err.to_string(),
            "unexpected message during handshake: expected hello, got a lookup"
        );

        let (mut server, mut child) = pair();
        server.send(&hello_from(Role::Helper), &[]).expect("send");
        let err = handshake::<ToHelper, crate::FromHelper>(&mut child, Role::Helper)
            .expect_err("a hello from a helper");
        assert!(matches!(err, Error::Handshake(_)), "{err}");
    }

    #[test]
    fn a_bad_channel_fd_is_a_usage_error() {
        let ppid = nix::unistd::getppid();
        let err = take_channel(-1, ppid, Signal::SIGKILL).expect_err("not a descriptor");
        nix::sys::prctl::set_pdeathsig(None).expect("clear pdeathsig");
        assert_eq!(err.to_string(), "--channel-fd: -1 is not a descriptor");
        assert_eq!(err.exit_status(), USAGE_EXIT_STATUS);
        assert_eq!(SetupError::from(Orphaned).exit_status(), 0);
        assert_eq!(
            SetupError::from(Orphaned).to_string(),
            "the server exited before this process could start"
        );
    }
}
