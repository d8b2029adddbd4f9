//! JupyterHub, from its REST API (`GET /hub/api/users` with a token).
//!
//! `hub/<name>` has `active_users` (users active in the last 24 hours, as JupyterHub's own
//! `active_users` metric counts them), `running_servers` (servers that are ready),
//! `pending_spawns` (servers being started) and `users_total`. It is `failed` when the hub does
//! not answer or answers with a server error, and `unknown` when it refuses the token or answers
//! with what is not a user list. The HTTP request itself is made by the `sitrep` binary; this
//! module reads the pages it gets.

use crate::reading::{parse_json, ParseError, Reading};
use serde_json::Value;
use sitrep_domain::status::Status;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The `Accept` header that asks JupyterHub 2.0 and later for paginated answers; older hubs
/// ignore it and send the whole list.
pub const PAGINATED: &str = "application/jupyterhub-pagination+json";

/// One page of `/hub/api/users`: the users, and the offset of the next page when there is one.
pub fn page(text: &str) -> Result<(Vec<Value>, Option<u64>), ParseError> {
    match parse_json(text)? {
        Value::Array(users) => Ok((users, None)),
        Value::Object(mut o) => {
            let Some(Value::Array(users)) = o.remove("items") else {
                return Err(ParseError::new("answered with an object that has no \"items\" list of users"));
            };
            let next =
                o.get("_pagination").and_then(|p| p.get("next")).and_then(|n| n.get("offset")).and_then(Value::as_u64);
            Ok((users, next))
        }
        _ => Err(ParseError::new("answered with JSON that is not a list of users")),
    }
}

/// The `hub/<name>` reading of every user the hub listed, at `now`.
pub fn reading(name: &str, users: &[Value], now: OffsetDateTime) -> Reading {
    let recent = |u: &Value| {
        u.get("last_activity")
            .and_then(Value::as_str)
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .is_some_and(|t| now - t <= time::Duration::hours(24))
    };
    let pending_spawn = |v: &Value| v.get("pending").and_then(Value::as_str) == Some("spawn");
    let (mut running, mut pending) = (0u32, 0u32);
    for u in users {
        match u.get("servers").and_then(Value::as_object) {
            Some(servers) => {
                for s in servers.values() {
                    if pending_spawn(s) {
                        pending += 1;
                    } else if s.get("ready").and_then(Value::as_bool).unwrap_or(false) {
                        running += 1;
                    }
                }
            }
            // Without the servers scope, a user model has only `server` (a URL or null) and `pending`.
            None => {
                if pending_spawn(u) {
                    pending += 1;
                } else if u.get("server").is_some_and(|s| !s.is_null()) {
                    running += 1;
                }
            }
        }
    }
    let active = users.iter().filter(|u| recent(u)).count() as f64;
    Reading::new("hub", name)
        .metric("active_users", active)
        .metric("running_servers", running.into())
        .metric("pending_spawns", pending.into())
        .metric("users_total", users.len() as f64)
        .label("kind", "hub")
        .status(Status::Ok, format!("{running} servers running, {pending} starting, {active} users active today"))
}

/// The reading of a hub that could not be read: `failed` when it did not answer or answered
/// with a server error (`status` 500 and up, or None for no answer), else `unknown`.
pub fn trouble(name: &str, status: Option<u16>, why: impl Into<String>) -> Reading {
    let s = if status.is_none_or(|s| s >= 500) { Status::Failed } else { Status::Unknown };
    Reading::new("hub", name).label("kind", "hub").status(s, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    /// Shaped as JupyterHub 4's `GET /hub/api/users` documents its user model.
    fn users() -> Vec<Value> {
        vec![
            json!({"kind": "user", "name": "alice", "last_activity": "2026-12-07T01:00:00Z", "pending": null,
                   "servers": {"": {"name": "", "ready": true, "pending": null}, "gpu": {"name": "gpu", "ready": false, "pending": "spawn"}}}),
            json!({"kind": "user", "name": "bob", "last_activity": "2026-12-01T01:00:00Z", "servers": {}}),
            json!({"kind": "user", "name": "carol", "last_activity": "2026-12-06T09:00:00.123456Z",
                   "servers": {"": {"name": "", "ready": false, "pending": "stop"}}}),
            json!({"kind": "user", "name": "dave", "last_activity": null, "server": "/user/dave/", "pending": null}),
        ]
    }

    #[test]
    fn servers_spawns_and_active_users_are_counted() {
        let r = reading("main", &users(), datetime!(2026-12-07 02:00 UTC));
        assert_eq!(r.component, "hub/main");
        let got: Vec<f64> =
            ["active_users", "running_servers", "pending_spawns", "users_total"].iter().map(|m| r.get(m)).collect();
        assert_eq!(got, [2.0, 2.0, 1.0, 4.0]);
        assert_eq!((r.status, r.message.as_str()), (Status::Ok, "2 servers running, 1 starting, 2 users active today"));
    }

    #[test]
    fn both_the_plain_list_and_the_paginated_answer_are_read() {
        let (list, next) = page(&json!(users()).to_string()).unwrap();
        assert_eq!((list.len(), next), (4, None));
        let paginated = json!({"items": users(), "_pagination": {"offset": 0, "limit": 4, "total": 9, "next": {"offset": 4, "limit": 4, "url": "/hub/api/users?offset=4"}}});
        let (list, next) = page(&paginated.to_string()).unwrap();
        assert_eq!((list.len(), next), (4, Some(4)));
        let last = json!({"items": [], "_pagination": {"offset": 8, "limit": 4, "total": 8, "next": null}});
        assert_eq!(page(&last.to_string()).unwrap().1, None);
    }

    #[test]
    fn what_is_not_a_user_list_is_an_error() {
        assert!(page("<html>502 Bad Gateway</html>").unwrap_err().0.starts_with("printed no JSON"));
        assert_eq!(
            page("{\"message\": \"Forbidden\"}").unwrap_err().0,
            "answered with an object that has no \"items\" list of users"
        );
    }

    #[test]
    fn a_hub_that_does_not_answer_has_failed_and_one_that_refuses_the_token_is_unknown() {
        assert_eq!(trouble("main", None, "no answer").status, Status::Failed);
        assert_eq!(trouble("main", Some(503), "503").status, Status::Failed);
        assert_eq!(trouble("main", Some(403), "the token was refused").status, Status::Unknown);
    }
}
