//! The public face's configuration, `status.toml` (`SITREP_STATUS_FILE`; docs/status-page.md):
//! what the status page shows (`[status_page]` and its groups) and how the SLA report counts
//! (`[sla]`), every mistake naming the key; and what the public face shows of the centre: each
//! group's state in users' words, and the outages and windows that touch a public group.

use crate::read::notices::{Notices, WindowRow};
use crate::read::queries::ComponentState;
use crate::state::AppState;
use crate::view;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use sitrep_domain::alert::rules::Matcher;
use sitrep_domain::Status;
use sitrep_projections::sla::{self, Policy, PolicySpec};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The objective systems are measured against when neither they nor `[sla] target` set one.
pub const DEFAULT_TARGET: f64 = 99.0;

/// `status.toml`, checked.
#[derive(Debug, Clone)]
pub struct PublicConfig {
    pub title: String,
    /// Where the status page is published (`https://status.example.org`): feeds link there.
    /// Unset, they link to the host they were asked for at.
    pub url: Option<String>,
    pub description: Option<String>,
    pub groups: Vec<Group>,
    pub policy: Policy,
    /// The objective of systems, in percent.
    pub target: f64,
    /// Where it was read from, for messages; `None` when there is no file.
    pub source: Option<PathBuf>,
}

impl Default for PublicConfig {
    fn default() -> Self {
        Self {
            title: "Service status".into(),
            url: None,
            description: None,
            groups: vec![],
            policy: Policy::default(),
            target: DEFAULT_TARGET,
            source: None,
        }
    }
}

/// A part of a system the status page shows, in its users' words.
#[derive(Debug, Clone)]
pub struct Group {
    /// For links and anchors: `derecho-compute`.
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub system: String,
    /// Component globs; empty for every component of the system.
    pub components: Vec<Matcher>,
    /// The group's objective, in percent.
    pub target: Option<f64>,
}

