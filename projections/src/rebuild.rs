//! Rebuilding a read model beside the live one, for `sitrep replay` and `sitrep verify`.
//!
//! The shadow copy lives in the schema [`SHADOW`]: the same tables (`LIKE … INCLUDING ALL`)
//! and its own checkpoint row. The projection's code writes to it unchanged, because each
//! transaction puts `sitrep_shadow` first on its `search_path`.
//!
//! - [`prepare`] drops any earlier shadow of the projection and creates empty tables. Starting
//!   again after an interrupted rebuild is therefore safe, and the live tables are never touched
//!   before the swap.
//!   Its [deferred indexes](Projection::deferred_indexes) are left out of the shadow tables.
//! - [`build`] catches the shadow up with the log, step by step, reporting progress (from a
//!   read shared with other rebuilds, [`crate::feed`], when it is given one); then
//!   [`index`] creates the deferred indexes, under their live names, in one pass per index.
//! - [`swap`] locks the live checkpoint (the live runner waits), brings the shadow to the head
//!   of the log, and replaces the live tables with the shadow ones in one transaction. Readers
//!   wait for the moment of the swap and then read the new tables; none fails.
//! - [`compare`] brings the shadow to the live position inside one snapshot (no lock on the
//!   live side), compares every table row by row (`EXCEPT ALL`, both ways), and rolls back.

use crate::feed::Feed;
use crate::runner::{self, apply_until, lock_checkpoint, move_checkpoint, use_schema, Projection, Source};
use anyhow::Context;
use deadpool_postgres::Pool;
use sitrep_infra::event_store;

/// The schema shadow tables are built in.
pub const SHADOW: &str = "sitrep_shadow";

/// Takes a session lock so that two rebuilds of one projection never overlap; it is held as
/// long as the returned connection lives. The connection is taken out of the pool, so dropping
/// it closes the session and frees the lock (a pooled one would keep it).
pub async fn exclusive(pool: &Pool, name: &str) -> anyhow::Result<deadpool_postgres::ClientWrapper> {
    let client = deadpool_postgres::Object::take(pool.get().await.context("connecting to Postgres")?);
    let got: bool =
        client.query_one("SELECT pg_try_advisory_lock(hashtext('sitrep rebuild ' || $1))", &[&name]).await?.get(0);
    anyhow::ensure!(got, "another replay or verify of {name} is running; wait for it to finish");
    Ok(client)
}

/// Drops any earlier shadow of the projection and creates its empty shadow tables.
pub async fn prepare<P: Projection>(pool: &Pool, projection: &P) -> anyhow::Result<()> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    // Rebuilds run side by side: one at a time creates the schema (IF NOT EXISTS races).
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock(hashtext('sitrep shadow schema'));
         CREATE SCHEMA IF NOT EXISTS {SHADOW};
         CREATE TABLE IF NOT EXISTS {SHADOW}.projection_checkpoints (LIKE public.projection_checkpoints INCLUDING ALL);"
    ))
    .await?;
    tx.execute(&format!("DELETE FROM {SHADOW}.projection_checkpoints WHERE name = $1"), &[&projection.name()]).await?;
    for table in projection.tables() {
        tx.batch_execute(&format!(
            "DROP TABLE IF EXISTS {SHADOW}.{table}; CREATE TABLE {SHADOW}.{table} (LIKE public.{table} INCLUDING ALL);"
        ))
        .await?;
        // `LIKE` names the copies of indexes itself: find the deferred ones by their shape.
        let live = index_names(&tx, "public", table).await?;
        for (shape, shadow_name) in index_names(&tx, SHADOW, table).await? {
            let deferred = live.iter().any(|(s, n)| *s == shape && projection.deferred_indexes().contains(&n.as_str()));
            if deferred {
                tx.batch_execute(&format!("DROP INDEX {SHADOW}.\"{shadow_name}\"")).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Creates the projection's deferred indexes on its filled shadow tables, as the live ones are
/// defined and under their names (the live tables and their indexes are in another schema, so
/// the names are free until the swap drops the live ones).
pub async fn index<P: Projection>(pool: &Pool, projection: &P) -> anyhow::Result<()> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    for name in projection.deferred_indexes() {
        let tx = client.transaction().await?;
        // More sort memory than the default 64 MB lets large indexes build in one pass.
        tx.batch_execute("SET LOCAL maintenance_work_mem = '256MB'").await?;
        let row = tx
            .query_opt(
                "SELECT pg_get_indexdef(i.oid) FROM pg_class i JOIN pg_namespace n ON n.oid = i.relnamespace
                 WHERE n.nspname = 'public' AND i.relname = $1 AND i.relkind = 'i'",
                &[name],
            )
            .await?
            .with_context(|| format!("the live index {name} is missing; run `sitrep migrate`"))?;
        let live: String = row.get(0);
        let shadow = live
            .split_once(" ON public.")
            .map(|(head, rest)| format!("{head} ON {SHADOW}.{rest}"))
            .with_context(|| format!("an unexpected definition of index {name}: {live}"))?;
        tx.batch_execute(&shadow).await.with_context(|| format!("creating index {name} on the rebuilt table"))?;
        tx.commit().await?;
    }
    Ok(())
}

/// Drops the projection's shadow tables and checkpoint.
pub async fn discard<P: Projection>(pool: &Pool, projection: &P) -> anyhow::Result<()> {
    let client = pool.get().await.context("connecting to Postgres")?;
    for table in projection.tables() {
        client.batch_execute(&format!("DROP TABLE IF EXISTS {SHADOW}.{table}")).await?;
    }
    client
        .execute(&format!("DELETE FROM {SHADOW}.projection_checkpoints WHERE name = $1"), &[&projection.name()])
        .await
        .ok();
    Ok(())
}

/// What [`build`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Built {
    /// The shadow's position.
    pub position: i64,
    /// Events applied: positions have gaps (a failed append uses some up), and a projection
    /// that reads only some aggregate types applies only those.
    pub applied: u64,
}

/// Catches the shadow up with the log, up to position `until` (`i64::MAX`: all of it):
/// first from `feed` (a read of the log shared with other rebuilds, see [`crate::feed`]) when
/// there is one, then from the log itself; `progress(position, head, applied so far)` after
/// every step.
pub async fn build<P: Projection>(
    pool: &Pool,
    projection: &P,
    until: i64,
    feed: Option<Feed>,
    mut progress: impl FnMut(i64, i64, u64),
) -> anyhow::Result<Built> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let mut feed = feed;
    let mut applied = 0;
    loop {
        let (head, source) = match feed.as_mut() {
            Some(feed) => (feed.through(), Source::Feed(feed)),
            None => (event_store::head(&**client).await?.min(until), Source::Log),
        };
        let stepped = runner::step_from(pool, projection, Some(SHADOW), until, source).await?;
        applied += stepped.applied as u64;
        progress(stepped.position, head.max(stepped.position), applied);
        if stepped.caught_up {
            // A shared read ends where it started (the head then); the log itself goes on.
            if feed.take().is_none() {
                return Ok(Built { position: stepped.position, applied });
            }
        }
    }
}

