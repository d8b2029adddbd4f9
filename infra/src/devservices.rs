//! Local Postgres and NATS for `sitrep demo` and the tests, on machines where none are running.
//!
//! [`ensure`] checks the configured URLs. When one points at this machine and nothing answers,
//! it starts a project-local server instead: data under `<dir>/.sitrep/`, on non-default ports
//! ([`LOCAL_PG_PORT`], [`LOCAL_NATS_PORT`]), using the `initdb`/`pg_ctl` and `nats-server`
//! binaries. The servers keep running after the command ends, so the next run reuses them;
//! `<dir>/.sitrep/stop-services` stops them.

use crate::Settings;
use anyhow::{bail, Context};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const LOCAL_PG_PORT: u16 = 55432;
pub const LOCAL_NATS_PORT: u16 = 54222;

/// Makes sure Postgres and NATS answer, starting project-local ones under `dir` when the
/// configured ones are local and down. Rewrites the URLs in `settings` to what it used, and
/// returns a line per service for the user.
pub fn ensure(settings: &mut Settings, dir: &Path) -> anyhow::Result<Vec<String>> {
    // Absolute, because Postgres resolves its socket folder from its data folder.
    let state = std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?.join(".sitrep");
    let mut said = Vec::new();

    let pg = crate::db::parse_url(settings.database_url.expose())?;
    let pg_host = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let pg_port = pg.get_ports().first().copied().unwrap_or(5432);
    if answers(&pg_host, pg_port) {
        said.push(format!("Postgres: using {pg_host}:{pg_port}"));
    } else if !is_local(&pg_host) {
        bail!("Postgres at {pg_host}:{pg_port} does not answer (SITREP_DATABASE_URL)");
    } else {
        if !answers("127.0.0.1", LOCAL_PG_PORT) {
            start_postgres(&state)?;
        }
        let user = pg.get_user().unwrap_or("postgres");
        let db = pg.get_dbname().unwrap_or("sitrep");
        let url = format!("postgres://{user}@127.0.0.1:{LOCAL_PG_PORT}/{db}");
        said.push(format!("Postgres: nothing answered at {pg_host}:{pg_port}; using the project-local one at 127.0.0.1:{LOCAL_PG_PORT} (data in {})", state.join("postgres").display()));
        settings.database_url = crate::settings::Secret::new(url);
    }

    let (nats_host, nats_port) = nats_host_port(&settings.nats_url)?;
    if answers(&nats_host, nats_port) {
        said.push(format!("NATS: using {nats_host}:{nats_port}"));
    } else if !is_local(&nats_host) {
        bail!("NATS at {nats_host}:{nats_port} does not answer (SITREP_NATS_URL)");
    } else {
        if !answers("127.0.0.1", LOCAL_NATS_PORT) {
            start_nats(&state)?;
        }
        settings.nats_url = format!("nats://127.0.0.1:{LOCAL_NATS_PORT}");
        said.push(format!("NATS: nothing answered at {nats_host}:{nats_port}; using the project-local one at 127.0.0.1:{LOCAL_NATS_PORT} (data in {})", state.join("nats").display()));
    }
    Ok(said)
}

fn nats_host_port(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let hostport = rest.rsplit('@').next().unwrap_or(rest).split([',', '/']).next().unwrap_or("");
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().with_context(|| format!("bad port in SITREP_NATS_URL {url}"))?),
        None => (hostport.to_owned(), 4222),
    };
    Ok((host, port))
}

fn is_local(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]") || host.starts_with("127.")
}

