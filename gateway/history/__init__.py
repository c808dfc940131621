"""History: readings, switches and rule traces kept on disk."""
