//! Prints sitrep alert transitions as they happen, and resumes where it left off.
//!
//! ```sh
//! cargo run --example alert_subscriber                 # all alerts, from nats://127.0.0.1:4222
//! cargo run --example alert_subscriber -- 'sitrep.alert.critical.>'
//! ```
//!
//! A durable consumer (`alert-printer-rs`) on the stream `SITREP_ALERTS` remembers what was
//! acknowledged, so a restart goes on from there. Each transition arrives once: sitrep publishes
//! it with its event id as `Nats-Msg-Id`. The message format is in docs/alerts.md; this example
//! decodes only the fields it prints, as a subscriber outside sitrep's workspace would.

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy};
use futures::StreamExt;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Transition {
    transition: String,
    severity: String,
    system: String,
    component: String,
    summary: String,
    at: String,
    by: Option<String>,
    notify: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let subject = std::env::args().nth(1).unwrap_or_else(|| "sitrep.alert.>".into());
    let url = std::env::var("SITREP_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let js = jetstream::new(async_nats::connect(&url).await?);
    let stream = js.get_stream("SITREP_ALERTS").await?;
    let consumer = stream
        .get_or_create_consumer(
            "alert-printer-rs",
            pull::Config {
                durable_name: Some("alert-printer-rs".into()),
                filter_subject: subject,
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| anyhow::anyhow!(e))?;
        match serde_json::from_slice::<Transition>(&message.payload) {
            Ok(t) => println!(
                "{} {:8} {:12} {}/{}: {}{}{}",
                t.at,
                t.severity.to_uppercase(),
                t.transition.to_uppercase(),
                t.system,
                t.component,
                t.summary,
                t.by.map(|b| format!(" by {b}")).unwrap_or_default(),
                if t.notify { "" } else { "  (no notification)" }
            ),
            Err(e) => eprintln!("not an alert transition ({e}): {:?}", message.payload),
        }
        message.ack().await.map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(())
}
