"""The graph layer: the embedded server, the Bolt store, the schema, ingest and export."""
