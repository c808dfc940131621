"""The inbound HTTP API (aiohttp)."""
