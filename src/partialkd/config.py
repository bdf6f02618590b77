"""Validation of params.yaml, run by the workflow before any job: errors name the bad key."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from partialkd.grid import expand_grid


class ConfigError(ValueError):
    """A wrong key or value in params.yaml."""


def validate_params(config: dict[str, Any], schema_path: str | Path) -> None:
    """Check `config` against the JSON schema, then against the method registry."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        raise ConfigError(f"params.yaml: {key}: {error.message}")
    _check_methods(config["synthetic"])


def _check_methods(section: dict[str, Any]) -> None:
    try:
        expand_grid(section["methods"])
    except ValueError as error:
        raise ConfigError(f"params.yaml: synthetic.methods: {error}") from None
    num_classes = section["data"]["num_classes"]
    for method, grid in section["methods"].items():
        if any(k > num_classes for k in grid.get("k", [])):
            raise ConfigError(f"params.yaml: synthetic.methods.{method}.k: values must not exceed "
                              f"synthetic.data.num_classes = {num_classes}")
