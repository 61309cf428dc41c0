"""The base models for everything that crosses a boundary as JSON.

Python names are snake_case; the JSON the JS clients see (and the files on disk) is camelCase.
The alias rule lives here, once, and every wire or persisted model inherits it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

_CAMEL = ConfigDict(
    alias_generator=to_camel,
    validate_by_name=True,
    validate_by_alias=True,
    serialize_by_alias=True,
    extra="forbid",
)


class WireModel(BaseModel):
    """Frozen pydantic model serialised as camelCase JSON, accepting either case on input."""

    model_config = ConfigDict(**_CAMEL, frozen=True)


class StateModel(BaseModel):
    """Mutable persisted state, with the same JSON conventions as `WireModel`."""

    model_config = ConfigDict(**_CAMEL, validate_assignment=True)