impl Group {
    pub fn includes(&self, system: &str, component: &str) -> bool {
        self.system == system && (self.components.is_empty() || self.components.iter().any(|m| m.matches(component)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    status_page: Option<PageSpec>,
    sla: Option<PolicySpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageSpec {
    title: Option<String>,
    url: Option<String>,
    description: Option<String>,
    #[serde(default)]
    group: Vec<GroupSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupSpec {
    name: String,
    description: Option<String>,
    system: String,
    components: Option<Vec<String>>,
    target: Option<f64>,
}

/// A mistake in `status.toml`, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct ConfigError {
    pub file: String,
    pub reason: String,
}

fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

impl PublicConfig {
    /// Parses and checks the text of `status.toml`.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError { file: file.to_owned(), reason };
        let spec: FileSpec = toml::from_str(text).map_err(|e| err(e.to_string().trim().to_owned()))?;
        let mut c = PublicConfig::default();
        if let Some(sla) = &spec.sla {
            c.policy = Policy::from_spec(sla).map_err(err)?;
            c.target = sla.target.unwrap_or(DEFAULT_TARGET);
        }
        if let Some(page) = spec.status_page {
            if let Some(t) = page.title.filter(|t| !t.trim().is_empty()) {
                c.title = t;
            }
            c.description = page.description.filter(|d| !d.trim().is_empty());
            if let Some(url) = page.url.filter(|u| !u.trim().is_empty()) {
                if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(['<', '>', '"', ' ']) {
                    return Err(err(format!("status_page.url: {url:?} is not an http:// or https:// URL")));
                }
                c.url = Some(url);
            }
            for (i, g) in page.group.into_iter().enumerate() {
                let at = |key: &str| format!("status_page.group[{i}] {:?} key {key:?}", g.name);
                if g.name.trim().is_empty() || g.name.chars().count() > 80 {
                    return Err(err(format!("{}: give a display name of 1 to 80 characters", at("name"))));
                }
                if sitrep_domain::SystemName::parse(&g.system).is_err() {
                    return Err(err(format!("{}: {:?} is not a system name", at("system"), g.system)));
                }
                if g.components.as_ref().is_some_and(Vec::is_empty) {
                    return Err(err(format!(
                        "{}: give at least one glob, or leave components out for the whole system",
                        at("components")
                    )));
                }
                let components = g
                    .components
                    .iter()
                    .flatten()
                    .map(|raw| Matcher::parse(raw))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| err(format!("{}: {e}", at("components"))))?;
                if let Some(t) = g.target {
                    sla::check_target(&at("target"), t).map_err(err)?;
                }
                let slug = slug(&g.name);
                if slug.is_empty() {
                    return Err(err(format!("{}: the name needs a letter or a digit", at("name"))));
                }
                if c.groups.iter().any(|other| other.slug == slug) {
                    return Err(err(format!("{}: another group has this name", at("name"))));
                }
                c.groups.push(Group {
                    slug,
                    name: g.name.trim().to_owned(),
                    description: g.description.filter(|d| !d.trim().is_empty()),
                    system: g.system,
                    components,
                    target: g.target,
                });
            }
        }
        Ok(c)
    }

    /// Reads `path`, or `status.toml` in the working directory when no path is set and it
    /// exists; with neither, the defaults (no public groups, the default policy).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("status.toml"), false),
        };
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(ConfigError { file: shown, reason: format!("cannot be read: {e}") }),
        };
        let mut c = Self::parse(&text, &shown)?;
        c.source = Some(path);
        Ok(c)
    }

    /// What about the groups looks mistaken against what has been reported so far: a system
    /// nothing was reported for, or globs that match none of its components. Warnings, not
    /// errors: a new system may simply not have reported yet.
    pub async fn doubts(&self, pool: &deadpool_postgres::Pool) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for g in &self.groups {
            let components = crate::read::queries::system_components(pool, &g.system).await?;
            if components.is_empty() {
                out.push(format!(
                    "status.toml group {:?}: nothing has been reported for system {:?}",
                    g.name, g.system
                ));
            } else if !components.iter().any(|c| g.includes(&g.system, &c.component)) {
                out.push(format!(
                    "status.toml group {:?}: its components match none of {}'s {} components",
                    g.name,
                    g.system,
                    components.len()
                ));
            }
        }
        Ok(out)
    }

    /// The groups of `system`.
    pub fn groups_of<'a>(&'a self, system: &'a str) -> impl Iterator<Item = &'a Group> + 'a {
        self.groups.iter().filter(move |g| g.system == system)
    }

    /// Whether `system` (and `component`, if given) is shown on the status page.
    pub fn is_public(&self, system: &str, component: Option<&str>) -> bool {
        self.groups.iter().any(|g| g.system == system && component.is_none_or(|c| g.includes(system, c)))
    }

    /// The objective of `group`, or of systems.
    pub fn target_of(&self, group: Option<&Group>) -> f64 {
        group.and_then(|g| g.target).unwrap_or(self.target)
    }
}

// ------------------------------------------------------------------------ what the public sees

/// A group's state, in its users' words, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicState {
    MajorOutage,
    PartialOutage,
    Degraded,
    Maintenance,
    NoData,
    Operational,
}

impl PublicState {
    pub fn words(self) -> &'static str {
        match self {
            Self::MajorOutage => "Major outage",
            Self::PartialOutage => "Partial outage",
            Self::Degraded => "Degraded performance",
            Self::Maintenance => "Under maintenance",
            Self::NoData => "No recent data",
            Self::Operational => "Operational",
        }
    }

    /// The CSS and badge colour key: a status the dashboard already colours.
    pub fn key(self) -> &'static str {
        match self {
            Self::MajorOutage => "failed",
            Self::PartialOutage => "partial",
            Self::Degraded => "degraded",
            Self::Maintenance => "maintenance",
            Self::NoData => "unknown",
            Self::Operational => "ok",
        }
    }
}

