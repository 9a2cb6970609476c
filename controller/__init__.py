"""The portwatch controller: MQTT ingest, SQLite store, supervision, API."""
