//! Receivers: where notifications go (`[[receiver]]` in `alerts.toml`), and the request each
//! kind of receiver takes for an alert transition. Pure: secrets are named here (inline, an
//! environment variable or a file) and read by the caller; the rule set recorded in the log
//! holds only receivers' names, never their endpoints or secrets.
//!
//! Kinds and what they get (docs/alerts.md documents every key):
//! - `webhook`: the transition's JSON ([`AlertMessage`]), POSTed;
//! - `slack`: an incoming webhook's `{"text", "blocks"}` (Mattermost and Rocket.Chat take it too);
//! - `teams`: a Workflows webhook's `{"type": "message", "attachments": [Adaptive Card 1.4]}`;
//! - `discord`: `{"content"}`, cut to 2,000 characters;
//! - `pagerduty`: Events API v2, `trigger`/`acknowledge`/`resolve` with the alert id as
//!   `dedup_key`, so PagerDuty itself drops a retried event;
//! - `ntfy`: the text, with `Title`, `Priority` and `Tags` headers;
//! - `gotify`: `POST /message` with `X-Gotify-Key`;
//! - `matrix`: `PUT …/send/m.room.message/<txn>`, the transaction id derived from the transition
//!   and receiver, so a retry is the same message;
//! - `telegram`: `sendMessage` with `chat_id`;
//! - `email`: SMTP (STARTTLS, TLS or plain), a plain-text and an HTML part ([`email`]).

use super::message::AlertMessage;
use super::rules::RuleError;
use serde::Deserialize;
use serde_json::{json, Value};

/// What kind of service a receiver is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Webhook,
    Slack,
    Teams,
    Discord,
    Pagerduty,
    Ntfy,
    Gotify,
    Matrix,
    Telegram,
    Email,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Slack => "slack",
            Kind::Teams => "teams",
            Kind::Discord => "discord",
            Kind::Pagerduty => "pagerduty",
            Kind::Ntfy => "ntfy",
            Kind::Gotify => "gotify",
            Kind::Matrix => "matrix",
            Kind::Telegram => "telegram",
            Kind::Email => "email",
        }
    }

    /// The endpoint a kind has when `url` is not given, if the service has a fixed one.
    fn default_url(self) -> Option<&'static str> {
        match self {
            Kind::Pagerduty => Some("https://events.pagerduty.com/v2/enqueue"),
            Kind::Telegram => Some("https://api.telegram.org"),
            _ => None,
        }
    }

    /// The secret besides the URL that a kind needs: its name in `alerts.toml`.
    fn token_field(self) -> Option<&'static str> {
        match self {
            Kind::Pagerduty => Some("routing_key"),
            Kind::Gotify | Kind::Matrix | Kind::Telegram => Some("token"),
            Kind::Email => Some("password"),
            _ => None,
        }
    }
}

/// A value that may be a secret: written inline, or read from an environment variable or a
/// file when sitrep starts. Never shown: [`Secret::describe`] says only where it comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Inline(String),
    Env(String),
    File(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Secret {
    /// Where the value comes from, for pages and logs: never the value itself.
    pub fn describe(&self) -> String {
        match self {
            Secret::Inline(_) => "written in alerts.toml (hidden)".into(),
            Secret::Env(var) => format!("from the environment variable {var}"),
            Secret::File(path) => format!("from the file {path}"),
        }
    }
}

/// One `[[receiver]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub name: String,
    pub kind: Kind,
    /// The endpoint; None for kinds with a fixed one (PagerDuty, Telegram).
    pub url: Option<Secret>,
    /// PagerDuty's routing key, or the Gotify, Matrix or Telegram token.
    pub token: Option<Secret>,
    /// Telegram's chat.
    pub chat_id: Option<String>,
    /// Matrix's room id (`!abc:example.org`).
    pub room: Option<String>,
    /// How an `email` receiver reaches its mail server, and whom it writes to.
    pub smtp: Option<Smtp>,
    /// A `webhook` receiver's body, as a Handlebars template over the transition (rendered
    /// where requests are sent; `web::templates::render_body`), with its `Content-Type`.
    pub template: Option<BodyTemplate>,
}

/// A body template: inline, or the path of a file read when sitrep starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyTemplate {
    pub source: TemplateSource,
    pub content_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    Inline(String),
    File(String),
}

