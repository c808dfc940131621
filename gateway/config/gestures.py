"""Button gestures as sensor triggers: ``{sensor: button, gesture: double_click}``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from gateway.config.base import Model
from gateway.config.types import Duration


class Gestures(Model):
    """The gesture keys of a sensor trigger (on any on/off input, simulated ones too)."""

    gesture: Literal["click", "double_click", "long_press"] | None = Field(
        None,
        description="On/off sensors (buttons): click (a press shorter than click_max), "
        "double_click (two clicks within double_gap), long_press (held for long_press)",
    )
    click_max: Duration = Field(0.5, gt=0, description="A click is a press shorter than this")
    double_gap: Duration = Field(
        0.5, gt=0, description="Two clicks this close (release to release) are a double click"
    )
    long_press: Duration = Field(1.0, gt=0, description="Held this long: a long press")

    @model_validator(mode="before")
    @classmethod
    def _long_press(cls, data: Any) -> Any:
        """A long press is a press that holds: ``to: on, for: long_press``."""
        if isinstance(data, dict) and data.get("gesture") == "long_press":
            if set(data) & {"to", "from", "above", "below", "changes", "for"}:
                raise ValueError("a gesture stands alone: no to/from/above/below/changes/for")
            return {**data, "to": True, "for": data.get("long_press", 1.0)}
        return data
