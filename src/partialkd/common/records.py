"""Settings records built from one mapping: a params.yaml training recipe travels to a trainer as
one JSON object (`--recipe`) and becomes its configuration dataclass directly."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def record_from(cls: type[T], values: Mapping[str, Any], what: str, **fields: Any) -> T:
    """The dataclass `cls` of `values` and `fields` (the caller's own settings, e.g. arch and
    seed); a list becomes a tuple and an integer given for a float field a float (JSON and YAML
    write 4 for 4.0). `what` names `values` in errors: a key
    that is no field of `cls` is refused, and so is a missing one."""
    names = [field.name for field in dataclasses.fields(cls)]
    types = {field.name: str(field.type) for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{what}: unknown key(s) {', '.join(unknown)}; the keys are {', '.join(names)}")
    merged = {name: _as_field(value, types[name]) for name, value in {**values, **fields}.items()}
    missing = [field.name for field in dataclasses.fields(cls) if field.name not in merged
               and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{what}: missing key(s) {', '.join(missing)}")
    return cls(**merged)


def _as_field(value: Any, annotation: str) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if annotation.startswith("float") and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