/// An `email` receiver's server and addresses. The password, if any, is the receiver's `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    /// Plain at first, then `STARTTLS` (required), usually port 587.
    Starttls,
    /// TLS from the first byte, usually port 465.
    Tls,
    /// No encryption: only for a relay on the same host or network.
    None,
}

/// A receiver's secrets, read.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub url: String,
    pub token: Option<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolved(..)")
    }
}

/// The request for one transition to one receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Json(Value),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: String,
    kind: Kind,
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<String>,
    routing_key: Option<String>,
    routing_key_env: Option<String>,
    routing_key_file: Option<String>,
    token: Option<String>,
    token_env: Option<String>,
    token_file: Option<String>,
    chat_id: Option<toml::Value>,
    room: Option<String>,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    tls: Option<Tls>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    template: Option<String>,
    template_file: Option<String>,
    content_type: Option<String>,
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    receiver: Vec<toml::Value>,
}

fn secret(
    at: &dyn Fn(&str) -> String,
    field: &str,
    inline: Option<String>,
    env: Option<String>,
    file: Option<String>,
) -> Result<Option<Secret>, RuleError> {
    let given: Vec<Secret> =
        [inline.map(Secret::Inline), env.map(Secret::Env), file.map(Secret::File)].into_iter().flatten().collect();
    match given.len() {
        0 => Ok(None),
        1 => Ok(given.into_iter().next()),
        _ => Err(RuleError {
            at: at(field),
            reason: format!("give one of {field}, {field}_env and {field}_file, not several"),
        }),
    }
}

