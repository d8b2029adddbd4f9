//! Login nodes: open a TCP connection to the SSH port and read the banner, with a timeout.
//!
//! `login/<host>` is `ok` with `connect_ms` and the banner in the message when the host answers
//! with an SSH banner; `degraded` when it accepts the connection but says something else or
//! nothing; `failed`, with the reason, when it does not answer.

use crate::reading::Reading;
use sitrep_domain::status::Status;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A login host to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The component's name: `login/<name>`.
    pub name: String,
    /// Where to connect: a host name or address.
    pub address: String,
    pub port: u16,
}

impl std::str::FromStr for Host {
    type Err = String;
    /// `derecho1`, `derecho1:2222`, `derecho1=derecho1.hpc.example.org` or
    /// `derecho1=10.0.0.5:2222` (a name for the component, then where to connect).
    fn from_str(raw: &str) -> Result<Self, String> {
        let (name, target) = raw.split_once('=').unwrap_or((raw, raw));
        let (address, port) = match target.rsplit_once(':') {
            Some((a, p)) if !a.contains(':') || a.starts_with('[') => {
                (a.trim_matches(['[', ']']), p.parse().map_err(|_| format!("{raw:?}: {p:?} is not a port"))?)
            }
            _ => (target, 22),
        };
        let name = if raw.contains('=') { name } else { address };
        if name.trim().is_empty() || address.trim().is_empty() {
            return Err(format!("{raw:?} names no host; expected HOST, HOST:PORT or NAME=HOST[:PORT]"));
        }
        Ok(Host { name: name.trim().to_owned(), address: address.trim().to_owned(), port })
    }
}

/// What one check saw: how long the connection took and the banner's first line, or why it
/// failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Banner { connect_ms: f64, banner: String },
    NoBanner { connect_ms: f64, why: String },
    NoAnswer(String),
}

/// Connects to the host and reads its banner, all within `timeout`.
pub async fn check(host: &Host, timeout: Duration) -> Seen {
    let start = Instant::now();
    let target = format!("{}:{}", host.address, host.port);
    let mut stream = match tokio::time::timeout(timeout, TcpStream::connect(&target)).await {
        Err(_) => return Seen::NoAnswer(format!("no answer from {target} within {}s", timeout.as_secs_f64())),
        Ok(Err(e)) => return Seen::NoAnswer(format!("cannot connect to {target}: {e}")),
        Ok(Ok(s)) => s,
    };
    let connect_ms = (start.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
    let mut buf = vec![0u8; 512];
    let mut got = 0;
    let left = timeout.saturating_sub(start.elapsed());
    let read = tokio::time::timeout(left, async {
        while got < buf.len() && !buf[..got].contains(&b'\n') {
            match stream.read(&mut buf[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&buf[..got]);
    let line = text.lines().next().unwrap_or("").trim().chars().take(200).collect::<String>();
    match (read, line.is_empty()) {
        (_, false) => Seen::Banner { connect_ms, banner: line },
        (Err(_), true) => Seen::NoBanner { connect_ms, why: "connected, but no banner came".into() },
        (Ok(()), true) => Seen::NoBanner { connect_ms, why: "connected, but it closed without a banner".into() },
    }
}

/// The `login/<name>` reading of what a check saw.
pub fn reading(host: &Host, seen: &Seen) -> Reading {
    let r = Reading::new("login", &host.name).label("kind", "login_node").label("address", host.address.clone());
    match seen {
        Seen::Banner { connect_ms, banner } if banner.starts_with("SSH-") => {
            r.metric("connect_ms", *connect_ms).status(Status::Ok, format!("SSH answers in {connect_ms} ms: {banner}"))
        }
        Seen::Banner { connect_ms, banner } => r
            .metric("connect_ms", *connect_ms)
            .status(Status::Degraded, format!("port {} answers, but not with an SSH banner: {banner:?}", host.port)),
        Seen::NoBanner { connect_ms, why } => r.metric("connect_ms", *connect_ms).status(Status::Degraded, why.clone()),
        Seen::NoAnswer(why) => r.status(Status::Failed, why.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    #[test]
    fn hosts_are_read_with_a_name_an_address_and_a_port() {
        let h = |s: &str| s.parse::<Host>().unwrap();
        assert_eq!(h("derecho1"), Host { name: "derecho1".into(), address: "derecho1".into(), port: 22 });
        assert_eq!(h("derecho1:2222").port, 2222);
        assert_eq!(
            h("derecho1=10.0.0.5:2200"),
            Host { name: "derecho1".into(), address: "10.0.0.5".into(), port: 2200 }
        );
        assert!("x:ssh".parse::<Host>().unwrap_err().contains("\"ssh\" is not a port"));
        assert!("=".parse::<Host>().is_err());
    }

    async fn serve(reply: &'static [u8]) -> Host {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(reply).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        Host { name: "login1".into(), address: "127.0.0.1".into(), port }
    }

    #[tokio::test]
    async fn an_ssh_banner_is_ok_with_the_connect_time() {
        let host = serve(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
        let r = reading(&host, &check(&host, Duration::from_secs(2)).await);
        assert_eq!(r.component, "login/login1");
        assert_eq!(r.status, Status::Ok);
        assert!(r.message.ends_with("ms: SSH-2.0-OpenSSH_9.2p1 Debian-2"), "{}", r.message);
        assert!(r.metrics.contains_key("connect_ms"));
    }

    #[tokio::test]
    async fn a_port_that_says_nothing_is_degraded_at_the_timeout() {
        let host = serve(b"").await;
        let r = reading(&host, &check(&host, Duration::from_millis(300)).await);
        assert_eq!((r.status, r.message.as_str()), (Status::Degraded, "connected, but no banner came"));
    }

    #[tokio::test]
    async fn a_closed_port_has_failed_with_the_reason() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let host = Host { name: "login2".into(), address: "127.0.0.1".into(), port };
        let r = reading(&host, &check(&host, Duration::from_secs(2)).await);
        assert_eq!(r.status, Status::Failed);
        assert!(r.message.starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")), "{}", r.message);
        assert!(!r.metrics.contains_key("connect_ms"));
    }
}
