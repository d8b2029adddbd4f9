//! Which transitions go to which receiver, grouped how, and when: a pure decision over alert
//! transitions and time, like the evaluator. The decisions are recorded in the log
//! ([`Decision`], as `NotificationDecided` events) and delivery reads them, so a restart or a
//! replay neither loses nor repeats one.
//!
//! For each route, receiver (the route's own `url` counts as one) and group (the values of the
//! route's `group_by`: system, rule, severity):
//! - a transition that should reach people joins its group; the group's first message is due
//!   `group_wait` after the first transition that started it;
//! - after a message, later changes wait until `group_interval` after it;
//! - a message lists the alerts that changed since the last one; an alert new to a group that
//!   has notified before is still said to be new (its transition is `firing`);
//! - `repeat_interval`: with nothing changed, a group with alerts still firing and not
//!   acknowledged is sent again this long after its last message;
//! - `escalate_after` and `escalate_to`: a critical alert that is still firing and not
//!   acknowledged this long after it was raised is sent to `escalate_to` once, as its own message;
//! - **resolved notices are never lost**: a receiver that was told an alert fired is told when
//!   it resolves, also while the alert is silenced, in maintenance, or inside a group's wait.

use super::message::AlertMessage;
use super::rules::Route;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// The aggregate notification decisions are recorded under.
pub const AGGREGATE_TYPE: &str = "notifier";
pub const AGGREGATE_ID: &str = "notifier";

/// What the notifier records in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NotifierEvent {
    /// The notifier started: transitions after `from_position` are its to decide (the ones
    /// before were delivered one by one, by the notifier of earlier versions), and each route
    /// takes the transitions after its position in `routes_since` (a route added later gets
    /// the transitions from then on, not the past). Recorded again when the routes change.
    NotifierStarted {
        from_position: i64,
        #[serde(default)]
        routes_since: BTreeMap<String, i64>,
    },
    /// One message is due to one receiver now.
    NotificationDecided(Decision),
}

impl NotifierEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            NotifierEvent::NotifierStarted { .. } => "NotifierStarted",
            NotifierEvent::NotificationDecided(_) => "NotificationDecided",
        }
    }
}

/// One message to one receiver: which transitions, for which group, decided when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Derived from what was decided, so the same decision made twice is one event.
    pub id: Uuid,
    pub route: String,
    /// The receiver's name, or the route's name for a route's own `url`.
    pub target: String,
    /// `system=derecho`, or `all` when the route does not group by anything.
    pub group: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Why it is sent: `changes`, `repeat` or `escalation`.
    pub reason: String,
    /// The latest transition of each alert the message is about.
    pub messages: Vec<AlertMessage>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Member {
    latest: Option<AlertMessage>,
    /// Changed since the group's last message.
    changed: bool,
    /// This receiver was told the alert fired.
    told_firing: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Group {
    members: BTreeMap<Uuid, Member>,
    /// When the first change not yet sent came.
    pending_since: Option<OffsetDateTime>,
    last_sent: Option<OffsetDateTime>,
}

/// (route, target, group)
type Key = (String, String, String);

/// The notifier's state: groups and escalations, from the transitions and decisions so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Planner {
    /// Each route takes the transitions after this position (see [`NotifierEvent`]).
    pub routes_since: BTreeMap<String, i64>,
    groups: BTreeMap<Key, Group>,
    /// (route, alert) → (due, the transition that raised it), for critical alerts firing.
    escalations: BTreeMap<(String, Uuid), (OffsetDateTime, AlertMessage)>,
    /// (route, alert) already escalated.
    escalated: std::collections::BTreeSet<(String, Uuid)>,
}

fn secs(s: u64) -> Duration {
    Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 2))
}

/// The targets of a route: its receivers, or its own URL (named as the route).
pub fn targets(route: &Route) -> Vec<String> {
    if route.receivers.is_empty() {
        vec![route.name.clone()]
    } else {
        route.receivers.clone()
    }
}

