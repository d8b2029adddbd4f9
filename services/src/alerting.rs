//! The alerting side effects, each reading the log from a checkpoint of its own:
//!
//! - the **clock**: when the evaluator says time alone could decide something (`due`), records a
//!   `Ticked` event, so that decision is in the log and a replay makes it again;
//! - the **publisher**: every committed alert event goes out on JetStream as
//!   `<prefix>.alert.<severity>.<system>`, with the event id as `Nats-Msg-Id`; its checkpoint
//!   moves only after JetStream acked, and JetStream drops a re-publish after a restart;
//! - the **notification planner** ([`PlanRunner`]): decides which transitions go to which
//!   receiver, grouped how and when, and records the decisions in the log;
//! - **delivery** ([`webhook_step`]): sends each recorded decision to its receiver, with
//!   retries and backoff; every attempt is kept in `notification_attempts` as it ends, and each
//!   alert's outcome per receiver in `alert_deliveries`; the alert's page shows both.

use anyhow::Context;
use async_nats::jetstream::{self, consumer::pull, message::PublishMessage};
use deadpool_postgres::Pool;
use sitrep_domain::alert::notify::{self, Decision, NotifierEvent, Planner};
use sitrep_domain::alert::receivers::{self, Receiver, Resolved, Smtp, Tls};
use sitrep_domain::alert::rules::Route;
use sitrep_domain::alert::{AlertMessage, EvaluatorEvent, RuleSet};
use sitrep_infra::event_store::StoredEvent;
use sitrep_infra::{alerts, Settings};
use sitrep_projections::{lock_checkpoint, move_checkpoint, AlertEvaluator};
use std::time::Duration;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// Checkpoint names (rows in `projection_checkpoints`).
pub const PUBLISHER: &str = "alert_publisher";
pub const WEBHOOKS: &str = "alert_webhooks";
/// The exclusive job that records notification decisions.
pub const PLANNER: &str = "notification_planner";

/// Alert events handled per step.
const BATCH: i64 = 200;

/// How often the side-effect loops look for work when nothing wakes them.
const POLL: Duration = Duration::from_secs(1);

/// Loads the rules file and records it in the log if it differs from the rules in force.
/// With no file configured and no `alerts.toml` here, the rules in force stay (with a warning):
/// starting in another working directory must not quietly resolve every alert.
pub async fn load_and_record_rules(pool: &Pool, settings: &Settings) -> anyhow::Result<RuleSet> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let Some((rules, source)) = alerts::load_rules(settings.alerts_file.as_deref(), settings.default_ttl_seconds)?
    else {
        let kept = alerts::recorded_rules(&**client).await?.unwrap_or_default();
        if kept.rules.is_empty() {
            tracing::info!("no alert rules: no SITREP_ALERTS_FILE and no alerts.toml in the working directory");
        } else {
            tracing::warn!(
                rules = kept.rules.len(),
                "no SITREP_ALERTS_FILE and no alerts.toml in the working directory; the rules in force stay"
            );
        }
        return Ok(kept);
    };
    if alerts::record_rules_if_changed(&mut client, &rules, &source).await? {
        tracing::info!(rules = rules.rules.len(), routes = rules.routes.len(), source, "alert rules recorded");
    } else {
        tracing::info!(rules = rules.rules.len(), source, "alert rules unchanged");
    }
    Ok(rules)
}

/// Reports in JetStream that ingest has not committed yet (0 when there is no stream or
/// consumer yet).
async fn ingest_backlog(js: &jetstream::Context, settings: &Settings) -> anyhow::Result<u64> {
    let Ok(stream) = js.get_stream(&settings.reports_stream).await else { return Ok(0) };
    let Ok(mut consumer) = stream.get_consumer::<pull::Config>(&settings.ingest_consumer).await else {
        return Ok(0);
    };
    let info = consumer.info().await.context("asking JetStream for ingest's backlog")?;
    Ok(info.num_pending + info.num_ack_pending as u64)
}

/// A backlog at which the clock waits: time must not run ahead of reports still on their way
/// (they would all look stale, and `for` durations would pass at once).
const BACKLOG_FOR_TICKS: u64 = 1000;

