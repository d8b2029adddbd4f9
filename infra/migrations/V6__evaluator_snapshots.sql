-- The alert evaluator saves its state (the document here and its rows in
-- alert_evaluator_components) as a snapshot every so many events instead of at every step.
-- `position`: the event the snapshot is as of. `due`: when the evaluator is next due, written at
-- every step for the alert clock (NULL: the document's own `due` is current).
-- Never edit a migration once it has landed: add a new one.

ALTER TABLE alert_evaluator_state ADD COLUMN position bigint, ADD COLUMN due jsonb;

-- Until now the state was saved at every step, in the same transaction as the checkpoint: it is
-- as of the checkpoint.
UPDATE alert_evaluator_state s SET position = c.position
FROM projection_checkpoints c WHERE c.name = s.name;