/// The `[[receiver]]` entries of `alerts.toml`, checked: a mistake names the receiver and field.
pub fn parse(text: &str) -> Result<Vec<Receiver>, RuleError> {
    let file: File = toml::from_str(text).map_err(|e| RuleError { at: "alerts.toml".into(), reason: e.to_string() })?;
    let mut receivers: Vec<Receiver> = Vec::new();
    for (i, raw) in file.receiver.into_iter().enumerate() {
        let name_of = raw.get("name").and_then(toml::Value::as_str).unwrap_or("").to_owned();
        let at = |field: &str| format!("receiver[{i}] {name_of:?} field {field:?}");
        let spec: Spec = raw.try_into().map_err(|e: toml::de::Error| RuleError {
            at: format!("receiver[{i}] {name_of:?}"),
            reason: e.message().to_owned(),
        })?;
        if !super::rules::valid_name(&spec.name) {
            return Err(RuleError { at: at("name"), reason: "use 1 to 64 of a-z, 0-9, - and _".into() });
        }
        if receivers.iter().any(|r| r.name == spec.name) {
            return Err(RuleError { at: at("name"), reason: "another receiver already has this name".into() });
        }
        let url = secret(&at, "url", spec.url, spec.url_env, spec.url_file)?;
        if url.is_none() && spec.kind.default_url().is_none() && spec.kind != Kind::Email {
            return Err(RuleError {
                at: at("url"),
                reason: format!("a {} receiver needs url, url_env or url_file", spec.kind.as_str()),
            });
        }
        if let Some(Secret::Inline(u)) = &url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(RuleError { at: at("url"), reason: "must start with https:// or http://".into() });
            }
        }
        let smtp = if spec.kind == Kind::Email {
            let host = spec.smtp_host.filter(|h| !h.trim().is_empty()).ok_or_else(|| RuleError {
                at: at("smtp_host"),
                reason: "an email receiver needs the mail server: smtp_host".into(),
            })?;
            let tls = spec.tls.unwrap_or(Tls::Starttls);
            let address = |field: &str, a: &str| {
                if a.contains('@') && !a.starts_with('@') && !a.ends_with('@') {
                    Ok(a.trim().to_owned())
                } else {
                    Err(RuleError { at: at(field), reason: format!("{a:?} is not an e-mail address") })
                }
            };
            let from = address("from", spec.from.as_deref().unwrap_or(""))?;
            if spec.to.is_empty() {
                return Err(RuleError {
                    at: at("to"),
                    reason: "an email receiver needs at least one address: to = [...]".into(),
                });
            }
            let to = spec.to.iter().map(|a| address("to", a)).collect::<Result<Vec<_>, _>>()?;
            let port = spec.smtp_port.unwrap_or(match tls {
                Tls::Starttls => 587,
                Tls::Tls => 465,
                Tls::None => 25,
            });
            Some(Smtp { host, port, tls, username: spec.username, from, to })
        } else {
            for (field, given) in
                [("smtp_host", spec.smtp_host.is_some()), ("from", spec.from.is_some()), ("to", !spec.to.is_empty())]
            {
                if given {
                    return Err(RuleError {
                        at: at(field),
                        reason: format!("is for email receivers, not {}", spec.kind.as_str()),
                    });
                }
            }
            None
        };
        let template = match (spec.template, spec.template_file) {
            (Some(_), Some(_)) => {
                return Err(RuleError { at: at("template"), reason: "give template or template_file, not both".into() })
            }
            (None, None) => None,
            (t, f) => {
                if spec.kind != Kind::Webhook {
                    return Err(RuleError {
                        at: at("template"),
                        reason: format!("is for webhook receivers, not {}", spec.kind.as_str()),
                    });
                }
                let source = t.map(TemplateSource::Inline).or(f.map(TemplateSource::File)).expect("one is given");
                Some(BodyTemplate {
                    source,
                    content_type: spec.content_type.clone().unwrap_or_else(|| "application/json".into()),
                })
            }
        };
        if spec.content_type.is_some() && template.is_none() {
            return Err(RuleError {
                at: at("content_type"),
                reason: "goes with a template (template or template_file)".into(),
            });
        }
        let password = secret(&at, "password", spec.password, spec.password_env, spec.password_file)?;
        let routing_key = secret(&at, "routing_key", spec.routing_key, spec.routing_key_env, spec.routing_key_file)?;
        let token = secret(&at, "token", spec.token, spec.token_env, spec.token_file)?;
        let (token, field) = match spec.kind.token_field() {
            Some("routing_key") => (routing_key, "routing_key"),
            Some("password") => (password, ""),
            Some(_) => (token, "token"),
            None => (None, ""),
        };
        if smtp.as_ref().is_some_and(|s| s.username.is_some()) && token.is_none() {
            return Err(RuleError {
                at: at("password"),
                reason: "a username needs password, password_env or password_file".into(),
            });
        }
        if !field.is_empty() && token.is_none() {
            return Err(RuleError {
                at: at(field),
                reason: format!("a {} receiver needs {field}, {field}_env or {field}_file", spec.kind.as_str()),
            });
        }
        let chat_id = spec.chat_id.map(|v| match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            other => format!("{other:?}"),
        });
        if spec.kind == Kind::Telegram && chat_id.is_none() {
            return Err(RuleError {
                at: at("chat_id"),
                reason: "a telegram receiver needs the chat_id to post to".into(),
            });
        }
        if spec.kind == Kind::Matrix && spec.room.as_deref().is_none_or(|r| !r.starts_with('!')) {
            return Err(RuleError {
                at: at("room"),
                reason: "a matrix receiver needs the room id, such as \"!abc123:example.org\"".into(),
            });
        }
        receivers.push(Receiver {
            name: spec.name,
            kind: spec.kind,
            url,
            token,
            chat_id,
            room: spec.room,
            smtp,
            template,
        });
    }
    Ok(receivers)
}

impl Receiver {
    /// The fixed endpoint of its kind, when `url` is not given.
    pub fn default_url(&self) -> Option<&'static str> {
        self.kind.default_url()
    }
}

/// `[FIRING] CRITICAL derecho fs/glade: derecho fs/glade has failed`.
pub fn title(m: &AlertMessage) -> String {
    format!(
        "[{}] {} {} {}: {}",
        m.transition.to_uppercase(),
        m.severity.to_uppercase(),
        m.system,
        m.component,
        m.summary
    )
}

/// The lines under the title: since when, by whom, why.
fn details(m: &AlertMessage) -> Vec<String> {
    let mut lines = vec![format!("Rule {} ({}), since {}", m.rule, m.kind, fmt_time(m.since))];
    if let Some(by) = &m.by {
        lines.push(format!("By {by}{}", m.comment.as_ref().map(|c| format!(": {c}")).unwrap_or_default()));
    }
    if let Some(reason) = &m.reason {
        lines.push(reason.clone());
    }
    if let Some(parent) = &m.impacted_by {
        lines.push(format!("Impacted by {parent}"));
    }
    lines
}

