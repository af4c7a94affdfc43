//! What a poller token stands for. Every descriptor the loop watches is
//! registered under one [`EventToken`], turned into the poller's plain
//! number with [`EventToken::to_token`] and back with
//! [`EventToken::from_token`] when its readiness is reported.

use crate::event::Token;

/// Tokens below this are the server's own descriptors (listener, signals,
/// runner); helpers follow.
/// The most listening sockets one server has.
pub(crate) const MAX_LISTENERS: usize = 32;

const LISTENER_BASE: Token = 8;
const HELPER_BASE: Token = LISTENER_BASE + MAX_LISTENERS;
/// Connection tokens start here: room for every helper (at most 64, see
/// `--helpers`) below it.
const CONN_BASE: Token = 1024;
/// Each connection has four tokens (two bits): its socket and, while a
/// CGI script runs for it, the script's stdin and stdout.
const CONN_SHIFT: u32 = 2;
const SUB_SOCKET: Token = 0;
const SUB_STDIN: Token = 1;
const SUB_STDOUT: Token = 2;

/// The descriptor a readiness report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventToken {
    /// The listening socket of this index.
    Listener(usize),
    /// The signal pipe.
    Signals,
    /// The CGI runner's socket.
    Runner,
    /// Helper number `n`'s socket.
    Helper(usize),
    /// The client socket of the connection in this slot.
    Client(usize),
    /// The stdin pipe of the script running for the connection in this slot.
    ScriptStdin(usize),
    /// The stdout pipe of the script running for the connection in this slot.
    ScriptStdout(usize),
}

impl EventToken {
    /// The poller's number for this descriptor.
    pub(crate) fn to_token(self) -> Token {
        let conn = |slot: usize, sub: Token| CONN_BASE + (slot << CONN_SHIFT) + sub;
        match self {
            EventToken::Listener(n) => LISTENER_BASE + n,
            EventToken::Signals => 1,
            EventToken::Runner => 2,
            EventToken::Helper(n) => HELPER_BASE + n,
            EventToken::Client(slot) => conn(slot, SUB_SOCKET),
            EventToken::ScriptStdin(slot) => conn(slot, SUB_STDIN),
            EventToken::ScriptStdout(slot) => conn(slot, SUB_STDOUT),
        }
    }

    /// What a poller number stands for; `None` for one never handed out.
    pub(crate) fn from_token(token: Token) -> Option<EventToken> {
        Some(match token {
            1 => EventToken::Signals,
            2 => EventToken::Runner,
            t if (LISTENER_BASE..HELPER_BASE).contains(&t) => {
                EventToken::Listener(t - LISTENER_BASE)
            }
            t if (HELPER_BASE..CONN_BASE).contains(&t) => EventToken::Helper(t - HELPER_BASE),
            t if t >= CONN_BASE => {
                let slot = (t - CONN_BASE) >> CONN_SHIFT;
                match (t - CONN_BASE) & ((1 << CONN_SHIFT) - 1) {
                    SUB_SOCKET => EventToken::Client(slot),
                    SUB_STDIN => EventToken::ScriptStdin(slot),
                    SUB_STDOUT => EventToken::ScriptStdout(slot),
                    _ => return None,
                }
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let all = [
            EventToken::Listener(0),
            EventToken::Listener(MAX_LISTENERS - 1),
            EventToken::Signals,
            EventToken::Runner,
            EventToken::Helper(0),
            EventToken::Helper(63),
            EventToken::Client(0),
            EventToken::ScriptStdin(0),
            EventToken::ScriptStdout(0),
            EventToken::Client(70_000),
            EventToken::ScriptStdout(70_000),
        ];
        for token in all {
            assert_eq!(EventToken::from_token(token.to_token()), Some(token));
        }
        let mut numbers: Vec<Token> = all.iter().map(|t| t.to_token()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), all.len(), "tokens are distinct");
        assert_eq!(EventToken::from_token(3), None);
        assert_eq!(EventToken::from_token(CONN_BASE + 3), None);
    }
}