/// The live projection's checkpoint (0 before its first batch).
pub async fn live_position(pool: &Pool, name: &str) -> anyhow::Result<i64> {
    let client = pool.get().await.context("connecting to Postgres")?;
    live_position_in(&**client, name).await
}

async fn live_position_in(client: &impl tokio_postgres::GenericClient, name: &str) -> anyhow::Result<i64> {
    let row = client.query_opt("SELECT position FROM public.projection_checkpoints WHERE name = $1", &[&name]).await?;
    Ok(row.map_or(0, |r| r.get(0)))
}

/// Prunes the shadow history as retention at `now` would (before it is swapped in).
pub async fn prune_shadow(pool: &Pool, now: time::OffsetDateTime, retention: crate::Retention) -> anyhow::Result<()> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    use_schema(&tx, Some(SHADOW)).await?;
    crate::history::prune_with(&*tx, now, retention).await?;
    tx.commit().await?;
    Ok(())
}

/// Replaces the live tables with the caught-up shadow ones, atomically. Returns the position
/// the projection stands at afterwards.
pub async fn swap<P: Projection>(pool: &Pool, projection: &P) -> anyhow::Result<i64> {
    let name = projection.name();
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    use_schema(&tx, None).await?;
    lock_checkpoint(&tx, name).await?;
    let head = event_store::head(&*tx).await?;
    use_schema(&tx, Some(SHADOW)).await?;
    let position = apply_until(&tx, projection, head).await?;
    use_schema(&tx, None).await?;
    // The live checkpoint never passes the head, so a rebuild brought to the head is never
    // behind it; refuse rather than swap in fewer events than the live tables hold.
    let live = live_position_in(&*tx, name).await?;
    anyhow::ensure!(position >= live, "the rebuild of {name} reached {position}, behind the live {live}");
    lock_live_tables(&tx, projection.tables()).await?;
    for table in projection.tables() {
        let names = index_names(&tx, "public", table).await?;
        tx.batch_execute(&format!("DROP TABLE public.{table}; ALTER TABLE {SHADOW}.{table} SET SCHEMA public;"))
            .await
            .with_context(|| format!("swapping in the rebuilt {table}"))?;
        // `LIKE … INCLUDING ALL` names indexes by default; give them back the migrations' names.
        for (def, new_name) in index_names(&tx, "public", table).await? {
            if let Some(old_name) = names.iter().find(|(d, _)| *d == def).map(|(_, n)| n) {
                if *old_name != new_name {
                    tx.batch_execute(&format!("ALTER INDEX public.\"{new_name}\" RENAME TO \"{old_name}\""))
                        .await
                        .with_context(|| format!("naming index {old_name} of the rebuilt {table}"))?;
                }
            }
        }
    }
    move_checkpoint(&tx, name, position).await?;
    tx.execute(&format!("DELETE FROM {SHADOW}.projection_checkpoints WHERE name = $1"), &[&name]).await?;
    tx.commit().await?;
    Ok(position)
}

