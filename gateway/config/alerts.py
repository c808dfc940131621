"""``alerts:``: operational problems of the gateway itself, sent to a notify target."""

from __future__ import annotations

from pydantic import Field

from gateway.config.base import Model, Name
from gateway.config.types import Duration


class AlertsSection(Model):
    """Where and when the gateway says that something is wrong, and that it is fine
    again: a dead letter, an endpoint disabled by 410, an input down, a sensor
    unavailable, the outbox unable to store (a full disk) or near its cap."""

    notify: Name = Field(
        description="The endpoint (from webhooks:) alerts go to; with a service: (ntfy, "
        "Slack, ...) as notifications, otherwise as gateway.alert / gateway.recovered webhooks"
    )
    input_down: Duration = Field(
        300.0, gt=0, description="An input counts as down once it is disconnected this long"
    )
    outbox_near_cap: float = Field(
        0.9, gt=0, le=1, description="Alert when the outbox holds this share of max_rows"
    )
    min_interval: Duration = Field(
        600.0,
        ge=0,
        description="A problem that comes back within this long after its last alert is "
        "counted and logged, not sent again (nor its recovery)",
    )
