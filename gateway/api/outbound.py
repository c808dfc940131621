"""What the outbox sends, as the OpenAPI 3.1 ``webhooks`` section (Standard Webhooks)."""

from __future__ import annotations

from typing import Any

ENVELOPE = {
    "type": "object",
    "required": ["type", "timestamp", "data"],
    "properties": {
        "type": {"type": "string", "description": "The rule's event, e.g. motion.detected"},
        "timestamp": {
            "type": "string",
            "format": "date-time",
            "description": "When it was queued (ISO 8601, UTC, milliseconds)",
        },
        "data": {"description": "The rule's data, its templates rendered"},
    },
}

OUTBOUND_HEADERS = [
    ("webhook-id", "The message id: the same on every retry (deduplicate on it)"),
    ("webhook-timestamp", "Unix seconds of this attempt"),
    ("webhook-signature", "v1,<base64 HMAC-SHA256 of id.timestamp.body> per secret"),
]


def outbound(events: list[str]) -> dict[str, Any]:
    """The OpenAPI 3.1 ``webhooks``: what the outbox sends (Standard Webhooks)."""
    schema = dict(ENVELOPE)
    if events:
        schema["properties"] = {
            **ENVELOPE["properties"],  # type: ignore[dict-item]
            "type": {"type": "string", "enum": events},
        }
    return {
        "gatewayEvent": {
            "post": {
                "operationId": "gatewayEvent",
                "summary": "A rule's webhook action, sent from the outbox until a 2xx answer",
                "parameters": [
                    {"name": h, "in": "header", "required": True, "schema": {"type": "string"}}
                    | {"description": text}
                    for h, text in OUTBOUND_HEADERS
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schema}},
                },
                "responses": {
                    "200": {"description": "Delivered (any 2xx)"},
                    "410": {"description": "Gone: the endpoint is disabled, its rows kept"},
                    "429": {"description": "Retried after Retry-After (or 60 s at least)"},
                },
                "security": [],
            }
        }
    }
