"""MQTT ingest: verify, deduplicate, persist in batches, acknowledge after commit."""
