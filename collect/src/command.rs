//! Running a site command: found on `PATH`, with a timeout, its failures named.
//!
//! This is the only part of a source that does I/O; what it returns goes to the pure parsers.

use std::ffi::OsStr;
use std::time::Duration;
use tokio::process::Command;

/// A command that did not give output to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{command}` {reason}")]
pub struct CommandError {
    /// The command line as run, for example `qstat -Q -f -F json`.
    pub command: String,
    /// What went wrong, in words: `was not found on PATH`, `exited with status 1: <stderr>`,
    /// `did not finish within 30s`.
    pub reason: String,
}

/// Runs `argv` (program first) and returns what it printed on stdout. It fails when the program
/// is missing, exits non-zero (stderr's first lines are kept), or runs past `timeout` (then it
/// is killed). Bytes that are not UTF-8 become U+FFFD.
pub async fn run(argv: &[String], timeout: Duration) -> Result<String, CommandError> {
    run_in(argv, timeout, None).await
}

/// Like [`run`], with the command looked up on `path` (a `PATH`-style search path) when given,
/// which the child also gets as its `PATH`.
pub async fn run_in(argv: &[String], timeout: Duration, path: Option<&OsStr>) -> Result<String, CommandError> {
    let line = argv.join(" ");
    let fail = |reason: String| CommandError { command: line.clone(), reason };
    let (program, args) = argv.split_first().ok_or_else(|| fail("is empty".into()))?;
    let mut cmd = Command::new(program);
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    // Its own process group, so that a wrapper script's children are killed with it.
    let spawned = cmd
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let child = match spawned {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(fail("was not found on PATH".into())),
        Err(e) => return Err(fail(format!("could not be started: {e}"))),
        Ok(child) => child,
    };
    let group = child.id();
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => {
            if let Some(pid) = group {
                // The whole group: `kill` with a negative id (the child itself goes on drop).
                let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
            }
            return Err(fail(format!("did not finish within {}", humanize(timeout))));
        }
        Ok(Err(e)) => return Err(fail(format!("could not be read: {e}"))),
        Ok(Ok(out)) => out,
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr: String = stderr.lines().filter(|l| !l.trim().is_empty()).take(3).collect::<Vec<_>>().join(" / ");
    if !out.status.success() {
        let code = out
            .status
            .code()
            .map_or_else(|| "was killed by a signal".to_owned(), |c| format!("exited with status {c}"));
        let stdout_hint =
            if stderr.is_empty() { crate::reading::first_line(&String::from_utf8_lossy(&out.stdout)) } else { stderr };
        return Err(fail(if stdout_hint.is_empty() { code } else { format!("{code}: {}", cut(&stdout_hint, 300)) }));
    }
    // A stray Latin-1 byte in a node comment must not cost the whole round.
    Ok(match String::from_utf8(out.stdout) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Splits a configured command line on whitespace (`"sudo -n pbsnodes"` is three words).
pub fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        words(s)
    }

    #[tokio::test]
    async fn a_command_that_prints_is_read() {
        assert_eq!(run(&argv("echo hello"), Duration::from_secs(5)).await.unwrap(), "hello\n");
    }

    #[tokio::test]
    async fn output_that_is_not_utf8_is_read_with_replacement_characters() {
        let cmd = vec!["sh".into(), "-c".into(), "printf 'caf\\351\\n'".into()];
        assert_eq!(run(&cmd, Duration::from_secs(5)).await.unwrap(), "caf\u{FFFD}\n");
    }

    #[tokio::test]
    async fn a_missing_command_is_named() {
        let e = run(&argv("sitrep-no-such-command -a"), Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(e.to_string(), "`sitrep-no-such-command -a` was not found on PATH");
    }

    #[tokio::test]
    async fn a_failing_command_says_its_status_and_stderr() {
        let cmd = vec!["sh".into(), "-c".into(), "echo 'pbsnodes: Server has no node list' >&2; exit 1".into()];
        let e = run(&cmd, Duration::from_secs(5)).await.unwrap_err();
        assert!(e.reason.ends_with("exited with status 1: pbsnodes: Server has no node list"), "{e}");
    }

    #[tokio::test]
    async fn a_hanging_wrapper_script_is_killed_with_its_children() {
        let marker = format!("sitrep-test-{}", std::process::id());
        let cmd = vec!["sh".into(), "-c".into(), format!("sleep 30 & sleep 31; echo {marker}")];
        let e = run(&cmd, Duration::from_millis(300)).await.unwrap_err();
        assert!(e.reason.starts_with("did not finish within"), "{e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let left = std::process::Command::new("pgrep").args(["-f", "sleep 3[01]$"]).output().unwrap();
        let ours: Vec<u32> =
            String::from_utf8_lossy(&left.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect();
        // Any `sleep 30`/`sleep 31` left must not be this test's: its parent was the killed shell.
        for pid in ours {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid: u32 = stat.split_whitespace().nth(3).and_then(|p| p.parse().ok()).unwrap_or(0);
            assert_ne!(ppid, 1, "sleep {pid} was left behind, orphaned");
        }
    }

    #[tokio::test]
    async fn a_hanging_command_is_killed_at_the_timeout() {
        let e = run(&argv("sleep 30"), Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(e.to_string(), "`sleep 30` did not finish within 200ms");
    }
}