/// Whether something accepts TCP connections there.
pub fn answers(host: &str, port: u16) -> bool {
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return false;
    };
    addrs.into_iter().any(|a: SocketAddr| std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

fn wait_until_answers(port: u16, what: &str, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if answers("127.0.0.1", port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("{what} did not start listening on 127.0.0.1:{port} within 30 s; see {}", log.display())
}

/// Finds a binary on PATH or in Debian's versioned Postgres folder.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> =
            std::fs::read_dir("/usr/lib/postgresql").ok()?.flatten().map(|e| e.path()).collect();
        versions.sort();
        versions.into_iter().rev().map(|v| v.join("bin").join(name)).find(|p| p.is_file())
    })
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// Runs a command, as the `postgres` user when we are root (Postgres refuses to run as root).
fn run(bin: &Path, args: &[&str], as_postgres: bool) -> anyhow::Result<()> {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    let out = cmd.args(args).stdin(Stdio::null()).output().with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed: {}{}",
            bin.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn start_postgres(state: &Path) -> anyhow::Result<()> {
    start_postgres_at(&state.join("postgres"), LOCAL_PG_PORT)?;
    write_stop_script(state)
}

/// Starts a Postgres server with its data in `data` (created with `initdb` if empty), listening
/// on 127.0.0.1:`port` with trust authentication for the user `postgres`; returns once it
/// accepts connections. Its log is `data/server.log`.
pub fn start_postgres_at(data: &Path, port: u16) -> anyhow::Result<()> {
    let missing = || {
        anyhow::anyhow!(
            "Postgres is not running and its server binaries (initdb, pg_ctl) are not installed. \
             Install them (Debian: apt-get install postgresql) or set SITREP_DATABASE_URL."
        )
    };
    let initdb = find_binary("initdb").ok_or_else(missing)?;
    let pg_ctl = find_binary("pg_ctl").ok_or_else(missing)?;
    let as_postgres = running_as_root();
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    if as_postgres {
        // Postgres refuses to run as root, so the data folder belongs to the postgres user.
        run(Path::new("chown"), &["-R", "postgres:postgres", &data.to_string_lossy()], false)?;
        run(Path::new("chmod"), &["0700", &data.to_string_lossy()], false)?;
    }
    let data_s = data.to_string_lossy().into_owned();
    if !data.join("PG_VERSION").exists() {
        eprintln!("sitrep: creating a Postgres cluster in {data_s}");
        run(
            &initdb,
            &["-D", &data_s, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-instructions"],
            as_postgres,
        )?;
    }
    let log = data.join("server.log");
    let opts = format!("-p {port} -c listen_addresses=127.0.0.1 -k {data_s}");
    eprintln!("sitrep: starting Postgres (data in {data_s}) on 127.0.0.1:{port}");
    run(&pg_ctl, &["-D", &data_s, "-l", &log.to_string_lossy(), "-o", &opts, "-w", "start"], as_postgres)?;
    wait_until_answers(port, "Postgres", &log)
}

/// Stops the Postgres server whose data is in `data` (fast shutdown: sessions are ended).
pub fn stop_postgres_at(data: &Path) -> anyhow::Result<()> {
    let pg_ctl = find_binary("pg_ctl").context("pg_ctl is not installed")?;
    run(&pg_ctl, &["-D", &data.to_string_lossy(), "-m", "fast", "-w", "stop"], running_as_root())
}

fn start_nats(state: &Path) -> anyhow::Result<()> {
    let bin = find_binary("nats-server").ok_or_else(|| {
        anyhow::anyhow!(
            "NATS is not running and nats-server is not installed. \
             Install it (Debian: apt-get install nats-server) or set SITREP_NATS_URL."
        )
    })?;
    let data = state.join("nats");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let log = state.join("nats.log");
    let port = LOCAL_NATS_PORT.to_string();
    eprintln!("sitrep: starting the project-local NATS (JetStream) on 127.0.0.1:{LOCAL_NATS_PORT}");
    let mut cmd = Command::new(&bin);
    cmd.args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd"])
        .arg(&data)
        .arg("-l")
        .arg(&log)
        .arg("-P")
        .arg(state.join("nats.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Its own process group, so it outlives this command and ^C here does not stop it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
    wait_until_answers(LOCAL_NATS_PORT, "NATS", &log)?;
    write_stop_script(state)
}

fn write_stop_script(state: &Path) -> anyhow::Result<()> {
    let pg_ctl = find_binary("pg_ctl").map(|p| p.display().to_string()).unwrap_or_else(|| "pg_ctl".into());
    let prefix = if running_as_root() { "runuser -u postgres -- " } else { "" };
    let script = format!(
        "#!/bin/sh\n# Stops the project-local services sitrep started.\ncd \"$(dirname \"$0\")\"\n\
         [ -f postgres/postmaster.pid ] && {prefix}{pg_ctl} -D \"$PWD/postgres\" -m fast stop\n\
         [ -f nats.pid ] && kill \"$(cat nats.pid)\" && rm -f nats.pid\nexit 0\n"
    );
    let path = state.join("stop-services");
    std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    run(Path::new("chmod"), &["+x", &path.to_string_lossy()], false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_urls_split_into_host_and_port() {
        assert_eq!(nats_host_port("nats://127.0.0.1:4222").unwrap(), ("127.0.0.1".into(), 4222));
        assert_eq!(nats_host_port("nats://u:p@localhost").unwrap(), ("localhost".into(), 4222));
        assert_eq!(nats_host_port("tls://nats.example:7422,nats://b:1").unwrap(), ("nats.example".into(), 7422));
    }

    #[test]
    fn only_loopback_hosts_count_as_local() {
        assert!(is_local("127.0.0.1") && is_local("localhost") && is_local("::1"));
        assert!(!is_local("db.internal") && !is_local("10.0.0.5"));
    }
}
