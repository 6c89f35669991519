-- Field discovery: each connection's HubSpot property definitions per object type.
CREATE TABLE properties (
    connection_id UUID NOT NULL,
    org_id UUID NOT NULL,
    -- 'contact', 'company' or 'deal'
    object_type TEXT NOT NULL,
    name TEXT NOT NULL,
    -- domain::custom::PropertyDefinition, plus "custom" and "group_name".
    definition JSONB NOT NULL,
    refreshed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (connection_id, object_type, name)
);

-- Inbound custom mappings and filters per connection and object type, as validated.
CREATE TABLE mappings (
    connection_id UUID NOT NULL,
    org_id UUID NOT NULL,
    object_type TEXT NOT NULL,
    -- domain::custom::MappingConfig as submitted.
    config JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, object_type)
);
