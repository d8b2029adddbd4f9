-- The alert evaluator's state per component, saved with its checkpoint like the rest of its
-- state (alert_evaluator_state), so that a step writes only the components it touched instead
-- of one document holding every component.
-- Never edit a migration once it has landed: add a new one.

CREATE TABLE alert_evaluator_components (
    name  text  NOT NULL,   -- the evaluator's name, as in alert_evaluator_state
    key   text  NOT NULL,   -- system:component
    state jsonb NOT NULL,
    PRIMARY KEY (name, key)
);