/// What a group's components and notices say now.
pub fn group_state(
    group: &Group,
    components: &[ComponentState],
    notices: &Notices,
    default_ttl: u32,
    now: OffsetDateTime,
) -> PublicState {
    let outage = notices
        .outages
        .iter()
        .filter(|o| o.system == group.system && o.resolved_at.is_none())
        .filter(|o| o.components.is_empty() || o.components.iter().any(|c| group.includes(&group.system, c)))
        .map(|o| o.severity.as_str())
        .min_by_key(|s| match *s {
            "critical" => 0,
            "major" => 1,
            _ => 2,
        });
    if matches!(outage, Some("critical" | "major")) {
        return PublicState::MajorOutage;
    }
    let (mut counted, mut failed, mut degraded, mut maintenance) = (0, 0, 0, 0);
    for c in components.iter().filter(|c| group.includes(&c.system, &c.component)) {
        if notices.in_maintenance(&c.system, &c.component, now) {
            maintenance += 1;
            continue;
        }
        if view::is_stale(c.observed_at, c.ttl_seconds.unwrap_or(default_ttl), now) {
            continue;
        }
        match c.status {
            Status::Failed => failed += 1,
            Status::Degraded => degraded += 1,
            Status::Ok => {}
            _ => continue,
        }
        counted += 1;
    }
    if counted > 0 && failed == counted {
        PublicState::MajorOutage
    } else if failed > 0 || outage.is_some() {
        PublicState::PartialOutage
    } else if degraded > 0 {
        PublicState::Degraded
    } else if maintenance > 0 {
        PublicState::Maintenance
    } else if counted == 0 {
        PublicState::NoData
    } else {
        PublicState::Operational
    }
}

/// The groups an outage or window touches: those it names components of, or every group of
/// its system when it names none.
fn touched<'a>(config: &'a PublicConfig, system: &'a str, components: &[String]) -> Vec<&'a Group> {
    config
        .groups_of(system)
        .filter(|g| components.is_empty() || components.iter().any(|c| g.includes(system, c)))
        .collect()
}

fn names(groups: &[&Group]) -> Vec<String> {
    groups.iter().map(|g| g.name.clone()).collect()
}

/// The public systems, each once.
pub fn systems(config: &PublicConfig) -> Vec<&str> {
    let mut s: Vec<&str> = config.groups.iter().map(|g| g.system.as_str()).collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// An outage that touches a public group, as the public face shows it.
#[derive(Debug, Clone)]
pub struct PublicOutage {
    pub system: String,
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub severity: String,
    pub started_at: OffsetDateTime,
    pub resolved_at: Option<OffsetDateTime>,
    pub groups: Vec<String>,
    /// `(position, at, kind, message)`, oldest first.
    pub updates: Vec<(i64, OffsetDateTime, String, Option<String>)>,
}

/// The outages of public systems that touch a public group: ongoing first, then the newest.
/// Their updates are not read ([`with_updates`] reads them for those shown).
pub async fn public_outages(state: &AppState, config: &PublicConfig) -> anyhow::Result<Vec<PublicOutage>> {
    let systems: Vec<String> = systems(config).into_iter().map(str::to_owned).collect();
    let client = state.pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT system, id, title, description, severity, started_at, resolved_at, components FROM outages
             WHERE system = ANY($1) ORDER BY (resolved_at IS NULL) DESC, started_at DESC, system, id",
            &[&systems],
        )
        .await
        .context("reading outages")?;
    let mut out = Vec::new();
    for r in rows {
        let (system, components): (String, Vec<String>) = (r.get(0), r.get(7));
        let groups = touched(config, &system, &components);
        if groups.is_empty() {
            continue;
        }
        out.push(PublicOutage {
            id: r.get(1),
            title: r.get(2),
            description: r.get(3),
            severity: r.get(4),
            started_at: r.get(5),
            resolved_at: r.get(6),
            groups: names(&groups),
            updates: vec![],
            system,
        });
    }
    Ok(out)
}

/// Reads the updates of `outages`, in one query.
pub async fn with_updates(state: &AppState, outages: &mut [PublicOutage]) -> anyhow::Result<()> {
    if outages.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = outages.iter().map(|o| format!("{}/{}", o.system, o.id)).collect();
    let client = state.pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT system || '/' || id, position, at, kind, message FROM outage_updates
             WHERE system || '/' || id = ANY($1) ORDER BY position",
            &[&keys],
        )
        .await
        .context("reading outage_updates")?;
    for r in &rows {
        let key: String = r.get(0);
        if let Some(i) = keys.iter().position(|k| *k == key) {
            outages[i].updates.push((r.get(1), r.get(2), r.get(3), r.get(4)));
        }
    }
    Ok(())
}