/// `(definition without its name, name)` of every index of `schema.table`.
async fn index_names(
    tx: &deadpool_postgres::Transaction<'_>,
    schema: &str,
    table: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let rows = tx
        .query(
            "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x
             JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE n.nspname = $1 AND t.relname = $2",
            &[&schema, &table],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (name, def): (String, String) = (r.get(0), r.get(1));
            // "CREATE [UNIQUE] INDEX <name> ON <schema>.<table> USING ...": keep what follows the name.
            let shape = def.split_once(" ON ").map(|(head, rest)| {
                let unique = head.starts_with("CREATE UNIQUE");
                format!("{unique} {}", rest.split_once(" USING ").map_or(rest, |(_, using)| using))
            });
            (shape.unwrap_or(def), name)
        })
        .collect())
}

/// Takes every live table of the projection for the swap without ever waiting while holding
/// one: a page whose query reads two of them in the other order would otherwise deadlock with
/// the swap (and Postgres would abort the page's query). Each try takes all or none (`NOWAIT`,
/// rolled back to a savepoint); readers hold their locks for a statement, so a try soon
/// succeeds.
async fn lock_live_tables(tx: &deadpool_postgres::Transaction<'_>, tables: &[&str]) -> anyhow::Result<()> {
    let list: Vec<String> = tables.iter().map(|t| format!("public.{t}")).collect();
    let lock = format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE NOWAIT", list.join(", "));
    for attempt in 0.. {
        tx.batch_execute("SAVEPOINT swap_locks").await?;
        match tx.batch_execute(&lock).await {
            Ok(()) => return Ok(()),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) && attempt < 10_000 => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT swap_locks").await?;
                tokio::time::sleep(std::time::Duration::from_millis(2 + attempt % 8)).await;
            }
            Err(e) => return Err(anyhow::Error::new(e).context("locking the live tables for the swap")),
        }
    }
    unreachable!()
}

/// Where a rebuilt table differs from the live one.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub table: String,
    /// Rows only the live table has, and how many.
    pub only_live: i64,
    pub live_examples: Vec<String>,
    /// Rows only the rebuilt table has, and how many.
    pub only_rebuilt: i64,
    pub rebuilt_examples: Vec<String>,
}

/// Rows shown per side of a difference.
const EXAMPLES: i64 = 5;

/// Compares the live projection with its shadow at one position, without holding up the live
/// runner: in one REPEATABLE READ transaction the live tables and checkpoint are a consistent
/// snapshot at some position L (the runner commits tables and checkpoint together); the shadow,
/// built up to at most L, is brought to L inside the same transaction; then every table is
/// compared both ways (`EXCEPT ALL`, only rows that `retention` at this moment keeps, for
/// history), and everything is rolled back. Returns the differences (none when they agree) and
/// L.
pub async fn compare<P: Projection>(
    pool: &Pool,
    projection: &P,
    retention: Option<crate::Retention>,
) -> anyhow::Result<(Vec<Difference>, i64)> {
    let name = projection.name();
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.build_transaction().isolation_level(tokio_postgres::IsolationLevel::RepeatableRead).start().await?;
    let live = live_position_in(&*tx, name).await?;
    use_schema(&tx, Some(SHADOW)).await?;
    let rebuilt = apply_until(&tx, projection, live).await?;
    anyhow::ensure!(rebuilt == live, "the rebuild reached {rebuilt} but the live {name} is at {live}");
    use_schema(&tx, None).await?;
    let now = time::OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for table in projection.tables() {
        let kept = retention.and_then(|r| crate::history::kept_rows(table, now, r)).unwrap_or_else(|| "true".into());
        let side = |a: &str, b: &str| {
            format!(
                "SELECT t::text FROM (SELECT * FROM {a}.{table} WHERE {kept} EXCEPT ALL SELECT * FROM {b}.{table} WHERE {kept}) t"
            )
        };
        let count = |sql: String| format!("SELECT count(*) FROM ({sql}) c");
        let examples = |sql: String| format!("{sql} ORDER BY 1 LIMIT {EXAMPLES}");
        let only_live: i64 = tx.query_one(&count(side("public", SHADOW)), &[]).await?.get(0);
        let only_rebuilt: i64 = tx.query_one(&count(side(SHADOW, "public")), &[]).await?.get(0);
        if only_live + only_rebuilt == 0 {
            continue;
        }
        let rows = |sql: String| {
            let tx = &tx;
            async move {
                let rows = tx.query(&examples(sql), &[]).await?;
                anyhow::Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>())
            }
        };
        out.push(Difference {
            table: (*table).to_owned(),
            only_live,
            live_examples: rows(side("public", SHADOW)).await?,
            only_rebuilt,
            rebuilt_examples: rows(side(SHADOW, "public")).await?,
        });
    }
    tx.rollback().await?;
    Ok((out, live))
}
