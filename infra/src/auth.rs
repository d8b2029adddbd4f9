//! Who may do what: collectors' API keys (HTTP ingest), operators (users with a role and an
//! Argon2id password hash, from `SITREP_USERS_FILE` or the `users` table) and their sessions.
//!
//! Keys and session tokens are long random strings shown once; only their SHA-256 is stored,
//! so a copy of the database lets no one in. Passwords are hashed with Argon2id.

use crate::InfraError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use time::OffsetDateTime;
use tokio_postgres::GenericClient;

/// What an operator may do. Ordered: each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Look at every page.
    Viewer,
    /// Also acknowledge and silence alerts, declare outages, schedule maintenance, handle quarantine.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A new random secret: 244 random bits as 64 hex digits (two v4 UUIDs, from the OS's RNG).
fn random_hex() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The SHA-256 of a secret, as hex: what is stored for keys and session tokens.
pub fn digest(secret: &str) -> String {
    format!("{:x}", Sha256::digest(secret.as_bytes()))
}

// ---------------------------------------------------------------------------------------- keys

/// What every API key starts with, so a leaked one is easy to recognise and search for.
pub const KEY_PREFIX: &str = "sitrep_";

/// An API key as listed (never the key itself).
#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub name: String,
    pub systems: Vec<String>,
    /// The key's first characters.
    pub prefix: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

/// Creates a key called `name` for `systems` and returns it: the only time it is shown.
/// Fails with [`InfraError::Exists`] if a key of that name exists (revoked or not).
pub async fn create_key(client: &impl GenericClient, name: &str, systems: &[String]) -> Result<String, InfraError> {
    let key = format!("{KEY_PREFIX}{}", random_hex());
    let prefix = &key[..KEY_PREFIX.len() + 8];
    let inserted = client
        .execute(
            "INSERT INTO api_keys (name, systems, key_hash, key_prefix) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING",
            &[&name, &systems, &digest(&key), &prefix],
        )
        .await?;
    if inserted == 0 {
        return Err(InfraError::Exists(format!("an API key called {name:?} exists already; pick another name")));
    }
    Ok(key)
}

/// Every key, newest first.
pub async fn list_keys(client: &impl GenericClient) -> Result<Vec<ApiKey>, InfraError> {
    let rows = client
        .query(
            "SELECT name, systems, key_prefix, created_at, revoked_at, last_used_at FROM api_keys
             ORDER BY created_at DESC, name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ApiKey {
            name: r.get(0),
            systems: r.get(1),
            prefix: r.get(2),
            created_at: r.get(3),
            revoked_at: r.get(4),
            last_used_at: r.get(5),
        })
        .collect())
}

/// Revokes the key called `name`; false if there is no such key still in force.
pub async fn revoke_key(client: &impl GenericClient, name: &str) -> Result<bool, InfraError> {
    let n = client
        .execute("UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", &[&name])
        .await?;
    Ok(n == 1)
}

