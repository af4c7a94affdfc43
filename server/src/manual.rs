//! The man page and the shell completions, generated from the clap
//! definitions of [`Args`] so that they name every option the server has
//! (`server --print-man-page`, `server --print-completions bash`).

use std::io::{self, Write};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::config::Args;

/// Writes the man page (roff) for `server`.
pub(crate) fn write_man_page(out: &mut dyn Write) -> io::Result<()> {
    clap_mangen::Man::new(Args::command()).render(out)
}

/// Writes the completion script for `shell`.
pub(crate) fn write_completions(shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    let mut command = Args::command();
    clap_complete::generate(shell, &mut command, "server", out);
    Ok(())
}
