//! A per-address budget for requests that store a row before anyone has authenticated (npm's
//! browser login, `POST /-/v1/login`, opens a handshake row). Counted in this process's memory,
//! so an unauthenticated flood costs no database write once an address is over budget; each
//! instance of a scaled-out registry counts on its own.
//!
//! IPv6 addresses are counted by their /64, the block one client usually holds. The table is
//! bounded: past [`MAX_ADDRESSES`] addresses, windows that ended are dropped, and if that is not
//! enough the table starts afresh (expired rows are pruned on a timer in any case).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::http::error::ApiError;

/// Rows one address may create per window.
pub const PER_WINDOW: u32 = 20;
/// The window, in milliseconds (10 minutes).
pub const WINDOW_MS: i64 = 10 * 60 * 1000;
/// Addresses tracked at most.
pub const MAX_ADDRESSES: usize = 100_000;

/// Fixed-window counters per address.
#[derive(Debug, Default)]
pub struct AddressBudget {
    windows: Mutex<HashMap<u128, (i64, u32)>>,
}

/// The counting key of an address: IPv4 (or IPv4-mapped) whole, IPv6 by its /64.
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => (u128::from(v6) >> 64 << 64) | (1 << 32),
        },
    }
}

impl AddressBudget {
    /// Spends one row for `ip` at `now` (ms), or answers 429 with `Retry-After`.
    pub fn spend(&self, ip: IpAddr, now: i64) -> Result<(), ApiError> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_ADDRESSES {
            windows.retain(|_, (start, _)| now - *start < WINDOW_MS);
            if windows.len() >= MAX_ADDRESSES {
                windows.clear();
            }
        }
        let entry = windows.entry(key(ip)).or_insert((now, 0));
        if now - entry.0 >= WINDOW_MS {
            *entry = (now, 0);
        }
        if entry.1 >= PER_WINDOW {
            let secs = ((entry.0 + WINDOW_MS - now + 999) / 1000).max(1) as u64;
            return Err(ApiError::too_many(
                format!("Too many login requests from this address. Try again in {secs} seconds."),
                secs,
            ));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_address_gets_its_budget_per_window() {
        let b = AddressBudget::default();
        for _ in 0..PER_WINDOW {
            b.spend(ip("10.0.0.1"), 0).unwrap();
        }
        let e = b.spend(ip("10.0.0.1"), 1000).unwrap_err();
        assert_eq!(e.status.as_u16(), 429);
        assert!(e.message.contains("599 seconds"), "{}", e.message);
        b.spend(ip("10.0.0.2"), 1000).unwrap();
        b.spend(ip("10.0.0.1"), WINDOW_MS).unwrap();
    }

    #[test]
    fn ipv6_counts_by_its_64_block_and_mapped_v4_as_v4() {
        let b = AddressBudget::default();
        for i in 0..PER_WINDOW {
            b.spend(ip(&format!("2001:db8:1:2::{i:x}")), 0).unwrap();
        }
        assert!(b.spend(ip("2001:db8:1:2:ffff::1"), 0).is_err());
        b.spend(ip("2001:db8:1:3::1"), 0).unwrap();
        for _ in 0..PER_WINDOW {
            b.spend(ip("::ffff:10.0.0.9"), 0).unwrap();
        }
        assert!(b.spend(ip("10.0.0.9"), 0).is_err());
        assert_ne!(key(ip("::1")), key(ip("0.0.0.1")));
    }

    #[test]
    fn the_table_stays_bounded() {
        let b = AddressBudget::default();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            b.spend(IpAddr::from(i.to_be_bytes()), 0).unwrap();
        }
        assert!(b.windows.lock().unwrap().len() <= MAX_ADDRESSES);
    }
}
