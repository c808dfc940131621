"""The outbox: webhooks committed to SQLite, then delivered with retries."""