fn group_of(route: &Route, m: &AlertMessage) -> String {
    if route.group_by.is_empty() {
        return "all".into();
    }
    route
        .group_by
        .iter()
        .map(|g| match g.as_str() {
            "system" => format!("system={}", m.system),
            "rule" => format!("rule={}", m.rule),
            "severity" => format!("severity={}", m.severity),
            other => format!("{other}=?"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn firing(m: &AlertMessage) -> bool {
    m.state == "firing"
}

impl Planner {
    /// A transition (from the log, in order).
    pub fn on_transition(&mut self, routes: &[Route], m: &AlertMessage) {
        let new_enough = |r: &Route| self.routes_since.get(&r.name).is_none_or(|since| m.position > *since);
        // The first route that matches takes the alert, unless it says `continue = true`.
        let mut wanting: Vec<&Route> = Vec::new();
        for r in routes.iter().filter(|r| r.takes(m)) {
            if new_enough(r) {
                wanting.push(r);
            }
            if !r.continue_ {
                break;
            }
        }
        for route in wanting {
            let group = group_of(route, m);
            for target in targets(route) {
                let g = self.groups.entry((route.name.clone(), target, group.clone())).or_default();
                let told = g.members.get(&m.alert_id).is_some_and(|x| x.told_firing);
                if !(m.notify || (m.state == "resolved" && told)) {
                    continue;
                }
                let member = g.members.entry(m.alert_id).or_default();
                member.latest = Some(m.clone());
                member.changed = true;
                g.pending_since.get_or_insert(m.at);
            }
            if let (Some(after), Some(_)) = (route.escalate_after_secs, &route.escalate_to) {
                let k = (route.name.clone(), m.alert_id);
                if m.severity == "critical" && firing(m) && m.notify && !self.escalated.contains(&k) {
                    self.escalations.entry(k).or_insert((m.since + secs(after), m.clone()));
                } else if !firing(m) {
                    self.escalations.remove(&k);
                }
            }
        }
    }

    fn group_due(route: &Route, g: &Group) -> Option<OffsetDateTime> {
        match (g.pending_since, g.last_sent) {
            (Some(since), None) => Some(since + secs(route.group_wait_secs)),
            (Some(since), Some(last)) => Some(since.max(last + secs(route.group_interval_secs))),
            (None, Some(last)) => {
                let still = g.members.values().any(|m| m.latest.as_ref().is_some_and(firing));
                route.repeat_interval_secs.filter(|_| still).map(|r| last + secs(r))
            }
            (None, None) => None,
        }
    }

    /// When the next decision is due, if any is.
    pub fn due(&self, routes: &[Route]) -> Option<OffsetDateTime> {
        let route = |name: &str| routes.iter().find(|r| r.name == name);
        let groups = self.groups.iter().filter_map(|((r, _, _), g)| route(r).and_then(|r| Self::group_due(r, g)));
        groups.chain(self.escalations.values().map(|(due, _)| *due)).min()
    }

    /// The decisions due at `now`, in a stable order. They change nothing: record them, and
    /// [`Planner::apply`] each as it is read back from the log.
    pub fn decide(&self, routes: &[Route], now: OffsetDateTime) -> Vec<Decision> {
        let mut out = Vec::new();
        for ((route_name, target, group), g) in &self.groups {
            let Some(route) = routes.iter().find(|r| &r.name == route_name) else { continue };
            let Some(due) = Self::group_due(route, g).filter(|d| *d <= now) else { continue };
            let (reason, messages): (&str, Vec<AlertMessage>) = if g.pending_since.is_some() {
                ("changes", g.members.values().filter(|m| m.changed).filter_map(|m| m.latest.clone()).collect())
            } else {
                ("repeat", g.members.values().filter_map(|m| m.latest.clone()).filter(firing).collect())
            };
            if messages.is_empty() {
                continue;
            }
            out.push(decision(route_name, target, group, due, reason, messages));
        }
        for ((route_name, _), (due, m)) in &self.escalations {
            if *due > now {
                continue;
            }
            let Some(to) = routes.iter().find(|r| &r.name == route_name).and_then(|r| r.escalate_to.clone()) else {
                continue;
            };
            let mut m = m.clone();
            m.transition = "escalated".into();
            out.push(decision(route_name, &to, &format!("alert={}", m.alert_id), *due, "escalation", vec![m]));
        }
        out
    }

    /// A decision, as recorded: the group's changes are sent.
    pub fn apply(&mut self, d: &Decision) {
        if d.reason == "escalation" {
            for m in &d.messages {
                self.escalations.remove(&(d.route.clone(), m.alert_id));
                self.escalated.insert((d.route.clone(), m.alert_id));
            }
            return;
        }
        let Some(g) = self.groups.get_mut(&(d.route.clone(), d.target.clone(), d.group.clone())) else { return };
        for m in &d.messages {
            if let Some(member) = g.members.get_mut(&m.alert_id) {
                member.changed = false;
                member.told_firing |= m.state != "resolved";
            }
            if m.state == "resolved" {
                g.members.remove(&m.alert_id);
            }
        }
        if g.members.values().all(|m| !m.changed) {
            g.pending_since = None;
        }
        g.last_sent = Some(d.at);
        if g.members.is_empty() {
            self.groups.remove(&(d.route.clone(), d.target.clone(), d.group.clone()));
        }
    }
}

fn decision(
    route: &str,
    target: &str,
    group: &str,
    at: OffsetDateTime,
    reason: &str,
    messages: Vec<AlertMessage>,
) -> Decision {
    let events: Vec<String> = messages.iter().map(|m| m.event_id.to_string()).collect();
    let name = format!("{route}\u{0}{target}\u{0}{group}\u{0}{reason}\u{0}{at}\u{0}{}", events.join(","));
    Decision {
        id: Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes()),
        route: route.into(),
        target: target.into(),
        group: group.into(),
        at,
        reason: reason.into(),
        messages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rules::Matcher;
    use crate::alert::Severity;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-12-07 10:00 UTC);

    fn route() -> Route {
        Route {
            name: "chat".into(),
            url: String::new(),
            severities: Severity::ALL.to_vec(),
            matches: Matcher::parse("*").unwrap(),
            receivers: vec!["ops-chat".into()],
            group_by: vec!["system".into()],
            group_wait_secs: 30,
            group_interval_secs: 300,
            repeat_interval_secs: None,
            escalate_after_secs: None,
            escalate_to: None,
            rules: vec![],
            continue_: false,
            labels: BTreeMap::new(),
        }
    }

    /// A transition of alert `n` at `T0 + secs`.
    fn t(n: u128, transition: &str, state: &str, secs_after: i64) -> AlertMessage {
        let mut m = crate::alert::receivers::sample("x", T0);
        m.alert_id = Uuid::from_u128(n);
        m.event_id = Uuid::new_v4();
        m.component = format!("node/{n}");
        m.transition = transition.into();
        m.state = state.into();
        m.since = T0;
        m.at = T0 + Duration::seconds(secs_after);
        m.notify = !matches!(state, "silenced");
        m
    }

    /// Runs the planner as the live notifier does: each decision recorded then applied.
    fn step(p: &mut Planner, routes: &[Route], now: OffsetDateTime) -> Vec<Decision> {
        let ds = p.decide(routes, now);
        for d in &ds {
            p.apply(d);
        }
        ds
    }

    fn alerts(d: &Decision) -> Vec<(u128, String)> {
        d.messages.iter().map(|m| (m.alert_id.as_u128(), m.transition.clone())).collect()
    }

    #[test]
    fn given_a_burst_inside_group_wait_when_it_is_due_then_one_message_holds_every_alert() {
        let routes = [route()];
        let mut p = Planner::default();
        for n in 0..50 {
            p.on_transition(&routes, &t(n, "firing", "firing", (n as i64) % 20));
        }
        assert_eq!(p.due(&routes), Some(T0 + Duration::seconds(30)));
        assert!(step(&mut p, &routes, T0 + Duration::seconds(29)).is_empty(), "not before group_wait");
        let ds = step(&mut p, &routes, T0 + Duration::seconds(30));
        assert_eq!(ds.len(), 1);
        assert_eq!(ds[0].messages.len(), 50);
        assert_eq!((ds[0].target.as_str(), ds[0].group.as_str()), ("ops-chat", "system=derecho"));
        assert_eq!(p.due(&routes), None);
    }

    #[test]
    fn given_a_group_that_notified_when_more_changes_come_then_they_wait_for_group_interval_and_a_new_alert_is_new() {
        let routes = [route()];
        let mut p = Planner::default();
        p.on_transition(&routes, &t(1, "firing", "firing", 0));
        assert_eq!(alerts(&step(&mut p, &routes, T0 + Duration::seconds(30))[0]), [(1, "firing".into())]);
        p.on_transition(&routes, &t(2, "firing", "firing", 60));
        p.on_transition(&routes, &t(1, "acknowledged", "acknowledged", 90));
        assert_eq!(p.due(&routes), Some(T0 + Duration::seconds(330)), "group_interval after the last message");
        let ds = step(&mut p, &routes, T0 + Duration::seconds(330));
        assert_eq!(alerts(&ds[0]), [(1, "acknowledged".into()), (2, "firing".into())]);
    }

    #[test]
    fn given_repeat_interval_when_nothing_changes_then_firing_alerts_are_sent_again_until_acknowledged() {
        let routes = [Route { repeat_interval_secs: Some(3600), ..route() }];
        let mut p = Planner::default();
        p.on_transition(&routes, &t(1, "firing", "firing", 0));
        step(&mut p, &routes, T0 + Duration::seconds(30));
        assert_eq!(p.due(&routes), Some(T0 + Duration::seconds(3630)));
        let ds = step(&mut p, &routes, T0 + Duration::seconds(3630));
        assert_eq!((ds[0].reason.as_str(), alerts(&ds[0])), ("repeat", vec![(1, "firing".into())]));
        p.on_transition(&routes, &t(1, "acknowledged", "acknowledged", 4000));
        step(&mut p, &routes, T0 + Duration::seconds(4000));
        assert_eq!(p.due(&routes), None, "an acknowledged alert is not repeated");
    }

    #[test]
    fn given_a_critical_alert_not_acknowledged_when_escalate_after_passes_then_the_next_receiver_gets_it_once() {
        let routes = [Route { escalate_after_secs: Some(900), escalate_to: Some("oncall".into()), ..route() }];
        let mut p = Planner::default();
        p.on_transition(&routes, &t(1, "firing", "firing", 0));
        p.on_transition(&routes, &t(2, "firing", "firing", 0));
        step(&mut p, &routes, T0 + Duration::seconds(30));
        p.on_transition(&routes, &t(2, "acknowledged", "acknowledged", 600));
        step(&mut p, &routes, T0 + Duration::seconds(900));
        let ds: Vec<Decision> = step(&mut p, &routes, T0 + Duration::seconds(900));
        assert!(ds.is_empty(), "decided once: {ds:?}");
        let mut q = Planner::default();
        q.on_transition(&routes, &t(1, "firing", "firing", 0));
        step(&mut q, &routes, T0 + Duration::seconds(30));
        let ds = step(&mut q, &routes, T0 + Duration::seconds(900));
        assert_eq!(ds.len(), 1);
        assert_eq!((ds[0].target.as_str(), ds[0].reason.as_str()), ("oncall", "escalation"));
        assert_eq!(alerts(&ds[0]), [(1, "escalated".into())]);
        assert!(step(&mut q, &routes, T0 + Duration::seconds(5000)).is_empty(), "escalated once");
    }

    #[test]
    fn given_a_receiver_told_an_alert_fired_when_it_resolves_silenced_or_inside_a_wait_then_it_is_told() {
        let routes = [route()];
        let mut p = Planner::default();
        p.on_transition(&routes, &t(1, "firing", "firing", 0));
        step(&mut p, &routes, T0 + Duration::seconds(30));
        p.on_transition(&routes, &t(1, "silenced", "silenced", 40));
        let mut resolved = t(1, "resolved", "resolved", 50);
        resolved.notify = false; // as a silenced alert's resolution may come
        p.on_transition(&routes, &resolved);
        let ds = step(&mut p, &routes, T0 + Duration::seconds(330));
        assert_eq!(alerts(&ds[0]), [(1, "resolved".into())]);
        assert_eq!(p.groups.len(), 0, "a resolved alert leaves its group");
        // Never told (silenced before any message): its quiet resolution is not sent.
        let mut q = Planner::default();
        q.on_transition(&routes, &t(2, "silenced", "silenced", 0));
        q.on_transition(&routes, &resolved);
        assert_eq!(q.due(&routes), None);
    }

    #[test]
    fn given_a_route_with_its_own_url_and_no_waits_then_each_transition_goes_at_once() {
        let routes = [Route {
            receivers: vec![],
            url: "http://hook".into(),
            group_wait_secs: 0,
            group_interval_secs: 0,
            ..route()
        }];
        let mut p = Planner::default();
        p.on_transition(&routes, &t(1, "firing", "firing", 0));
        let ds = step(&mut p, &routes, T0);
        assert_eq!((ds[0].target.as_str(), alerts(&ds[0])), ("chat", vec![(1, "firing".into())]));
        let again =
            decision(&ds[0].route, &ds[0].target, &ds[0].group, ds[0].at, &ds[0].reason, ds[0].messages.clone());
        assert_eq!(again.id, ds[0].id, "ids derive from content");
    }

    #[test]
    fn given_a_route_added_later_then_it_takes_only_the_transitions_after_it_came() {
        let routes = [route()];
        let mut p = Planner { routes_since: BTreeMap::from([("chat".to_owned(), 10)]), ..Planner::default() };
        let mut old = t(1, "firing", "firing", 0);
        old.position = 10;
        p.on_transition(&routes, &old);
        assert_eq!(p.due(&routes), None);
        let mut new = t(2, "firing", "firing", 0);
        new.position = 11;
        p.on_transition(&routes, &new);
        assert_eq!(alerts(&step(&mut p, &routes, T0 + Duration::seconds(30))[0]), [(2, "firing".into())]);
    }

    #[test]
    fn given_several_routes_then_the_first_that_matches_takes_the_alert_unless_it_continues() {
        let pager =
            Route { name: "pager".into(), receivers: vec!["oncall".into()], rules: vec!["failed".into()], ..route() };
        let chat = route();
        let mut p = Planner::default();
        p.on_transition(&[pager.clone(), chat.clone()], &t(1, "firing", "firing", 0));
        let ds = step(&mut p, &[pager.clone(), chat.clone()], T0 + Duration::seconds(30));
        assert_eq!(ds.iter().map(|d| d.target.as_str()).collect::<Vec<_>>(), ["oncall"]);
        let both = [Route { continue_: true, ..pager.clone() }, chat.clone()];
        let mut q = Planner::default();
        q.on_transition(&both, &t(1, "firing", "firing", 0));
        let ds = step(&mut q, &both, T0 + Duration::seconds(30));
        assert_eq!(ds.iter().map(|d| d.target.as_str()).collect::<Vec<_>>(), ["ops-chat", "oncall"]);
        // A rule the first route does not take goes on to the next.
        let mut other = t(2, "firing", "firing", 0);
        other.rule = "filesystem-full".into();
        let mut r = Planner::default();
        r.on_transition(&[pager, chat.clone()], &other);
        let ds = step(&mut r, &[route()], T0 + Duration::seconds(30));
        assert_eq!(ds.iter().map(|d| d.target.as_str()).collect::<Vec<_>>(), ["ops-chat"]);
    }

    #[test]
    fn given_routes_by_label_then_an_alert_goes_where_its_components_labels_match() {
        let storage = Route {
            name: "storage".into(),
            receivers: vec!["storage-team".into()],
            labels: BTreeMap::from([("kind".to_owned(), Matcher::parse("file*").unwrap())]),
            ..route()
        };
        let routes = [storage, route()];
        let mut p = Planner::default();
        // The sample alert's component is labelled kind=filesystem.
        p.on_transition(&routes, &t(1, "firing", "firing", 0));
        let mut unlabelled = t(2, "firing", "firing", 0);
        unlabelled.labels.clear();
        p.on_transition(&routes, &unlabelled);
        let mut other = t(3, "firing", "firing", 0);
        other.labels.insert("kind".into(), "login_node".into());
        p.on_transition(&routes, &other);
        let ds = step(&mut p, &routes, T0 + Duration::seconds(30));
        let sent: Vec<(&str, Vec<(u128, String)>)> = ds.iter().map(|d| (d.target.as_str(), alerts(d))).collect();
        assert_eq!(
            sent,
            [
                ("ops-chat", vec![(2, "firing".into()), (3, "firing".into())]),
                ("storage-team", vec![(1, "firing".into())]),
            ]
        );
    }
}
