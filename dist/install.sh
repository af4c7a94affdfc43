#!/bin/sh
# Installs amped: the three binaries side by side (the server finds its
# helper and cgi-runner beside its own executable), the man page and the
# bash, zsh and fish completions.
#
#   sh dist/install.sh                      # into cargo's root (~/.cargo)
#   sh dist/install.sh --root /usr/local    # bin/, share/man/man1/, ...
#
# Other options go to each `cargo install` (for example --debug, --force).
# `cargo install` takes one --path at a time, hence this script.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
cargo=${CARGO:-cargo}

root=""
prev=""
for arg in "$@"; do
    case "$prev" in --root) root=$arg ;; esac
    case "$arg" in --root=*) root=${arg#--root=} ;; esac
    prev=$arg
done
if [ -z "$root" ]; then
    root=${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}
fi

for package in server helper cgi-runner; do
    "$cargo" install --locked --path "$here/$package" "$@"
done

server="$root/bin/server"
share="$root/share"
mkdir -p "$share/man/man1" "$share/bash-completion/completions" \
    "$share/zsh/site-functions" "$share/fish/vendor_completions.d"
"$server" --print-man-page > "$share/man/man1/server.1"
"$server" --print-completions bash > "$share/bash-completion/completions/server"
"$server" --print-completions zsh > "$share/zsh/site-functions/_server"
"$server" --print-completions fish > "$share/fish/vendor_completions.d/server.fish"
echo "installed server, helper and cgi-runner in $root/bin, the man page and completions in $share"
