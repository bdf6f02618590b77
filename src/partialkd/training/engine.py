"""The epoch loop shared by every trainer (`run_epochs`) and its exact resume.

`run_epochs` trains whatever a track's `Loop` describes (one model, or a stack of variants),
selects each variant's best epoch on validation and never looks at method names; a loop with a
`test_accuracy` (the image trainers) also records each variant's test accuracy after every epoch,
never used for selection, whose maximum over the epochs (`peak_test`) is the number the public
benchmarks report. After every epoch the full state (weights, optimiser, schedule, data-order RNG,
best-so-far, the history with its per-epoch test accuracies) is written atomically, so a killed
run restarted with the same arguments ends exactly as an uninterrupted one. The state's file is
named by a digest of the run's configuration (`resume_path`): a run with a changed configuration
starts afresh, says so and leaves the other configuration's state alone (issue 16).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from partialkd.common.io import remove_interrupted_writes
from partialkd.common.torch_files import load_torch, save_torch

log = logging.getLogger(__name__)
EVAL_SPLITS = ("valid", "test")
TEST_KEY = "test_acc"  # the history's per-epoch test accuracies, where the loop records them
T = TypeVar("T")


@dataclass
class BestSoFar:
    """Each variant's best-on-validation epoch, its validation accuracy and its weights."""
    valid_acc: Tensor
    epoch: Tensor
    state: dict[str, Tensor] = field(default_factory=dict)

    @classmethod
    def empty(cls, num_models: int) -> BestSoFar:
        return cls(torch.full((num_models,), -math.inf), torch.zeros(num_models, dtype=torch.long))

    def update(self, epoch: int, valid_acc: Tensor, model: nn.Module) -> None:
        improved = valid_acc > self.valid_acc  # the first best epoch is kept on ties
        self.valid_acc = torch.where(improved, valid_acc, self.valid_acc)
        self.epoch = torch.where(improved, torch.tensor(epoch), self.epoch)
        self.state = {name: _select(improved, param.detach().cpu(), self.state.get(name))
                      for name, param in model.state_dict().items()}


def _select(mask: Tensor, new: Tensor, old: Tensor | None) -> Tensor:
    """`new` where the variant improved, else `old`; a single model (mask [1]) may have scalars."""
    if old is None:
        return new.clone()
    if new.dim() == 0:
        return new.clone() if bool(mask.all()) else old
    return torch.where(mask.view(-1, *[1] * (new.dim() - 1)), new, old)


@dataclass
class FitResult:
    last: dict[str, dict[str, Tensor]]  # metrics of the final weights, per split
    best: dict[str, dict[str, Tensor]]  # metrics of each variant's best-on-validation weights
    best_epoch: Tensor
    best_state: dict[str, Tensor]
    final_state: dict[str, Tensor]
    history: list[dict[str, Any]]
    seconds_per_epoch: float


@dataclass
class Loop:
    """What the shared epoch loop needs from a track's trainer; the callables close over the data."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # data order (and augmentation): part of the resumable state
    labels: list[str]  # one per variant of the stack
    examples_per_epoch: int
    unit: str  # what an example is, for the progress line ("examples", "images")
    train_epoch: Callable[[], Tensor]  # one epoch of updates; mean training loss per variant [S]
    valid_accuracy: Callable[[], Tensor]  # per variant [S]; the score named by `score`
    evaluate: Callable[[], dict[str, dict[str, Tensor]]]  # per split in EVAL_SPLITS, metrics [S]
    score: str = "valid_acc"  # what valid_accuracy returns (maximised): history key, progress line
    test_accuracy: Callable[[], Tensor] | None = None  # per variant [S], after every epoch: TEST_KEY


class WeightsMemo:
    """What was computed from a model's current weights, per key (a split), kept until a parameter
    or buffer changes: every in-place change (an optimiser step, a batch-norm update,
    load_state_dict) moves that tensor's version counter. So the final evaluation reuses the last
    epoch's validation (and test) pass instead of running it again, with the same numbers."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.version: tuple[int, ...] = ()
        self.values: dict[str, Any] = {}

    def get(self, key: str, compute: Callable[[], T]) -> T:
        version = tuple(tensor._version for tensor in itertools.chain(self.model.parameters(),
                                                                       self.model.buffers()))
        if version != self.version:
            self.version, self.values = version, {}
        if key not in self.values:
            self.values[key] = compute()
        return self.values[key]


def resume_path(run_dir: str | Path, fingerprint: dict[str, Any]) -> Path:
    """Where a run of this configuration (`fingerprint`) keeps its resume state in `run_dir`."""
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()
    return Path(run_dir) / f"resume-{digest[:16]}.pt"


def resume_files(run_dir: str | Path) -> list[Path]:
    """Every resume state in `run_dir`, whatever its configuration (`resume.pt`: earlier code's)."""
    return sorted(Path(run_dir).glob("resume*.pt"))


