-- The tables of the datasets that are records of their own (`entity: record` in their mapping): one per dataset,
-- datasets.<agency>__<dataset>, made from the dataset's schema by `satubus migrate` and `satubus dataset apply`
-- (consumers/dataset_tables.py), as the owner. The processes read and write them as they do the unified view.
CREATE SCHEMA IF NOT EXISTS datasets;
GRANT USAGE ON SCHEMA datasets TO satubus_writer, satubus_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA datasets GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO satubus_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA datasets GRANT SELECT ON TABLES TO satubus_reader;
