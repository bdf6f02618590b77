"""Validation of params.yaml, run by the workflow before any job: errors name the bad key."""
from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from partialkd.core.grid import expand_grid
from partialkd.core.targets import distils, method_params
from partialkd.plan.tracks import NETWORK_TRACKS, TRACKS
from partialkd.training.stacked import TrainConfig


class ConfigError(ValueError):
    """A wrong key or value in params.yaml."""


def check_params_file(path: str | Path) -> None:
    """Refuse a missing params file, or one that is not YAML, naming the file and the line: before
    Snakemake reads it (its own messages name neither)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found in {Path.cwd()}: run Snakemake from the repository's root, "
                          f"which holds it, or restore it (`git checkout {path}`)")
    try:
        yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}{where}: not valid YAML ({problem}); fix it there") from error


def validate_params(config: dict[str, Any], schema_path: str | Path) -> None:
    """Check `config` against the JSON schema, then against the registries of methods and models,
    then that the method grids nest (`_check_nested_grids`)."""
    _check_finite(config, "")
    schema = _schema(str(schema_path))
    student = (config.get("synthetic") or {}).get("student")
    if isinstance(student, dict) and "hidden" in student:
        raise ConfigError("params.yaml: synthetic.student.hidden: a student's hidden widths now go in "
                          "synthetic.student.architectures, e.g. [{name: mlp32, hidden: [32]}]")
    _raise_first(schema, config, "")
    synthetic = config["synthetic"]
    num_classes = synthetic["data"]["num_classes"]
    _check_methods("synthetic.methods", synthetic["methods"], f"synthetic.data.num_classes = {num_classes}",
                   num_classes)
    for track in NETWORK_TRACKS:
        _check_image_track(track, config[track], schema)
    for track in TRACKS:
        _check_nested_grids(f"{track}.methods", config[track]["methods"])
    _check_sizes(config)
    names = [architecture["name"] for architecture in synthetic["student"]["architectures"]]
    if len(set(names)) < len(names):
        raise ConfigError(f"params.yaml: synthetic.student.architectures: a name is given twice ({', '.join(names)}); "
                          "each student architecture needs its own name")
    if config["claims"]["teacher"] not in synthetic["teachers"]:
        raise ConfigError(f"params.yaml: claims.teacher: '{config['claims']['teacher']}' is not one of "
                          f"synthetic.teachers ({', '.join(synthetic['teachers'])}); the claims lead with "
                          "the students of a teacher the synthetic track trains")


@functools.lru_cache(maxsize=4)
def _schema(path: str) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def _check_finite(value: Any, where: str) -> None:
    """Refuse NaN and ±∞ anywhere (YAML's .nan, .inf): the schema's bounds are comparisons, which
    NaN passes, and a job would start, replace its earlier outputs, and only then fail."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, f"{where}.{index}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"params.yaml: {where}: {value} is not a finite number; give a finite value")


def _raise_first(schema: dict[str, Any], instance: Any, where: str) -> None:
    """The schema's most relevant error, as a ConfigError naming the key (`where` prefixes it)."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        key = ".".join([where, *map(str, error.absolute_path)]).strip(".") or "(top level)"
        message = PLAIN_MESSAGES.get((error.validator, key.rpartition(".")[2]), error.message)
        raise ConfigError(f"params.yaml: {key}: {message}")


# Plainer words for what the schema's own message says obscurely: (rule, last key) -> message.
PLAIN_MESSAGES = {("minProperties", "methods"): "give at least one method besides ce, the baseline the others are "
                                                "compared with (e.g. kd: {lam: [0.9], tau: [4]})"}


def _check_methods(key: str, grids: dict[str, Any], classes: str, num_classes: int) -> None:
    """`grids` expand, and no top-k keeps more classes than there are (`classes` says where K is)."""
    try:
        expand_grid(grids)
    except ValueError as error:
        raise ConfigError(f"params.yaml: {key}: {error}") from None
    for method, grid in grids.items():
        if any(k > num_classes for k in grid.get("k", [])):
            raise ConfigError(f"params.yaml: {key}.{method}.k: values must not exceed {classes}")


def _check_nested_grids(key: str, grids: dict[str, Any]) -> None:
    """Fair comparisons (issue 12): what methods share, they search over the same values. Every
    distilling method's lam and tau grids contain kd's, every other sim method's alpha grid contains
    kd_sim's, and ls tunes its λ (ε) over at least two values, as the others tune theirs."""
    for method in grids:
        if method != "kd" and distils(method):
            for axis in ("lam", "tau"):
                _check_contains(key, grids, method, axis, "kd",
                                "every distilling method's lam and tau grids contain kd's")
        if method != "kd_sim" and "alpha" in method_params(method):
            _check_contains(key, grids, method, "alpha", "kd_sim", f"{method}'s alpha grid contains kd_sim's")
    if "ls" in grids and len(grids["ls"]["lam"]) < 2:
        raise ConfigError(f"params.yaml: {key}.ls.lam: give at least two values, got {grids['ls']['lam']}; "
                          "ls tunes its λ (ε) on validation like every other method (fair comparisons)")


