//! Errors at the infra boundary.
//!
//! Policy: library code returns [`InfraError`] (thiserror) where callers act on the variant, and
//! `anyhow::Result` with `.context("what we were doing")` in plumbing whose errors are only
//! reported. Database constraint violations are mapped by constraint name in one place:
//! [`InfraError::from_db`].

use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// Two writers appended to the same aggregate at the same sequence; reload and retry.
    #[error("another writer appended to aggregate {0} first")]
    Conflict(String),
    /// An event with this id is already stored (a redelivered message).
    #[error("event already stored")]
    DuplicateEvent,
    #[error("database: {0}")]
    Db(#[source] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// Something with that name exists already; the message says what to do.
    #[error("{0}")]
    Exists(String),
    /// A value given by the user is not acceptable; the message says why.
    #[error("{0}")]
    Invalid(String),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl InfraError {
    /// Maps a database error, naming the constraint violations callers act on.
    pub fn from_db(err: tokio_postgres::Error) -> Self {
        if let Some(db) = err.as_db_error() {
            if db.code() == &SqlState::UNIQUE_VIOLATION {
                match db.constraint() {
                    Some("events_aggregate_sequence_key") => {
                        return InfraError::Conflict(db.detail().unwrap_or_default().to_owned())
                    }
                    Some("events_event_id_key") => return InfraError::DuplicateEvent,
                    _ => {}
                }
            }
        }
        InfraError::Db(err)
    }
}

impl From<tokio_postgres::Error> for InfraError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::from_db(err)
    }
}
