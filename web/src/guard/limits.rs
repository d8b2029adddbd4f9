//! Per-client limits, so that one client's flood cannot slow the dashboard for everyone:
//! - sign-in attempts per client address per minute (`SITREP_SIGN_IN_PER_MINUTE`);
//! - HTTP ingest requests per client address per second (`SITREP_INGEST_PER_SECOND`);
//! - password hashes at once, across all clients: each Argon2id hash takes a core and 19 MiB,
//!   so only half the cores hash at a time, and a sign-in that waits too long for its turn gets
//!   a `429` instead of piling up.
//!
//! The client is the TCP peer, or, when the peer is one of `SITREP_TRUSTED_PROXIES`, the
//! right-most `X-Forwarded-For` address that is not a trusted proxy.

use crate::state::AppState;
use crate::view::error::{Format, WebError};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

type Limiter = RateLimiter<IpAddr, HashMapStateStore<IpAddr>, DefaultClock>;

/// How long a sign-in waits for its turn to hash before it is told to come back.
const HASH_WAIT: Duration = Duration::from_secs(3);

/// The limits, shared by every request of the process.
#[derive(Clone)]
pub struct Limits {
    inner: Arc<Inner>,
}

struct Inner {
    sign_in: Option<Limiter>,
    ingest: Option<Limiter>,
    trusted_proxies: Vec<IpAddr>,
    hashes: Semaphore,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(10, 50, Vec::new())
    }
}

impl Limits {
    /// `0` turns a limit off.
    pub fn new(sign_in_per_minute: u32, ingest_per_second: u32, trusted_proxies: Vec<IpAddr>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            inner: Arc::new(Inner {
                sign_in: NonZeroU32::new(sign_in_per_minute).map(|n| RateLimiter::hashmap(Quota::per_minute(n))),
                // Bursts of twice the rate: a collector that batches its retries is not refused.
                ingest: NonZeroU32::new(ingest_per_second).map(|n| {
                    let burst = n.saturating_mul(NonZeroU32::new(2).expect("2 is not 0"));
                    RateLimiter::hashmap(Quota::per_second(n).allow_burst(burst))
                }),
                trusted_proxies,
                hashes: Semaphore::new((cores / 2).max(1)),
            }),
        }
    }

    /// The client a request comes from (see the module's doc). Requests that did not come over
    /// TCP (tests that call the router directly) count as one client.
    pub fn client(&self, req: &Request) -> IpAddr {
        let peer =
            req.extensions().get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        if !self.inner.trusted_proxies.contains(&peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        forwarded.into_iter().rev().find(|a| !self.inner.trusted_proxies.contains(a)).unwrap_or(peer)
    }

    /// Runs a password hash or check on the blocking pool, once a hashing slot is free: at most
    /// half the cores hash at once. A sign-in that cannot get a slot within 3 s gets a `429`.
    pub async fn hash<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, WebError> {
        let busy = || WebError::TooManyRequests {
            format: Format::Html,
            what: "Too many sign-ins are being checked at once.".into(),
            retry_after: HASH_WAIT.as_secs(),
        };
        let _permit = tokio::time::timeout(HASH_WAIT, self.inner.hashes.acquire()).await.map_err(|_| busy())?;
        tokio::task::spawn_blocking(work).await.map_err(WebError::page)
    }
}

fn check(limiter: &Limiter, client: IpAddr) -> Result<(), u64> {
    // Forget clients that have not been seen for a while, so a spray of addresses cannot grow
    // the table without end.
    if limiter.len() > 10_000 {
        limiter.retain_recent();
    }
    limiter.check_key(&client).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
    })
}

/// The middleware: `POST /sign-in` and the HTTP ingest routes count against their client's
/// limit; past it they get `429` with `Retry-After`, before any work is done.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let path = req.uri().path();
    let (limiter, format, what) = match path {
        "/sign-in" => (&state.limits.inner.sign_in, Format::Html, "Too many sign-in attempts from your address."),
        "/api/v1/reports" | "/api/v1/outages" | "/api/v1/maintenance" => {
            (&state.limits.inner.ingest, Format::Json, "Too many requests from your address.")
        }
        _ => return next.run(req).await,
    };
    if let Some(limiter) = limiter {
        let client = state.limits.client(&req);
        if let Err(retry_after) = check(limiter, client) {
            tracing::warn!(%client, %path, retry_after, "client over its limit");
            let what = format!("{what} Try again in {retry_after} s.");
            return WebError::TooManyRequests { format, what, retry_after }.into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(peer: &str, forwarded: Option<&str>) -> Request {
        let mut req = Request::builder().uri("/sign-in").body(Body::empty()).unwrap();
        req.extensions_mut().insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 40000)));
        if let Some(f) = forwarded {
            req.headers_mut().insert("x-forwarded-for", f.parse().unwrap());
        }
        req
    }

    #[test]
    fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let limits = Limits::new(10, 10, vec!["10.0.0.1".parse().unwrap()]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Straight from a client: the header is the client's own word, and ignored.
        assert_eq!(limits.client(&request("192.0.2.7", Some("203.0.113.9"))), ip("192.0.2.7"));
        // Through the proxy: the right-most address the proxy did not add itself.
        assert_eq!(limits.client(&request("10.0.0.1", Some("198.51.100.1, 203.0.113.9"))), ip("203.0.113.9"));
        assert_eq!(limits.client(&request("10.0.0.1", Some("203.0.113.9, 10.0.0.1"))), ip("203.0.113.9"));
        // A proxy that sent no header: the proxy is the client.
        assert_eq!(limits.client(&request("10.0.0.1", None)), ip("10.0.0.1"));
    }

    #[test]
    fn a_client_past_its_limit_is_told_when_to_come_back_and_others_are_not_held_up() {
        let limiter: Limiter = RateLimiter::hashmap(Quota::per_minute(NonZeroU32::new(3).unwrap()));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(check(&limiter, a).is_ok());
        }
        let wait = check(&limiter, a).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(check(&limiter, b).is_ok());
    }

    #[tokio::test]
    async fn hashes_wait_for_a_free_slot() {
        let limits = Limits::default();
        let n = limits.inner.hashes.available_permits();
        let all = futures::future::join_all((0..n + 2).map(|i| limits.hash(move || i * 2))).await;
        assert_eq!(all.into_iter().map(Result::unwrap).sum::<usize>(), (0..n + 2).map(|i| i * 2).sum::<usize>());
        assert_eq!(limits.inner.hashes.available_permits(), n);
    }
}
