//! The event store: gap-safe global order, and the cqrs-es repository.

use crate::helpers::{eventually, isolated_settings, spawn_app, wait_for_components};
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::CqrsFramework;
use serde_json::json;
use sitrep_domain::component::{Component, ComponentCommand};
use sitrep_domain::wire;
use sitrep_infra::db;
use sitrep_infra::event_store::{self, NewEvent, PgEventRepository};

fn event(aggregate: &str, seq: i64) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::new_v4(),
        aggregate_type: "test".into(),
        aggregate_id: aggregate.into(),
        sequence: seq,
        event_type: "Tested".into(),
        event_version: "1".into(),
        payload: json!({"seq": seq}),
        metadata: json!({"by": "test"}),
    }
}

#[tokio::test]
async fn append_is_serialised_so_readers_never_skip_a_late_commit() {
    // Arrange: a migrated database and two writers.
    let (settings, db_name) = isolated_settings().await;
    let pg = db::parse_url(settings.database_url.expose()).unwrap();
    db::migrate(&pg).await.unwrap();
    let pool = db::pool(&pg, 4).unwrap();
    let mut first = pool.get().await.unwrap();
    let slow = first.transaction().await.unwrap();

    // Act: the first writer appends and keeps its transaction open; the second appends after it
    // and tries to commit first; a reader reads while both are in flight.
    event_store::append(&*slow, &[event("a", 1)]).await.unwrap();
    let second = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut c = pool.get().await.unwrap();
            let tx = c.transaction().await.unwrap();
            event_store::append(&*tx, &[event("b", 1)]).await.unwrap();
            tx.commit().await.unwrap();
        })
    };
    let reader = pool.get().await.unwrap();
    eventually("the second writer to wait for the first", || async {
        let waiting: i64 = reader
            .query_one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted", &[])
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            Ok(())
        } else {
            Err("no writer waiting".into())
        }
    })
    .await;
    let seen_early = event_store::read_after(&**reader, 0, 100, event_store::Metadata::Include).await.unwrap();
    slow.commit().await.unwrap();
    second.await.unwrap();

    // Assert: the reader saw nothing it would have to go back for, and reading on from its
    // checkpoint finds every event, in position order.
    let checkpoint = seen_early.last().map(|e| e.position).unwrap_or(0);
    let rest = event_store::read_after(&**reader, checkpoint, 100, event_store::Metadata::Include).await.unwrap();
    let all: Vec<String> = seen_early.iter().chain(&rest).map(|e| e.aggregate_id.clone()).collect();
    assert!(seen_early.is_empty(), "the second writer could not commit before the first: {seen_early:?}");
    assert_eq!(all, ["a", "b"]);
    assert!(rest[0].position < rest[1].position);
    // A read may leave the metadata out, and brings the same events otherwise.
    assert_eq!(rest[0].metadata, json!({"by": "test"}));
    let lean = event_store::read_after(&**reader, checkpoint, 100, event_store::Metadata::Skip).await.unwrap();
    assert_eq!(lean.len(), 2);
    for (lean, full) in lean.iter().zip(&rest) {
        let without = event_store::StoredEvent { metadata: serde_json::Value::Null, ..full.clone() };
        assert_eq!(lean, &without);
    }

    drop((reader, first));
    pool.close();
    db::drop_database(settings.database_url.expose(), &db_name).await.unwrap();
}

#[tokio::test]
async fn a_command_through_the_cqrs_es_framework_lands_in_the_same_store_and_read_model() {
    let app = spawn_app().await;
    let cqrs = CqrsFramework::new(
        PersistedEventStore::<_, Component>::new_event_store(PgEventRepository::new(app.pool.clone())),
        vec![],
        (),
    );
    let now = time::OffsetDateTime::now_utc();
    let report = |status: &str| {
        let payload = format!(r#"{{"system":"derecho","component":"svc/api","status":"{status}"}}"#);
        wire::decode("derecho", payload.as_bytes(), now).unwrap().reports.remove(0)
    };

    cqrs.execute("derecho:svc/api", ComponentCommand::ReportStatus { report: report("ok"), received_at: now })
        .await
        .unwrap();
    cqrs.execute("derecho:svc/api", ComponentCommand::ReportStatus { report: report("failed"), received_at: now })
        .await
        .unwrap();

    let body = wait_for_components(&app, 1).await;
    let body = if body["components"][0]["status"] == "failed" {
        body
    } else {
        eventually("svc/api to be failed", || async {
            let (_, b) = app.get_json("/api/v1/status/derecho").await;
            if b["components"][0]["status"] == "failed" {
                Ok(b)
            } else {
                Err(b.to_string())
            }
        })
        .await
    };
    assert_eq!(body["components"][0]["status"], "failed");
    let seqs = app.scalar("SELECT max(sequence) FROM events WHERE aggregate_id = 'derecho:svc/api'").await;
    assert_eq!(seqs, 4, "reported + changed, twice");
    // A stale writer (an old sequence) is refused by optimistic concurrency.
    let client = app.pool.get().await.unwrap();
    let mut dup = event("x", 1);
    dup.aggregate_type = "component".into();
    dup.aggregate_id = "derecho:svc/api".into();
    let err = event_store::append(&**client, &[dup]).await.unwrap_err();
    assert!(matches!(err, sitrep_infra::InfraError::Conflict(_)), "{err}");
    app.cleanup().await;
}

#[tokio::test]
async fn pooled_connections_are_replaced_after_their_lifetime_and_reused_before_it() {
    let (settings, db_name) = isolated_settings().await;
    let pg = db::parse_url(settings.database_url.expose()).unwrap();
    db::migrate(&pg).await.unwrap();
    let backend = |pool: deadpool_postgres::Pool| async move {
        let client = pool.get().await.unwrap();
        client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get::<_, i32>(0)
    };

    let lasting = db::pool_with_lifetime(&pg, 1, std::time::Duration::from_secs(3600)).unwrap();
    assert_eq!(backend(lasting.clone()).await, backend(lasting.clone()).await, "reused within its lifetime");
    let brief = db::pool_with_lifetime(&pg, 1, std::time::Duration::ZERO).unwrap();
    assert_ne!(backend(brief.clone()).await, backend(brief.clone()).await, "replaced once past its lifetime");

    lasting.close();
    brief.close();
    db::drop_database(settings.database_url.expose(), &db_name).await.unwrap();
}
