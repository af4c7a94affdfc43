//! Session tickets whose keys rotate, the same in every worker.
//!
//! Time is cut into periods of [`PERIOD`]. The key of a period is derived
//! from the last one by a one-way step (HMAC-SHA256), and a key is erased
//! once its period and the next have passed: a key stolen later opens no
//! ticket older than one period. New tickets are sealed (AES-256-GCM)
//! under the current period's key; tickets of the current and the last
//! period are accepted. A `--workers` parent makes the first key and hands
//! every worker its current key and period ([`TicketSeed`]), so each
//! worker steps the same keys at the same times, and a client resumes
//! whichever worker it reaches.

use std::fmt;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hmac;
use rustls::server::ProducesTickets;

/// How long one key seals new tickets; a ticket is accepted for at most
/// twice this.
pub(crate) const PERIOD: u64 = 6 * 60 * 60;
const KEY_LEN: usize = 32;
/// A ticket's period number, before its nonce and sealed contents.
const PERIOD_LEN: usize = 8;

/// A key and the period it is for: what a worker is started with.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TicketSeed {
    pub(crate) period: u64,
    pub(crate) key: [u8; KEY_LEN],
}

impl fmt::Debug for TicketSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TicketSeed {{ period: {}, .. }}", self.period)
    }
}

impl TicketSeed {
    /// A fresh random key for the current period.
    pub(crate) fn generate() -> Result<TicketSeed, String> {
        let mut key = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| "no random bytes for the ticket key")?;
        Ok(TicketSeed {
            period: current_period(),
            key,
        })
    }

    /// The seed as bytes, to hand to a worker.
    pub(crate) fn to_bytes(&self) -> [u8; PERIOD_LEN + KEY_LEN] {
        let mut out = [0u8; PERIOD_LEN + KEY_LEN];
        out[..PERIOD_LEN].copy_from_slice(&self.period.to_be_bytes());
        out[PERIOD_LEN..].copy_from_slice(&self.key);
        out
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<TicketSeed> {
        if bytes.len() != PERIOD_LEN + KEY_LEN {
            return None;
        }
        let (period, key) = bytes.split_at(PERIOD_LEN);
        Some(TicketSeed {
            period: u64::from_be_bytes(period.try_into().ok()?),
            key: key.try_into().ok()?,
        })
    }

    /// The key of the next period.
    fn step(&self) -> TicketSeed {
        let mac = hmac::Key::new(hmac::HMAC_SHA256, &self.key);
        let tag = hmac::sign(&mac, b"amped session ticket key, next period");
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&tag.as_ref()[..KEY_LEN]);
        TicketSeed {
            period: self.period + 1,
            key,
        }
    }
}

/// The period of the wall clock now.
fn current_period() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now / PERIOD
}

/// The keys in use: the current period's and the last one's.
struct Keys {
    current: TicketSeed,
    previous: Option<TicketSeed>,
}

impl Keys {
    /// Steps forward to `period` (never back, if the clock went back).
    fn advance_to(&mut self, period: u64) {
        while self.current.period < period {
            let next = self.current.step();
            let old = std::mem::replace(&mut self.current, next);
            self.previous = Some(old);
        }
        if self
            .previous
            .as_ref()
            .is_some_and(|p| p.period + 1 != self.current.period)
        {
            self.previous = None;
        }
    }

    fn for_period(&self, period: u64) -> Option<&TicketSeed> {
        [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|seed| seed.period == period)
    }
}

/// The ticket sealer rustls calls.
pub(crate) struct RotatingTickets {
    keys: Mutex<Keys>,
}

impl fmt::Debug for RotatingTickets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RotatingTickets")
    }
}

impl RotatingTickets {
    pub(crate) fn new(seed: TicketSeed) -> RotatingTickets {
        let mut keys = Keys {
            current: seed,
            previous: None,
        };
        keys.advance_to(current_period());
        RotatingTickets {
            keys: Mutex::new(keys),
        }
    }

