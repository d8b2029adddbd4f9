//! `sitrep keys` and `sitrep users`: collectors' API keys and the operators who may sign in.

use anyhow::Context;
use clap::Subcommand;
use sitrep_domain::SystemName;
use sitrep_infra::auth::{self, Role, User};
use sitrep_infra::{db, InfraError, Settings};
use std::io::{BufRead, IsTerminal, Write};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for HTTP ingest and print it, once: only its hash is kept.
    Create {
        /// What the key is for, such as derecho-collector; unique.
        #[arg(long)]
        name: String,
        /// A system the key may publish for; repeat for more.
        #[arg(long = "system", required = true)]
        systems: Vec<String>,
    },
    /// List keys: name, systems, the key's first characters, when made, last used, revoked.
    List,
    /// Revoke a key by name; requests with it are refused from then on.
    Revoke {
        /// The key's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add an operator, or change one's role and password (which ends their sessions). The
    /// password is read from standard input (asked for, unechoed, on a terminal).
    Add {
        /// The name they sign in with: 1-64 ASCII letters, digits, '.', '_', '-', '@'.
        #[arg(long)]
        name: String,
        /// What they may do.
        #[arg(long, value_enum, default_value = "operator")]
        role: Role,
    },
    /// Remove an operator and end their sessions.
    Remove {
        /// Their name.
        name: String,
    },
    /// List the operators added with `users add` (not those in SITREP_USERS_FILE).
    List,
    /// Let a name sign in again at once: forget its failed sign-ins (after 5 within 15 minutes
    /// the dashboard refuses it for a while).
    Unlock {
        /// The name, as typed at the sign-in form.
        name: String,
    },
    /// Print the Argon2id hash of a password (read as for `add`), for SITREP_USERS_FILE.
    Hash,
}

async fn client(settings: &Settings) -> anyhow::Result<deadpool_postgres::Object> {
    let pg = db::parse_url(settings.database_url.expose())?;
    db::migrate(&pg).await?;
    let pool = db::pool(&pg, 1)?;
    pool.get().await.context("connecting to Postgres (set SITREP_DATABASE_URL)")
}

fn time_text(t: Option<time::OffsetDateTime>) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&fmt).ok()).unwrap_or_else(|| "-".into())
}

pub async fn keys(settings: &Settings, command: KeysCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    let client = client(settings).await?;
    match command {
        KeysCommand::Create { name, systems } => {
            anyhow::ensure!(!name.trim().is_empty() && name.len() <= 100, "--name must be 1 to 100 characters");
            for s in &systems {
                SystemName::parse(s).map_err(|r| anyhow::anyhow!("--system {s:?}: {r}"))?;
            }
            let key = match auth::create_key(&**client, &name, &systems).await {
                Err(InfraError::Exists(what)) => anyhow::bail!(what),
                other => other?,
            };
            writeln!(out, "{key}")?;
            if std::io::stdout().is_terminal() {
                eprintln!(
                    "API key {name:?} for {} created. It is shown only now: store it where the collector reads it \
                     (send it as `Authorization: Bearer <key>`).",
                    systems.join(", ")
                );
            }
        }
        KeysCommand::List => {
            writeln!(
                out,
                "{:<28} {:<24} {:<16} {:<21} {:<21} revoked",
                "name", "systems", "key", "created", "last used"
            )?;
            for k in auth::list_keys(&**client).await? {
                writeln!(
                    out,
                    "{:<28} {:<24} {:<16} {:<21} {:<21} {}",
                    k.name,
                    k.systems.join(","),
                    format!("{}…", k.prefix),
                    time_text(Some(k.created_at)),
                    time_text(k.last_used_at),
                    time_text(k.revoked_at)
                )?;
            }
        }
        KeysCommand::Revoke { name } => {
            anyhow::ensure!(auth::revoke_key(&**client, &name).await?, "no API key called {name:?} is in force");
            writeln!(out, "revoked API key {name:?}")?;
        }
    }
    Ok(())
}

/// Reads a password: unechoed from a terminal (asked twice), else the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(first == again, "the passwords differ");
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    anyhow::ensure!(password.chars().count() >= 8, "a password must be at least 8 characters");
    Ok(password)
}

pub async fn users(settings: &Settings, command: UsersCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    if let UsersCommand::Hash = command {
        writeln!(out, "{}", auth::hash_password(&read_password()?)?)?;
        return Ok(());
    }
    let client = client(settings).await?;
    match command {
        UsersCommand::Add { name, role } => {
            auth::check_user_name(&name)?;
            let password_hash = auth::hash_password(&read_password()?)?;
            auth::put_user(&**client, &User { name: name.clone(), role, password_hash }).await?;
            writeln!(out, "{name} may sign in as {}", role.as_str())?;
        }
        UsersCommand::Remove { name } => {
            anyhow::ensure!(auth::remove_user(&**client, &name).await?, "no user called {name:?}");
            writeln!(out, "removed {name}")?;
        }
        UsersCommand::List => {
            for (name, role) in auth::list_users(&**client).await? {
                writeln!(out, "{name:<32} {}", role.as_str())?;
            }
        }
        UsersCommand::Unlock { name } => {
            let failures = auth::forget_sign_in_failures(&**client, &name).await?;
            writeln!(out, "{name} may sign in again ({failures} failed sign-ins forgotten)")?;
        }
        UsersCommand::Hash => unreachable!("handled above"),
    }
    Ok(())
}
