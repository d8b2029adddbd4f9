//! The alert aggregate's rules: raised → acknowledged / silenced → resolved, with a new alert
//! (a new id) for a new firing.

use super::commands::AlertCommand;
use super::events::{AlertEvent, AlertInfo};
use super::rfc3339;
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Not raised yet (an id no command has used).
    #[default]
    New,
    Firing,
    Acknowledged,
    Silenced,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::New => "new",
            AlertState::Firing => "firing",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Silenced => "silenced",
            AlertState::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub info: Option<AlertInfo>,
    pub state: AlertState,
    pub acknowledged_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub silenced_until: Option<OffsetDateTime>,
    /// Raised inside a maintenance window that is not over yet: it notifies nobody.
    #[serde(default)]
    pub in_maintenance: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertError {
    #[error("the alert was already raised")]
    AlreadyRaised,
    #[error("no such alert")]
    NotRaised,
    #[error("the alert is resolved")]
    Resolved,
    #[error("the alert is already acknowledged by {0}")]
    AlreadyAcknowledged(String),
    #[error("field \"{0}\": is required")]
    Missing(&'static str),
    #[error("field \"until\": {0} is not after now ({1})")]
    SilenceNotInFuture(String, String),
    #[error("the alert is not silenced")]
    NotSilenced,
    #[error("the silence runs until {0}")]
    SilenceNotDue(String),
    #[error("the alert was not raised in maintenance, or its maintenance is already over")]
    NotInMaintenance,
}

impl Aggregate for Alert {
    const TYPE: &'static str = super::AGGREGATE_TYPE;
    type Command = AlertCommand;
    type Event = AlertEvent;
    type Error = AlertError;
    type Services = ();

    async fn handle(&mut self, command: AlertCommand, _: &(), sink: &EventSink<Self>) -> Result<(), AlertError> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: AlertEvent) {
        match event {
            AlertEvent::Raised { info, .. } => {
                self.in_maintenance = info.maintenance.is_some();
                self.info = Some(info);
                self.state = AlertState::Firing;
            }
            AlertEvent::Acknowledged { by, .. } => {
                self.acknowledged_by = Some(by);
                if self.state == AlertState::Firing {
                    self.state = AlertState::Acknowledged;
                }
            }
            AlertEvent::Silenced { until, .. } => {
                self.silenced_until = Some(until);
                self.state = AlertState::Silenced;
            }
            AlertEvent::SilenceExpired { .. } => {
                self.silenced_until = None;
                self.state = if self.acknowledged_by.is_some() { AlertState::Acknowledged } else { AlertState::Firing };
            }
            AlertEvent::MaintenanceEnded { .. } => self.in_maintenance = false,
            AlertEvent::Resolved { .. } => {
                self.silenced_until = None;
                self.state = AlertState::Resolved;
            }
        }
    }
}

impl Alert {
    /// The event a command leads to, or why it is refused. (`handle` writes it.)
    pub fn decide(&self, command: AlertCommand) -> Result<AlertEvent, AlertError> {
        let live = || match self.state {
            AlertState::New => Err(AlertError::NotRaised),
            AlertState::Resolved => Err(AlertError::Resolved),
            _ => Ok(()),
        };
        Ok(match command {
            AlertCommand::Raise { info, at, cause } => {
                if self.state != AlertState::New {
                    return Err(AlertError::AlreadyRaised);
                }
                AlertEvent::Raised { info, at, cause }
            }
            AlertCommand::Acknowledge { by, comment, at } => {
                live()?;
                if let Some(who) = &self.acknowledged_by {
                    return Err(AlertError::AlreadyAcknowledged(who.clone()));
                }
                if by.trim().is_empty() {
                    return Err(AlertError::Missing("by"));
                }
                AlertEvent::Acknowledged { by, comment, at }
            }
            AlertCommand::Silence { by, comment, until, at } => {
                live()?;
                if by.trim().is_empty() {
                    return Err(AlertError::Missing("by"));
                }
                if until <= at {
                    return Err(AlertError::SilenceNotInFuture(rfc3339(until), rfc3339(at)));
                }
                AlertEvent::Silenced { by, comment, until, at }
            }
            AlertCommand::ExpireSilence { at, cause } => {
                let Some(until) = self.silenced_until.filter(|_| self.state == AlertState::Silenced) else {
                    return Err(AlertError::NotSilenced);
                };
                if until > at {
                    return Err(AlertError::SilenceNotDue(rfc3339(until)));
                }
                AlertEvent::SilenceExpired { at, cause }
            }
            AlertCommand::EndMaintenance { at, cause } => {
                live()?;
                if !self.in_maintenance {
                    return Err(AlertError::NotInMaintenance);
                }
                AlertEvent::MaintenanceEnded { at, cause }
            }
            AlertCommand::Resolve { reason, at, cause } => {
                live()?;
                AlertEvent::Resolved { reason, at, cause }
            }
        })
    }

