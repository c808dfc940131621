"""Rules: the pure engine, templates, timers and the runtime that applies decisions."""
