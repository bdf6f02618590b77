"""Tests for params.yaml validation (partialkd.plan.config) against the real schema and files."""

from __future__ import annotations

import copy
import fnmatch
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from partialkd.plan.config import ConfigError, check_params_file, validate_params

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "params.schema.yaml"
PARAMS = ROOT / "params.yaml"
QUICK = ROOT / "workflow" / "profiles" / "quick" / "params.yaml"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Snakemake's configfile layering: nested dicts merge, everything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@pytest.fixture
def params() -> dict[str, Any]:
    return load(PARAMS)


def rejected(config: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as error:
        validate_params(config, SCHEMA)
    return str(error.value)


def test_the_real_params_validate(params):
    validate_params(params, SCHEMA)


def test_the_quick_profile_merged_over_params_validates(params):
    quick = load(QUICK)
    merged = deep_merge(params, quick)
    # The merge keeps every key the profile does not override ...
    assert merged["synthetic"]["data"]["num_classes"] == params["synthetic"]["data"]["num_classes"]
    methods, quick_methods = params["synthetic"]["methods"], merged["synthetic"]["methods"]
    assert quick_methods["ls"] == methods["ls"]
    assert quick_methods["kd_sim"]["alpha"] == methods["kd_sim"]["alpha"]  # within a method too
    # ... and takes the profile's values where it does.
    assert merged["synthetic"]["data"]["gammas"] == quick["synthetic"]["data"]["gammas"]
    validate_params(merged, SCHEMA)


def test_deep_merge_helper_merges_nested_dicts_only():
    assert deep_merge({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}}) == {
        "a": {"b": 1, "c": [3]}, "d": 1}


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def _section(config: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        config = config[key]
    return config


# (where, correct key, misspelling, dotted path the message must name)
MISSPELLINGS = [
    ((), "claims", "claim", "(top level)"),
    ((), "synthetic", "synthtic", "(top level)"),
    (("synthetic",), "teachers", "teacher_kinds", "synthetic"),
    (("synthetic", "data"), "beta", "betta", "synthetic.data"),
    (("synthetic", "data", "sizes"), "valid", "val", "synthetic.data.sizes"),
    (("synthetic", "teacher"), "lr", "learning_rate", "synthetic.teacher"),
    (("synthetic", "student"), "epochs", "epcohs", "synthetic.student"),
    (("synthetic", "student"), "train_size", "trainsize", "synthetic.student"),
    (("synthetic", "methods", "kd"), "lam", "lamda", "synthetic.methods.kd"),
    (("synthetic", "methods", "kd_sim"), "alpha", "alfa", "synthetic.methods.kd_sim"),
    (("claims",), "margin", "margn", "claims"),
]


@pytest.mark.parametrize(("where", "key", "typo", "path"), MISSPELLINGS,
                         ids=[f"{'.'.join(m[0]) or 'top'}.{m[2]}" for m in MISSPELLINGS])
def test_a_misspelt_key_is_named_with_its_path(params, where, key, typo, path):
    section = _section(params, where)
    section[typo] = section.pop(key)
    message = rejected(params)
    assert repr(typo) in message or typo in message, message
    assert message.startswith(f"params.yaml: {path}:"), message


@pytest.mark.parametrize(("where", "typo", "path"), [
    ((), "sythetic", "(top level)"),
    (("synthetic", "student"), "epcohs", "synthetic.student"),
    (("synthetic", "methods", "kd"), "lamb", "synthetic.methods.kd"),
])
def test_an_extra_unknown_key_is_named_with_its_path(params, where, typo, path):
    _section(params, where)[typo] = 1
    message = rejected(params)
    assert typo in message and message.startswith(f"params.yaml: {path}:"), message


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        _section(config, path[:-1])[path[-1]] = value
    return mutate


def _add_method(name: str, grid: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        config["synthetic"]["methods"][name] = grid
    return mutate


def _too_large_k(config: dict[str, Any]) -> None:
    k = config["synthetic"]["data"]["num_classes"] + 1
    config["synthetic"]["methods"]["kd_topk"] = {"lam": [0.9], "tau": [1], "k": [2, k]}


# (mutation, fragments the message must contain)
BAD_VALUES = {
    "lam 1.5": (_set(("synthetic", "methods", "kd", "lam"), [0.5, 1.5]),
                ["synthetic.methods.kd.lam", "1.5"]),
    "lam negative": (_set(("synthetic", "methods", "ls", "lam"), [-0.1]),
                     ["synthetic.methods.ls.lam", "-0.1"]),
    "tau 0": (_set(("synthetic", "methods", "kd", "tau"), [0]), ["synthetic.methods.kd.tau"]),
    "alpha 0": (_set(("synthetic", "methods", "kd_sim", "alpha"), [0.0]),
                ["synthetic.methods.kd_sim.alpha"]),
    "lam not a list": (_set(("synthetic", "methods", "kd", "lam"), 0.5),
                       ["synthetic.methods.kd.lam", "array"]),
    "empty grid axis": (_set(("synthetic", "methods", "kd", "tau"), []),
                        ["synthetic.methods.kd.tau"]),
    "student lr negative": (_set(("synthetic", "student", "lr"), -0.01),
                            ["synthetic.student.lr", "-0.01"]),
    "teacher lr 0": (_set(("synthetic", "teacher", "lr"), 0), ["synthetic.teacher.lr"]),
    "weight decay negative": (_set(("synthetic", "student", "weight_decay"), -1e-4),
                              ["synthetic.student.weight_decay"]),
    "epochs 0": (_set(("synthetic", "student", "epochs"), 0), ["synthetic.student.epochs"]),
    "gamma 1.2": (_set(("synthetic", "data", "gammas"), [0.0, 1.2]),
                  ["synthetic.data.gammas", "1.2"]),
    "gamma negative": (_set(("synthetic", "data", "gammas"), [-0.3]), ["synthetic.data.gammas"]),
    "one class": (_set(("synthetic", "data", "num_classes"), 1), ["synthetic.data.num_classes"]),
    "beta 0": (_set(("synthetic", "data", "beta"), 0), ["synthetic.data.beta"]),
    "unknown method": (_add_method("kd_ptt", {"lam": [0.5], "tau": [1]}),
                       ["synthetic.methods", "kd_ptt"]),
    "key of another method": (_set(("synthetic", "methods", "kd", "alpha"), [0.3]),
                              ["synthetic.methods", "kd", "alpha"]),
    "missing tau": (_add_method("kd_pt", {"lam": [0.5]}), ["synthetic.methods", "kd_pt", "tau"]),
    "k larger than K": (_too_large_k, ["synthetic.methods.kd_topk.k", "num_classes"]),
    "unknown teacher kind": (_set(("synthetic", "teachers"), ["mlp", "resnet"]),
                             ["synthetic.teachers", "resnet"]),
    "unknown claims teacher": (_set(("claims", "teacher"), "resnet"), ["claims.teacher", "resnet"]),
    "claims teacher the synthetic track does not train": (
        _set(("synthetic", "teachers"), ["oracle"]), ["claims.teacher", "'mlp'", "synthetic.teachers (oracle)"]),
    "student hidden outside the architectures": (_set(("synthetic", "student", "hidden"), [32]),
                                                 ["synthetic.student.hidden"]),
    "a student architecture name twice": (
        _set(("synthetic", "student", "architectures"), [{"name": "a", "hidden": []}, {"name": "a", "hidden": [4]}]),
        ["synthetic.student.architectures", "a name is given twice"]),
    "a world seed twice": (_set(("synthetic", "data", "world_seeds"), [0, 0]), ["synthetic.data.world_seeds"]),
    "no teacher seed": (_set(("fashion_mnist", "teacher_seeds"), []), ["fashion_mnist.teacher_seeds"]),
    "confidence 1": (_set(("claims", "confidence"), 1), ["claims.confidence"]),
    "unknown correction": (_set(("claims", "correction"), "holm"), ["claims.correction", "holm"]),
    "unknown error bars": (_set(("figures", "error_bars"), "ci99"), ["figures.error_bars", "ci99"]),
    "tau_squared not a bool": (_set(("synthetic", "student", "tau_squared"), "yes"),
                               ["synthetic.student.tau_squared"]),
    "unknown track": (_set(("tracks",), ["synthetic", "cifar10"]), ["tracks", "cifar10"]),
    "unknown architecture": (_set(("cifar100", "teachers", "resnet56", "arch"), "resnet57"),
                             ["cifar100.teachers.resnet56.arch", "resnet57", "resnet56"]),
    "pair of an undefined teacher": (_set(("cifar100", "students", "pairs"),
                                          [{"teacher": "resnet99", "student": "resnet20"}]),
                                     ["cifar100.students.pairs.0.teacher", "resnet99"]),
    "pair method not in the grid": (_set(("cifar100", "students", "pairs"),
                                         [{"teacher": "resnet56", "student": "resnet20", "methods": ["kdd"]}]),
                                    ["cifar100.students.pairs.0.methods", "kdd"]),
    "distilling teacher": (_set(("cifar100", "teachers", "resnet56", "target"),
                                {"kd": {"lam": [0.9], "tau": [4]}}),
                           ["cifar100.teachers.resnet56.target", "needs no teacher"]),
    "k above 100": (_set(("cifar100", "methods", "kd_topk"), {"lam": [0.9], "tau": [4], "k": [101]}),
                    ["cifar100.methods.kd_topk.k", "100 classes"]),
    "milestones out of order": (_set(("cifar100", "recipe", "milestones"), [180, 150]),
                                ["cifar100.recipe.milestones"]),
    "bad md5": (_set(("cifar100", "data", "md5"), "abc"), ["cifar100.data.md5"]),
    "unknown precision": (_set(("cifar100", "recipe", "precision"), "fp16"),
                          ["cifar100.recipe.precision", "fp16"]),
    "teacher recipe override out of range": (
        _set(("fashion_mnist", "teachers", "cnn_wide", "recipe"), {"epochs": 0}),
        ["fashion_mnist.teachers.cnn_wide.recipe.epochs", "minimum"]),
    "teacher recipe override unknown": (
        _set(("fashion_mnist", "teachers", "cnn_wide", "recipe"), {"epoch": 3}),
        ["fashion_mnist.teachers.cnn_wide.recipe", "epoch"]),
    "teacher recipe milestones out of order": (
        _set(("fashion_mnist", "teachers", "cnn_wide", "recipe"), {"milestones": [9, 3]}),
        ["fashion_mnist.teachers.cnn_wide.recipe.milestones"]),
    "student architecture not defined": (
        _set(("fashion_mnist", "students", "pairs"), [{"teacher": "cnn", "student": "mlp32"}]),
        ["fashion_mnist.students.pairs.0.student", "mlp32", "mlp64"]),
    "k above Fashion-MNIST's classes": (
        _set(("fashion_mnist", "methods", "kd_topk"), {"lam": [0.9], "tau": [4], "k": [11]}),
        ["fashion_mnist.methods.kd_topk.k", "10 classes"]),
    "bad Fashion-MNIST md5": (_set(("fashion_mnist", "data", "md5"), {"t10k-images-idx3-ubyte.gz": "xyz"}),
                              ["fashion_mnist.data.md5"]),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_an_out_of_range_value_is_named(params, case):
    mutate, fragments = BAD_VALUES[case]
    mutate(params)
    message = rejected(params)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_a_missing_required_key_is_named(params):
    del params["synthetic"]["student"]["seeds"]
    message = rejected(params)
    assert "synthetic.student" in message and "seeds" in message


def test_a_missing_ce_baseline_is_refused(params):
    del params["synthetic"]["methods"]["ce"]
    assert "ce" in rejected(params)


@pytest.mark.parametrize("k_offset", [0, -1])
def test_k_up_to_the_number_of_classes_is_accepted(params, k_offset):
    num_classes = params["synthetic"]["data"]["num_classes"]
    params["synthetic"]["methods"]["kd_topk"] = {**params["synthetic"]["methods"]["kd"],
                                                 "k": [1, num_classes + k_offset]}
    validate_params(params, SCHEMA)


def test_boundary_values_are_accepted(params):
    params["synthetic"]["data"]["gammas"] = [0.0, 1.0]
    params["synthetic"]["methods"]["ls"] = {"lam": [0.0, 1.0], "tau": [1]}
    params["synthetic"]["student"]["weight_decay"] = 0.0
    params["synthetic"]["student"]["architectures"] = [{"name": "linear", "hidden": []}]
    params["claims"]["margin"] = 0
    validate_params(params, SCHEMA)


TRACKS = ("synthetic", "cifar100", "fashion_mnist", "ptb", "imagenet")
NESTING = "every distilling method's lam and tau grids contain kd's (fair comparisons)"


def test_a_grid_without_kds_values_is_refused_naming_the_key_and_the_missing_values(params):
    params["fashion_mnist"]["methods"]["kd"] = {"lam": [0.9], "tau": [1, 4, 8]}
    params["fashion_mnist"]["methods"]["kd_topk"] = {"lam": [0.9], "tau": [4], "k": [2, 3, 5]}
    assert rejected(params) == ("params.yaml: fashion_mnist.methods.kd_topk.tau: missing 1, 8 of kd's tau "
                                f"grid [1, 4, 8]; {NESTING}")


@pytest.mark.parametrize("track", TRACKS)
@pytest.mark.parametrize("method", ["kd_pt", "kd_sim", "kd_pt_sim", "kd_topk"])
@pytest.mark.parametrize("axis", ["lam", "tau"])
def test_every_distilling_method_on_every_track_holds_kds_lam_and_tau(params, track, method, axis):
    grids = params[track]["methods"]
    grids[method][axis] = grids["kd"][axis][:-1] or [0.42]  # kd's grid but its last value
    message = rejected(params)
    assert message.startswith(f"params.yaml: {track}.methods.{method}.{axis}: missing "
                              f"{grids['kd'][axis][-1]} of kd's {axis} grid"), message
    assert NESTING in message, message


def test_a_larger_grid_than_kds_is_accepted(params):
    params["fashion_mnist"]["methods"]["kd_topk"]["tau"] = [1, 2, 4, 8]
    validate_params(params, SCHEMA)


@pytest.mark.parametrize("track", TRACKS)
def test_kd_pt_sim_without_one_of_kd_sims_alphas_is_refused(params, track):
    grids = params[track]["methods"]
    grids["kd_sim"]["alpha"] = [*grids["kd_sim"]["alpha"], 7.5]
    message = rejected(params)
    assert message.startswith(f"params.yaml: {track}.methods.kd_pt_sim.alpha: missing 7.5 of kd_sim's "
                              "alpha grid"), message
    assert "kd_pt_sim's alpha grid contains kd_sim's" in message, message


@pytest.mark.parametrize("track", TRACKS)
def test_ls_with_one_lambda_is_refused(params, track):
    params[track]["methods"]["ls"]["lam"] = [0.1]
    message = rejected(params)
    assert message.startswith(f"params.yaml: {track}.methods.ls.lam: give at least two values, "
                              "got [0.1]"), message


def test_the_quick_profile_is_checked_after_the_merge(params):
    merged = deep_merge(params, load(QUICK))
    merged["synthetic"]["methods"]["kd"]["tau"] = [1, 2, 4, 8]  # params.yaml's, but kd_pt's is [4, 8]
    assert rejected(merged).startswith("params.yaml: synthetic.methods.kd_pt.tau: missing 1, 2 of kd's tau")


def _numeric_leaves(value: Any, path: tuple = ()) -> list[tuple]:
    """The key path of every number in a params tree (booleans are not numbers here)."""
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _numeric_leaves(item, (*path, key))]
    if isinstance(value, list):
        return [leaf for index, item in enumerate(value) for leaf in _numeric_leaves(item, (*path, index))]
    return [path] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_nan_and_infinity_are_refused_at_every_numeric_key(params, bad):
    leaves = _numeric_leaves(params)
    assert len(leaves) > 100 and {("cifar100", "recipe", "lr"), ("claims", "confidence")} <= set(leaves)
    for path in leaves:
        config = copy.deepcopy(params)
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = bad
        message = rejected(config)
        assert f"params.yaml: {'.'.join(map(str, path))}: {bad} is not a finite number" in message, message


# Relations between values (issue 16): checked before any job, not inside one after Snakemake has
# deleted its earlier outputs.
@pytest.mark.parametrize("case", [
    ("synthetic.student.train_size", ("synthetic", "student", "train_size"), 50_001,
     "is more than synthetic.data.sizes.train (50000)"),
    ("cifar100.data.valid_size", ("cifar100", "data", "valid_size"), 50_000,
     "is not below the 50000 training images of CIFAR-100"),
    ("fashion_mnist.data.valid_size", ("fashion_mnist", "data", "valid_size"), 60_000,
     "is not below the 60000 training images of Fashion-MNIST"),
    ("fashion_mnist.students.training.train_size", ("fashion_mnist", "students", "training", "train_size"), 55_001,
     "is more than the training images left after fashion_mnist.data.valid_size (55000)"),
], ids=lambda case: case[0] if isinstance(case, tuple) else None)
def test_a_value_that_does_not_fit_another_is_refused_naming_both(params, case):
    key, path, value, says = case
    parent = params
    for name in path[:-1]:
        parent = parent[name]
    parent[path[-1]] = value
    message = rejected(params)
    assert message.startswith(f"params.yaml: {key}: ") and says in message, message


def test_values_at_their_limits_fit(params):
    params["synthetic"]["student"]["train_size"] = params["synthetic"]["data"]["sizes"]["train"]
    params["cifar100"]["data"]["valid_size"] = 49_999
    params["fashion_mnist"]["students"]["training"]["train_size"] = 60_000 - params["fashion_mnist"]["data"]["valid_size"]
    validate_params(params, SCHEMA)


def test_methods_with_ce_alone_are_refused_in_plain_words(params):
    params["ptb"]["methods"] = {"ce": {}}
    assert rejected(params) == ("params.yaml: ptb.methods: give at least one method besides ce, the baseline the "
                                "others are compared with (e.g. kd: {lam: [0.9], tau: [4]})")


def test_a_missing_params_file_is_named_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"params.yaml not found in .*: run Snakemake from the repository's root"):
        check_params_file("params.yaml")


def test_a_yaml_syntax_error_is_named_with_its_file_and_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS.read_text() + "claims:\n  margin: [0.5\n  z: 2\n")
    line = len(PARAMS.read_text().splitlines()) + 3
    with pytest.raises(ConfigError, match=rf"params.yaml, line {line}, column \d+: not valid YAML") as error:
        check_params_file(path)
    assert str(path) in str(error.value)
    check_params_file(PARAMS)  # the repository's own is valid


