"""What every config model shares: strictness and the shape of names."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

Name = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
        max_length=64,
        description="A name made of letters, digits, _ . and -",
    ),
]


class Model(BaseModel):
    """Unknown keys are errors; loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


def secret_values(secret: SecretStr | list[SecretStr] | None) -> list[str]:
    """One secret or a list of them (key rotation) as plain strings."""
    if secret is None:
        return []
    items = secret if isinstance(secret, list) else [secret]
    return [s.get_secret_value() for s in items]


def first_key(*keys: str) -> Any:
    """A discriminator that picks the union member by the first of ``keys`` present."""

    def tag(value: Any) -> str:
        if isinstance(value, dict):
            for key in keys:
                if key in value:
                    return key
        return "unknown"

    return tag