/// Records a tick at `now` if the evaluator has seen every event and something is due by then.
/// Returns when the evaluator is next due (`None` if nothing waits on time, or it is behind).
pub async fn tick_if_due(pool: &Pool, now: OffsetDateTime) -> anyhow::Result<Option<OffsetDateTime>> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_one(
            "SELECT (SELECT position FROM projection_checkpoints WHERE name = $1),
                    (SELECT max(position) FROM events),
                    (SELECT coalesce(due, state -> 'due') FROM alert_evaluator_state WHERE name = $1)",
            &[&AlertEvaluator::NAME],
        )
        .await?;
    let (seen, head): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
    if seen.unwrap_or(0) < head.unwrap_or(0) {
        return Ok(None);
    }
    let due: Option<OffsetDateTime> = row
        .get::<_, Option<serde_json::Value>>(2)
        .map(serde_json::from_value)
        .transpose()
        .context("reading the evaluator's due time")?
        .flatten();
    if due.is_some_and(|d| d <= now) {
        alerts::record(&mut client, &EvaluatorEvent::Ticked { at: now }).await?;
    }
    Ok(due)
}

/// Records ticks when they are due, until cancelled; waits while ingest has a backlog.
pub async fn run_clock(pool: Pool, js: jetstream::Context, settings: Settings, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        let now = OffsetDateTime::now_utc();
        let wait = match ingest_backlog(&js, &settings).await {
            Ok(n) if n >= BACKLOG_FOR_TICKS => {
                tracing::debug!(backlog = n, "alert clock waits for ingest");
                POLL
            }
            Ok(_) => match tick_if_due(&pool, now).await {
                Ok(Some(due)) if due > now => (due - now).try_into().unwrap_or(POLL).min(POLL),
                Ok(_) => POLL,
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "alert clock failed; retrying");
                    POLL
                }
            },
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "alert clock cannot see ingest's backlog; retrying");
                POLL
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(wait.max(Duration::from_millis(200))) => {}
        }
    }
}

/// Locks the side effect's checkpoint `name` for the transaction and returns the alert events
/// after it (at most a batch). With none waiting, the checkpoint moves to the
/// head of the log, so its lag (on /ops) says how far behind it really is. Safe: the head is
/// read before the alert events, and appends commit in position order, so no alert event can
/// appear at or below it later.
async fn take_alert_events(tx: &deadpool_postgres::Transaction<'_>, name: &str) -> anyhow::Result<Vec<StoredEvent>> {
    let position = lock_checkpoint(tx, name).await?;
    let head = sitrep_infra::event_store::head(&**tx).await?;
    let events = alerts::events_after(&**tx, position, BATCH).await?;
    if events.is_empty() && head > position {
        move_checkpoint(tx, name, head).await?;
    }
    Ok(events)
}

/// Publishes the next batch of alert events; returns how many it published.
pub async fn publish_step(pool: &Pool, js: &jetstream::Context, settings: &Settings) -> anyhow::Result<usize> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    let events = take_alert_events(&tx, PUBLISHER).await?;
    let Some(last) = events.last().map(|e| e.position) else {
        tx.commit().await?;
        return Ok(0);
    };
    let mut acks = Vec::with_capacity(events.len());
    for t in alerts::transitions(&*tx, &events).await? {
        let Some(message) = t.message() else { continue };
        let subject = settings.alert_subject(&message.severity, &message.system);
        let publish =
            PublishMessage::build().payload(serde_json::to_vec(&message)?.into()).message_id(t.event_id.to_string());
        acks.push(js.send_publish(subject, publish).await.context("publishing an alert transition")?);
    }
    let published = acks.len();
    for ack in acks {
        ack.await.context("waiting for JetStream to store an alert transition")?;
    }
    move_checkpoint(&tx, PUBLISHER, last).await?;
    tx.commit().await?;
    Ok(published)
}

/// Publishes alert transitions as they are committed, until cancelled.
pub async fn run_publisher(pool: Pool, js: jetstream::Context, settings: Settings, cancel: CancellationToken) {
    repeat("alert publisher", cancel, || async { Ok(publish_step(&pool, &js, &settings).await? as i64 >= BATCH) })
        .await;
}

