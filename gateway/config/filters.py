"""Per-sensor ``filters:``, applied to every reading in order (as ESPHome's are).

Numbers: ``offset``, ``multiply``, ``calibrate`` (two or more ``[raw, true]``
points, a least-squares line), ``round`` (decimals), ``clamp``
(``{min, max}``), ``median`` and ``average`` (over the last N readings),
``exponential`` (smoothing factor 0..1), ``delta`` (only a change of at
least this much passes), ``throttle`` (at most one reading per duration).
On/off: ``invert``, ``delayed_on`` / ``delayed_off`` (the change passes only
once it has lasted this long; a change back before then drops it) and
``settle`` (a change passes at once, then the signal must stay quiet this
long before the next one does; the last state then passes if it differs).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Discriminator, Field, Tag, model_validator

from gateway.config.base import Model, first_key
from gateway.config.hub import SensorHub
from gateway.config.types import Duration


class Offset(Model):
    offset: float = Field(description="Added to the reading")


class Multiply(Model):
    multiply: float = Field(description="The reading times this")


class Calibrate(Model):
    calibrate: list[tuple[float, float]] = Field(
        min_length=2, description="[raw, true] points; the reading maps through their line"
    )

    @model_validator(mode="after")
    def _distinct(self) -> Calibrate:
        if len({raw for raw, _ in self.calibrate}) < 2:
            raise ValueError("calibrate needs two different raw values")
        return self


class Round(Model):
    round: int = Field(ge=0, le=10, description="Decimals to keep")


class Bounds(Model):
    min: float | None = None
    max: float | None = None


class Clamp(Model):
    clamp: Bounds = Field(description="{min, max}: readings outside become the bound")


class Median(Model):
    median: int = Field(ge=1, le=100, description="The median of the last N readings")


class Average(Model):
    average: int = Field(ge=1, le=100, description="The mean of the last N readings")


class Exponential(Model):
    exponential: float = Field(gt=0, le=1, description="Smoothing: new = a*reading + (1-a)*old")


class Delta(Model):
    delta: float = Field(gt=0, description="Only a change of at least this much passes")


class Throttle(Model):
    throttle: Duration = Field(gt=0, description="At most one reading per this long")


class Invert(Model):
    invert: bool = Field(description="On/off sensors: on is off and off is on")


class DelayedOn(Model):
    delayed_on: Duration = Field(gt=0, description="On passes only once it has lasted this long")


class DelayedOff(Model):
    delayed_off: Duration = Field(gt=0, description="Off passes only once it has lasted this long")


class Settle(Model):
    settle: Duration = Field(
        gt=0, description="A change passes at once; the next only after this long without one"
    )


TIMED = (DelayedOn, DelayedOff, Settle)
BINARY = (Invert, *TIMED)
NUMERIC = (Offset, Multiply, Calibrate, Round, Clamp, Median, Average, Exponential, Delta)
KINDS = (
    "offset",
    "multiply",
    "calibrate",
    "round",
    "clamp",
    "median",
    "average",
    "exponential",
    "delta",
    "throttle",
    "invert",
    "delayed_on",
    "delayed_off",
    "settle",
)


Filter = Annotated[
    Annotated[Offset, Tag("offset")]
    | Annotated[Multiply, Tag("multiply")]
    | Annotated[Calibrate, Tag("calibrate")]
    | Annotated[Round, Tag("round")]
    | Annotated[Clamp, Tag("clamp")]
    | Annotated[Median, Tag("median")]
    | Annotated[Average, Tag("average")]
    | Annotated[Exponential, Tag("exponential")]
    | Annotated[Delta, Tag("delta")]
    | Annotated[Throttle, Tag("throttle")]
    | Annotated[Invert, Tag("invert")]
    | Annotated[DelayedOn, Tag("delayed_on")]
    | Annotated[DelayedOff, Tag("delayed_off")]
    | Annotated[Settle, Tag("settle")],
    Discriminator(
        first_key(*KINDS),
        custom_error_type="filter_kind",
        custom_error_message="a filter is one of: " + ", ".join(KINDS),
    ),
]


class Filtered(SensorHub):
    """What every sensor may have: filters for its readings, how old a reading
    may get before the sensor is ``unavailable``, and its MQTT side."""

    filters: list[Filter] = Field(
        default_factory=list, description="Applied to every reading, in order"
    )
    stale_after: Duration | None = Field(
        None,
        gt=0,
        description="With no reading for this long the sensor is unavailable (until it reads)",
    )
