//! The helper's channel loop in child mode: the handshake, then one
//! request at a time (a lookup, or a window read) until the server closes
//! the channel.

use std::os::fd::{AsFd, BorrowedFd};

use protocol::child_setup::handshake;
use protocol::{
    Channel, Error, FromHelper, LookupReply, LookupRequest, Outcome, ReadReply, ReadResult,
    Received, Role, SharedBuffer, ToHelper,
};

use crate::delay::Delay;
use crate::file_lookup::Resolver;
use crate::misnumber_hook;
use crate::window_read::{read_window, OpenFiles};

/// Serves lookups until the server closes the channel (`Ok`) or breaks the
/// protocol (`Err`). The caller closes the channel either way.
pub fn serve(
    channel: &mut Channel,
    resolver: &Resolver,
    delay: Option<&Delay>,
) -> Result<(), Error> {
    if !handshake::<ToHelper, FromHelper>(channel, Role::Helper)? {
        return Ok(());
    }
    let mut open = OpenFiles::default();
    let mut shared: Option<SharedBuffer> = None;
    loop {
        match channel.recv::<ToHelper>()? {
            None => return Ok(()),
            Some(Received {
                message: ToHelper::Lookup(request),
                ..
            }) => answer(channel, resolver, delay, request)?,
            Some(Received {
                message: ToHelper::Read(request),
                fds,
            }) => {
                if let Some(delay) = delay {
                    delay.apply_to_read(&request.path);
                }
                let fd = fds.into_iter().next();
                let result = read_window(&request, fd, resolver, &mut open, shared.as_ref());
                let reply = FromHelper::Read(ReadReply {
                    id: request.id,
                    result,
                });
                send_or_report(channel, &reply, &[], |reason| {
                    FromHelper::Read(ReadReply {
                        id: request.id,
                        result: ReadResult::Failed(reason),
                    })
                })?;
            }
            Some(Received {
                message: ToHelper::SharedBuffer { len },
                fds,
            }) => {
                let len = usize::try_from(len).unwrap_or(0);
                let mapped = fds.first().map(|fd| SharedBuffer::map(fd, len));
                // Without it, windows come back in the replies.
                shared = match mapped {
                    Some(Ok(buffer)) => Some(buffer),
                    Some(Err(e)) => {
                        protocol::error_log!("cannot map the shared buffer: {e}");
                        None
                    }
                    None => None,
                };
            }
            Some(Received {
                message: ToHelper::Hello(_),
                ..
            }) => {
                return Err(Error::Handshake(
                    "a second hello after the handshake".into(),
                ))
            }
        }
    }
}

/// Resolves one request and sends the reply, with the descriptor attached
/// when the body travels as one; our copy of it is closed afterwards.
fn answer(
    channel: &mut Channel,
    resolver: &Resolver,
    delay: Option<&Delay>,
    request: LookupRequest,
) -> Result<(), Error> {
    if let Some(delay) = delay {
        delay.apply(&request.path);
    }
    let resolution = resolver.resolve(&request.path, request.known);
    let reply = FromHelper::Lookup(LookupReply {
        id: misnumber_hook::reply_id(request.id, &request.path),
        outcome: resolution.outcome,
    });
    let fd = resolution.fd.as_ref().map(|fd| fd.as_fd());
    send_or_report(channel, &reply, fd.as_slice(), |reason| {
        FromHelper::Lookup(LookupReply {
            id: request.id,
            outcome: Outcome::Failed { reason },
        })
    })
    // `resolution.fd` is dropped (closed) here: the server has its own copy.
}

/// Sends `reply`; when it cannot be encoded (nothing was written), sends
/// what `failed` makes of the reason instead of dying, so the server
/// hears of it.
fn send_or_report(
    channel: &mut Channel,
    reply: &FromHelper,
    fds: &[BorrowedFd<'_>],
    failed: impl FnOnce(String) -> FromHelper,
) -> Result<(), Error> {
    match channel.send(reply, fds) {
        Err(e @ (Error::Encode(_) | Error::FrameTooLarge(_))) => {
            channel.send(&failed(format!("reply could not be encoded: {e}")), &[])
        }
        sent => sent,
    }
}