    /// Whether `event`, happening to the alert as it is now, should reach people (webhooks and
    /// the `notify` flag on the bus). An alert that gives way to a failed parent never
    /// notifies; a silenced one stays quiet except for its resolution, which is never lost.
    /// One raised inside a maintenance window stays quiet, resolution too, until the window is
    /// over: the end of its maintenance is its first notice (unless an operator acknowledged or
    /// silenced it meanwhile).
    pub fn notifies(&self, event: &AlertEvent) -> bool {
        let impacted = match (event, &self.info) {
            (AlertEvent::Raised { info, .. }, _) | (_, Some(info)) => info.impacted_by.is_some(),
            _ => false,
        };
        let in_maintenance = match event {
            AlertEvent::Raised { info, .. } => info.maintenance.is_some(),
            AlertEvent::MaintenanceEnded { .. } => false,
            _ => self.in_maintenance,
        };
        if impacted || in_maintenance {
            return false;
        }
        match event {
            AlertEvent::Acknowledged { .. } => self.state != AlertState::Silenced,
            // Someone who acknowledged or silenced it already knows.
            AlertEvent::MaintenanceEnded { .. } => self.state == AlertState::Firing,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rules::Severity;
    use cqrs_es::test::TestFramework;
    use time::macros::datetime;
    use uuid::Uuid;

    type AlertTest = TestFramework<Alert>;

    const T0: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);
    const T1: OffsetDateTime = datetime!(2026-11-22 10:05:00 UTC);
    const T2: OffsetDateTime = datetime!(2026-11-22 11:00:00 UTC);

    fn info(impacted_by: Option<&str>) -> AlertInfo {
        AlertInfo {
            alert_id: Uuid::nil(),
            rule: "fs-failed".into(),
            kind: "status".into(),
            severity: Severity::Critical,
            system: "derecho".into(),
            component: "fs/glade".into(),
            summary: "derecho fs/glade is failed".into(),
            since: T0,
            impacted_by: impacted_by.map(str::to_owned),
            maintenance: None,
            labels: Default::default(),
        }
    }

    fn raised_in_maintenance() -> AlertEvent {
        AlertEvent::Raised {
            info: AlertInfo { maintenance: Some("derecho/pm".into()), ..info(None) },
            at: T0,
            cause: 7,
        }
    }

    fn raised() -> AlertEvent {
        AlertEvent::Raised { info: info(None), at: T0, cause: 7 }
    }

    fn ack() -> AlertCommand {
        AlertCommand::Acknowledge { by: "ana".into(), comment: "on it".into(), at: T1 }
    }

    fn acked() -> AlertEvent {
        AlertEvent::Acknowledged { by: "ana".into(), comment: "on it".into(), at: T1 }
    }

    fn silenced(until: OffsetDateTime) -> AlertEvent {
        AlertEvent::Silenced { by: "ana".into(), comment: "known".into(), until, at: T1 }
    }

    #[test]
    fn a_new_alert_is_raised_once() {
        AlertTest::with(())
            .given_no_previous_events()
            .when(AlertCommand::Raise { info: info(None), at: T0, cause: 7 })
            .then_expect_events(vec![raised()]);
        AlertTest::with(())
            .given(vec![raised()])
            .when(AlertCommand::Raise { info: info(None), at: T0, cause: 7 })
            .then_expect_error(AlertError::AlreadyRaised);
    }

    #[test]
    fn an_acknowledge_followed_by_a_resolve() {
        AlertTest::with(()).given(vec![raised()]).when(ack()).then_expect_events(vec![acked()]);
        let resolve = AlertCommand::Resolve { reason: "status is ok".into(), at: T2, cause: 9 };
        AlertTest::with(())
            .given(vec![raised(), acked()])
            .when(resolve.clone())
            .then_expect_events(vec![AlertEvent::Resolved { reason: "status is ok".into(), at: T2, cause: 9 }]);
        AlertTest::with(())
            .given(vec![raised(), acked(), AlertEvent::Resolved { reason: "ok".into(), at: T2, cause: 9 }])
            .when(resolve)
            .then_expect_error(AlertError::Resolved);
    }

    #[test]
    fn acknowledging_twice_or_without_a_name_is_refused() {
        AlertTest::with(())
            .given(vec![raised(), acked()])
            .when(ack())
            .then_expect_error(AlertError::AlreadyAcknowledged("ana".into()));
        AlertTest::with(())
            .given(vec![raised()])
            .when(AlertCommand::Acknowledge { by: " ".into(), comment: String::new(), at: T1 })
            .then_expect_error(AlertError::Missing("by"));
        AlertTest::with(()).given_no_previous_events().when(ack()).then_expect_error(AlertError::NotRaised);
    }

    #[test]
    fn a_silence_must_end_in_the_future() {
        AlertTest::with(())
            .given(vec![raised()])
            .when(AlertCommand::Silence { by: "ana".into(), comment: "known".into(), until: T0, at: T1 })
            .then_expect_error(AlertError::SilenceNotInFuture(
                "2026-11-22T10:00:00Z".into(),
                "2026-11-22T10:05:00Z".into(),
            ));
    }

    #[test]
    fn a_silence_that_expires_goes_back_to_where_it_was() {
        let expire = |at| AlertCommand::ExpireSilence { at, cause: 12 };
        AlertTest::with(())
            .given(vec![raised(), silenced(T2)])
            .when(expire(T1))
            .then_expect_error(AlertError::SilenceNotDue("2026-11-22T11:00:00Z".into()));
        AlertTest::with(())
            .given(vec![raised(), silenced(T2)])
            .when(expire(T2))
            .then_expect_events(vec![AlertEvent::SilenceExpired { at: T2, cause: 12 }]);
        AlertTest::with(()).given(vec![raised()]).when(expire(T2)).then_expect_error(AlertError::NotSilenced);

        let mut alert = Alert::default();
        for e in [raised(), acked(), silenced(T2), AlertEvent::SilenceExpired { at: T2, cause: 12 }] {
            alert.apply(e);
        }
        assert_eq!(alert.state, AlertState::Acknowledged);
    }

    #[test]
    fn a_silenced_alert_stays_quiet_but_its_resolution_is_notified() {
        let mut alert = Alert::default();
        alert.apply(raised());
        alert.apply(silenced(T2));
        assert!(!alert.notifies(&acked()));
        assert!(alert.notifies(&AlertEvent::Resolved { reason: "ok".into(), at: T1, cause: 9 }));
    }

    #[test]
    fn an_alert_impacted_by_its_parent_is_recorded_but_never_notified() {
        let impacted = AlertEvent::Raised { info: info(Some("derecho:fs/glade")), at: T0, cause: 7 };
        let mut alert = Alert::default();
        assert!(!alert.notifies(&impacted));
        alert.apply(impacted);
        assert_eq!(alert.state, AlertState::Firing);
        assert!(!alert.notifies(&AlertEvent::Resolved { reason: "ok".into(), at: T1, cause: 9 }));
    }

    #[test]
    fn the_end_of_maintenance_happens_once_and_only_to_an_alert_raised_in_it() {
        let end = AlertCommand::EndMaintenance { at: T2, cause: 12 };
        AlertTest::with(())
            .given(vec![raised_in_maintenance()])
            .when(end.clone())
            .then_expect_events(vec![AlertEvent::MaintenanceEnded { at: T2, cause: 12 }]);
        AlertTest::with(())
            .given(vec![raised_in_maintenance(), AlertEvent::MaintenanceEnded { at: T2, cause: 12 }])
            .when(end.clone())
            .then_expect_error(AlertError::NotInMaintenance);
        AlertTest::with(()).given(vec![raised()]).when(end.clone()).then_expect_error(AlertError::NotInMaintenance);
        AlertTest::with(())
            .given(vec![raised_in_maintenance(), AlertEvent::Resolved { reason: "ok".into(), at: T1, cause: 9 }])
            .when(end)
            .then_expect_error(AlertError::Resolved);
    }

    #[test]
    fn an_alert_raised_in_maintenance_is_quiet_until_the_maintenance_ends() {
        let mut alert = Alert::default();
        assert!(!alert.notifies(&raised_in_maintenance()));
        alert.apply(raised_in_maintenance());
        assert_eq!(alert.state, AlertState::Firing);
        assert!(!alert.notifies(&acked()));
        assert!(!alert.notifies(&AlertEvent::Resolved { reason: "ok".into(), at: T1, cause: 9 }));
        let ended = AlertEvent::MaintenanceEnded { at: T2, cause: 12 };
        assert!(alert.notifies(&ended));
        alert.apply(ended.clone());
        assert_eq!(alert.state, AlertState::Firing);
        assert!(alert.notifies(&AlertEvent::Resolved { reason: "ok".into(), at: T2, cause: 13 }));

        // An operator who acknowledged or silenced it in the window already knows.
        for taken in [acked(), silenced(T2)] {
            let mut alert = Alert::default();
            alert.apply(raised_in_maintenance());
            alert.apply(taken);
            assert!(!alert.notifies(&ended));
        }
    }
}
