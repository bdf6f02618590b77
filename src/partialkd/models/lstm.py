"""The Penn Treebank language models: 2-layer LSTMs after Zaremba et al. (2014), NOTES §4.

embedding → dropout → LSTM layer → dropout → LSTM layer → dropout → biased linear decoder to the
vocabulary, whose weight rows [K, h] are the class vectors KD-sim uses. Dropout acts on the
non-recurrent connections only; the layers are separate single-layer LSTMs so that every
dropout mask comes from the torch RNG (cuDNN's multi-layer dropout keeps a state of its own,
which a resumed run could not restore). Every parameter starts uniform in [-init, init]; all
randomness comes from the global torch RNG, so a caller seeds construction with
`torch.manual_seed`.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from partialkd.models.seeding import seeded_network

# Per layer (h, c), each [1, B, h]: what a stream carries from one window to the next.
State = list[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class LMSize:
    hidden: int  # units per layer, also the embedding width
    dropout: float
    init: float  # parameters start uniform in [-init, init]
    layers: int = 2


SIZES: dict[str, LMSize] = {
    "tiny": LMSize(hidden=32, dropout=0.1, init=0.1),  # tests, and the CPU demo's student
    "small": LMSize(hidden=200, dropout=0.0, init=0.1),  # Zaremba "small", the student
    "medium": LMSize(hidden=650, dropout=0.5, init=0.05),  # Zaremba "medium", the teacher
}
ARCHITECTURES: tuple[str, ...] = tuple(SIZES)


class LSTMLanguageModel(nn.Module):
    """Tokens [T, B] and the carried state → logits [T, B, K] and the state after the window."""

    def __init__(self, num_classes: int, size: LMSize) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_classes, size.hidden)
        self.lstms = nn.ModuleList(nn.LSTM(size.hidden, size.hidden) for _ in range(size.layers))
        self.dropout = nn.Dropout(size.dropout)
        self.decoder = nn.Linear(size.hidden, num_classes)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -size.init, size.init)

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        out = self.dropout(self.embedding(tokens))
        new_state = []
        for index, lstm in enumerate(self.lstms):
            out, layer_state = lstm(out, None if state is None else state[index])
            out = self.dropout(out)
            new_state.append(layer_state)
        return self.decoder(out), new_state


def detach(state: State) -> State:
    """The same values cut from the graph: truncated backpropagation through time."""
    return [(h.detach(), c.detach()) for h, c in state]


def build_lm(arch: str, num_classes: int) -> LSTMLanguageModel:
    """A freshly initialised `arch` (one of ARCHITECTURES) over a vocabulary of `num_classes`."""
    if arch not in SIZES:
        raise ValueError(f"unknown language-model architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    return LSTMLanguageModel(num_classes, SIZES[arch])


def seeded_lm(arch: str, num_classes: int, seed: int) -> nn.Module:
    """The initial language model of `seed`: the same weights for every method (paired)."""
    return seeded_network(lambda: build_lm(arch, num_classes), seed)
