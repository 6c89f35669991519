DROP TABLE timeline_templates;
DROP TABLE timeline_events;
