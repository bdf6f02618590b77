"""Tests for the training loop and the training command (partialkd.training.engine, partialkd.train).

Covers determinism, paired initialisation, stacking invariance, exact resume (in-process and
after a real SIGKILL), refusal of foreign / corrupt files, the non-finite-loss guard, the
contents of metrics.json and model.pt, and the classification metrics.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.runs import (
    FULL_GRID,
    TINY_GAMMA,
    TINY_WORLD,
    assert_same_run,
    assert_scores_in_range,
    interrupt_after,
    kill_after_first_checkpoint,
    load_checkpoint,
    read_json,
    resume_file,
    student_config,
    tiny_config,
)

import partialkd.models.mlp as models_module
import partialkd.training.engine as engine_module
import partialkd.training.stacked as stacked_module
from partialkd.common.seeds import derived_seed
from partialkd.core.methods import SIMILARITY_TARGETS
from partialkd.core.metrics import ECE_BINS, classification_metrics
from partialkd.core.targets import similarity_entropy
from partialkd.data.prepared import Dataset, Split, load_dataset, save_dataset
from partialkd.data.synthetic import synthetic_dataset
from partialkd.models.mlp import INIT_SEED, StackedMLP, recorded_stack
from partialkd.reporting.summary import summarise
from partialkd.reporting.tables import sim_degeneracy_table
from partialkd.train import run
from partialkd.training.engine import fingerprint_differences, resume_files, resume_path
from partialkd.training.read_runs import teacher_network

KD_GRID: dict[str, dict[str, list]] = {"ce": {}, "kd": {"lam": [0.5], "tau": [2]}}


# ----------------------------------------------------------------------------- helpers


def by_label(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variant["label"]: variant for variant in metrics["variants"]}


def truncate(source: Path, target: Path, fraction: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


# ------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_runs_and_another_seed_differs(tmp_path, data_path, teacher_path):
    config = tiny_config(train_size=400)
    run(data_path, KD_GRID, config, tmp_path / "a", teacher=teacher_path)
    run(data_path, KD_GRID, config, tmp_path / "b", teacher=teacher_path)
    assert_same_run(tmp_path / "a", tmp_path / "b")

    other = run(data_path, KD_GRID, tiny_config(train_size=400, seed=1), tmp_path / "c",
                teacher=teacher_path)
    first = read_json(tmp_path / "a" / "metrics.json")
    assert [v["last"] for v in other["variants"]] != [v["last"] for v in first["variants"]]
    final_a = load_checkpoint(tmp_path / "a" / "model.pt")["final_state"]
    final_c = load_checkpoint(tmp_path / "c" / "model.pt")["final_state"]
    assert all(not torch.equal(final_a[name], final_c[name]) for name in final_a)


# ------------------------------------------------------------------------- paired init


def _init_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(seed, INIT_SEED))


def test_every_variant_of_a_stack_starts_from_the_same_weights():
    stack = StackedMLP(5, 10, (8, 7), 6, _init_generator(0))
    single = StackedMLP(1, 10, (8, 7), 6, _init_generator(0))
    other_seed = StackedMLP(1, 10, (8, 7), 6, _init_generator(1))
    stack_state, single_state = stack.state_dict(), single.state_dict()
    assert len(stack_state) == 6  # 3 layers x (weight, bias)
    for name, value in stack_state.items():
        assert value.shape[0] == 5
        for model in range(5):
            assert torch.equal(value[model], single_state[name][0]), name
        assert not torch.equal(single_state[name], other_seed.state_dict()[name]), name
    # The weights follow PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    assert stack.weights[0].abs().max() <= 1 / math.sqrt(10)
    assert stack.weights[1].abs().max() <= 1 / math.sqrt(8)


def test_runs_with_different_grids_start_from_the_same_weights(tmp_path, data_path, monkeypatch):
    initial: list[dict[str, torch.Tensor]] = []

    class Recording(StackedMLP):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            initial.append({k: v.detach().clone() for k, v in self.state_dict().items()})

    monkeypatch.setattr(models_module, "StackedMLP", Recording)  # seeded_stack builds the stack
    config = tiny_config(epochs=1)
    run(data_path, {"ce": {}}, config, tmp_path / "one")
    run(data_path, {"ls": {"lam": [0.1, 0.9], "tau": [1, 2]}, "ce": {}}, config, tmp_path / "five")
    assert [state["weights.0"].shape[0] for state in initial] == [1, 5]

    expected = StackedMLP(1, TINY_WORLD["dim"], config.hidden, TINY_WORLD["num_classes"],
                          _init_generator(config.seed)).state_dict()
    for state in initial:
        for name, value in state.items():
            for model in range(value.shape[0]):
                assert torch.equal(value[model], expected[name][0]), name


def test_stacking_changes_nothing(tmp_path, data_path, teacher_path, student_run):
    """ce/ls trained alone, and kd variants in another order, match the full stack's variants.

    Exact equality holds here (the variants' parameters and Adam states are disjoint and each
    model's slice of the batched matmul is computed the same way); should a BLAS ever make it
    depend on the batch of matrices, relax to a 1e-5 tolerance.
    """
    _, stacked = student_run
    stacked_variants = by_label(stacked)
    teacher_free = run(data_path, {"ce": {}, "ls": FULL_GRID["ls"]}, student_config(),
                       tmp_path / "free")
    reordered = run(data_path, {"kd_topk": FULL_GRID["kd_topk"], "kd": FULL_GRID["kd"]},
                    student_config(), tmp_path / "kd", teacher=teacher_path)
    compared = 0
    for metrics in (teacher_free, reordered):
        for label, variant in by_label(metrics).items():
            assert variant == stacked_variants[label], label
            compared += 1
    assert compared == 6


# ------------------------------------------------------------------------------ resume


def test_resume_in_process_matches_an_uninterrupted_run(tmp_path, data_path, teacher_path):
    # An overfitting setting (small subset, wide layer): some variant peaks before the
    # interruption, so the best-so-far state must survive the resume too.
    config = tiny_config(epochs=6, lr=0.05, hidden=(32,), batch_size=16, train_size=100)
    stop_after = 5
    reference = tmp_path / "reference"
    expected = run(data_path, KD_GRID, config, reference, teacher=teacher_path)
    assert not resume_files(reference)
    assert any(v["best"]["epoch"] <= stop_after for v in expected["variants"]), \
        "pick a setting where a best epoch precedes the interruption"

    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        run(data_path, KD_GRID, config, out, teacher=teacher_path,
            on_epoch_end=interrupt_after(stop_after))
    assert resume_files(out)
    assert not (out / "metrics.json").exists()
    assert not (out / "model.pt").exists()
    assert load_checkpoint(resume_file(out))["epoch"] == stop_after

    epochs_run: list[int] = []
    run(data_path, KD_GRID, config, out, teacher=teacher_path, on_epoch_end=epochs_run.append)
    assert epochs_run == list(range(stop_after + 1, config.epochs + 1))  # resumed, not restarted
    assert not resume_files(out)
    assert_same_run(reference, out)


def _train_command(data: Path, out: Path, epochs: int) -> list[str]:
    return [sys.executable, "-m", "partialkd.train", "--data", str(data),
            "--grid", json.dumps({"ce": {}, "ls": {"lam": [0.3], "tau": [1]}}),
            "--recipe", json.dumps({"hidden": [16], "epochs": epochs, "batch_size": 16, "lr": 0.01,
                                    "weight_decay": 0, "train_size": 500}),
            "--seed", "3", "--tag", "role=student", "--out-dir", str(out)]


def _wait(process: subprocess.Popen, timeout: float) -> tuple[str, str]:
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, data_path):
    """A real `python -m partialkd.train` killed with SIGKILL mid-run, then re-run to the end."""
    epochs = 20  # about 1-2 s of training: ample time to kill it after the first epoch
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    options = dict(cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The reference runs alongside the victim (two cores) to keep the test short.
    reference_process = subprocess.Popen(_train_command(data_path, reference, epochs), **options)
    killed_after = kill_after_first_checkpoint(_train_command(data_path, killed, epochs), killed,
                                               cwd=tmp_path)
    assert 1 <= killed_after < epochs

    _, reference_log = _wait(reference_process, 180)
    assert reference_process.returncode == 0, reference_log
    rerun = subprocess.run(_train_command(data_path, killed, epochs), cwd=tmp_path,
                           capture_output=True, text=True, timeout=180, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"after epoch {killed_after}" in rerun.stderr  # it resumed rather than restarted
    assert not resume_files(killed)
    assert_same_run(reference, killed)
    assert read_json(killed / "metrics.json")["tags"] == {"role": "student"}


def test_sigkills_at_random_moments_then_a_complete_run_leave_nothing_behind(tmp_path, data_path):
    """Issue 16: SIGKILL at random moments, six times (between epochs, mid-write or before the
    first epoch), then a complete run: it equals an uninterrupted run, and its folder holds no
    temporary file and no resume state."""
    epochs = 20
    reference, out = tmp_path / "reference", tmp_path / "killed"
    assert subprocess.run(_train_command(data_path, reference, epochs), cwd=tmp_path, capture_output=True,
                          timeout=180, check=False).returncode == 0
    moments = random.Random(16)
    for _ in range(6):
        victim = subprocess.Popen(_train_command(data_path, out, epochs), cwd=tmp_path,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(moments.uniform(1.0, 4.0))  # start-up takes about 2 s, the epochs 1-2 s
        victim.kill()
        victim.wait()
    final = subprocess.run(_train_command(data_path, out, epochs), cwd=tmp_path, capture_output=True, text=True,
                           timeout=180, check=False)
    assert final.returncode == 0, final.stderr
    assert sorted(path.name for path in out.iterdir()) == ["metrics.json", "model.pt"]
    assert_same_run(reference, out)


def test_another_configuration_starts_afresh_and_leaves_the_state_it_finds(tmp_path, data_path, teacher_path,
                                                                           caplog):
    """Issue 16: after a crash, a run of another configuration in the same folder neither reads nor
    removes the state it finds; it says how the configurations differ, trains from the start and
    ends as an uninterrupted run would; the first configuration then still resumes."""
    config = tiny_config(epochs=3)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(data_path, KD_GRID, config, out, teacher=teacher_path, on_epoch_end=interrupt_after(1))
    resume = resume_file(out)
    saved = resume.read_bytes()
    other_data = tmp_path / "other.pt"
    save_dataset(synthetic_dataset(gamma=0.0, **TINY_WORLD), other_data)

    cases = [
        ("config.lr: 0.01 -> 0.02", dict(config=tiny_config(epochs=3, lr=0.02), grid=KD_GRID, teacher=teacher_path)),
        ("variants", dict(config=config, grid={"ce": {}, "kd": {"lam": [0.9], "tau": [2]}}, teacher=teacher_path)),
        ("teacher", dict(config=config, grid=KD_GRID, teacher="oracle")),
        ("data", dict(config=config, grid=KD_GRID, teacher=teacher_path, data=other_data)),
    ]
    for difference, arguments in cases:
        caplog.clear()
        epochs_run: list[int] = []
        with caplog.at_level(logging.WARNING):
            run(arguments.get("data", data_path), arguments["grid"], arguments["config"], out,
                teacher=arguments["teacher"], on_epoch_end=epochs_run.append)
        assert epochs_run == [1, 2, 3], difference
        assert f"{resume} holds the state of another configuration (differs in: {difference}" in caplog.text
        assert resume_files(out) == [resume] and resume.read_bytes() == saved, difference

    reference = tmp_path / "reference"
    run(data_path, KD_GRID, tiny_config(epochs=3, lr=0.02), reference, teacher=teacher_path)
    run(data_path, KD_GRID, tiny_config(epochs=3, lr=0.02), out, teacher=teacher_path)
    assert_same_run(out, reference)

    epochs_run = []
    run(data_path, KD_GRID, config, out, teacher=teacher_path, on_epoch_end=epochs_run.append)
    assert epochs_run == [2, 3]
    assert not resume_files(out)


def test_the_resume_state_is_named_by_the_whole_configuration(tmp_path):
    fingerprint = {"config": {"lr": 0.1, "epochs": 3}, "variants": [{"method": "kd"}], "data": "ab"}
    same = {"data": "ab", "variants": [{"method": "kd"}], "config": {"epochs": 3, "lr": 0.1}}
    assert resume_path(tmp_path, fingerprint) == resume_path(tmp_path, same)
    assert resume_path(tmp_path, fingerprint).name.startswith("resume-")
    for changed in ({**fingerprint, "config": {"lr": 0.2, "epochs": 3}}, {**fingerprint, "data": "cd"},
                    {**fingerprint, "teacher_cache": "bfloat16"}):
        assert resume_path(tmp_path, changed) != resume_path(tmp_path, fingerprint)
    assert fingerprint_differences(fingerprint, {**fingerprint, "config": {"lr": 0.2, "epochs": 3},
                                                 "teacher": "x"}) == ["config.lr: 0.1 -> 0.2", "teacher: None -> 'x'"]


def test_a_run_removes_what_killed_writes_left_in_its_folder(tmp_path, data_path):
    """Issue 16: an atomic write killed mid-way leaves `.<name>.<random>.tmp`; the next run in the
    folder removes it (and nothing else)."""
    out = tmp_path / "run"
    out.mkdir()
    debris = [out / ".resume-0123456789abcdef.pt.x1y2z3q4.tmp", out / ".metrics.json.k9j8h7g6.tmp"]
    for path in debris:
        path.write_bytes(b"half a file")
    (out / "notes.txt").write_text("a user's file")
    run(data_path, {"ce": {}}, tiny_config(), out)
    assert sorted(path.name for path in out.iterdir()) == ["metrics.json", "model.pt", "notes.txt"]


# -------------------------------------------------------------------- corrupt / missing


def test_corrupt_files_are_refused_with_advice(tmp_path, data_path, teacher_path):
    bad_data = truncate(data_path, tmp_path / "data.pt")
    with pytest.raises(ValueError, match="corrupt") as error:
        run(bad_data, {"ce": {}}, tiny_config(), tmp_path / "out1")
    assert str(bad_data) in str(error.value) and "delete it and re-run" in str(error.value)

    bad_teacher = truncate(teacher_path, tmp_path / "teacher.pt")
    with pytest.raises(ValueError, match="corrupt") as error:
        run(data_path, KD_GRID, tiny_config(), tmp_path / "out2", teacher=bad_teacher)
    assert "teacher checkpoint" in str(error.value) and "delete it and re-run" in str(error.value)

    out = tmp_path / "out3"
    with pytest.raises(KeyboardInterrupt):
        run(data_path, {"ce": {}}, tiny_config(), out, on_epoch_end=interrupt_after(1))
    truncate(resume_file(out), resume_file(out), 0.3)
    with pytest.raises(ValueError, match="resume checkpoint .* corrupt"):
        run(data_path, {"ce": {}}, tiny_config(), out)

    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a torch file\n")
    with pytest.raises(ValueError, match="corrupt"):
        run(garbage, {"ce": {}}, tiny_config(), tmp_path / "out4")

    # A pickle of other Python objects: refused without torch's advice to load it unsafely.
    foreign = tmp_path / "foreign.pt"
    torch.save({"splits": argparse.Namespace(x=1)}, foreign)
    with pytest.raises(ValueError) as error:
        run(foreign, {"ce": {}}, tiny_config(), tmp_path / "out5")
    assert "holds Python objects, not only tensors and plain values: argparse.Namespace" in str(error.value)
    assert "weights_only" not in str(error.value) and "delete it and re-run" in str(error.value)


def test_missing_files_raise_file_not_found(tmp_path, data_path):
    with pytest.raises(FileNotFoundError, match="prepared dataset not found"):
        run(tmp_path / "absent.pt", {"ce": {}}, tiny_config(), tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="teacher checkpoint not found"):
        run(data_path, KD_GRID, tiny_config(), tmp_path / "out", teacher=tmp_path / "absent.pt")
    assert not (tmp_path / "out" / "metrics.json").exists()


# ------------------------------------------------------------------------ non-finite loss


def test_divergent_learning_rate_raises_floating_point_error(tmp_path, data_path):
    # Adam's step is bounded by lr, so lr = 1e6 or 1e10 does NOT diverge (log_softmax stays
    # finite for huge finite logits). With a hidden layer and lr = 1e20 the two layers' weights
    # (~1e20 each) overflow float32 in the first epoch, giving inf − inf = NaN logits.
    grid = {"ce": {}, "ls": {"lam": [0.5], "tau": [1]}}
    with pytest.raises(FloatingPointError) as error:
        run(data_path, grid, tiny_config(hidden=(16,), lr=1e20), tmp_path / "out")
    message = str(error.value)
    assert "epoch 1" in message
    assert "ce(lam=0, tau=1)" in message and "ls(lam=0.5, tau=1)" in message
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_non_finite_loss_names_only_the_bad_variant(tmp_path, data_path, monkeypatch):
    """A NaN in variant 1 from the second epoch on: the error names it, the epoch, and the last
    good epoch stays in the resume checkpoint."""
    real_loss = stacked_module.distillation_loss
    calls = {"n": 0}
    steps_per_epoch = math.ceil(TINY_WORLD["sizes"]["train"] / 64)

    def poisoned(*args: Any, **kwargs: Any) -> torch.Tensor:
        losses = real_loss(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > steps_per_epoch:
            bad = torch.zeros_like(losses, dtype=torch.bool)
            bad[1] = True
            losses = torch.where(bad, torch.full_like(losses, math.nan), losses)
        return losses

    monkeypatch.setattr(stacked_module, "distillation_loss", poisoned)
    grid = {"ce": {}, "ls": {"lam": [0.3, 0.6], "tau": [1]}}
    with pytest.raises(FloatingPointError) as error:
        run(data_path, grid, tiny_config(batch_size=64), tmp_path / "out")
    message = str(error.value)
    assert "epoch 2" in message
    assert "ls(lam=0.3, tau=1)" in message
    assert "ce(lam=0" not in message and "ls(lam=0.6" not in message
    assert load_checkpoint(resume_file(tmp_path / "out"))["epoch"] == 1


# ------------------------------------------------------------------ metrics.json / model.pt


def test_metrics_json_contents(student_run, teacher_path, data_path):
    out, returned = student_run
    metrics = read_json(out / "metrics.json")
    assert metrics == json.loads(json.dumps(returned))  # what run() returns is what it wrote
    epochs = metrics["config"]["config"]["epochs"]
    variants = metrics["variants"]

    assert metrics["tags"] == {"role": "student", "teacher": "mlp"}
    assert set(metrics["selected"]) == set(FULL_GRID)
    assert len({v["label"] for v in variants}) == len(variants) == 9
    for method, index in metrics["selected"].items():
        candidates = [i for i, v in enumerate(variants) if v["method"] == method]
        accuracies = [variants[i]["best"]["valid"]["acc"] for i in candidates]
        assert index == candidates[accuracies.index(max(accuracies))], method

    for variant in variants:
        assert 1 <= variant["best"]["epoch"] <= epochs
        assert variant["last"]["epoch"] == epochs
        assert_scores_in_range(variant)
        # Best-on-validation weights are at least as good on valid as the final weights.
        assert variant["best"]["valid"]["acc"] >= variant["last"]["valid"]["acc"]
        if variant["best"]["epoch"] == epochs:
            assert variant["best"]["valid"] == variant["last"]["valid"]
            assert variant["best"]["test"] == variant["last"]["test"]

    fingerprint = metrics["config"]
    assert fingerprint["teacher"] == hashlib.sha256(teacher_path.read_bytes()).hexdigest()
    assert fingerprint["data"] == hashlib.sha256(data_path.read_bytes()).hexdigest()
    assert metrics["dataset"]["gamma"] == TINY_GAMMA
    assert metrics["dataset"]["track"] == "synthetic"
    assert metrics["provenance"]["seconds_per_epoch"] > 0


def test_sim_variants_record_how_uniform_their_similarity_rows_are(student_run, teacher_path,
                                                                  data_path):
    """metrics.json → summary.csv → the report's table: `sim_entropy` of the teacher's class
    vectors at the variant's α for kd_sim and kd_pt_sim, None for the other methods."""
    out, _ = student_run
    variants = read_json(out / "metrics.json")["variants"]
    class_weights = teacher_network(teacher_path, load_dataset(data_path)).class_weights
    recorded = {}
    for variant in variants:
        if variant["method"] in SIMILARITY_TARGETS:
            expected = similarity_entropy(class_weights, variant["alpha"],
                                          exclude_true=SIMILARITY_TARGETS[variant["method"]])
            assert 0 < variant["sim_entropy"] < 1
            assert variant["sim_entropy"] == pytest.approx(expected, abs=1e-12)
            recorded[variant["label"]] = variant["sim_entropy"]
        else:
            assert variant["sim_entropy"] is None, variant["label"]
    assert {label.split("(")[0] for label in recorded} == set(SIMILARITY_TARGETS)

    summary = summarise([out / "metrics.json"]).set_index("variant", drop=False)
    assert summary["sim_entropy"].dropna().to_dict() == recorded
    table = sim_degeneracy_table(summary, "mlp").set_index("method")
    assert list(table.index) == ["kd_sim", "kd_pt_sim"] and set(table["γ"]) == {f"{TINY_GAMMA:g}"}
    for method in SIMILARITY_TARGETS:
        (value,) = [entropy for label, entropy in recorded.items() if label.startswith(f"{method}(")]
        assert table.loc[method, "α chosen (× seeds)"] == "0.3 ×1"
        assert table.loc[method, "row entropy (1 = uniform)"] == f"{value:.3f}"


def test_best_epoch_is_the_first_epoch_with_the_highest_validation_accuracy(tmp_path, data_path,
                                                                           monkeypatch):
    """Record the per-epoch validation accuracy the loop computes and check the selection."""
    real_valid_accuracy = stacked_module._valid_accuracy
    per_epoch: list[torch.Tensor] = []
    epochs = 6

    def recording(model, x, truth):
        result = real_valid_accuracy(model, x, truth)
        per_epoch.append(result.clone())
        return result

    monkeypatch.setattr(stacked_module, "_valid_accuracy", recording)
    grid = {"ce": {}, "ls": {"lam": [0.2, 0.6, 0.9], "tau": [1]}}
    # A small subset and a wide hidden layer overfit: some variants peak before the last epoch.
    config = tiny_config(epochs=epochs, lr=0.05, hidden=(32,), batch_size=16, train_size=100)
    metrics = run(data_path, grid, config, tmp_path / "out")
    history = torch.stack(per_epoch)  # [epochs, variants]
    best_epochs = [variant["best"]["epoch"] for variant in metrics["variants"]]
    assert any(epoch < epochs for epoch in best_epochs), "pick a setting where valid acc is not monotone"
    for index, variant in enumerate(metrics["variants"]):
        column = history[:, index].tolist()
        assert variant["best"]["epoch"] == column.index(max(column)) + 1, variant["label"]
        assert variant["best"]["valid"]["acc"] == pytest.approx(max(column), abs=1e-7)
        assert variant["last"]["valid"]["acc"] == pytest.approx(column[-1], abs=1e-7)


def test_saved_weights_reproduce_the_reported_metrics(student_run, data_path):
    out, metrics = student_run
    saved = load_checkpoint(out / "model.pt")
    assert saved["arch"]["num_models"] == len(metrics["variants"])
    assert saved["variants"] == [{k: v for k, v in variant.items()
                                  if k not in ("label", "sim_entropy", "best", "last")}
                                 for variant in metrics["variants"]]
    dataset = load_dataset(data_path)
    model = recorded_stack(saved["arch"])
    for state, when in (("final_state", "last"), ("best_state", "best")):
        model.load_state_dict(saved[state])
        with torch.no_grad():
            scored = classification_metrics(model(dataset["test"].x), dataset["test"].posterior)
        for index, variant in enumerate(metrics["variants"]):
            assert scored["acc"][index].item() == pytest.approx(variant[when]["test"]["acc"], abs=1e-6)
            assert scored["nll"][index].item() == pytest.approx(variant[when]["test"]["nll"], abs=1e-5)


@pytest.mark.parametrize("grid", [{"kd": {"lam": [0.5], "tau": [1]}},
                                  {"ce": {}, "kd_sim": {"lam": [0.5], "tau": [1], "alpha": [0.3]}}])
def test_distillation_without_a_teacher_is_refused(tmp_path, data_path, grid):
    with pytest.raises(ValueError, match="--teacher"):
        run(data_path, grid, tiny_config(), tmp_path / "out")


def test_oracle_teacher_on_synthetic_data(tmp_path, data_path):
    grid = {"kd": {"lam": [1.0], "tau": [1]}, "kd_pt_sim": {"lam": [0.5], "tau": [1], "alpha": [0.3]}}
    metrics = run(data_path, grid, tiny_config(), tmp_path / "out", teacher="oracle")
    assert metrics["config"]["teacher"] == "oracle"
    assert set(metrics["selected"]) == {"kd", "kd_pt_sim"}
    dataset = load_dataset(data_path)
    chance = 1 / dataset.num_classes
    assert all(v["best"]["test"]["acc"] > chance for v in metrics["variants"])


def test_oracle_teacher_needs_a_known_posterior(tmp_path, data_path):
    dataset = load_dataset(data_path)
    no_posterior = Dataset({name: Split(split.x, split.labels) for name, split in dataset.splits.items()},
                           dataset.num_classes, dataset.class_groups, None, dataset.meta)
    path = tmp_path / "real.pt"
    save_dataset(no_posterior, path)
    with pytest.raises(ValueError, match="oracle"):
        run(path, {"kd": {"lam": [0.5], "tau": [1]}}, tiny_config(), tmp_path / "out", teacher="oracle")


def test_teacher_with_several_variants_is_refused(tmp_path, data_path, student_run):
    out, _ = student_run
    with pytest.raises(ValueError, match="single variant") as error:
        run(data_path, KD_GRID, tiny_config(), tmp_path / "out", teacher=out / "model.pt")
    assert str(out / "model.pt") in str(error.value)


def test_teacher_for_another_dataset_shape_is_refused(tmp_path, teacher_path):
    other = tmp_path / "wider.pt"
    save_dataset(synthetic_dataset(gamma=0.0, **{**TINY_WORLD, "dim": 12}), other)
    with pytest.raises(ValueError, match="belongs to another configuration"):
        run(other, KD_GRID, tiny_config(), tmp_path / "out", teacher=teacher_path)


@pytest.mark.parametrize("overrides", [dict(epochs=0), dict(batch_size=0), dict(lr=0.0),
                                       dict(lr=-1.0), dict(weight_decay=-0.1), dict(train_size=0)])
def test_train_config_rejects_bad_values(overrides):
    with pytest.raises(ValueError, match=next(iter(overrides))):
        tiny_config(**overrides)


def test_train_size_larger_than_the_train_split_is_refused(tmp_path, data_path):
    with pytest.raises(ValueError, match="train_size 601 exceeds the 600"):
        run(data_path, {"ce": {}}, tiny_config(train_size=601), tmp_path / "out")


# ----------------------------------------------------------------- classification metrics


def _logits(probabilities: list[list[float]]) -> torch.Tensor:
    return torch.tensor(probabilities, dtype=torch.float64).log()


def test_classification_metrics_against_hand_computed_values():
    probs = [[0.70, 0.20, 0.10],   # label 0: right, confidence 0.70 (bin 10)
             [0.72, 0.18, 0.10],   # label 1: wrong, confidence 0.72 (bin 10, shared)
             [0.05, 0.05, 0.90],   # label 2: right, confidence 0.90 (bin 13)
             [0.40, 0.35, 0.25]]   # label 1: wrong, confidence 0.40 (bin 6)
    labels = torch.tensor([0, 1, 2, 1])
    truth = torch.nn.functional.one_hot(labels, 3).double()
    result = classification_metrics(_logits(probs), truth)
    assert result["acc"].item() == pytest.approx(0.5)
    nll = -(math.log(0.70) + math.log(0.18) + math.log(0.90) + math.log(0.35)) / 4
    assert result["nll"].item() == pytest.approx(nll, rel=1e-6)
    # Bin 10 holds two examples: |0.70 + 0.72 − 1 − 0| = 0.42, not 0.30 + 0.72.
    ece = (abs(0.70 + 0.72 - 1.0) + abs(0.90 - 1.0) + abs(0.40 - 0.0)) / 4
    assert result["ece"].item() == pytest.approx(ece, rel=1e-5)


def test_classification_metrics_with_a_posterior_truth_give_expected_accuracy():
    probs = [[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]  # both predictions have confidence 0.6 (bin 9)
    posterior = torch.tensor([[0.5, 0.4, 0.1], [0.1, 0.1, 0.8]], dtype=torch.float64)
    result = classification_metrics(_logits(probs), posterior)
    # Expected accuracy: the posterior mass of the predicted class, averaged.
    assert result["acc"].item() == pytest.approx((0.5 + 0.8) / 2)
    nll = -sum(p * math.log(q) for row_p, row_q in zip(posterior.tolist(), probs)
               for p, q in zip(row_p, row_q)) / 2
    assert result["nll"].item() == pytest.approx(nll, rel=1e-6)
    # One bin: |(0.6 − 0.5) + (0.6 − 0.8)| / 2 = 0.05, not the per-example (0.1 + 0.2) / 2.
    assert result["ece"].item() == pytest.approx(0.05, rel=1e-5)


def test_classification_metrics_of_a_stack_and_a_certain_prediction():
    probs = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]
    labels = torch.tensor([0, 2])
    truth = torch.nn.functional.one_hot(labels, 3).float()
    good = _logits(probs).float()
    bad = good[:, [1, 0, 2]]  # predicts class 1 for the first example
    certain = torch.tensor([[50.0, 0.0, 0.0], [0.0, 0.0, 50.0]])  # confidence 1 → last bin
    result = classification_metrics(torch.stack([good, bad, certain]), truth)
    assert result["acc"].shape == (3,)
    assert result["acc"].tolist() == pytest.approx([1.0, 0.5, 1.0])
    assert result["ece"][2].item() == pytest.approx(0.0, abs=1e-6)
    assert result["ece"][0].item() == pytest.approx((0.3 + 0.4) / 2, rel=1e-5)
    single = classification_metrics(good, truth)
    assert single["acc"].shape == ()
    assert single["acc"].item() == result["acc"][0].item()
    assert ECE_BINS == 15


def test_weights_memo_recomputes_after_every_change_of_a_weight_or_buffer():
    """A value is reused while no parameter or buffer changed, and recomputed after an optimiser
    step, a batch-norm forward in training mode and load_state_dict."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    memo = engine_module.WeightsMemo(model)
    computed = []

    def score() -> int:
        computed.append(1)
        return len(computed)

    x = torch.randn(8, 3)
    saved = {name: value.clone() for name, value in model.state_dict().items()}
    assert memo.get("valid", score) == 1 and memo.get("valid", score) == 1
    assert memo.get("test", score) == 2  # per key
    model.eval()(x)  # eval mode: nothing changes
    assert memo.get("valid", score) == 1
    model.train()(x)  # batch norm's running statistics
    assert memo.get("valid", score) == 3
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(x).sum().backward()
    optimizer.step()
    assert memo.get("valid", score) == 4
    model.load_state_dict(saved)
    assert memo.get("valid", score) == 5 and memo.get("test", score) == 6

