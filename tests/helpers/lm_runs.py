"""A tiny Markov-chain text as a prepared language-model dataset, and a tiny LSTM configuration."""
from __future__ import annotations

from typing import Any
import torch
from partialkd.data.prepared import Dataset
from partialkd.data.ptb import Texts, prepare_ptb
from partialkd.training.lm import LMTrainConfig


WORDS = 24


def markov_text(tokens: int, seed: int, words: int = WORDS) -> str:
    """Lines of 5-14 words; after word i comes i+1 (p 0.6), i+3 (0.25) or i+7 (0.15), mod `words`;
    the first line holds every word once, so the vocabulary is the same for every seed."""
    generator = torch.Generator().manual_seed(seed)
    steps = torch.tensor([1, 3, 7])[torch.multinomial(torch.tensor([0.6, 0.25, 0.15]), tokens, True,
                                                      generator=generator)]
    ids = (steps.cumsum(0) % words).tolist()
    lines = [list(range(words))]
    while ids:
        length = int(torch.randint(5, 15, (), generator=generator))
        lines.append(ids[:length])
        ids = ids[length:]
    return "".join(" " + "".join(f"w{i:02d} " for i in line) + "\n" for line in lines)


def markov_dataset(words: int = WORDS) -> Dataset:
    text = {"train": markov_text(3000, 0, words), "valid": markov_text(500, 1, words),
            "test": markov_text(500, 2, words)}
    return prepare_ptb(Texts("generated", "tests", text, {}))


def lm_config(**overrides: Any) -> LMTrainConfig:
    values: dict[str, Any] = dict(arch="tiny", epochs=4, batch_size=8, bptt=10, lr=1.0, lr_decay=2.0,
                                  decay_after=2, clip=5.0, seed=0, eval_batch_size=4)
    values.update(overrides)
    return LMTrainConfig(**values)