/// Runs `step` until cancelled: again at once when it says more work is waiting, after a
/// short pause when not, and after [`POLL`] when it failed (logged).
async fn repeat<F, Fut>(what: &'static str, cancel: CancellationToken, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    while !cancel.is_cancelled() {
        let wait = match step().await {
            Ok(true) => continue,
            Ok(false) => POLL / 4,
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "{what} failed; retrying");
                POLL
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Makes rustls use the ring provider (already in the tree for NATS), which every reqwest
/// client in the process needs before it is built. Installing again is harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A webhook receiver's request with its body from the receiver's template, if it has one.
fn with_template(
    r: &Receiver,
    mut req: receivers::Request,
    message: &AlertMessage,
) -> Result<receivers::Request, String> {
    let Some(t) = &r.template else { return Ok(req) };
    let receivers::TemplateSource::Inline(source) = &t.source else {
        return Err(format!("receiver {:?}: its template_file was not read", r.name));
    };
    let body = sitrep_web::view::templates::render_body(source, &t.content_type, message)
        .map_err(|e| format!("receiver {:?}: its template: {e}", r.name))?;
    req.headers.push(("Content-Type", t.content_type.clone()));
    req.body = receivers::Body::Text(body);
    Ok(req)
}

/// Checks that every receiver's body template renders a sample transition, so a mistake stops
/// sitrep at start rather than at 3 a.m.
pub fn check_templates(receivers: &[(Receiver, Resolved)]) -> anyhow::Result<()> {
    let sample = receivers::sample("check", OffsetDateTime::now_utc());
    for (r, resolved) in receivers {
        if let Some(req) = receivers::request(r, resolved, &sample) {
            with_template(r, req, &sample).map_err(|e| anyhow::anyhow!(e))?;
        }
    }
    Ok(())
}

/// A message on its way: an HTTP request, or an e-mail.
enum Outgoing<'a> {
    Http(receivers::Request),
    Email { smtp: &'a Smtp, password: Option<String>, mail: receivers::EmailBody },
}

/// Sends one e-mail, a plain-text and an HTML part, over SMTP as the receiver says (STARTTLS,
/// TLS or plain; with a username and password when given). The error says what the server said.
pub async fn send_email(smtp: &Smtp, password: Option<&str>, mail: &receivers::EmailBody) -> Result<(), String> {
    use lettre::message::{Mailbox, MultiPart};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    install_tls_provider();
    let mailbox = |a: &str| a.parse::<Mailbox>().map_err(|e| format!("{a:?} is not an e-mail address: {e}"));
    let mut builder = Message::builder().from(mailbox(&smtp.from)?).subject(mail.subject.clone());
    for to in &smtp.to {
        builder = builder.to(mailbox(to)?);
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
        .map_err(|e| format!("building the e-mail: {e}"))?;
    let transport = match smtp.tls {
        Tls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host),
        Tls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host),
        Tls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)),
    }
    .map_err(|e| format!("the mail server {}: {e}", smtp.host))?;
    let mut transport = transport.port(smtp.port).timeout(Some(Duration::from_secs(10)));
    if let Some(user) = &smtp.username {
        transport = transport.credentials(Credentials::new(user.clone(), password.unwrap_or_default().to_owned()));
    }
    transport
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("the mail server {}:{} refused it: {e}", smtp.host, smtp.port))
}