fn fmt_time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// The request that tells `receiver` of a transition, or None when the kind has nothing to say
/// for it (PagerDuty has no event for a silence).
pub fn request(receiver: &Receiver, resolved: &Resolved, m: &AlertMessage) -> Option<Request> {
    request_with(receiver, resolved, m, &title(m), &details(m), m.event_id)
}

/// One message about several alerts: webhooks and PagerDuty get one request per alert (their
/// bodies are per alert), the others one message listing them all. `seed` makes Matrix's
/// transaction id (the decision's id: a repeat is a new message).
pub fn request_group(
    receiver: &Receiver,
    resolved: &Resolved,
    messages: &[AlertMessage],
    seed: uuid::Uuid,
) -> Vec<Request> {
    match (receiver.kind, messages) {
        (_, []) => vec![],
        (Kind::Webhook | Kind::Pagerduty, _) => {
            messages.iter().filter_map(|m| request(receiver, resolved, m)).collect()
        }
        (_, [one]) => request_with(receiver, resolved, one, &title(one), &details(one), seed).into_iter().collect(),
        (_, many) => {
            let lines: Vec<String> = many.iter().map(title).collect();
            request_with(receiver, resolved, &many[0], &group_title(many), &lines, seed).into_iter().collect()
        }
    }
}

/// `3 alerts on derecho: 2 firing, 1 resolved`.
pub fn group_title(messages: &[AlertMessage]) -> String {
    let mut systems: Vec<&str> = messages.iter().map(|m| m.system.as_str()).collect();
    systems.sort_unstable();
    systems.dedup();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for m in messages {
        match counts.iter_mut().find(|(t, _)| *t == m.transition) {
            Some((_, n)) => *n += 1,
            None => counts.push((m.transition.clone(), 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(t, n)| format!("{n} {t}")).collect();
    format!("{} alerts on {}: {}", messages.len(), systems.join(", "), counts.join(", "))
}

fn request_with(
    receiver: &Receiver,
    resolved: &Resolved,
    m: &AlertMessage,
    head: &str,
    lines: &[String],
    seed: uuid::Uuid,
) -> Option<Request> {
    let text = std::iter::once(head.to_owned()).chain(lines.iter().cloned()).collect::<Vec<_>>().join("\n");
    let url = resolved.url.trim_end_matches('/').to_owned();
    let json = |url: String, body: Value| Request { method: "POST", url, headers: vec![], body: Body::Json(body) };
    let token = resolved.token.clone().unwrap_or_default();
    Some(match receiver.kind {
        Kind::Webhook => json(resolved.url.clone(), serde_json::to_value(m).unwrap_or(Value::Null)),
        Kind::Slack => json(
            resolved.url.clone(),
            json!({
                "text": head,
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*", cut(head, 2900))}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(&lines.join("\n"), 2900)}]},
                ],
            }),
        ),
        Kind::Teams => json(
            resolved.url.clone(),
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": head, "weight": "Bolder", "size": "Medium", "wrap": true,
                             "color": if m.state == "resolved" { "Good" } else if m.severity == "critical" { "Attention" } else { "Warning" }},
                            {"type": "FactSet", "facts": [
                                {"title": "System", "value": m.system},
                                {"title": "Component", "value": m.component},
                                {"title": "Rule", "value": m.rule},
                                {"title": "State", "value": m.state},
                                {"title": "Since", "value": fmt_time(m.since)},
                            ]},
                        ],
                    },
                }],
            }),
        ),
        Kind::Discord => json(resolved.url.clone(), json!({"content": cut(&text, 2000)})),
        Kind::Pagerduty => {
            let action = match m.transition.as_str() {
                "firing" | "unsilenced" | "maintenance_ended" => "trigger",
                "acknowledged" => "acknowledge",
                "resolved" => "resolve",
                _ => return None,
            };
            let mut body = json!({
                "routing_key": token,
                "event_action": action,
                "dedup_key": m.alert_id.to_string(),
            });
            if action == "trigger" {
                body["payload"] = json!({
                    "summary": cut(&format!("{} {}: {}", m.system, m.component, m.summary), 1024),
                    "source": format!("{}:{}", m.system, m.component),
                    "severity": match m.severity.as_str() { "critical" => "critical", "warning" => "warning", _ => "info" },
                    "timestamp": fmt_time(m.since),
                    "component": m.component,
                    "group": m.system,
                    "class": m.rule,
                });
            }
            json(resolved.url.clone(), body)
        }
        Kind::Ntfy => Request {
            method: "POST",
            url: resolved.url.clone(),
            headers: vec![
                ("Title", cut(head, 250)),
                (
                    "Priority",
                    match (m.state.as_str(), m.severity.as_str()) {
                        ("resolved", _) => "3",
                        (_, "critical") => "5",
                        (_, "warning") => "4",
                        _ => "3",
                    }
                    .into(),
                ),
                ("Tags", if m.state == "resolved" { "white_check_mark".into() } else { "rotating_light".into() }),
            ],
            body: Body::Text(lines.join("\n")),
        },
        Kind::Gotify => Request {
            method: "POST",
            url: format!("{url}/message"),
            headers: vec![("X-Gotify-Key", token)],
            body: Body::Json(json!({
                "title": head,
                "message": lines.join("\n"),
                "priority": match (m.state.as_str(), m.severity.as_str()) { ("resolved", _) => 2, (_, "critical") => 8, (_, "warning") => 5, _ => 2 },
            })),
        },
        Kind::Matrix => {
            let room = receiver.room.clone().unwrap_or_default();
            let txn = format!("sitrep-{}-{}", seed.simple(), receiver.name);
            Request {
                method: "PUT",
                url: format!("{url}/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}", encode(&room)),
                headers: vec![("Authorization", format!("Bearer {token}"))],
                body: Body::Json(json!({"msgtype": "m.text", "body": text})),
            }
        }
        // E-mail goes over SMTP, not HTTP: see [`email`].
        Kind::Email => return None,
        Kind::Telegram => json(
            format!("{url}/bot{token}/sendMessage"),
            json!({"chat_id": receiver.chat_id.clone().unwrap_or_default(), "text": cut(&text, 4096)}),
        ),
    })
}

