"""The Penn Treebank trainer: one LSTM language model, a teacher or a student (NOTES §4).

Every next-token prediction is a K-way classification, so every target of NOTES §2 applies per
token. Training is truncated backpropagation through time (Zaremba et al. 2014): the training
stream (or its first `train_tokens` tokens, for a CPU-sized run) is cut into `batch_size` contiguous columns read in windows of `bptt` steps, the hidden
state carried from window to window and detached between them; SGD on the loss summed over the
window's steps and averaged over the batch, the gradient norm clipped, the learning rate divided
by `lr_decay` every epoch after `decay_after`. The frozen teacher reads the same windows with
its own carried state, and the target ρ is built per window from its logits. Valid and test
streams are cut into `eval_batch_size` contiguous segments, each read in order with carried
state, so every position is scored; the best epoch is the one of lowest validation NLL
(perplexity). On a GPU the forward passes run under bf16 autocast (`Placement`), the loss in
float32.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from partialkd.common.devices import PRECISIONS, Placement
from partialkd.core.metrics import expected_calibration_error
from partialkd.data.prepared import Dataset, Split
from partialkd.models.lstm import LSTMLanguageModel, State, build_lm, detach, seeded_lm
from partialkd.training.engine import EVAL_SPLITS, Loop, WeightsMemo
from partialkd.training.objective import NetworkObjective
from partialkd.training.teachers import teacher_checkpoint

log = logging.getLogger(__name__)
SCORE = "valid_neg_nll"  # the per-epoch selection score (maximised): −NLL, i.e. lowest perplexity


@dataclass(frozen=True)
class LMTrainConfig:
    """Truncated BPTT with SGD, gradient clipping and Zaremba's learning-rate schedule."""
    arch: str
    epochs: int
    batch_size: int  # columns of the training stream
    bptt: int  # steps per window
    lr: float
    lr_decay: float  # the learning rate is divided by this each epoch after `decay_after`
    decay_after: int
    clip: float  # maximal gradient norm
    seed: int
    tau_squared: bool = True
    precision: str = "auto"
    eval_batch_size: int = 10  # contiguous segments of a valid/test stream scored side by side
    train_tokens: int | None = None  # train on the stream's first train_tokens tokens; None: all

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "bptt", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.train_tokens is not None and self.train_tokens < self.batch_size:
            raise ValueError(f"train_tokens must be at least batch_size ({self.batch_size}), got "
                             f"{self.train_tokens}")
        for name in ("lr", "clip"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be finite and > 0, got {getattr(self, name)}")
        if not (math.isfinite(self.lr_decay) and self.lr_decay >= 1) or self.decay_after < 0:
            raise ValueError(f"lr_decay must be finite and >= 1 and decay_after >= 0, got "
                             f"{self.lr_decay}, {self.decay_after}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


def columns(ids: Tensor, count: int, pad: bool) -> Tensor:
    """ids [N] as [L, count]: column j is the j-th of `count` contiguous pieces of the stream.
    With `pad`, L = ceil(N / count) and the last piece ends in zeros; else the rest is dropped."""
    length = -(-len(ids) // count) if pad else len(ids) // count
    padded = torch.cat([ids, ids.new_zeros(length * count - len(ids))]) if pad else ids
    return padded[:length * count].view(count, length).t()


def _upcast(logits: Tensor) -> Tensor:
    """bf16 (autocast) logits as float32; float32 and float64 stay as they are."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def window_loss(model: nn.Module, objective: NetworkObjective, tokens: Tensor, labels: Tensor,
                states: tuple[State | None, State | None], placement: Placement
                ) -> tuple[Tensor, tuple[State, State | None]]:
    """The loss of one window [T, B], averaged over its tokens (NOTES §2, ρ per token), and the
    (student, teacher) states after it."""
    student_state, teacher_state = states
    with placement.autocast():
        logits, student_state = model(tokens, student_state)
        teacher_logits, teacher_state = _teacher_window(objective.teacher, tokens, teacher_state)
    loss = objective.loss(_upcast(logits).flatten(0, 1), teacher_logits, labels.flatten())
    return loss, (student_state, teacher_state)


@torch.no_grad()
def _teacher_window(teacher: nn.Module | None, tokens: Tensor, state: State | None
                    ) -> tuple[Tensor | None, State | None]:
    if teacher is None:
        return None, None
    logits, state = teacher(tokens, state)
    return _upcast(logits).flatten(0, 1), state


def lm_loop(model: nn.Module, splits: dict[str, Split], objective: NetworkObjective,
            config: LMTrainConfig, generator: torch.Generator, placement: Placement) -> Loop:
    """The `Loop` that `training.run_epochs` drives for one language model."""
    train = splits["train"]
    if len(train) < config.batch_size:
        raise ValueError(f"the training stream has {len(train)} tokens, fewer than batch_size "
                         f"{config.batch_size}")
    tokens, labels = (columns(ids[:config.train_tokens].to(placement.device), config.batch_size, pad=False)
                      for ids in (train.x, train.labels))
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    # last_epoch 0 is epoch 1: lr / lr_decay^max(0, epoch − decay_after)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda index: config.lr_decay ** -max(0, index + 1 - config.decay_after))

    memo = WeightsMemo(model)

    def score(split: str) -> dict[str, Tensor]:
        return memo.get(split, lambda: split_metrics(model, splits[split], config.eval_batch_size,
                                                     config.bptt, placement))

    def train_epoch() -> Tensor:
        mean_loss = _train_epoch(model, tokens, labels, objective, optimizer, config, generator,
                                 placement)
        schedule.step()
        return mean_loss

    def valid_score() -> Tensor:
        valid = score("valid")
        log.info("valid perplexity %.2f", valid["ppl"].item())
        return -valid["nll"]

    def evaluate() -> dict[str, dict[str, Tensor]]:
        return {split: score(split) for split in EVAL_SPLITS}

    return Loop(model, optimizer, schedule, generator, [objective.variant.label], tokens.numel(),
                "tokens", train_epoch, valid_score, evaluate, score=SCORE)


def _train_epoch(model: nn.Module, tokens: Tensor, labels: Tensor, objective: NetworkObjective,
                 optimizer: torch.optim.Optimizer, config: LMTrainConfig, generator: torch.Generator,
                 placement: Placement) -> Tensor:
    """One pass over the columns [L, B] from zero states; the mean loss per token [1]. The
    epoch's dropout masks come from a seed drawn from `generator` (saved on resume)."""
    seed = int(torch.randint(2**62, (), generator=generator))
    devices = [placement.device] if placement.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model.train()
        states: tuple[State | None, State | None] = (None, None)
        total = torch.zeros(1, device=placement.device)
        for start in range(0, len(tokens), config.bptt):
            x, y = tokens[start:start + config.bptt], labels[start:start + config.bptt]
            loss, (student_state, teacher_state) = window_loss(model, objective, x, y, states, placement)
            optimizer.zero_grad(set_to_none=True)
            (loss * len(x)).backward()  # Zaremba's objective: summed over steps, mean over the batch
            nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            states = (detach(student_state), teacher_state)
            total += loss.detach() * x.numel()
    return total / tokens.numel()


@torch.no_grad()
def _windows(model: nn.Module, ids: Tensor, segments: int, bptt: int, placement: Placement
             ) -> Iterator[tuple[int, Tensor]]:
    """(first step, logits [T, segments, K]) window by window of the stream `ids` cut into
    `segments` contiguous pieces, each read in order with carried state, in eval mode."""
    model.eval()
    tokens = columns(ids.to(placement.device), segments, pad=True)
    state = None
    for start in range(0, len(tokens), bptt):
        with placement.autocast():
            logits, state = model(tokens[start:start + bptt], state)
        yield start, _upcast(logits)


def split_logits(model: nn.Module, split: Split, segments: int, bptt: int, placement: Placement
                 ) -> Tensor:
    """Float32 logits [N, K] on the CPU of every position of the split's stream, in order."""
    length = -(-len(split) // segments)
    out = torch.empty(segments, length, model.decoder.out_features)
    for start, logits in _windows(model, split.x, segments, bptt, placement):
        out[:, start:start + len(logits)] = logits.transpose(0, 1).cpu()
    return out.view(-1, out.shape[-1])[:len(split)]


def split_metrics(model: nn.Module, split: Split, segments: int, bptt: int, placement: Placement
                  ) -> dict[str, Tensor]:
    """Next-token accuracy, NLL (nats per token), ECE and perplexity exp(NLL) of the split's
    stream, each [1] on the CPU, without holding all its logits at once."""
    labels = columns(split.labels.to(placement.device), segments, pad=True)
    scores = [_token_scores(logits, labels[start:start + len(logits)])
              for start, logits in _windows(model, split.x, segments, bptt, placement)]
    # [3, L, B] → per token in stream order, the padding (at the end) dropped
    nll, confidence, correct = torch.cat(scores, 1).transpose(1, 2).reshape(3, -1)[:, :len(split)]
    metrics = {"acc": correct.mean(), "nll": nll.mean(),
               "ece": expected_calibration_error(confidence, correct)}
    metrics["ppl"] = metrics["nll"].exp()
    return {name: value.reshape(1).float().cpu() for name, value in metrics.items()}


def _token_scores(logits: Tensor, labels: Tensor) -> Tensor:
    """[3, T, B]: per token −log q_label, the confidence max q and whether the argmax is right."""
    log_probs = logits.float().log_softmax(-1)
    confidence, prediction = log_probs.max(-1)
    nll = -log_probs.gather(-1, labels[..., None]).squeeze(-1)
    return torch.stack([nll, confidence.exp(), (prediction == labels).float()])


def frozen_lm(arch: dict[str, Any], state: dict[str, Tensor]) -> LSTMLanguageModel:
    """The language model of a checkpoint's `arch` with `state` loaded, frozen, in eval mode."""
    model = build_lm(arch["name"], arch["num_classes"])
    model.load_state_dict(state)
    return model.requires_grad_(False).eval()


def load_lm_teacher(source: str | Path, num_classes: int) -> LSTMLanguageModel:
    """The frozen language model (best-on-validation weights) of a teacher run's model.pt."""
    saved = teacher_checkpoint(source, {"family": "lm", "num_classes": num_classes})
    return frozen_lm(saved["arch"], saved["best_state"])


def saved_network(arch: dict[str, Any], state: dict[str, Tensor], training: dict[str, Any],
                  dataset: Dataset | None = None) -> tuple[Tensor, Callable[[Split], Tensor]]:
    """A language model's class vectors (decoder rows [K, h]) and its forward pass over a split
    (scored as in training: `eval_batch_size` segments, `bptt` steps a window; on the GPU if any)."""
    placement = Placement.choose("fp32")
    model = placement.prepare(frozen_lm(arch, state))

    def forward(split: Split) -> Tensor:
        return split_logits(model, split, training["eval_batch_size"], training["bptt"], placement)

    return model.decoder.weight.detach().float().cpu(), forward


def initial_network(arch: dict[str, Any], seed: int) -> nn.Module:
    """The language model a run of model.pt's `arch` and `seed` started from."""
    return seeded_lm(arch["name"], arch["num_classes"], seed)
