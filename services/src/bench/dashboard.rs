//! The dashboard under load: `/` and a system page served by sitrep's router on a real socket,
//! with `wrk` as 32 concurrent clients, beside a static copy of each page (the same bytes) served
//! by the same server, which is what the pages are compared with.

use super::BenchArgs;
use anyhow::Context;
use axum::body::Body;
use axum::http::{header, Request};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use deadpool_postgres::Pool;
use sitrep_infra::Settings;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// What wrk measured for one URL.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub per_sec: f64,
    pub bytes: usize,
}

/// One page and its static twin under the same load.
pub struct Compared {
    pub page: Load,
    pub file: Load,
}

/// Measures each of `paths` and a static file of the same bytes.
pub async fn measure(
    pool: &Pool,
    settings: &Settings,
    args: &BenchArgs,
    paths: &[&str],
) -> anyhow::Result<Vec<Compared>> {
    let state = sitrep_web::AppState::new(pool.clone(), settings.default_ttl_seconds, settings.subject_prefix.clone());
    let pages = sitrep_web::router(state);
    let mut statics = Router::new();
    let mut sizes = Vec::new();
    for (n, path) in paths.iter().enumerate() {
        let response = pages.clone().oneshot(Request::get(*path).body(Body::empty())?).await?;
        anyhow::ensure!(response.status() == 200, "{path} answered {}", response.status());
        let body: Bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        sizes.push(body.len());
        statics = statics.route(
            &format!("/bench-static/{n}.html"),
            get(move || async move { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body.clone()) }),
        );
    }
    let app = pages.merge(statics);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await
    });
    let mut out = Vec::new();
    for (n, path) in paths.iter().enumerate() {
        let page = wrk(args, &format!("http://{addr}{path}"), sizes[n]).await?;
        let file = wrk(args, &format!("http://{addr}/bench-static/{n}.html"), sizes[n]).await?;
        out.push(Compared { page, file });
    }
    cancel.cancel();
    server.await.context("the dashboard server panicked")??;
    Ok(out)
}

/// The wrk command line: `connections` clients on `threads` threads for `seconds`, with the
/// latency distribution, and no request given up before 10 s.
fn wrk_command(url: &str, threads: u32, connections: u32, seconds: u64) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("wrk");
    command.args([
        &format!("-t{threads}"),
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--timeout",
        "10s",
        "--latency",
        url,
    ]);
    command
}

/// What to say when wrk cannot be started.
const WRK_MISSING: &str = "running wrk, the HTTP load tool (Debian: apt-get install wrk; scripts/bench installs it)";

/// Runs wrk with `--clients` connections on two threads for `--http-seconds`.
async fn wrk(args: &BenchArgs, url: &str, bytes: usize) -> anyhow::Result<Load> {
    let output = wrk_command(url, 2, args.clients, args.http_seconds.into()).output().await.context(WRK_MISSING)?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed on {url}: {text}{}", String::from_utf8_lossy(&output.stderr));
    parse_wrk(&text, bytes).with_context(|| format!("reading wrk's output for {url}:\n{text}"))
}

/// Reads p50, p99 and requests/s from `wrk --latency` output; refuses a run with errors.
fn parse_wrk(text: &str, bytes: usize) -> anyhow::Result<Load> {
    let failed = wrk_errors(text);
    anyhow::ensure!(failed == 0, "{failed} requests failed");
    let percentile = |p: &str| -> anyhow::Result<f64> {
        let line = text.lines().find(|l| l.trim_start().starts_with(p)).with_context(|| format!("no {p} line"))?;
        duration_ms(line.split_whitespace().nth(1).context("no value")?)
    };
    let per_sec =
        text.lines().find_map(|l| l.strip_prefix("Requests/sec:")).context("no Requests/sec line")?.trim().parse()?;
    Ok(Load { p50_ms: percentile("50%")?, p99_ms: percentile("99%")?, per_sec, bytes })
}

/// The failed requests in wrk's output: non-2xx answers and socket errors.
fn wrk_errors(text: &str) -> u64 {
    let numbers =
        |l: &str| -> u64 { l.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u64>().ok()).sum() };
    text.lines()
        .map(str::trim)
        .filter_map(|l| {
            l.strip_prefix("Non-2xx or 3xx responses:").or_else(|| l.strip_prefix("Socket errors:")).map(numbers)
        })
        .sum()
}

/// `1.23ms`, `456.00us`, `1.02s` or `2.00m` in milliseconds.
fn duration_ms(s: &str) -> anyhow::Result<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic()).context("a duration without a unit")?;
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse()?;
    Ok(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        other => anyhow::bail!("unknown unit {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 2s test @ http://127.0.0.1:8080/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.10ms    1.20ms  20.00ms   90.00%
    Req/Sec     3.10k   200.00     3.50k    70.00%
  Latency Distribution
     50%    4.90ms
     75%    5.50ms
     90%    6.20ms
     99%  850.00us
  12345 requests in 2.00s, 1.20GB read
Requests/sec:   6172.50
Transfer/sec:    600.00MB
";

    #[test]
    fn wrk_output_gives_percentiles_in_ms_and_the_rate() {
        let load = parse_wrk(SAMPLE, 10).unwrap();
        assert_eq!(load.p50_ms, 4.9);
        assert_eq!(load.p99_ms, 0.85);
        assert_eq!(load.per_sec, 6172.5);
    }

    #[test]
    fn wrk_errors_add_failed_answers_and_socket_errors() {
        let text = "Running 1m test\n  Socket errors: connect 1, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 4\nRequests/sec: 10\n";
        assert_eq!(wrk_errors(text), 10);
        assert_eq!(wrk_errors("Requests/sec: 10\n"), 0);
    }

    #[test]
    fn a_wrk_run_with_failed_requests_is_refused() {
        let failed = SAMPLE.replace("Requests/sec", "  Non-2xx or 3xx responses: 12\nRequests/sec");
        assert!(parse_wrk(&failed, 10).unwrap_err().to_string().contains("failed"));
        assert_eq!(duration_ms("1.50s").unwrap(), 1500.0);
        assert!(duration_ms("12").is_err());
    }
}
