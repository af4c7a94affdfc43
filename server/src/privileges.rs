//! Dropping root: after the port is bound, the server (and so every child
//! it starts later) switches to an unprivileged user.

use anyhow::{bail, Context, Result};
use nix::unistd::{setgid, setgroups, setuid, Uid, User};

/// Switches to `name` if running as root; refuses if not root.
pub(crate) fn drop_to(name: &str) -> Result<()> {
    if !Uid::effective().is_root() {
        bail!("--user {name} needs the server to be started as root");
    }
    let user = User::from_name(name)
        .with_context(|| format!("cannot look up user {name}"))?
        .with_context(|| format!("no such user: {name}"))?;
    setgroups(&[user.gid]).context("cannot set supplementary groups")?;
    setgid(user.gid).context("cannot change group")?;
    setuid(user.uid).context("cannot change user")?;
    if setuid(Uid::from_raw(0)).is_ok() {
        bail!("dropping to {name} did not stick: root could be regained");
    }
    Ok(())
}