/// An e-mail's subject and its two parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailBody {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The e-mail for a transition: the title as subject, the details as plain text, and the same
/// as simple HTML (every value escaped).
pub fn email(m: &AlertMessage) -> EmailBody {
    email_group(std::slice::from_ref(m))
}

/// The e-mail for one or several alerts: for several, the subject counts them and the body
/// lists each alert's title.
pub fn email_group(messages: &[AlertMessage]) -> EmailBody {
    let Some(m) = messages.first() else {
        return EmailBody { subject: String::new(), text: String::new(), html: String::new() };
    };
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let (head, lines) = if messages.len() == 1 {
        (title(m), details(m))
    } else {
        (group_title(messages), messages.iter().map(title).collect())
    };
    let text = format!(
        "{}\n\n{}\n\nSystem: {}\nComponent: {}\nState: {}\n",
        title(m),
        lines.join("\n"),
        m.system,
        m.component,
        m.state
    );
    let html = format!(
        "<!DOCTYPE html><html><body><h2>{}</h2><p>{}</p><table><tr><th align=\"left\">System</th><td>{}</td></tr>\
         <tr><th align=\"left\">Component</th><td>{}</td></tr><tr><th align=\"left\">State</th><td>{}</td></tr></table></body></html>",
        esc(&head),
        lines.iter().map(|l| esc(l)).collect::<Vec<_>>().join("<br>"),
        esc(&m.system),
        esc(&m.component),
        esc(&m.state)
    );
    EmailBody { subject: cut(&head, 200), text, html }
}