/// The name of a key in force and the systems it may publish for; `None` for an unknown or
/// revoked key. Notes when it was last used.
pub async fn check_key(client: &impl GenericClient, key: &str) -> Result<Option<(String, Vec<String>)>, InfraError> {
    let row = client
        .query_opt(
            "UPDATE api_keys SET last_used_at = now() WHERE key_hash = $1 AND revoked_at IS NULL
             RETURNING name, systems",
            &[&digest(key)],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

// --------------------------------------------------------------------------------------- users

/// An operator who may sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Argon2id, in PHC string form (`$argon2id$v=19$...`).
    pub password_hash: String,
}

/// Hashes a password with Argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, InfraError> {
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
        .map_err(|e| InfraError::Invalid(format!("making a salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| InfraError::Invalid(format!("hashing the password: {e}")))
}

/// Whether `password` matches `hash` (false for a hash that cannot be read).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A name operators sign in with: 1-64 ASCII letters, digits, `.`, `_`, `-`, `@`.
pub fn check_user_name(name: &str) -> Result<(), InfraError> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(InfraError::Invalid(format!(
            "user name {name:?} must be 1 to 64 ASCII letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

/// The users of a users file:
///
/// ```toml
/// [[user]]
/// name = "alice"
/// role = "operator"
/// password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."   # from `sitrep users hash`
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    #[serde(default)]
    pub user: Vec<User>,
}

/// Reads a users file; the error names the file and what is wrong in it.
pub fn load_users_file(path: &Path) -> anyhow::Result<HashMap<String, User>> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the users file {}", path.display()))?;
    let file: UsersFile =
        toml::from_str(&text).with_context(|| format!("reading the users file {}", path.display()))?;
    let mut users = HashMap::new();
    for u in file.user {
        check_user_name(&u.name).with_context(|| format!("in {}", path.display()))?;
        PasswordHash::new(&u.password_hash).map_err(|e| {
            anyhow::anyhow!(
                "in {}: user {:?}: password_hash is not an Argon2 hash ({e}); make one with `sitrep users hash`",
                path.display(),
                u.name
            )
        })?;
        if let Some(dup) = users.insert(u.name.clone(), u) {
            anyhow::bail!("in {}: user {:?} is listed twice", path.display(), dup.name);
        }
    }
    Ok(users)
}

/// Adds a user, or changes the role and password of an existing one.
pub async fn put_user(client: &impl GenericClient, user: &User) -> Result<(), InfraError> {
    check_user_name(&user.name)?;
    client
        .execute(
            "INSERT INTO users (name, role, password_hash) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash",
            &[&user.name, &user.role.as_str(), &user.password_hash],
        )
        .await?;
    // A changed password or role ends the user's sessions.
    client.execute("DELETE FROM sessions WHERE user_name = $1", &[&user.name]).await?;
    Ok(())
}

/// Removes a user and ends their sessions; false if there was no such user.
pub async fn remove_user(client: &impl GenericClient, name: &str) -> Result<bool, InfraError> {
    client.execute("DELETE FROM sessions WHERE user_name = $1", &[&name]).await?;
    Ok(client.execute("DELETE FROM users WHERE name = $1", &[&name]).await? == 1)
}

/// The users in the database, by name.
pub async fn list_users(client: &impl GenericClient) -> Result<Vec<(String, Role)>, InfraError> {
    let rows = client.query("SELECT name, role FROM users ORDER BY name", &[]).await?;
    Ok(rows.iter().map(|r| (r.get(0), Role::parse(r.get(1)).unwrap_or(Role::Viewer))).collect())
}

/// The user called `name`: from the users file if it is there, else from the database.
pub async fn find_user(
    client: &impl GenericClient,
    file: &HashMap<String, User>,
    name: &str,
) -> Result<Option<User>, InfraError> {
    if let Some(u) = file.get(name) {
        return Ok(Some(u.clone()));
    }
    let row = client.query_opt("SELECT role, password_hash FROM users WHERE name = $1", &[&name]).await?;
    Ok(row.map(|r| User {
        name: name.to_owned(),
        role: Role::parse(r.get(0)).unwrap_or(Role::Viewer),
        password_hash: r.get(1),
    }))
}

// ------------------------------------------------------------------------------------ sessions

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// The token every form of this session must carry.
    pub csrf: String,
    pub expires_at: OffsetDateTime,
}

/// Starts a session for `user` lasting `ttl`; returns the cookie's token and the session.
pub async fn start_session(
    client: &impl GenericClient,
    user: &User,
    ttl: time::Duration,
) -> Result<(String, Session), InfraError> {
    let token = random_hex();
    let csrf = random_hex();
    let expires_at = OffsetDateTime::now_utc() + ttl;
    // Expired sessions go when anyone signs in.
    client.execute("DELETE FROM sessions WHERE expires_at < now()", &[]).await?;
    client
        .execute(
            "INSERT INTO sessions (token_hash, user_name, csrf, expires_at) VALUES ($1, $2, $3, $4)",
            &[&digest(&token), &user.name, &csrf, &expires_at],
        )
        .await?;
    Ok((token, Session { user: user.name.clone(), role: user.role, csrf, expires_at }))
}

/// Failed sign-ins one name may have within [`SIGN_IN_WINDOW`]; the next attempt is refused,
/// right password or not, until the oldest of them is that old.
pub const SIGN_IN_FAILURES: i64 = 5;
/// See [`SIGN_IN_FAILURES`].
pub const SIGN_IN_WINDOW: time::Duration = time::Duration::minutes(15);

/// The longest name kept for counting failures (valid names are at most 64 characters).
const FAILURE_NAME_CHARS: usize = 100;

fn failure_key(name: &str) -> String {
    name.chars().take(FAILURE_NAME_CHARS).collect()
}

/// A refused sign-in: when the name may try again, and how many seconds that is from now (by
/// the database's clock, which timed the failures).
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    pub until: OffsetDateTime,
    pub wait_seconds: i64,
}

/// Records an attempt to sign in as `name` before its password is checked, and returns when the
/// name may try again if it is refused now (`None`: check the password). It counts the
/// name's other attempts within the last [`SIGN_IN_WINDOW`]: with [`SIGN_IN_FAILURES`] or more,
/// the attempt is refused (and withdrawn, so refused attempts do not push the wait back) until
/// the oldest of the latest ones is that old. Recording first makes parallel guesses see each
/// other: the attempt whose row is the k-th to commit counts at least k - 1 others, so at most
/// [`SIGN_IN_FAILURES`] are checked however many arrive at once. A failed attempt's row stays
/// as its failure; [`forget_sign_in_failures`] clears them after a success. Names that are no
/// user's count too, so the answer says nothing about which names exist.
pub async fn begin_sign_in(client: &impl GenericClient, name: &str) -> Result<Option<Refused>, InfraError> {
    let key = failure_key(name);
    let window = SIGN_IN_WINDOW.as_seconds_f64();
    client
        .execute("DELETE FROM sign_in_failures WHERE at <= now() - make_interval(secs => $1::float8)", &[&window])
        .await?;
    let id: i64 =
        client.query_one("INSERT INTO sign_in_failures (name) VALUES ($1) RETURNING id", &[&key]).await?.get(0);
    let others = client
        .query(
            "SELECT at + make_interval(secs => $3::float8),
                    ceil(extract(epoch FROM at + make_interval(secs => $3::float8) - now()))::int8
             FROM sign_in_failures
             WHERE name = $1 AND id <> $2 AND at > now() - make_interval(secs => $3::float8)
             ORDER BY at DESC LIMIT $4",
            &[&key, &id, &window, &SIGN_IN_FAILURES],
        )
        .await?;
    if (others.len() as i64) < SIGN_IN_FAILURES {
        return Ok(None);
    }
    client.execute("DELETE FROM sign_in_failures WHERE id = $1", &[&id]).await?;
    let oldest = others.last().expect("at least one row");
    Ok(Some(Refused { until: oldest.get(0), wait_seconds: oldest.get::<_, i64>(1).max(1) }))
}

/// Forgets `name`'s failed sign-ins (it has just signed in, or an admin lifts its refusal with
/// `sitrep users unlock`); returns how many there were.
pub async fn forget_sign_in_failures(client: &impl GenericClient, name: &str) -> Result<u64, InfraError> {
    Ok(client.execute("DELETE FROM sign_in_failures WHERE name = $1", &[&failure_key(name)]).await?)
}

/// The session a cookie's token belongs to, if it has not expired and its user still exists.
pub async fn session(
    client: &impl GenericClient,
    file: &HashMap<String, User>,
    token: &str,
) -> Result<Option<Session>, InfraError> {
    let row = client
        .query_opt(
            "SELECT s.user_name, s.csrf, s.expires_at, u.role FROM sessions s LEFT JOIN users u ON u.name = s.user_name
             WHERE s.token_hash = $1 AND s.expires_at > now()",
            &[&digest(token)],
        )
        .await?;
    Ok(row.and_then(|r| {
        let user: String = r.get(0);
        let role = file.get(&user).map(|u| u.role).or_else(|| r.get::<_, Option<&str>>(3).and_then(Role::parse))?;
        Some(Session { user, role, csrf: r.get(1), expires_at: r.get(2) })
    }))
}

/// Ends the session a cookie's token belongs to.
pub async fn end_session(client: &impl GenericClient, token: &str) -> Result<(), InfraError> {
    client.execute("DELETE FROM sessions WHERE token_hash = $1", &[&digest(token)]).await?;
    Ok(())
}

/// A fresh token for a browser that has not signed in, so its sign-in form can be checked.
pub fn anonymous_csrf() -> String {
    random_hex()
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_and_nothing_else() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horse "));
        assert!(!verify_password("not a hash", "correct horse"));
        assert_ne!(h, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn secrets_are_random_and_only_their_digest_is_kept() {
        let (a, b) = (random_hex(), random_hex());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        assert!(!same_secret("a", "ab"));
    }

    #[test]
    fn a_users_file_is_read_and_its_mistakes_named() {
        let dir = std::env::temp_dir().join(format!("sitrep-users-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.toml");
        let hash = hash_password("pw").unwrap();
        std::fs::write(&path, format!("[[user]]\nname = \"alice\"\nrole = \"operator\"\npassword_hash = \"{hash}\"\n"))
            .unwrap();
        let users = load_users_file(&path).unwrap();
        assert_eq!(users["alice"].role, Role::Operator);

        std::fs::write(&path, "[[user]]\nname = \"bob\"\nrole = \"boss\"\npassword_hash = \"x\"\n").unwrap();
        let err = format!("{:#}", load_users_file(&path).unwrap_err());
        assert!(err.contains("boss"), "{err}");
        std::fs::write(&path, "[[user]]\nname = \"bob\"\nrole = \"admin\"\npassword_hash = \"hunter2\"\n").unwrap();
        let err = format!("{:#}", load_users_file(&path).unwrap_err());
        assert!(err.contains("sitrep users hash") && !err.contains("hunter2\n"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