/// Where one transition goes: a route's own webhook URL, or one of its receivers.
#[derive(Debug, Clone)]
enum Target<'a> {
    /// `[[route]] url = …`: the transition's JSON, POSTed.
    Url { url: &'a str },
    /// A `[[receiver]]` a route names, with its secrets.
    Receiver(&'a (Receiver, Resolved)),
}

/// Delivers transitions to the routes' webhook URLs and receivers.
#[derive(Clone)]
pub struct Webhooks {
    client: reqwest::Client,
    routes: Vec<Route>,
    receivers: Vec<(Receiver, Resolved)>,
    /// The waits between attempts; one attempt more than waits.
    backoff: Vec<Duration>,
}

impl Webhooks {
    /// Four retries after 1, 2, 4 and 8 seconds.
    pub const BACKOFF: [Duration; 4] =
        [Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4), Duration::from_secs(8)];

    pub fn new(routes: Vec<Route>, backoff: Vec<Duration>) -> anyhow::Result<Self> {
        install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("sitrep/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the webhook HTTP client")?;
        Ok(Self { client, routes, receivers: Vec::new(), backoff })
    }

    /// The `[[receiver]]`s that routes name, with their secrets read
    /// (`sitrep_infra::alerts::load_receivers`).
    pub fn with_receivers(mut self, receivers: Vec<(Receiver, Resolved)>) -> Self {
        self.receivers = receivers;
        self
    }

    /// What tells `target` of the transition; Err when it cannot be made, None when the
    /// target's kind has nothing to say about it.
    fn outgoing<'a>(target: &Target<'a>, message: &AlertMessage) -> Result<Option<Outgoing<'a>>, String> {
        match target {
            Target::Url { url } => Ok(Some(Outgoing::Http(receivers::Request {
                method: "POST",
                url: (*url).to_owned(),
                headers: vec![],
                body: receivers::Body::Json(serde_json::to_value(message).map_err(|e| e.to_string())?),
            }))),
            Target::Receiver((r, resolved)) => Ok(match &r.smtp {
                Some(smtp) => {
                    Some(Outgoing::Email { smtp, password: resolved.token.clone(), mail: receivers::email(message) })
                }
                None => receivers::request(r, resolved, message)
                    .map(|req| with_template(r, req, message))
                    .transpose()?
                    .map(Outgoing::Http),
            }),
        }
    }

    /// What tells a decision's target of it: one message, or one per alert for kinds whose
    /// bodies are per alert. Err when the target is not known to this process.
    fn outgoing_for(&self, d: &Decision) -> Result<Vec<Outgoing<'_>>, String> {
        let own_url = self.routes.iter().find(|r| r.name == d.route && r.name == d.target && r.receivers.is_empty());
        if let Some(route) = own_url {
            let target = Target::Url { url: &route.url };
            return d.messages.iter().filter_map(|m| Self::outgoing(&target, m).transpose()).collect();
        }
        let Some(pair) = self.receivers.iter().find(|(r, _)| r.name == d.target) else {
            return Err(format!("no [[receiver]] named {:?} in this process's alerts.toml", d.target));
        };
        let (r, resolved) = pair;
        if let Some(smtp) = &r.smtp {
            let mail = receivers::email_group(&d.messages);
            return Ok(vec![Outgoing::Email { smtp, password: resolved.token.clone(), mail }]);
        }
        if r.template.is_some() {
            let target = Target::Receiver(pair);
            return d.messages.iter().filter_map(|m| Self::outgoing(&target, m).transpose()).collect();
        }
        Ok(receivers::request_group(r, resolved, &d.messages, d.id).into_iter().map(Outgoing::Http).collect())
    }

    /// Sends one message, with retries, recording each attempt as it ends (`attempts`):
    /// `(delivered, attempts, last error)`, or `None` when cancelled first (the decision is not
    /// marked done then, so it is sent again after a restart).
    async fn deliver(
        &self,
        outgoing: &Outgoing<'_>,
        attempts_log: &AttemptLog<'_>,
        cancel: &CancellationToken,
    ) -> Option<(bool, i32, Option<String>)> {
        let mut last_error = None;
        let mut attempts = 0;
        for wait in std::iter::once(None).chain(self.backoff.iter().map(Some)) {
            let attempt = async {
                if let Some(wait) = wait {
                    tokio::time::sleep(*wait).await;
                }
                match outgoing {
                    Outgoing::Http(request) => match self.send(request).await {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) => Err(format!("HTTP {}", r.status())),
                        Err(e) => Err(describe(&e)),
                    },
                    Outgoing::Email { smtp, password, mail } => send_email(smtp, password.as_deref(), mail).await,
                }
            };
            let answer = tokio::select! {
                _ = cancel.cancelled() => return None,
                answer = attempt => answer,
            };
            attempts += 1;
            attempts_log.record(attempts, answer.as_ref().err()).await;
            match answer {
                Ok(()) => return Some((true, attempts, None)),
                Err(e) => last_error = Some(e),
            }
        }
        Some((false, attempts, last_error))
    }

    /// One attempt. The URL is not in errors (`without_url`): it may hold a token.
    pub async fn send(&self, request: &receivers::Request) -> Result<reqwest::Response, reqwest::Error> {
        let method = if request.method == "PUT" { reqwest::Method::PUT } else { reqwest::Method::POST };
        let mut builder = self.client.request(method, &request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        builder = match &request.body {
            receivers::Body::Json(v) => builder.json(v),
            receivers::Body::Text(t) if request.headers.iter().any(|(n, _)| *n == "Content-Type") => {
                builder.body(t.clone())
            }
            receivers::Body::Text(t) => builder.header("Content-Type", "text/plain; charset=utf-8").body(t.clone()),
        };
        builder.send().await.map_err(reqwest::Error::without_url)
    }
}

fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Where delivery attempts are recorded (`notification_attempts`): each as it ends, in its own
/// transaction, so the attempts made before a crash are kept as well.
struct AttemptLog<'a> {
    pool: &'a Pool,
    decision: &'a Decision,
    position: i64,
    alert_ids: Vec<uuid::Uuid>,
}

impl AttemptLog<'_> {
    async fn record(&self, attempt: i32, error: Option<&String>) {
        let d = self.decision;
        let written = async {
            let client = self.pool.get().await?;
            client
                .execute(
                    "INSERT INTO notification_attempts (decision_id, position, route, target, reason, alert_ids,
                                                        attempt, ok, error)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &d.id,
                        &self.position,
                        &d.route,
                        &d.target,
                        &d.reason,
                        &self.alert_ids,
                        &attempt,
                        &error.is_none(),
                        &error,
                    ],
                )
                .await?;
            anyhow::Ok(())
        };
        // The delivery matters more than its record: a failure to write it is logged, not fatal.
        if let Err(e) = written.await {
            tracing::warn!(decision = %d.id, target = d.target, error = %format!("{e:#}"), "recording a delivery attempt");
        }
    }
}

/// Delivers the notification decisions recorded in the log, one decision per transaction: it
/// sends the decision's message to its target (retrying), records each alert's outcome in
/// `alert_deliveries`, moves the checkpoint past the decision, and commits. A restart therefore
/// never sends a delivered decision again, and sends an undelivered one once. Returns how many
/// deliveries it made and whether more decisions wait.
pub async fn webhook_step(pool: &Pool, hooks: &Webhooks, cancel: &CancellationToken) -> anyhow::Result<(usize, bool)> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    let position = lock_checkpoint(&tx, WEBHOOKS).await?;
    // Positions are given out in commit order, so nothing at or below the head read now can
    // still appear: the checkpoint may skip to it when no decision is there.
    let head = sitrep_infra::event_store::head(&*tx).await?;
    let events = sitrep_infra::event_store::read_types_between(
        &*tx,
        &[notify::AGGREGATE_TYPE],
        position,
        head,
        1,
        sitrep_infra::event_store::Metadata::Skip,
    )
    .await?;
    let Some(event) = events.into_iter().next() else {
        if head > position {
            move_checkpoint(&tx, WEBHOOKS, head).await?;
        }
        tx.commit().await?;
        return Ok((0, false));
    };
    let mut made = 0;
    if let NotifierEvent::NotificationDecided(d) = event.payload.decode::<NotifierEvent>()? {
        let outgoing = hooks.outgoing_for(&d);
        let outcome = match &outgoing {
            Ok(list) if list.is_empty() => None,
            Ok(list) => {
                let mut result = (true, 0, None);
                let log = AttemptLog {
                    pool,
                    decision: &d,
                    position: event.position,
                    alert_ids: d.messages.iter().map(|m| m.alert_id).collect(),
                };
                for o in list {
                    let Some((ok, attempts, error)) = hooks.deliver(o, &log, cancel).await else {
                        tx.rollback().await?;
                        return Ok((0, false));
                    };
                    result = (result.0 && ok, result.1.max(attempts), error.or(result.2));
                }
                Some(result)
            }
            Err(why) => Some((false, 0, Some(why.clone()))),
        };
        if let Some((delivered, attempts, last_error)) = outcome {
            if !delivered {
                tracing::warn!(target = d.target, decision = %d.id, error = ?last_error, "notification delivery failed");
            }
            for m in &d.messages {
                tx.execute(
                    "INSERT INTO alert_deliveries (event_id, route, alert_id, position, attempts, delivered, last_error)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (event_id, route) DO UPDATE SET attempts = alert_deliveries.attempts + excluded.attempts,
                        delivered = excluded.delivered, last_error = excluded.last_error, updated_at = now()",
                    &[&m.event_id, &d.target, &m.alert_id, &m.position, &attempts, &delivered, &last_error],
                )
                .await?;
            }
            made = d.messages.len();
        }
    }
    move_checkpoint(&tx, WEBHOOKS, event.position).await?;
    tx.commit().await?;
    Ok((made, true))
}

