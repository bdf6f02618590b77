"""Validation of params.yaml, run by the workflow before any job: errors name the bad key."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from partialkd.grid import expand_grid
from partialkd.image_models import ARCHITECTURES
from partialkd.targets import distils

CIFAR100_CLASSES = 100
CIFAR100_K = f"CIFAR-100's {CIFAR100_CLASSES} classes"


class ConfigError(ValueError):
    """A wrong key or value in params.yaml."""


def validate_params(config: dict[str, Any], schema_path: str | Path) -> None:
    """Check `config` against the JSON schema, then against the registries of methods and models."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        raise ConfigError(f"params.yaml: {key}: {error.message}")
    synthetic = config["synthetic"]
    num_classes = synthetic["data"]["num_classes"]
    _check_methods("synthetic.methods", synthetic["methods"], f"synthetic.data.num_classes = {num_classes}",
                   num_classes)
    _check_cifar100(config["cifar100"])


def _check_methods(key: str, grids: dict[str, Any], classes: str, num_classes: int) -> None:
    """`grids` expand, and no top-k keeps more classes than there are (`classes` says where K is)."""
    try:
        expand_grid(grids)
    except ValueError as error:
        raise ConfigError(f"params.yaml: {key}: {error}") from None
    for method, grid in grids.items():
        if any(k > num_classes for k in grid.get("k", [])):
            raise ConfigError(f"params.yaml: {key}.{method}.k: values must not exceed {classes}")


def _check_cifar100(section: dict[str, Any]) -> None:
    _check_methods("cifar100.methods", section["methods"], CIFAR100_K, CIFAR100_CLASSES)
    for name, teacher in section["teachers"].items():
        key = f"cifar100.teachers.{name}"
        _check_arch(f"{key}.arch", teacher["arch"])
        _check_methods(f"{key}.target", teacher["target"], CIFAR100_K, CIFAR100_CLASSES)
        (variant, *more) = expand_grid(teacher["target"])
        if more or distils(variant.method):
            raise ConfigError(f"params.yaml: {key}.target: a teacher trains one variant of a method "
                              f"that needs no teacher (e.g. ce or ls), got {teacher['target']}")
    milestones = section["recipe"]["milestones"]
    if milestones != sorted(milestones):
        raise ConfigError(f"params.yaml: cifar100.recipe.milestones: give the epochs in increasing "
                          f"order, got {milestones}")
    for index, pair in enumerate(section["students"]["pairs"]):
        key = f"cifar100.students.pairs.{index}"
        if pair["teacher"] not in section["teachers"]:
            raise ConfigError(f"params.yaml: {key}.teacher: '{pair['teacher']}' is not one of "
                              f"cifar100.teachers ({', '.join(section['teachers'])})")
        _check_arch(f"{key}.student", pair["student"])
        unknown = sorted(set(pair.get("methods", [])) - set(section["methods"]))
        if unknown:
            raise ConfigError(f"params.yaml: {key}.methods: {', '.join(unknown)} not in "
                              f"cifar100.methods ({', '.join(section['methods'])})")


def _check_arch(key: str, arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise ConfigError(f"params.yaml: {key}: unknown architecture '{arch}'; "
                          f"choose from {', '.join(ARCHITECTURES)}")
