"""What the gateway keeps on disk besides its config: the outbox and the history."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.config.base import Model
from gateway.config.types import ByteSize, Duration


class OutboxSection(Model):
    max_rows: int = Field(100_000, ge=1, description="Most undelivered webhooks kept")
    max_bytes: ByteSize = Field(
        256 * 1024**2, description="Most bytes of undelivered webhook bodies kept"
    )
    when_full: Literal["drop_oldest", "reject_new"] = Field(
        "drop_oldest", description="What gives when a cap is reached (every drop is counted)"
    )
    commit_window: Duration = Field(
        0,
        ge=0,
        le=1,
        description="Rows that come within this long of the first share its commit: "
        "fewer fsyncs and SD-card writes for that much more latency (0: commit at once)",
    )


class HistorySection(Model):
    """Sensor readings, actuator switches and rule traces, kept in ``history.db``
    in the state directory (apart from the outbox: losing it loses no webhook)."""

    enabled: bool = Field(True, description="Keep history and traces at all")
    keep: Duration = Field(7 * 86400, gt=0, description="How long readings and switches are kept")
    max_size: ByteSize = Field(
        64 * 1024**2, description="Most bytes the history database may take (oldest go first)"
    )
    resolution: Duration = Field(
        60,
        gt=0,
        description="Numeric readings are kept as one mean, min and max per this long "
        "(binary sensors: every change)",
    )
    commit_every: Duration = Field(
        5,
        gt=0,
        le=3600,
        description="Writes are batched: one commit per this long at most (the SD card's sake)",
    )
    traces: int = Field(10, ge=0, le=1000, description="Traces kept per rule")
