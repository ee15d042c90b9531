//! Rate limits per route, optionally per client address (governor's GCRA).
//!
//! Runs after the allowlist and before the body is read. The per-address limiter is a
//! keyed map; to keep its memory bounded, keys are IPv4 addresses or IPv6 /64 prefixes
//! (one IPv6 host usually owns a whole /64, so per-address IPv6 keys would let one sender
//! mint unlimited buckets), and keys whose bucket has refilled are evicted by
//! [`RateLimit::evict_idle`], which the server calls periodically.
//!
//! Per-address limits use the same attribution as the allowlist. Every request whose
//! client is unknown (a trusted proxy forwarded it for an unreadable hop) shares one
//! bucket: unattributable traffic cannot mint buckets, and cannot spend anyone else's.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use crate::pipeline::allowlist::{Client, ClientAddr};

/// A route's limit.
#[derive(Debug)]
pub enum RateLimit {
    /// One bucket for the whole route.
    Route(DefaultDirectRateLimiter),
    /// One bucket per client address (IPv6 per /64); `None` is the one bucket shared by
    /// every unknown client.
    PerAddress(DefaultKeyedRateLimiter<Option<IpAddr>>),
}

/// The limit is exhausted; retry after this long.
#[derive(Debug, thiserror::Error)]
#[error("rate limit exhausted, retry after {retry_after_secs} s")]
pub struct RateLimited {
    /// Whole seconds until a request would pass, at least 1.
    pub retry_after_secs: u64,
}

impl RateLimit {
    /// A limit of `per_second` with bursts of up to `burst` requests.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32, per_address: bool) -> Self {
        let quota = Quota::per_second(per_second).allow_burst(burst);
        if per_address {
            RateLimit::PerAddress(governor::RateLimiter::keyed(quota))
        } else {
            RateLimit::Route(governor::RateLimiter::direct(quota))
        }
    }

    /// Takes one request's worth from the bucket.
    pub fn check(&self, client: Client) -> Result<(), RateLimited> {
        let result = match self {
            RateLimit::Route(l) => l.check(),
            RateLimit::PerAddress(l) => {
                l.check_key(&client.addr().map(|ClientAddr(ip)| bucket_key(ip)))
            }
        };
        result.map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            RateLimited {
                retry_after_secs: whole_seconds(wait),
            }
        })
    }

    /// Drops per-address buckets that are full again (no memory for idle senders).
    pub fn evict_idle(&self) {
        if let RateLimit::PerAddress(l) = self {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Number of per-address buckets held.
    pub fn tracked_addresses(&self) -> usize {
        match self {
            RateLimit::Route(_) => 0,
            RateLimit::PerAddress(l) => l.len(),
        }
    }
}

fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(seg.into())
        }
    }
}

/// `Retry-After` is in whole seconds: round up, never 0 (0 would invite an instant retry
/// that is certain to fail).
fn whole_seconds(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    fn addr(s: &str) -> Client {
        Client::Addr(ClientAddr(s.parse().expect("ip")))
    }

    #[test]
    fn burst_then_limited_with_retry_after() {
        let l = RateLimit::new(nz(1), nz(3), false);
        for _ in 0..3 {
            assert!(l.check(addr("1.1.1.1")).is_ok());
        }
        let e = l.check(addr("2.2.2.2")).expect_err("limited");
        assert_eq!(e.retry_after_secs, 1);
    }

    #[test]
    fn per_address_buckets_are_independent_and_v6_by_64() {
        let l = RateLimit::new(nz(1), nz(1), true);
        assert!(l.check(addr("1.1.1.1")).is_ok());
        assert!(l.check(addr("1.1.1.1")).is_err());
        assert!(l.check(addr("1.1.1.2")).is_ok());
        assert!(l.check(addr("2001:db8::1")).is_ok());
        assert!(
            l.check(addr("2001:db8::2")).is_err(),
            "same /64 shares a bucket"
        );
        assert!(l.check(addr("2001:db8:0:1::1")).is_ok());
        assert_eq!(l.tracked_addresses(), 4);
        assert!(l.check(Client::Unknown).is_ok());
        assert!(
            l.check(Client::Unknown).is_err(),
            "unknown clients share a bucket"
        );
        assert!(l.check(addr("1.1.1.3")).is_ok());
    }

    #[test]
    fn whole_seconds_rounds_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }
}