# Every numeric key of params.yaml refuses a negative value and zero, but those where they mean
# something (issue 16's property test; validate_params is what `snakemake -n` runs before any job).
NEGATIVE_ALLOWED = ("synthetic.data.link_a.*", "synthetic.data.link_b.*")  # a group's link coefficients
ZERO_ALLOWED = (*NEGATIVE_ALLOWED, "*seed", "*seeds.*", "*weight_decay", "*momentum", "*.ls.lam.*",
                "synthetic.data.gammas.*", "ptb*.decay_after", "imagenet.input.workers", "claims.margin*")


@pytest.mark.parametrize("value", [-1, 0])
def test_negative_and_zero_values_are_refused_where_they_mean_nothing(params, value):
    allowed = NEGATIVE_ALLOWED if value < 0 else ZERO_ALLOWED
    accepted, used = [], set()
    for path in _numeric_leaves(params):
        key = ".".join(map(str, path))
        config = copy.deepcopy(params)
        parent = config
        for name in path[:-1]:
            parent = parent[name]
        parent[path[-1]] = value
        patterns = {pattern for pattern in allowed if fnmatch.fnmatch(key, pattern)}
        used |= patterns
        try:
            validate_params(config, SCHEMA)
        except ConfigError as error:
            assert str(error).startswith("params.yaml: "), error
            continue
        if not patterns:
            accepted.append(key)
    assert not accepted, f"{value} accepted at {accepted}: refuse it, or allow it here saying why"
    assert used == set(allowed), f"patterns matching no key: {set(allowed) - used}"
