-- Alerts raised inside a maintenance window notify nobody until the window is over: the window
-- (`system/id`) they were raised in, and when its maintenance ended for them.
ALTER TABLE alerts ADD COLUMN maintenance text, ADD COLUMN maintenance_ended_at timestamptz;