def _check_contains(key: str, grids: dict[str, Any], method: str, axis: str, reference: str,
                    rule: str) -> None:
    """`method`'s `axis` grid holds every value of `reference`'s (when both methods are in `grids`)."""
    values = grids.get(reference, {}).get(axis, [])
    missing = [value for value in values if value not in grids[method].get(axis, [])]
    if missing:
        raise ConfigError(f"params.yaml: {key}.{method}.{axis}: missing {', '.join(map(str, missing))} of "
                          f"{reference}'s {axis} grid {values}; {rule} (fair comparisons)")


def _check_image_track(track: str, section: dict[str, Any], schema: dict[str, Any]) -> None:
    """An image track's methods, teachers (architecture, target, merged recipe) and pairs."""
    num_classes = TRACKS[track].num_classes  # no top-k may keep more
    classes = f"{TRACKS[track].dataset}'s {num_classes} classes"
    architectures, recipe_def = TRACKS[track].architectures, TRACKS[track].recipe
    _check_methods(f"{track}.methods", section["methods"], classes, num_classes)
    _check_schedule(f"{track}.recipe", section["recipe"])
    for teacher_name, teacher in section["teachers"].items():
        key = f"{track}.teachers.{teacher_name}"
        _check_arch(f"{key}.arch", teacher["arch"], architectures)
        if "file" in teacher:  # given as a file: nothing to train
            continue
        _check_methods(f"{key}.target", teacher["target"], classes, num_classes)
        (variant, *more) = expand_grid(teacher["target"])
        if more or distils(variant.method):
            raise ConfigError(f"params.yaml: {key}.target: a teacher trains one variant of a method "
                              f"that needs no teacher (e.g. ce or ls), got {teacher['target']}")
        recipe = teacher_recipe(section, teacher_name)
        _raise_first({"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{recipe_def}"},
                     recipe, f"{key}.recipe")
        _check_schedule(f"{key}.recipe", recipe)
    students = tuple(section["students"].get("architectures", architectures))
    for index, pair in enumerate(section["students"]["pairs"]):
        key = f"{track}.students.pairs.{index}"
        if pair["teacher"] not in section["teachers"]:
            raise ConfigError(f"params.yaml: {key}.teacher: '{pair['teacher']}' is not one of "
                              f"{track}.teachers ({', '.join(section['teachers'])})")
        _check_arch(f"{key}.student", pair["student"], students)
        unknown = sorted(set(pair.get("methods", [])) - set(section["methods"]))
        if unknown:
            raise ConfigError(f"params.yaml: {key}.methods: {', '.join(unknown)} not in "
                              f"{track}.methods ({', '.join(section['methods'])})")


def stacked_recipe(*sections: dict[str, Any]) -> dict[str, Any]:
    """The recipe of a stacked-MLP run (training.stacked.TrainConfig, but its seed): the keys of
    `sections` that are its fields, a later section's value first (a section also holds e.g. the
    student seeds or an architecture's name)."""
    fields = {field.name for field in dataclasses.fields(TrainConfig)} - {"seed"}
    merged = {key: value for section in sections for key, value in section.items()}
    return {key: value for key, value in merged.items() if key in fields}


def teacher_recipe(section: dict[str, Any], teacher: str) -> dict[str, Any]:
    """The track's training recipe with the teacher's own overrides (e.g. more epochs)."""
    return {**section["recipe"], **section["teachers"][teacher].get("recipe", {})}


def _check_schedule(key: str, recipe: dict[str, Any]) -> None:
    """A step schedule's milestones, in increasing order (one at or after `epochs` never applies,
    which a shortened run may mean: it is allowed)."""
    milestones = recipe.get("milestones", [])
    if milestones != sorted(milestones):
        raise ConfigError(f"params.yaml: {key}.milestones: give the epochs in increasing order, got {milestones}")


def _check_sizes(config: dict[str, Any]) -> None:
    """Sizes that must fit the data they are drawn from: a student's training subset within its
    split, a held-out validation set within a dataset's published training images."""
    synthetic = config["synthetic"]
    _check_at_most("synthetic.student.train_size", synthetic["student"]["train_size"],
                   "synthetic.data.sizes.train", synthetic["data"]["sizes"]["train"],
                   "a student's training subset is drawn from the train split")
    for track, record in TRACKS.items():
        if record.train_images is None:
            continue
        valid = config[track]["data"]["valid_size"]
        if valid >= record.train_images:
            raise ConfigError(f"params.yaml: {track}.data.valid_size: {valid} is not below the {record.train_images} "
                              f"training images of {record.dataset}: the validation set is held out of them, "
                              "and some must be left to train on; lower it")
        training = config[track].get("students", {}).get("training", {})
        if "train_size" in training:
            _check_at_most(f"{track}.students.training.train_size", training["train_size"],
                           f"the training images left after {track}.data.valid_size",
                           record.train_images - valid, "a student's training subset is drawn from them")


def _check_at_most(key: str, value: int, limit_name: str, limit: int, reason: str) -> None:
    if value > limit:
        raise ConfigError(f"params.yaml: {key}: {value} is more than {limit_name} ({limit}): {reason}; lower it")


def _check_arch(key: str, arch: str, known: tuple[str, ...]) -> None:
    if arch not in known:
        raise ConfigError(f"params.yaml: {key}: unknown architecture '{arch}'; "
                          f"choose from {', '.join(known)}")