/// The windows of public systems that touch a public group and are not over.
pub fn public_windows<'a>(config: &PublicConfig, notices: &'a Notices) -> Vec<(&'a WindowRow, Vec<String>)> {
    notices
        .windows
        .iter()
        .filter(|w| config.groups_of(&w.system).next().is_some())
        .filter_map(|w| {
            // A window that names no component covers nothing (as for alerts and the SLA).
            let groups = if w.components.is_empty() { vec![] } else { touched(config, &w.system, &w.components) };
            (!groups.is_empty()).then(|| (w, names(&groups)))
        })
        .collect()
}

/// An outage update's kind in users' words.
pub fn update_word(kind: &str) -> &'static str {
    match kind {
        "declared" => "Identified",
        "resolved" => "Resolved",
        _ => "Update",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[status_page]
title = "NCAR HPC status"
description = "Derecho and Casper, as their users see them."

[[status_page.group]]
name = "Derecho: compute"
description = "Batch queues and compute nodes"
system = "derecho"
components = ["queue/*", "nodes/*"]
target = 99.5

[[status_page.group]]
name = "Derecho: filesystems"
system = "derecho"
components = ["fs/*"]

[sla]
version = "2026-12"
degraded = "up"
stale = "ignore"
outages = ["major", "critical"]
target = 99.0
"#;

    #[test]
    fn the_documented_example_parses() {
        let c = PublicConfig::parse(EXAMPLE, "status.toml").unwrap();
        assert_eq!(c.title, "NCAR HPC status");
        let slugs: Vec<&str> = c.groups.iter().map(|g| g.slug.as_str()).collect();
        assert_eq!(slugs, ["derecho-compute", "derecho-filesystems"]);
        assert!(c.groups[0].includes("derecho", "queue/main") && !c.groups[0].includes("derecho", "fs/glade"));
        assert!(c.is_public("derecho", Some("fs/glade")) && !c.is_public("derecho", Some("login/derecho1")));
        assert!(!c.is_public("casper", None));
        assert_eq!((c.target_of(Some(&c.groups[0])), c.target_of(Some(&c.groups[1]))), (99.5, 99.0));
        assert_eq!(c.policy.version, "2026-12");
    }

    #[test]
    fn mistakes_name_the_key() {
        for (text, needle) in [
            ("[status_page]\ntitel = \"x\"", "unknown field `titel`"),
            ("[[status_page.group]]\nname = \"A\"\nsystem = \"Not A System!\"", "key \"system\""),
            ("[[status_page.group]]\nname = \"A\"\nsystem = \"derecho\"\ncomponents = [\"[x\"]", "key \"components\""),
            ("[[status_page.group]]\nname = \"A\"\nsystem = \"derecho\"\ntarget = 101.0", "key \"target\""),
            ("[[status_page.group]]\nname = \"A\"\nsystem = \"derecho\"\n[[status_page.group]]\nname = \"a\"\nsystem = \"derecho\"", "another group"),
            ("[sla]\ndegraded = \"maybe\"", "sla.degraded"),
            ("[status_page]\nurl = \"status.example.org\"", "status_page.url"),
            ("[[status_page.group]]\nname = \"A\"\nsystem = \"derecho\"\ncomponents = []", "at least one glob"),
        ] {
            let e = PublicConfig::parse(text, "status.toml").unwrap_err().to_string();
            assert!(e.starts_with("status.toml: ") && e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn no_file_is_the_defaults_and_a_named_file_must_exist() {
        let c = PublicConfig::load(None).unwrap();
        assert!(c.groups.is_empty() && c.source.is_none());
        let e = PublicConfig::load(Some(Path::new("/nonexistent/status.toml"))).unwrap_err();
        assert!(e.to_string().contains("cannot be read"), "{e}");
    }
}