    /// The current period's key, to hand to a worker started now.
    pub(crate) fn current_seed(&self) -> Option<TicketSeed> {
        let mut keys = self.keys.lock().ok()?;
        keys.advance_to(current_period());
        Some(keys.current.clone())
    }

    fn seal_at(&self, period: u64, plain: &[u8]) -> Option<Vec<u8>> {
        let mut keys = self.keys.lock().ok()?;
        keys.advance_to(period);
        let seed = &keys.current;
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &seed.key).ok()?);
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let period_bytes = seed.period.to_be_bytes();
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(period_bytes),
            &mut sealed,
        )
        .ok()?;
        let mut ticket = Vec::with_capacity(PERIOD_LEN + NONCE_LEN + sealed.len());
        ticket.extend_from_slice(&period_bytes);
        ticket.extend_from_slice(&nonce);
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn open_at(&self, now: u64, ticket: &[u8]) -> Option<Vec<u8>> {
        let (period_bytes, rest) = ticket.split_at_checked(PERIOD_LEN)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let period = u64::from_be_bytes(period_bytes.try_into().ok()?);
        let mut keys = self.keys.lock().ok()?;
        keys.advance_to(now);
        let seed = keys.for_period(period)?;
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &seed.key).ok()?);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut opened = sealed.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(period_bytes), &mut opened)
            .ok()?;
        let len = plain.len();
        opened.truncate(len);
        Some(opened)
    }
}

impl ProducesTickets for RotatingTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        PERIOD as u32
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal_at(current_period(), plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.open_at(current_period(), cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(period: u64) -> TicketSeed {
        TicketSeed {
            period,
            key: [7; KEY_LEN],
        }
    }

    #[test]
    fn two_holders_of_one_seed_open_each_others_tickets() {
        let now = current_period();
        let a = RotatingTickets::new(seed(now));
        let b = RotatingTickets::new(seed(now));
        let ticket = a.seal_at(now, b"session state").expect("sealed");
        assert_eq!(
            b.open_at(now, &ticket).as_deref(),
            Some(&b"session state"[..])
        );
        let c = RotatingTickets::new(TicketSeed {
            period: now,
            key: [8; KEY_LEN],
        });
        assert_eq!(c.open_at(now, &ticket), None, "another key");
    }

    #[test]
    fn keys_step_forward_and_old_tickets_expire() {
        let now = current_period();
        let tickets = RotatingTickets::new(seed(now));
        let ticket = tickets.seal_at(now, b"x").expect("sealed");
        assert!(tickets.open_at(now + 1, &ticket).is_some(), "last period's");
        assert!(tickets.open_at(now + 2, &ticket).is_none(), "erased");
        // A worker started later gets the stepped key, and agrees.
        let later = RotatingTickets::new(seed(now));
        let fresh = later.seal_at(now + 3, b"y").expect("sealed");
        let started_then = RotatingTickets::new(seed(now).step().step().step());
        assert_eq!(
            started_then.open_at(now + 3, &fresh).as_deref(),
            Some(&b"y"[..])
        );
    }

    #[test]
    fn garbage_tickets_are_refused() {
        let now = current_period();
        let tickets = RotatingTickets::new(seed(now));
        assert!(tickets.open_at(now, b"").is_none());
        assert!(tickets.open_at(now, &[0; 30]).is_none());
        let mut ticket = tickets.seal_at(now, b"state").expect("sealed");
        let last = ticket.len() - 1;
        ticket[last] ^= 1;
        assert!(tickets.open_at(now, &ticket).is_none(), "tampered");
    }

    #[test]
    fn seeds_round_trip_as_bytes() {
        let s = seed(42);
        assert_eq!(TicketSeed::from_bytes(&s.to_bytes()), Some(s));
        assert_eq!(TicketSeed::from_bytes(&[0; 3]), None);
    }
}
