"""Tests for what decides the workflow's jobs and their options (partialkd.plan.matrix,
partialkd.plan.options, partialkd.plan.tracks), against the repository's params.yaml."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from partialkd import prepare, train_imagenet
from partialkd.plan import matrix
from partialkd.plan.options import command_options
from partialkd.plan.tracks import NETWORK_TRACKS, TRACKS
from partialkd.reporting.summary import NO_TEACHER

ROOT = Path(__file__).resolve().parents[2]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def section(track: str, **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(PARAMS[track]), **changes}


def test_options_spell_each_key_and_quote_values() -> None:
    options = command_options({"valid_size": 5, "dir": None, "root": "my images", "torchvision_root": "",
                               "package": False, "check_headers": True, "md5": {"a.txt": "f" * 32}})
    assert shlex.split(options) == ["--valid-size", "5", "--root", "my images", "--no-package",
                                    "--check-headers", "--md5", f"a.txt={'f' * 32}"]


@pytest.mark.parametrize("track", NETWORK_TRACKS)
def test_every_data_key_reaches_prepare_as_its_option(track: str) -> None:
    """The workflow passes a track's `data` section to `prepare <track>` with command_options: each
    key must arrive as the option's value, a folder with a space in its name and MD5 overrides too."""
    data = copy.deepcopy(PARAMS[track]["data"])
    for key, value in data.items():
        if isinstance(value, dict):
            data[key] = {"some file.gz": "0123456789abcdef" * 2}
        elif value is None or key in ("root", "dir"):
            data[key] = "a folder/with space"
    args = prepare._parse([track, *shlex.split(command_options(data)), "--out", "data.pt"])
    for key, value in data.items():
        assert getattr(args, key) == (list(value.items()) if isinstance(value, dict) else value), key


@pytest.mark.parametrize("flag", [True, False])
def test_boolean_data_keys_reach_prepare_either_way(flag: bool) -> None:
    ptb = prepare._parse(["ptb", *shlex.split(command_options({**PARAMS["ptb"]["data"], "package": flag})),
                          "--out", "data.pt"])
    imagenet = prepare._parse(["imagenet", *shlex.split(command_options(
        {**PARAMS["imagenet"]["data"], "check_headers": flag})), "--out", "index.pt"])
    assert (ptb.package, imagenet.check_headers) == (flag, flag)


def test_the_imagenet_input_section_reaches_its_trainer() -> None:
    argv = ["--data", "index.pt", "--arch", "resnet18", "--grid", "{}", "--recipe", "{}", "--seed", "0",
            "--out-dir", "run", *shlex.split(command_options(PARAMS["imagenet"]["input"]))]
    args = train_imagenet._parser().parse_args(argv)
    assert {key: getattr(args, key) for key in PARAMS["imagenet"]["input"]} == PARAMS["imagenet"]["input"]


def test_student_runs_share_teacher_free_students_between_pairs() -> None:
    """Two pairs with one student architecture: ce and ls are trained once, kd once per teacher."""
    cifar = section("cifar100", methods={"ce": {}, "ls": {"lam": [0.1], "tau": [1.0]}, "kd": {"lam": [0.9], "tau": [4.0]}},
                    students={"seeds": [0, 1], "pairs": [{"teacher": "resnet56", "student": "resnet20"},
                                                         {"teacher": "resnet110", "student": "resnet20"}]})
    runs = matrix.student_runs(cifar)
    assert len(runs) == len(set(runs)) == 2 * (2 + 2)
    assert {run.teacher for run in runs if not run.variant.startswith("kd")} == {NO_TEACHER}
    assert {run.teacher for run in runs if run.variant.startswith("kd")} == {"resnet56", "resnet110"}


def test_a_pair_with_its_own_methods_trains_only_those() -> None:
    cifar = section("cifar100", methods={"ce": {}, "kd": {"lam": [0.9], "tau": [2.0, 4.0]}},
                    students={"seeds": [0], "pairs": [{"teacher": "resnet56", "student": "resnet20",
                                                       "methods": ["kd"]}]})
    assert [run.variant for run in matrix.student_runs(cifar)] == [v.slug for v in matrix.variants(cifar).values()
                                                                   if v.method == "kd"]
    assert list(matrix.pair_methods(cifar, "resnet56", "resnet20")) == ["kd"]


def test_stack_runs_cover_every_pair_teacher_seed_and_seed() -> None:
    fmnist = PARAMS["fashion_mnist"]
    runs = matrix.stack_runs(fmnist)
    expected = (len(fmnist["students"]["pairs"]) * len(fmnist["teacher_seeds"]) * len(fmnist["students"]["seeds"]))
    assert len(set(runs)) == len(runs) == expected
    assert {run.teacher_seed for run in runs} == set(matrix.teacher_seeds(fmnist))


def test_teachers_given_as_files_are_not_trained() -> None:
    imagenet = section("imagenet", teachers={**PARAMS["imagenet"]["teachers"],
                                             "mine": {"arch": "resnet34", "file": "r34.pth"}})
    imagenet["students"]["pairs"].append({"teacher": "mine", "student": "resnet18"})
    assert matrix.teachers_used(imagenet) == ["resnet34", "mine"]
    assert matrix.trained_teachers(imagenet) == ["resnet34"]
    assert matrix.teacher_seeds(imagenet) == [imagenet["teacher_seed"]]


def test_each_track_names_an_entry_point_that_exists() -> None:
    for track in TRACKS.values():
        assert (ROOT / "src" / "partialkd" / f"{track.trainer}.py").is_file(), track.name
        assert track.data.startswith(f"results/{track.name}/data/")


def test_the_schema_knows_exactly_the_tracks_of_the_records() -> None:
    schema = yaml.safe_load((ROOT / "workflow/schemas/params.schema.yaml").read_text())
    assert schema["properties"]["tracks"]["items"]["enum"] == list(TRACKS)
    assert set(TRACKS) <= set(schema["required"]) & set(schema["properties"])
