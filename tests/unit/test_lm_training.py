"""Tests for the Penn Treebank trainer (partialkd.models.lstm, partialkd.training.lm,
partialkd.train_lm) on a tiny generated text in Penn Treebank format: a Markov chain over 24
words whose next word is predictable (perplexity about 2.6 at best), prepared by
`ptb.prepare_ptb`, and the "tiny" LSTM (32 units, dropout 0.1). Everything runs on the CPU.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers.runs import (assert_same_run, assert_same_tensors, interrupt_after, load_checkpoint, read_json,
                          resume_file, saved_dataset)

import partialkd.training.lm as lm_training
import partialkd.train_lm as train_lm
from partialkd.common.devices import Placement
from partialkd.core.grid import Variant
from partialkd.core.metrics import classification_metrics
from partialkd.core.targets import similarity_entropy
from partialkd.data.prepared import Split, load_dataset, save_dataset
from partialkd.models.lstm import ARCHITECTURES, build_lm, detach
from partialkd.reporting.summary import summarise
from partialkd.train_lm import run, seeded_lm
from partialkd.training.engine import resume_files
from partialkd.training.lm import columns, lm_loop, split_logits, split_metrics, window_loss
from partialkd.training.objective import NetworkObjective
from partialkd.training.read_runs import checkpoint_networks
from helpers.lm_runs import WORDS, markov_dataset, lm_config

CPU = Placement(torch.device("cpu"), bf16=False)
KD_GRID = {"kd": {"lam": [0.7], "tau": [4]}}
STUDENT_EPOCHS = 8
pytestmark = pytest.mark.usefixtures("cpu_only")  # exact float32 runs: the trainer stays on the CPU


@pytest.fixture(scope="module")
def lm_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_dataset(markov_dataset(), tmp_path_factory, "lm-data")


@pytest.fixture(scope="module")
def lm_teacher(lm_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("lm-teacher")
    metrics = run(lm_data, {"ce": {}}, lm_config(epochs=12, lr=1.5, decay_after=8), out,
                  tags={"role": "teacher"})
    return out, metrics


@pytest.fixture(scope="module")
def kd_student(lm_data: Path, lm_teacher, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("lm-student")
    metrics = run(lm_data, KD_GRID, lm_config(epochs=STUDENT_EPOCHS, lr=1.5, decay_after=4), out,
                  teacher=lm_teacher[0] / "model.pt",
                  tags={"role": "student", "teacher": "tiny", "student": "tiny"})
    return out, metrics


def test_columns_cut_the_stream_into_contiguous_pieces():
    ids = torch.arange(11)
    assert torch.equal(columns(ids, 3, pad=False), torch.tensor([[0, 3, 6], [1, 4, 7], [2, 5, 8]]))
    padded = columns(ids, 3, pad=True)
    assert torch.equal(padded.t().reshape(-1)[:11], ids) and padded.shape == (4, 3)
    assert torch.equal(padded[-1], torch.tensor([3, 7, 0]))


def test_window_loss_gradient_is_that_of_the_explicit_kd_formula():
    """NOTES §2 per token, float64, kd at τ = 4: L = mean[(1−λ)CE(y, q) + λτ²KL(p^τ ‖ q^τ)], the
    teacher reading the same stream with its own carried state; on the second window of two."""
    lam, tau, steps, batch, num_classes = 0.7, 4.0, 6, 3, 11
    torch.manual_seed(0)
    student, teacher = (build_lm("tiny", num_classes).double().eval() for _ in range(2))
    teacher.requires_grad_(False)
    tokens = torch.randint(num_classes, (2 * steps + 1, batch))
    x, y = tokens[:-1], tokens[1:]
    objective = NetworkObjective(Variant("kd", lam, tau), teacher, None, num_classes, tau_squared=True)
    _, (state, teacher_state) = window_loss(student, objective, x[:steps], y[:steps], (None, None), CPU)
    loss, _ = window_loss(student, objective, x[steps:], y[steps:], (detach(state), teacher_state), CPU)
    params = list(student.parameters())
    trainer_grads = torch.autograd.grad(loss, params)

    with torch.no_grad():
        _, state = student(x[:steps])
        teacher_logits = teacher(x)[0][steps:].flatten(0, 1)  # one pass over both windows
    logits = student(x[steps:], state)[0].flatten(0, 1)
    labels = y[steps:].flatten()
    p = (teacher_logits / tau).softmax(-1)
    cross_entropy = -logits.log_softmax(-1).gather(1, labels[:, None]).squeeze(1)
    kl = (p * (p.log() - (logits / tau).log_softmax(-1))).sum(-1)
    explicit = ((1 - lam) * cross_entropy + lam * tau**2 * kl).mean()
    torch.testing.assert_close(loss, explicit, rtol=1e-12, atol=0)
    for got, expected in zip(trainer_grads, torch.autograd.grad(explicit, params, retain_graph=True)):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-14)
    # Per token: ∂L/∂z = [(1−λ)(q − y) + λτ(q^τ − p^τ)] / N.
    closed = ((1 - lam) * (logits.softmax(-1) - F.one_hot(labels, num_classes))
              + lam * tau * ((logits / tau).softmax(-1) - p)) / len(labels)
    torch.testing.assert_close(torch.autograd.grad(explicit, logits)[0], closed, rtol=1e-10, atol=1e-14)


def test_split_logits_read_each_segment_in_order_with_carried_state(lm_data):
    torch.manual_seed(1)
    model = build_lm("tiny", WORDS + 1).eval()
    split = load_dataset(lm_data)["valid"]
    logits = split_logits(model, split, 3, 7, CPU)
    assert logits.shape == (len(split), WORDS + 1)
    length = math.ceil(len(split) / 3)
    with torch.no_grad():  # each segment in one pass from a zero state
        expected = torch.cat([model(split.x[i * length:(i + 1) * length, None])[0][:, 0] for i in range(3)])
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    metrics = split_metrics(model, split, 3, 7, CPU)
    scored = classification_metrics(logits, F.one_hot(split.labels, WORDS + 1).float())
    for name in ("acc", "nll", "ece"):
        assert metrics[name].item() == pytest.approx(scored[name].item(), abs=1e-5)
    assert metrics["ppl"].item() == pytest.approx(math.exp(scored["nll"].item()), rel=1e-5)


def test_schedule_divides_the_lr_each_epoch_after_decay_after(lm_data):
    config = lm_config(lr=0.8, lr_decay=2.0, decay_after=2)
    model = build_lm("tiny", WORDS + 1)
    objective = NetworkObjective(Variant("ce", 0.0, 1.0), None, None, WORDS + 1, True)
    loop = lm_loop(model, load_dataset(lm_data).splits, objective, config, torch.Generator(), CPU)
    lrs = []
    for _ in range(5):
        lrs.append(loop.optimizer.param_groups[0]["lr"])
        loop.optimizer.step()  # no gradients: changes nothing
        loop.schedule.step()
    assert lrs == pytest.approx([0.8, 0.8, 0.4, 0.2, 0.1])
    assert loop.unit == "tokens" and loop.score == "valid_neg_nll"
    assert loop.examples_per_epoch == (len(load_dataset(lm_data)["train"]) // 8) * 8


def test_the_final_evaluation_reuses_the_last_epoch_s_validation_pass(lm_data, tmp_path, monkeypatch):
    """One epoch scores the validation stream once; the final evaluation of those weights reuses it
    and scores the test stream: two passes, with the numbers of a fresh scoring."""
    scored = []
    real_metrics = lm_training.split_metrics
    monkeypatch.setattr(lm_training, "split_metrics",
                        lambda model, split, *args: scored.append(len(split)) or real_metrics(model, split, *args))
    metrics = run(lm_data, {"ce": {}}, lm_config(epochs=1), tmp_path / "run")
    splits = load_dataset(lm_data).splits
    assert scored == [len(splits["valid"]), len(splits["test"])]
    (variant,) = metrics["variants"]
    model = build_lm("tiny", WORDS + 1)
    model.load_state_dict(load_checkpoint(tmp_path / "run" / "model.pt")["final_state"])
    config = lm_config()
    fresh = real_metrics(model, splits["valid"], config.eval_batch_size, config.bptt, CPU)
    assert variant["last"]["valid"]["nll"] == pytest.approx(fresh["nll"].item(), rel=1e-6)

def test_train_tokens_trains_on_a_prefix_of_the_stream(lm_data):
    splits = load_dataset(lm_data).splits
    train = splits["train"]
    changed = Split(torch.cat([train.x[:50], train.x[50:].flip(0)]),
                    torch.cat([train.labels[:50], train.labels[50:].flip(0)]))
    objective = NetworkObjective(Variant("ce", 0.0, 1.0), None, None, WORDS + 1, True)
    trained = []
    for train_split in (train, changed):
        model = seeded_lm("tiny", WORDS + 1, 0)
        loop = lm_loop(model, {**splits, "train": train_split}, objective, lm_config(train_tokens=50),
                       torch.Generator().manual_seed(0), CPU)
        assert loop.examples_per_epoch == 48  # the first 50 tokens in 8 columns of 6
        trained.append((loop.train_epoch(), model.state_dict()))
    assert torch.equal(trained[0][0], trained[1][0])
    assert_same_tensors(trained[0][1], trained[1][1])


def test_a_ce_teacher_learns_the_text(lm_teacher):
    out, metrics = lm_teacher
    (variant,) = metrics["variants"]
    assert variant["best"]["valid"]["ppl"] < 4.5 < WORDS + 1, "perplexity should fall towards the chain's 2.6"
    assert variant["best"]["valid"]["ppl"] == pytest.approx(math.exp(variant["best"]["valid"]["nll"]), rel=1e-6)
    assert (out / "model.pt").is_file() and not resume_files(out)


def test_a_kd_pt_sim_student_records_the_entropy_of_the_teachers_similarity_rows(tmp_path, lm_data,
                                                                                 lm_teacher):
    teacher = lm_teacher[0] / "model.pt"
    metrics = run(lm_data, {"kd_pt_sim": {"lam": [0.5], "tau": [1], "alpha": [0.2]}},
                  lm_config(epochs=1, train_tokens=80), tmp_path, teacher=teacher)
    decoder = load_checkpoint(teacher)["best_state"]["decoder.weight"]
    assert metrics["variants"][0]["sim_entropy"] == pytest.approx(
        similarity_entropy(decoder, 0.2, exclude_true=True), abs=1e-12)


def test_a_kd_student_trains_and_reports_every_metric(kd_student, lm_teacher):
    out, metrics = kd_student
    assert read_json(out / "metrics.json") == metrics
    (variant,) = metrics["variants"]
    assert variant["label"] == "kd(lam=0.7, tau=4)" and metrics["selected"] == {"kd": 0}
    for when in ("best", "last"):
        for split in ("valid", "test"):
            values = variant[when][split]
            assert set(values) == {"acc", "nll", "ece", "ppl"}
            assert 0 < values["acc"] <= 1 and values["ppl"] == pytest.approx(math.exp(values["nll"]), rel=1e-6)
    assert variant["best"]["valid"]["nll"] <= variant["last"]["valid"]["nll"]
    assert variant["best"]["valid"]["ppl"] < 8, "the student learned next to nothing"
    saved = load_checkpoint(out / "model.pt")
    assert saved["arch"] == {"family": "lm", "name": "tiny", "num_classes": WORDS + 1}
    table = summarise([out / "metrics.json", lm_teacher[0] / "metrics.json"])
    assert list(table["method"]) == ["kd", "ce"] and list(table["track"]) == ["ptb", "ptb"]
    assert table.loc[0, "best_test_ppl"] == variant["best"]["test"]["ppl"]


def test_the_checkpoint_loads_as_a_network_scoring_its_best_validation_nll(kd_student, lm_data):
    out, metrics = kd_student
    dataset = load_dataset(lm_data)
    (network,) = checkpoint_networks(out / "model.pt", dataset).values()
    assert network.variant == Variant("kd", 0.7, 4.0)
    assert_same_tensors({"w": network.class_weights},
                        {"w": load_checkpoint(out / "model.pt")["best_state"]["decoder.weight"]})
    valid = dataset["valid"]
    logits = network.logits(valid)
    assert logits.shape == (len(valid), dataset.num_classes)
    nll = F.cross_entropy(logits, valid.labels).item()
    assert nll == pytest.approx(metrics["variants"][0]["best"]["valid"]["nll"], rel=1e-5)


def test_resume_after_an_interruption_equals_the_uninterrupted_run(tmp_path, lm_data, lm_teacher, kd_student):
    teacher = lm_teacher[0] / "model.pt"
    config = lm_config(epochs=STUDENT_EPOCHS, lr=1.5, decay_after=4)  # as kd_student: the reference
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        run(lm_data, KD_GRID, config, out, teacher=teacher, on_epoch_end=interrupt_after(1))
    saved = load_checkpoint(resume_file(out))
    assert saved["epoch"] == 1 and not (out / "metrics.json").exists()
    (entry,) = saved["history"]  # selection on validation NLL, throughput in tokens
    assert set(entry) == {"epoch", "seconds", "loss", "valid_neg_nll", "tokens_per_second"}
    assert entry["valid_neg_nll"][0] < 0
    epochs_run: list[int] = []
    run(lm_data, KD_GRID, config, out, teacher=teacher, on_epoch_end=epochs_run.append,
        tags={"role": "student", "teacher": "tiny", "student": "tiny"})
    assert epochs_run == list(range(2, STUDENT_EPOCHS + 1))
    assert_same_run(kd_student[0], out)


def test_the_same_seed_gives_every_method_the_same_initial_weights(tmp_path, lm_data, lm_teacher, monkeypatch):
    created = []

    def recording(arch: str, num_classes: int, seed: int):
        model = seeded_lm(arch, num_classes, seed)
        created.append({name: value.clone() for name, value in model.state_dict().items()})
        return model

    monkeypatch.setattr(train_lm, "seeded_lm", recording)
    grids = [{"ce": {}}, {"ls": {"lam": [0.1], "tau": [1]}}, {"kd_pt_sim": {"lam": [0.5], "tau": [1],
                                                                              "alpha": [0.5]}}]
    for index, grid in enumerate(grids):
        run(lm_data, grid, lm_config(epochs=1), tmp_path / str(index), teacher=lm_teacher[0] / "model.pt")
    assert len(created) == 3
    for state in created[1:]:
        assert_same_tensors(state, created[0])
    torch.manual_seed(123)  # the global RNG plays no part
    assert_same_tensors(seeded_lm("tiny", WORDS + 1, 0).state_dict(), created[0])
    other = seeded_lm("tiny", WORDS + 1, 1).state_dict()
    assert not torch.equal(other["decoder.weight"], created[0]["decoder.weight"])


def test_a_teacher_for_another_vocabulary_or_not_a_language_model_is_refused(tmp_path, lm_teacher):
    teacher = lm_teacher[0] / "model.pt"
    other = tmp_path / "other.pt"
    save_dataset(markov_dataset(words=20), other)
    with pytest.raises(ValueError, match="another configuration") as error:
        run(other, KD_GRID, lm_config(), tmp_path / "out", teacher=teacher)
    assert str(teacher) in str(error.value) and "'num_classes': 21" in str(error.value)
    saved = load_checkpoint(teacher)
    saved["arch"] = {**saved["arch"], "family": "image"}
    torch.save(saved, tmp_path / "image.pt")
    with pytest.raises(ValueError, match="'family': 'lm'"):
        run(other, KD_GRID, lm_config(), tmp_path / "out", teacher=tmp_path / "image.pt")
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_distilling_without_a_teacher_and_grids_of_several_variants_are_refused(tmp_path, lm_data):
    with pytest.raises(ValueError, match="--teacher"):
        run(lm_data, KD_GRID, lm_config(), tmp_path / "out")
    with pytest.raises(ValueError, match="one variant"):
        run(lm_data, {"ls": {"lam": [0.1, 0.2], "tau": [1]}}, lm_config(), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_non_finite_loss_stops_the_run_with_advice(tmp_path, lm_data, monkeypatch):
    monkeypatch.setattr(NetworkObjective, "loss", lambda self, logits, *_: logits.sum() * math.nan)
    with pytest.raises(FloatingPointError, match="non-finite in epoch 1"):
        run(lm_data, {"ce": {}}, lm_config(), tmp_path / "out")


def test_the_command_line_records_its_configuration(tmp_path, lm_data, lm_teacher):
    out = tmp_path / "cli"
    train_lm.main(["--data", str(lm_data), "--arch", "tiny", "--grid", '{"kd_topk": {"lam": [0.5], '
                   '"tau": [2], "k": [3]}}', "--teacher", str(lm_teacher[0] / "model.pt"),
                   "--recipe", json.dumps({"epochs": 1, "batch_size": 6, "bptt": 12, "lr": 0.5, "lr_decay": 1.5,
                                           "decay_after": 3, "clip": 2, "tau_squared": False, "precision": "fp32",
                                           "eval_batch_size": 2, "train_tokens": 300}),
                   "--seed", "4", "--threads", "1",
                   "--tag", "role=student", "--tag", "teacher=tiny", "--out-dir", str(out)])
    metrics = read_json(out / "metrics.json")
    assert metrics["tags"] == {"role": "student", "teacher": "tiny"}
    assert metrics["config"]["config"] == dict(
        arch="tiny", epochs=1, batch_size=6, bptt=12, lr=0.5, lr_decay=1.5, decay_after=3, clip=2.0,
        seed=4, tau_squared=False, precision="fp32", eval_batch_size=2, train_tokens=300)
    assert metrics["variants"][0]["label"] == "kd_topk(lam=0.5, tau=2, k=3)"
    with pytest.raises(SystemExit):
        train_lm.main(["--data", str(lm_data), "--arch", "large"])


@pytest.mark.parametrize("overrides", [
    dict(epochs=0), dict(batch_size=0), dict(bptt=0), dict(eval_batch_size=0), dict(lr=0.0),
    dict(train_tokens=7),
    dict(lr=math.inf), dict(clip=-1.0), dict(lr_decay=0.5), dict(decay_after=-1),
    dict(precision="bf16"),
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_config_rejects_bad_values(overrides):
    with pytest.raises(ValueError, match=next(iter(overrides))):
        lm_config(**overrides)


def test_architectures_follow_zaremba():
    assert ARCHITECTURES == ("tiny", "small", "medium")
    for arch, hidden, init in (("small", 200, 0.1), ("medium", 650, 0.05)):
        model = build_lm(arch, 50)
        assert model.decoder.weight.shape == (50, hidden) and model.decoder.bias is not None
        assert len(model.lstms) == 2
        assert all(p.abs().max() <= init for p in model.parameters())
    assert build_lm("medium", 50).dropout.p == 0.5 and build_lm("small", 50).dropout.p == 0.0
    with pytest.raises(ValueError, match="unknown language-model architecture"):
        build_lm("large", 50)
