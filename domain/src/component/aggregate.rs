//! The component aggregate's rules.

use super::{ComponentCommand, ComponentEvent, Reported};
use crate::names::component_aggregate_id;
use crate::{ComponentName, Status, SystemName};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The state the rules need: who the component is, and its latest report's status and time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub identity: Option<(SystemName, ComponentName)>,
    pub status: Option<Status>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub observed_at: Option<OffsetDateTime>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ComponentError {
    /// A command meant for one component reached another's aggregate.
    #[error("a report for {got} was sent to the aggregate of {expected}")]
    WrongComponent { expected: String, got: String },
}

impl Aggregate for Component {
    const TYPE: &'static str = super::AGGREGATE_TYPE;
    type Command = ComponentCommand;
    type Event = ComponentEvent;
    type Error = ComponentError;
    type Services = ();

    async fn handle(&mut self, command: Self::Command, _: &(), sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let ComponentCommand::ReportStatus { report, received_at } = command;
        if let Some((system, component)) = &self.identity {
            if system != &report.system || component != &report.component {
                return Err(ComponentError::WrongComponent {
                    expected: component_aggregate_id(system, component),
                    got: component_aggregate_id(&report.system, &report.component),
                });
            }
        }
        let late = self.observed_at.is_some_and(|latest| report.observed_at < latest);
        let changed = !late && self.status != Some(report.status);
        let from = self.status;
        let (system, component, status, at) =
            (report.system.clone(), report.component.clone(), report.status, report.observed_at);
        sink.write(ComponentEvent::StatusReported(Reported::new(report, received_at, late)), self).await;
        if changed {
            sink.write(ComponentEvent::StatusChanged { system, component, from, to: status, at }, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ComponentEvent::StatusReported(r) => {
                self.identity.get_or_insert((r.system, r.component));
                if !r.late {
                    self.status = Some(r.status);
                    self.observed_at = Some(r.observed_at);
                }
            }
            ComponentEvent::StatusChanged { .. } => {}
        }
    }
}

impl Component {
    /// Runs one command against this state and returns the events it decided on (already applied
    /// to `self`). This is what the batched ingest path calls for each report.
    pub async fn decide(&mut self, command: ComponentCommand) -> Result<Vec<ComponentEvent>, ComponentError> {
        let sink = EventSink::default();
        self.handle(command, &(), &sink).await?;
        Ok(sink.collect().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Report;
    use cqrs_es::test::TestFramework;
    use std::collections::BTreeMap;
    use time::macros::datetime;

    type ComponentTest = TestFramework<Component>;

    const T0: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);
    const T1: OffsetDateTime = datetime!(2026-11-22 10:01:00 UTC);
    const RECEIVED: OffsetDateTime = datetime!(2026-11-22 10:01:30 UTC);

    fn report(component: &str, status: Status, observed_at: OffsetDateTime) -> Report {
        Report {
            system: SystemName::parse("derecho").unwrap(),
            component: ComponentName::parse(component).unwrap(),
            status,
            observed_at,
            message: Some("41 users".into()),
            metrics: BTreeMap::from([("users".into(), 41.0)]),
            labels: BTreeMap::from([("kind".into(), "login_node".into())]),
            ttl_seconds: Some(600),
        }
    }

    fn command(r: &Report) -> ComponentCommand {
        ComponentCommand::ReportStatus { report: r.clone(), received_at: RECEIVED }
    }

    fn reported(r: &Report, late: bool) -> ComponentEvent {
        ComponentEvent::StatusReported(Reported::new(r.clone(), RECEIVED, late))
    }

    fn changed(r: &Report, from: Option<Status>) -> ComponentEvent {
        ComponentEvent::StatusChanged {
            system: r.system.clone(),
            component: r.component.clone(),
            from,
            to: r.status,
            at: r.observed_at,
        }
    }

    #[test]
    fn the_first_report_is_recorded_and_counts_as_a_change_from_nothing() {
        let r = report("login/derecho1", Status::Ok, T0);
        ComponentTest::with(())
            .given_no_previous_events()
            .when(command(&r))
            .then_expect_events(vec![reported(&r, false), changed(&r, None)]);
    }

    #[test]
    fn a_report_with_the_same_status_is_recorded_without_a_change() {
        let first = report("login/derecho1", Status::Ok, T0);
        let again = report("login/derecho1", Status::Ok, T1);
        ComponentTest::with(())
            .given(vec![reported(&first, false), changed(&first, None)])
            .when(command(&again))
            .then_expect_events(vec![reported(&again, false)]);
    }

    #[test]
    fn a_report_with_another_status_also_records_the_change_from_and_to() {
        let first = report("fs/glade", Status::Ok, T0);
        let worse = report("fs/glade", Status::Degraded, T1);
        ComponentTest::with(())
            .given(vec![reported(&first, false), changed(&first, None)])
            .when(command(&worse))
            .then_expect_events(vec![reported(&worse, false), changed(&worse, Some(Status::Ok))]);
    }

    #[test]
    fn a_late_report_is_kept_but_changes_nothing() {
        let latest = report("fs/glade", Status::Ok, T1);
        let late = report("fs/glade", Status::Failed, T0);
        ComponentTest::with(())
            .given(vec![reported(&latest, false), changed(&latest, None)])
            .when(command(&late))
            .then_expect_events(vec![reported(&late, true)]);
    }

    #[test]
    fn a_late_report_does_not_move_the_state_so_the_next_change_is_measured_from_the_latest() {
        let latest = report("fs/glade", Status::Ok, T1);
        let late = report("fs/glade", Status::Failed, T0);
        let next = report("fs/glade", Status::Ok, datetime!(2026-11-22 10:02:00 UTC));
        ComponentTest::with(())
            .given(vec![reported(&latest, false), changed(&latest, None), reported(&late, true)])
            .when(command(&next))
            .then_expect_events(vec![reported(&next, false)]);
    }

    #[test]
    fn a_report_for_another_component_is_refused() {
        let mine = report("login/derecho1", Status::Ok, T0);
        let other = report("login/derecho2", Status::Ok, T1);
        ComponentTest::with(()).given(vec![reported(&mine, false)]).when(command(&other)).then_expect_error(
            ComponentError::WrongComponent {
                expected: "derecho:login/derecho1".into(),
                got: "derecho:login/derecho2".into(),
            },
        );
    }

    #[tokio::test]
    async fn decide_returns_the_events_and_leaves_the_state_applied() {
        let mut state = Component::default();
        let r = report("queue/main", Status::Failed, T0);
        let events = state.decide(command(&r)).await.unwrap();
        assert_eq!(events, vec![reported(&r, false), changed(&r, None)]);
        assert_eq!(state.status, Some(Status::Failed));
        assert_eq!(state.observed_at, Some(T0));
    }
}