/// The notification planner as it runs: its state, folded from the log up to `position`.
pub struct PlanRunner {
    routes: Vec<Route>,
    planner: Planner,
    position: i64,
    started: bool,
}

impl PlanRunner {
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes, planner: Planner::default(), position: 0, started: false }
    }

    /// Finds where the notifier's history starts and since when each route takes transitions,
    /// recording them when this is the notifier's first start or the routes changed.
    async fn start(&mut self, pool: &Pool) -> anyhow::Result<()> {
        let mut client = pool.get().await.context("connecting to Postgres")?;
        let latest = client
            .query_opt(
                "SELECT payload FROM events WHERE aggregate_type = $1 AND event_type = 'NotifierStarted'
                 ORDER BY position DESC LIMIT 1",
                &[&notify::AGGREGATE_TYPE],
            )
            .await?;
        let head = sitrep_infra::event_store::head(&**client).await?;
        let (from, before) = match latest.map(|r| serde_json::from_value::<NotifierEvent>(r.get(0))).transpose()? {
            Some(NotifierEvent::NotifierStarted { from_position, routes_since }) => (Some(from_position), routes_since),
            _ => (None, Default::default()),
        };
        let first = from.is_none();
        // The first start: what an earlier sitrep's notifier went past is not sent again.
        let from = match from {
            Some(f) => f,
            None => client
                .query_opt("SELECT position FROM projection_checkpoints WHERE name = $1", &[&WEBHOOKS])
                .await?
                .map_or(0, |r| r.get(0)),
        };
        let since: std::collections::BTreeMap<String, i64> = self
            .routes
            .iter()
            .map(|r| (r.name.clone(), before.get(&r.name).copied().unwrap_or(if first { from } else { head })))
            .collect();
        // With no routes there is nothing to decide, and nothing to record: a route added later
        // starts from where the notifier is then.
        if !self.routes.is_empty() && (first || since != before) {
            let started = NotifierEvent::NotifierStarted { from_position: from, routes_since: since.clone() };
            alerts::record_notifier(&mut client, &[started]).await?;
        }
        self.position = from;
        self.planner.routes_since = since;
        self.started = true;
        Ok(())
    }

    /// Reads what the log added since the last step, then records the decisions due at `now`.
    /// Returns how many it recorded.
    pub async fn step(&mut self, pool: &Pool, now: OffsetDateTime) -> anyhow::Result<usize> {
        if !self.started {
            self.start(pool).await?;
        }
        loop {
            let client = pool.get().await.context("connecting to Postgres")?;
            let events = sitrep_infra::event_store::read_types_between(
                &**client,
                &[sitrep_domain::alert::AGGREGATE_TYPE, notify::AGGREGATE_TYPE],
                self.position,
                i64::MAX,
                BATCH,
                sitrep_infra::event_store::Metadata::Skip,
            )
            .await?;
            let Some(last) = events.last().map(|e| e.position) else { break };
            let transitions = alerts::transitions(&**client, &events).await?;
            let mut transitions = transitions.into_iter().peekable();
            for e in &events {
                if e.aggregate_type == notify::AGGREGATE_TYPE {
                    if let NotifierEvent::NotificationDecided(d) = e.payload.decode::<NotifierEvent>()? {
                        self.planner.apply(&d);
                    }
                    continue;
                }
                while let Some(t) = transitions.next_if(|t| t.position <= e.position) {
                    if let Some(message) = t.message() {
                        self.planner.on_transition(&self.routes, &message);
                    }
                }
            }
            self.position = last;
            if (events.len() as i64) < BATCH {
                break;
            }
        }
        let decisions = self.planner.decide(&self.routes, now);
        let n = decisions.len();
        if n > 0 {
            let mut client = pool.get().await.context("connecting to Postgres")?;
            let events: Vec<NotifierEvent> = decisions.into_iter().map(NotifierEvent::NotificationDecided).collect();
            alerts::record_notifier(&mut client, &events).await?;
        }
        Ok(n)
    }

    /// When the next decision is due, as far as the log has been read.
    pub fn due(&self) -> Option<OffsetDateTime> {
        self.planner.due(&self.routes)
    }
}