def run_epochs(loop: Loop, epochs: int, run_dir: str | Path, fingerprint: dict[str, Any],
               on_epoch_end: Callable[[int], None] | None = None) -> FitResult:
    """Train for `epochs` (resuming from this configuration's state in `run_dir` if there is one),
    select each variant's best epoch on validation, then score the final and the best weights."""
    state = _State(loop.model, loop.optimizer, loop.schedule, loop.generator,
                   BestSoFar.empty(len(loop.labels)))
    for debris in remove_interrupted_writes(run_dir):
        log.info("removed %s, left by a write that was killed", debris)
    path = resume_path(run_dir, fingerprint)
    _announce_other_states(run_dir, path, fingerprint)
    state.resume_from(path, fingerprint)
    for epoch in range(state.epoch + 1, epochs + 1):
        started = time.perf_counter()
        lr = loop.optimizer.param_groups[0]["lr"]
        mean_loss = loop.train_epoch().cpu()
        _check_finite(mean_loss, loop.labels, epoch, path)
        valid_acc = loop.valid_accuracy().cpu()
        state.best.update(epoch, valid_acc, loop.model)
        tested = {} if loop.test_accuracy is None else {TEST_KEY: loop.test_accuracy().cpu().tolist()}
        seconds = time.perf_counter() - started
        state.history.append({"epoch": epoch, "seconds": seconds, "loss": mean_loss.tolist(),
                              loop.score: valid_acc.tolist(), **tested,
                              f"{loop.unit}_per_second": loop.examples_per_epoch / seconds})
        state.epoch = epoch
        state.save(path, fingerprint)
        log.info("epoch %d/%d  mean loss %.4f  top %s %.4f  %.0f %s/s  lr %.3g", epoch, epochs,
                 mean_loss.mean(), loop.score.replace("_", " "), valid_acc.max(),
                 loop.examples_per_epoch / seconds, loop.unit, lr)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    final_state = {name: value.detach().cpu().clone() for name, value in loop.model.state_dict().items()}
    last = loop.evaluate()
    best = last if bool((state.best.epoch == state.epoch).all()) else _evaluate_best(loop, state.best)
    loop.model.load_state_dict(final_state)
    seconds = [entry["seconds"] for entry in state.history]
    return FitResult(last, best, state.best.epoch, state.best.state, final_state, state.history,
                     sum(seconds) / max(len(seconds), 1))


def peak_test(history: list[dict[str, Any]], index: int) -> dict[str, Any] | None:
    """Variant `index`'s best test accuracy over the epochs and the first epoch that reached it,
    as metrics.json's `peak` ({"epoch": E, "test": {"acc": a}}); None unless every epoch of the
    history recorded it."""
    if not history or any(TEST_KEY not in entry for entry in history):
        return None
    accuracies = [entry[TEST_KEY][index] for entry in history]
    best = max(accuracies)
    return {"epoch": history[accuracies.index(best)]["epoch"], "test": {"acc": best}}


def _evaluate_best(loop: Loop, best: BestSoFar) -> dict[str, dict[str, Tensor]]:
    """The scores of each variant's best-on-validation weights (loaded into the model)."""
    loop.model.load_state_dict(best.state)
    return loop.evaluate()


def _announce_other_states(run_dir: str | Path, path: Path, fingerprint: dict[str, Any]) -> None:
    """Say which resume states of other configurations this run leaves unused, and how they differ."""
    for other in resume_files(run_dir):
        if other == path:
            continue
        try:
            differing = ", ".join(fingerprint_differences(load_torch(other, "resume checkpoint").get("fingerprint", {}),
                                                          fingerprint))
        except ValueError:
            differing = "unreadable"
        log.warning("%s holds the state of another configuration (differs in: %s): not used, this run "
                    "starts afresh; delete it unless you return to that configuration", other, differing)


def _check_finite(mean_loss: Tensor, labels: list[str], epoch: int, path: Path) -> None:
    bad = [label for label, value in zip(labels, mean_loss.tolist()) if not math.isfinite(value)]
    if bad:
        kept = f"epoch {epoch - 1} is kept in {path}; " if epoch > 1 else ""
        raise FloatingPointError(
            f"training loss became non-finite in epoch {epoch} for {', '.join(bad)}; {kept}"
            f"lower the learning rate or drop these grid values (a changed configuration starts "
            "afresh), and re-run")


@dataclass
class _State:
    """Everything a resumed run needs to continue exactly where the killed one stopped."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    order_generator: torch.Generator
    best: BestSoFar
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def save(self, path: str | Path, fingerprint: dict[str, Any]) -> None:
        save_torch({"fingerprint": fingerprint, "epoch": self.epoch, "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                    "order_rng": self.order_generator.get_state(), "best": asdict(self.best),
                    "history": self.history}, path)

    def resume_from(self, path: str | Path, fingerprint: dict[str, Any]) -> None:
        if not Path(path).exists():
            return
        saved = load_torch(path, "resume checkpoint")
        check_fingerprint(saved.get("fingerprint", {}), fingerprint, path)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.schedule.load_state_dict(saved["schedule"])
        self.order_generator.set_state(saved["order_rng"])
        self.best = BestSoFar(**saved["best"])
        self.epoch, self.history = saved["epoch"], saved["history"]
        log.info("resuming %s after epoch %d", path, self.epoch)


def check_fingerprint(saved: dict[str, Any], expected: dict[str, Any], path: str | Path) -> None:
    """Refuse a checkpoint written for another configuration, naming what differs."""
    differing = fingerprint_differences(saved, expected)
    if differing:
        raise ValueError(f"checkpoint {path} was written for another configuration (differs in: "
                         f"{', '.join(differing)}); delete it to start afresh, or restore the "
                         "configuration it was written for")


def fingerprint_differences(saved: Any, expected: Any, where: str = "") -> list[str]:
    """The settings in which two fingerprints differ, as dotted paths with both values
    (`config.lr: 0.05 -> 0.1`)."""
    if isinstance(saved, dict) and isinstance(expected, dict):
        return [difference for key in sorted(saved.keys() | expected.keys(), key=str)
                for difference in fingerprint_differences(saved.get(key), expected.get(key),
                                                          f"{where}.{key}" if where else str(key))]
    if saved == expected:
        return []
    return [f"{where or 'fingerprint'}: {_short(saved)} -> {_short(expected)}"]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