/// Percent-encodes a path segment (a Matrix room id holds `!` and `:`).
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A sample transition, for `sitrep notify test` and the previews on `/alerts/rules`.
pub fn sample(receiver: &str, now: time::OffsetDateTime) -> AlertMessage {
    AlertMessage {
        version: 1,
        alert_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("sitrep-test-{receiver}").as_bytes()),
        event_id: uuid::Uuid::new_v4(),
        position: 0,
        transition: "firing".into(),
        state: "firing".into(),
        severity: "critical".into(),
        rule: "failed".into(),
        kind: "status".into(),
        system: "derecho".into(),
        component: "fs/glade".into(),
        summary: "derecho fs/glade has failed (a test from sitrep notify test)".into(),
        since: now,
        at: now,
        by: None,
        comment: None,
        silenced_until: None,
        reason: None,
        impacted_by: None,
        maintenance: None,
        labels: [("kind".to_owned(), "filesystem".to_owned())].into(),
        notify: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn message(transition: &str, state: &str) -> AlertMessage {
        let mut m = sample("t", datetime!(2026-12-07 10:00 UTC));
        m.transition = transition.into();
        m.state = state.into();
        m.summary = "derecho fs/glade has failed".into();
        m
    }

    fn receiver(toml: &str) -> Receiver {
        parse(toml).unwrap().remove(0)
    }

    fn resolved(url: &str, token: Option<&str>) -> Resolved {
        Resolved { url: url.into(), token: token.map(Into::into) }
    }

    #[test]
    fn receivers_are_parsed_with_their_secrets_named_not_read() {
        let rs = parse(
            r#"
[[receiver]]
name = "ops-chat"
kind = "slack"
url_env = "SLACK_URL"
[[receiver]]
name = "oncall"
kind = "pagerduty"
routing_key_file = "/etc/sitrep/pd-key"
[[rule]]
name = "x"
"#,
        )
        .unwrap();
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].url, Some(Secret::Env("SLACK_URL".into())));
        assert_eq!(rs[1].url, None);
        assert_eq!(rs[1].default_url(), Some("https://events.pagerduty.com/v2/enqueue"));
        assert_eq!(format!("{:?}", Secret::Inline("hunter2".into())), "written in alerts.toml (hidden)");
    }

    #[test]
    fn mistakes_name_the_receiver_and_the_field() {
        let cases = [
            ("[[receiver]]\nname='a'\nkind='slack'", "receiver[0] \"a\" field \"url\"", "needs url"),
            ("[[receiver]]\nname='a'\nkind='pagerduty'", "field \"routing_key\"", "needs routing_key"),
            ("[[receiver]]\nname='a'\nkind='slack'\nurl='x'\nurl_env='Y'", "field \"url\"", "not several"),
            ("[[receiver]]\nname='a'\nkind='pager'\nurl='https://x'", "receiver[0] \"a\"", "unknown variant"),
            (
                "[[receiver]]\nname='a'\nkind='slack'\nurl='https://x'\nchannel='c'",
                "receiver[0] \"a\"",
                "unknown field",
            ),
            (
                "[[receiver]]\nname='a'\nkind='matrix'\nurl='https://m'\ntoken='t'\nroom='general'",
                "field \"room\"",
                "room id",
            ),
            ("[[receiver]]\nname='a'\nkind='telegram'\ntoken='t'", "field \"chat_id\"", "chat_id"),
            ("[[receiver]]\nname='A'\nkind='discord'\nurl='https://d'", "field \"name\"", "a-z"),
            ("[[receiver]]\nname='a'\nkind='discord'\nurl='ftp://d'", "field \"url\"", "https://"),
            (
                "[[receiver]]\nname='a'\nkind='slack'\nurl='https://s'\ntemplate='{}'",
                "field \"template\"",
                "webhook receivers",
            ),
            (
                "[[receiver]]\nname='a'\nkind='webhook'\nurl='https://s'\ncontent_type='text/plain'",
                "field \"content_type\"",
                "goes with a template",
            ),
        ];
        for (text, at, reason) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.at.contains(at) && e.reason.contains(reason), "{text}: {e}");
        }
    }

    #[test]
    fn pagerduty_triggers_acknowledges_and_resolves_one_incident_by_the_alert_id() {
        let r = receiver("[[receiver]]\nname='oncall'\nkind='pagerduty'\nrouting_key='R0UT1NG'");
        let url = r.default_url().unwrap();
        let actions: Vec<Value> = [("firing", "firing"), ("acknowledged", "acknowledged"), ("resolved", "resolved")]
            .iter()
            .map(|(t, s)| {
                let req = request(&r, &resolved(url, Some("R0UT1NG")), &message(t, s)).unwrap();
                assert_eq!((req.method, req.url.as_str()), ("POST", url));
                let Body::Json(b) = req.body else { panic!() };
                b
            })
            .collect();
        assert_eq!(
            actions.iter().map(|b| b["event_action"].as_str().unwrap()).collect::<Vec<_>>(),
            ["trigger", "acknowledge", "resolve"]
        );
        let keys: Vec<&Value> = actions.iter().map(|b| &b["dedup_key"]).collect();
        assert!(keys.iter().all(|k| *k == keys[0]));
        assert_eq!(actions[0]["routing_key"], "R0UT1NG");
        assert_eq!(actions[0]["payload"]["severity"], "critical");
        assert_eq!(actions[0]["payload"]["source"], "derecho:fs/glade");
        assert!(actions[2].get("payload").is_none());
        assert!(request(&r, &resolved(url, Some("k")), &message("silenced", "silenced")).is_none());
    }

    #[test]
    fn chat_receivers_get_the_bodies_their_services_document() {
        let m = message("firing", "firing");
        let body = |kind: &str, extra: &str, url: &str, token: Option<&str>| {
            let r = receiver(&format!("[[receiver]]\nname='x'\nkind='{kind}'\nurl='https://example.org'\n{extra}"));
            request(&r, &resolved(url, token), &m).unwrap()
        };
        let Body::Json(slack) = body("slack", "", "https://hooks.slack.com/services/T/B/X", None).body else {
            panic!()
        };
        assert_eq!(slack["text"], "[FIRING] CRITICAL derecho fs/glade: derecho fs/glade has failed");
        assert_eq!(slack["blocks"][0]["type"], "section");
        let Body::Json(teams) = body("teams", "", "https://prod.workflows", None).body else { panic!() };
        assert_eq!(teams["type"], "message");
        assert_eq!(teams["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(teams["attachments"][0]["content"]["version"], "1.4");
        let mut long = m.clone();
        long.summary = "x".repeat(5000);
        let r = receiver("[[receiver]]\nname='d'\nkind='discord'\nurl='https://discord'");
        let Body::Json(discord) = request(&r, &resolved("https://discord", None), &long).unwrap().body else {
            panic!()
        };
        assert_eq!(discord["content"].as_str().unwrap().chars().count(), 2000);
        let ntfy = body("ntfy", "", "https://ntfy.sh/hpc-ops", None);
        assert_eq!(ntfy.headers.iter().find(|h| h.0 == "Priority").unwrap().1, "5");
        let gotify = body("gotify", "token='g0t'", "https://gotify.example.org/", Some("g0t"));
        assert_eq!((gotify.url.as_str(), gotify.headers[0].1.as_str()), ("https://gotify.example.org/message", "g0t"));
        let tg = receiver("[[receiver]]\nname='t'\nkind='telegram'\ntoken='123:abc'\nchat_id=-100200");
        let req = request(&tg, &resolved(tg.default_url().unwrap(), Some("123:abc")), &m).unwrap();
        assert_eq!(req.url, "https://api.telegram.org/bot123:abc/sendMessage");
        let Body::Json(b) = req.body else { panic!() };
        assert_eq!(b["chat_id"], "-100200");
    }

    #[test]
    fn matrix_puts_with_a_transaction_id_that_a_retry_repeats() {
        let r = receiver("[[receiver]]\nname='mx'\nkind='matrix'\nurl='https://matrix.example.org'\ntoken='syt'\nroom='!ops:example.org'");
        let m = message("firing", "firing");
        let a = request(&r, &resolved("https://matrix.example.org", Some("syt")), &m).unwrap();
        let b = request(&r, &resolved("https://matrix.example.org", Some("syt")), &m).unwrap();
        assert_eq!(a.method, "PUT");
        assert_eq!(a.url, b.url);
        assert!(a.url.starts_with(
            "https://matrix.example.org/_matrix/client/v3/rooms/%21ops%3Aexample.org/send/m.room.message/sitrep-"
        ));
        assert_eq!(a.headers[0], ("Authorization", "Bearer syt".to_owned()));
    }

    #[test]
    fn a_route_names_receivers_that_exist_or_gives_a_url() {
        let with = |route: &str| {
            super::super::RuleSet::parse_toml(
                &format!(
                    "[[receiver]]\nname='ops-chat'\nkind='slack'\nurl_env='SLACK_URL'\n[[route]]\nname='r'\n{route}"
                ),
                600,
            )
        };
        let set = with("receivers = ['ops-chat']\nseverity = ['critical']").unwrap();
        assert_eq!((set.routes[0].receivers.clone(), set.routes[0].url.as_str()), (vec!["ops-chat".to_owned()], ""));
        assert_eq!(with("url = 'https://hooks.example.org/x'").unwrap().routes[0].url, "https://hooks.example.org/x");
        let e = with("receivers = ['pager']").unwrap_err();
        assert!(
            e.at.contains("route[0] \"r\" field \"receivers\"") && e.reason.contains("\"pager\" is not the name"),
            "{e}"
        );
        assert!(with("").unwrap_err().reason.contains("name the receivers"));
        let e = with("receivers = ['ops-chat']\nrule = 'nope'").unwrap_err();
        assert!(e.at.contains("field \"rule\"") && e.reason.contains("\"nope\" is not the name of a [[rule]]"), "{e}");
        let set = with("receivers = ['ops-chat']\ncontinue = true").unwrap();
        assert!(set.routes[0].continue_);
        // The rule set, which is recorded in the log, holds no endpoint or secret of a receiver.
        let recorded = serde_json::to_string(&with("receivers = ['ops-chat']").unwrap()).unwrap();
        assert!(!recorded.contains("SLACK_URL"), "{recorded}");
    }

    #[test]
    fn an_email_receiver_names_its_server_and_addresses_and_gets_a_text_and_an_html_part() {
        let r = receiver(
            "[[receiver]]\nname='ops-mail'\nkind='email'\nsmtp_host='mail.example.org'\nfrom='sitrep@example.org'\n\
             to=['hpc-ops@example.org']\nusername='sitrep'\npassword_env='SMTP_PASSWORD'",
        );
        let smtp = r.smtp.clone().unwrap();
        assert_eq!((smtp.port, smtp.tls), (587, Tls::Starttls));
        assert_eq!(r.token, Some(Secret::Env("SMTP_PASSWORD".into())));
        assert!(request(&r, &Resolved::default(), &message("firing", "firing")).is_none(), "not over HTTP");
        let mut m = message("firing", "firing");
        m.summary = "<b>disk</b> & more".into();
        let mail = email(&m);
        assert_eq!(mail.subject, "[FIRING] CRITICAL derecho fs/glade: <b>disk</b> & more");
        assert!(mail.text.contains("Component: fs/glade"));
        assert!(mail.html.contains("&lt;b&gt;disk&lt;/b&gt; &amp; more") && !mail.html.contains("<b>disk"));
        for (text, at) in [
            ("[[receiver]]\nname='m'\nkind='email'\nfrom='a@b'\nto=['c@d']", "smtp_host"),
            ("[[receiver]]\nname='m'\nkind='email'\nsmtp_host='h'\nfrom='nobody'\nto=['c@d']", "from"),
            ("[[receiver]]\nname='m'\nkind='email'\nsmtp_host='h'\nfrom='a@b'", "to"),
            ("[[receiver]]\nname='m'\nkind='email'\nsmtp_host='h'\nfrom='a@b'\nto=['c@d']\nusername='u'", "password"),
            ("[[receiver]]\nname='m'\nkind='slack'\nurl='https://s'\nto=['c@d']", "to"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.at.contains(&format!("field \"{at}\"")), "{text}: {e}");
        }
        let plain = receiver("[[receiver]]\nname='relay'\nkind='email'\nsmtp_host='localhost'\ntls='none'\nfrom='a@b.org'\nto=['c@d.org']");
        assert_eq!(plain.smtp.unwrap().port, 25);
    }

    #[test]
    fn a_group_is_one_chat_message_and_one_pagerduty_event_per_alert() {
        let msgs: Vec<AlertMessage> = (0..3)
            .map(|i| {
                let mut m = message(if i == 2 { "resolved" } else { "firing" }, "firing");
                m.alert_id = uuid::Uuid::from_u128(i);
                m.component = format!("node/{i}");
                m
            })
            .collect();
        let slack = receiver("[[receiver]]\nname='c'\nkind='slack'\nurl='https://s'");
        let reqs = request_group(&slack, &resolved("https://s", None), &msgs, uuid::Uuid::nil());
        assert_eq!(reqs.len(), 1);
        let Body::Json(b) = &reqs[0].body else { panic!() };
        assert_eq!(b["text"], "3 alerts on derecho: 2 firing, 1 resolved");
        assert!(b["blocks"][1]["elements"][0]["text"].as_str().unwrap().contains("[RESOLVED] CRITICAL derecho node/2"));
        let pd = receiver("[[receiver]]\nname='p'\nkind='pagerduty'\nrouting_key='k'");
        assert_eq!(request_group(&pd, &resolved("https://pd", Some("k")), &msgs, uuid::Uuid::nil()).len(), 3);
        let mail = email_group(&msgs);
        assert_eq!(mail.subject, "3 alerts on derecho: 2 firing, 1 resolved");
    }
}
