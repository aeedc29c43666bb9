-- The timed stage an event ended (register, dispatch, handle, verify) and that stage's
-- deadline when it ended, so each post's work (受理员, 派遣员, 监督员, 值班长) is counted
-- with its timeliness: statistics by post (DOMAIN.md, step 7 综合评价).
ALTER TABLE case_events
    ADD COLUMN ended_stage text,
    ADD COLUMN ended_stage_due_at timestamptz;
CREATE INDEX case_events_at_idx ON case_events (at);
