-- Outbound custom attributes: a record's custom attribute values (from crm.changed) are
-- written to the properties the mapping names. A record can have attribute values before,
-- or without, a score: `scored` tells whether the score columns hold one (rows made by
-- attributes alone hold placeholders there and write no score property).
ALTER TABLE record_scores
    ADD COLUMN scored BOOLEAN NOT NULL DEFAULT TRUE,
    -- Attribute name -> value (domain's JSON form), as the latest crm.changed carried them.
    ADD COLUMN attributes JSONB NOT NULL DEFAULT '{}',
    -- HubSpot's modified time of the record those values came from: older never
    -- replaces newer.
    ADD COLUMN attributes_at TIMESTAMPTZ;

-- How a ready attribute's values are rendered for its property (domain's Conversion,
-- from the property's type when it was prepared).
ALTER TABLE property_targets ADD COLUMN conversion JSONB;
