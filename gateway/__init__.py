"""Edge Gateway: sensors to rules to signed, durable webhooks, on a Raspberry Pi."""

__version__ = "0.1.0"
