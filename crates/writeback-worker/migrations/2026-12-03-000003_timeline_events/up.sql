-- Timeline events on risk-level changes (optional per connection, OAuth connections only):
-- stored with the score that brought the change, sent by the connection's flusher.
CREATE TABLE timeline_events (
    connection_id UUID NOT NULL,
    -- Our id for the event in HubSpot (`hubscore-<score.updated message id>`): a resend of
    -- an event HubSpot already has is refused as a duplicate, never shown twice.
    event_id TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id BIGINT NOT NULL,
    old_risk_level TEXT NOT NULL,
    new_risk_level TEXT NOT NULL,
    old_score SMALLINT,
    new_score SMALLINT,
    top_factor TEXT NOT NULL,
    -- When the score was computed: the event's time on the record's timeline.
    occurred_at TIMESTAMPTZ NOT NULL,
    -- 'pending', 'sent' or 'failed'.
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    stored_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at TIMESTAMPTZ,
    PRIMARY KEY (connection_id, event_id)
);

CREATE INDEX timeline_events_pending ON timeline_events (connection_id, object_type, stored_at)
    WHERE state = 'pending';

-- The app's event template per object type, found or created once per app.
CREATE TABLE timeline_templates (
    app_id BIGINT NOT NULL,
    object_type TEXT NOT NULL,
    template_id TEXT NOT NULL,
    found_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, object_type)
);