/// Records notification decisions as they fall due, until cancelled.
pub async fn run_planner(pool: Pool, routes: Vec<Route>, cancel: CancellationToken) {
    let mut runner = PlanRunner::new(routes);
    while !cancel.is_cancelled() {
        let wait = match runner.step(&pool, OffsetDateTime::now_utc()).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => POLL / 4,
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "notification planner failed; retrying");
                POLL
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Delivers webhooks as transitions are committed, until cancelled.
pub async fn run_webhooks(pool: Pool, hooks: Webhooks, cancel: CancellationToken) {
    let c = cancel.clone();
    repeat("notification delivery", cancel, || async { Ok(webhook_step(&pool, &hooks, &c).await?.1) }).await;
}

/// `sitrep notify test <receiver>`: sends a sample alert (a critical failure of derecho
/// fs/glade, marked as a test) to one receiver of the rules file, once, and prints what it
/// answered. Fails when the receiver is unknown, its secrets cannot be read, or it does not
/// answer with success.
pub async fn notify_test(settings: &Settings, name: &str, out: &mut (dyn std::io::Write + Send)) -> anyhow::Result<()> {
    // The whole file is checked, as `sitrep project` will check it.
    alerts::load_rules(settings.alerts_file.as_deref(), settings.default_ttl_seconds)?;
    let receivers = alerts::receivers_in_file(settings.alerts_file.as_deref())?;
    let names: Vec<&str> = receivers.iter().map(|r| r.name.as_str()).collect();
    let Some(receiver) = receivers.iter().find(|r| r.name == name) else {
        anyhow::bail!(
            "no [[receiver]] named {name:?} in {}; there are: {}",
            settings
                .alerts_file
                .as_ref()
                .map_or_else(|| alerts::DEFAULT_RULES_FILE.to_owned(), |p| p.display().to_string()),
            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
        );
    };
    let resolved = alerts::resolve(receiver)?;
    let message = receivers::sample(name, OffsetDateTime::now_utc());
    if let Some(smtp) = &receiver.smtp {
        let mail = receivers::email(&message);
        writeln!(out, "e-mail {:?} to {} over {}:{}", mail.subject, smtp.to.join(", "), smtp.host, smtp.port)?;
        send_email(smtp, resolved.token.as_deref(), &mail).await.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        writeln!(out, "{name}: the mail server took it")?;
        return Ok(());
    }
    let request = receivers::request(receiver, &resolved, &message).context("this receiver takes no firing alerts")?;
    let request = with_template(receiver, request, &message).map_err(|e| anyhow::anyhow!(e))?;
    let hooks = Webhooks::new(vec![], vec![])?;
    writeln!(
        out,
        "{} {} to {} ({})",
        request.method,
        receivers::title(&message),
        receiver.name,
        receiver.kind.as_str()
    )?;
    let answer = hooks.send(&request).await.map_err(|e| anyhow::anyhow!("{name} did not answer: {}", describe(&e)))?;
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    writeln!(out, "{name} answered {status}: {}", body.chars().take(500).collect::<String>())?;
    anyhow::ensure!(status.is_success(), "{name} did not take the message");
    Ok(())
}
