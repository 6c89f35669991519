DROP TABLE mappings;
DROP TABLE properties;
