"""Target distributions ρ, one per distillation method (NOTES §2 table).

Every method trains with the same loss (`partialkd.core.losses`) and differs only in ρ. A method is
one builder function registered with `register_target`; `build_target` validates the inputs
shared by all methods and dispatches. p^τ = softmax(v/τ) is the teacher's tempered output and
t the true class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

_INTEGER_DTYPES = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64})


@dataclass(frozen=True, eq=False)
class TargetInputs:
    """Validated inputs every builder receives."""

    teacher_logits: Tensor | None  # [N, K] v, or None for methods that do not need it
    labels: Tensor  # [N] int64 t
    tau: float
    num_classes: int
    dtype: torch.dtype  # of the returned target

    def teacher_probs(self) -> Tensor:
        """p^τ = softmax(v/τ), [N, K]."""
        assert self.teacher_logits is not None, "guaranteed by TargetSpec.needs_teacher"
        return torch.softmax(self.teacher_logits / self.tau, dim=1)


TargetBuilder = Callable[..., Tensor]  # (TargetInputs, **params) -> ρ [N, K]


@dataclass(frozen=True)
class TargetSpec:
    """A registered method: its builder, whether it needs teacher logits, its parameter names."""

    name: str
    builder: TargetBuilder
    needs_teacher: bool
    params: tuple[str, ...]


TARGETS: dict[str, TargetSpec] = {}


def register_target(
    name: str, *, needs_teacher: bool, params: tuple[str, ...] = ()
) -> Callable[[TargetBuilder], TargetBuilder]:
    """Decorator adding a builder `(inputs, **params) -> ρ` to `TARGETS` under `name`."""

    def register(builder: TargetBuilder) -> TargetBuilder:
        if name in TARGETS:
            raise ValueError(f"method: target {name!r} is already registered")
        TARGETS[name] = TargetSpec(name, builder, needs_teacher, tuple(params))
        return builder

    return register


def distils(method: str) -> bool:
    """Whether `method` takes anything from a teacher (its logits or its class vectors)."""
    spec = _spec(method)
    return spec.needs_teacher or "class_weights" in spec.params


def method_params(method: str) -> tuple[str, ...]:
    """Names of the parameters `method` accepts (beyond teacher logits, labels and τ)."""
    return _spec(method).params


def build_target(
    method: str,
    teacher_logits: Tensor | None,
    labels: Tensor,
    *,
    tau: float,
    num_classes: int | None = None,
    **params: object,
) -> Tensor:
    """Target ρ of `method` for a batch: [N, K], non-negative rows summing to 1."""
    spec = _spec(method)
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)}: not a parameter of {method!r}; allowed: {list(spec.params)}"
        )
    if spec.needs_teacher and teacher_logits is None:
        raise ValueError(f"teacher_logits: method {method!r} needs the teacher's logits")
    check_positive("tau", tau)
    class_weights = params.get("class_weights")
    num_classes = _resolve_num_classes(teacher_logits, class_weights, num_classes)
    labels = check_labels(labels, num_classes)
    if teacher_logits is not None and teacher_logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"teacher_logits: {teacher_logits.shape[0]} rows for {labels.shape[0]} labels"
        )
    source = teacher_logits if teacher_logits is not None else class_weights
    dtype = source.dtype if isinstance(source, Tensor) else torch.float32
    inputs = TargetInputs(teacher_logits, labels, float(tau), num_classes, dtype)
    return spec.builder(inputs, **params)


def class_similarity(class_weights: Tensor, alpha: float, rows: Tensor | None = None) -> Tensor:
    """S = softmax over j of cos(ŵ_i, ŵ_j)/α, [K, K]; row t is KD-sim's target (NOTES §2).
    With `rows` [N], only S[rows], [N, K], each distinct row computed once: a batch needs its
    labels' rows, and the whole S of a 10k-word vocabulary has 10⁸ entries."""
    check_positive("alpha", alpha)
    unit = F.normalize(_matrix("class_weights", class_weights), dim=1)
    if rows is None:
        return torch.softmax(unit @ unit.T / alpha, dim=1)
    classes, inverse = rows.unique(return_inverse=True)
    return torch.softmax(unit[classes] @ unit.T / alpha, dim=1)[inverse]



def similarity_entropy(
    class_weights: Tensor, alpha: float, *, exclude_true: bool, chunk: int = 512
) -> float:
    """Mean over classes t of the normalised entropy of the similarity row a sim target uses
    (NOTES §2), 1 = uniform: kd_sim's S_t, H(S_t)/log K; with `exclude_true` (kd_pt_sim), its
    split of the wrong classes' mass, S_tj/Σ_{j≠t} S_tj over j ≠ t, H/log(K−1), which is 1 when
    K = 2 (kd_pt_sim is kd_pt then). Rows are computed `chunk` at a time in float64: S of a
    10k-word vocabulary is never held whole."""
    weights = class_weights.detach().double()
    num_classes = weights.shape[0]
    support = num_classes - exclude_true
    if support == 1:
        return 1.0
    total = 0.0
    for rows in torch.arange(num_classes, device=weights.device).split(chunk):
        similarity = class_similarity(weights, alpha, rows)
        if exclude_true:
            similarity = similarity.scatter(1, rows[:, None], 0.0)
            similarity = similarity / similarity.sum(1, keepdim=True)
        total += float(torch.special.entr(similarity).sum())
    return total / (num_classes * math.log(support))


def check_labels(labels: Tensor, num_classes: int) -> Tensor:
    """`labels` as int64 after checking they form a 1-D integer tensor with values in 0..K-1."""
    if labels.ndim != 1 or labels.dtype not in _INTEGER_DTYPES:
        raise ValueError(
            f"labels: expected a 1-D integer tensor, got {labels.dtype} "
            f"of shape {tuple(labels.shape)}"
        )
    if ((labels < 0) | (labels >= num_classes)).any():
        raise ValueError(f"labels: values must lie in 0..{num_classes - 1}")
    return labels.long()


def check_positive(name: str, value: float | Tensor) -> None:
    """Raise unless `value` (a number, or every entry of a tensor) is finite and > 0."""
    values = torch.as_tensor(value)
    if not bool((torch.isfinite(values) & (values > 0)).all()):
        raise ValueError(f"{name}: must be finite and > 0, got {value}")


def _spec(method: str) -> TargetSpec:
    if method not in TARGETS:
        raise ValueError(f"method: unknown target method {method!r}; registered: {sorted(TARGETS)}")
    return TARGETS[method]


def _matrix(name: str, x: object) -> Tensor:
    """`x` after checking it is a 2-D float tensor."""
    if not isinstance(x, Tensor) or x.ndim != 2 or not x.is_floating_point():
        got = f"{x.dtype} of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a 2-D float tensor, got {got}")
    return x


def _resolve_num_classes(
    teacher_logits: Tensor | None, class_weights: object, num_classes: int | None
) -> int:
    """K from the teacher's logits, else `num_classes`, else the class-weight rows (all agree)."""
    if teacher_logits is not None:
        columns = _matrix("teacher_logits", teacher_logits).shape[1]
        if num_classes is not None and num_classes != columns:
            raise ValueError(f"num_classes: {num_classes}, but teacher_logits has {columns}")
        num_classes = columns
    if class_weights is not None:
        rows = _matrix("class_weights", class_weights).shape[0]
        if num_classes is not None and rows != num_classes:
            raise ValueError(f"class_weights: {rows} rows for {num_classes} classes")
        num_classes = rows
    if num_classes is None:
        raise ValueError("num_classes: cannot be inferred without teacher_logits or class_weights")
    if num_classes < 2:
        raise ValueError(f"num_classes: need at least 2 classes, got {num_classes}")
    return num_classes


def _keep_true_class(probs: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """ρ_t = p^τ_t; ρ_i = (1 − p^τ_t)·w_i / Σ_{j≠t} w_j for i ≠ t (kd_pt, kd_pt_sim)."""
    is_true = F.one_hot(labels, probs.shape[1]).bool()
    p_true = probs.gather(1, labels[:, None])
    others = weights.masked_fill(is_true, 0.0)
    return torch.where(is_true, p_true, (1 - p_true) * others / others.sum(1, keepdim=True))


@register_target("ce", needs_teacher=False)
def _one_hot(inputs: TargetInputs) -> Tensor:
    """ρ = y: at τ = 1 the loss is plain CE for any λ."""
    return F.one_hot(inputs.labels, inputs.num_classes).to(inputs.dtype)


@register_target("ls", needs_teacher=False)
def _uniform(inputs: TargetInputs) -> Tensor:
    """ρ = 1/K: label smoothing with ε = λ at τ = 1."""
    shape = (inputs.labels.shape[0], inputs.num_classes)
    device = inputs.labels.device
    return torch.full(shape, 1 / inputs.num_classes, dtype=inputs.dtype, device=device)


@register_target("kd", needs_teacher=True)
def _teacher(inputs: TargetInputs) -> Tensor:
    """ρ = p^τ (Hinton KD)."""
    return inputs.teacher_probs()


@register_target("kd_pt", needs_teacher=True)
def _teacher_true_class(inputs: TargetInputs) -> Tensor:
    """ρ_t = p^τ_t, the rest spread uniformly: KD's true-class gradient, no class relations."""
    probs = inputs.teacher_probs()
    return _keep_true_class(probs, inputs.labels, torch.ones_like(probs))


@register_target("kd_sim", needs_teacher=False, params=("class_weights", "alpha"))
def _class_relations(inputs: TargetInputs, *, class_weights: Tensor, alpha: float) -> Tensor:
    """ρ = row t of S: class relations from the teacher's last layer, one target per class."""
    return class_similarity(class_weights, alpha, inputs.labels).to(inputs.dtype)


@register_target("kd_pt_sim", needs_teacher=True, params=("class_weights", "alpha"))
def _true_class_and_relations(
    inputs: TargetInputs, *, class_weights: Tensor, alpha: float
) -> Tensor:
    """ρ_t = p^τ_t; the rest split in proportion to S_ti (i ≠ t)."""
    similarity = class_similarity(class_weights, alpha, inputs.labels).to(inputs.dtype)
    return _keep_true_class(inputs.teacher_probs(), inputs.labels, similarity)


@register_target("kd_topk", needs_teacher=True, params=("k", "renormalize"))
def _teacher_top_k(inputs: TargetInputs, *, k: int, renormalize: bool = False) -> Tensor:
    """The teacher's k largest p^τ_i kept; the rest 1 − Σ top-k spread uniformly over the other
    K − k classes, or, with `renormalize`, dropped and the top k rescaled to sum to 1."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= inputs.num_classes:
        raise ValueError(f"k: expected an int in 1..{inputs.num_classes}, got {k!r}")
    if not isinstance(renormalize, bool):
        raise ValueError(f"renormalize: expected a bool, got {renormalize!r}")
    probs = inputs.teacher_probs()
    top_indices = probs.topk(k, dim=1, sorted=False).indices  # the set matters, not its order
    top = torch.zeros_like(probs, dtype=torch.bool).scatter_(1, top_indices, True)
    kept = torch.where(top, probs, 0.0)
    mass = kept.sum(1, keepdim=True)
    if renormalize:
        return kept / mass
    rest = (1 - mass).clamp_min(0.0) / max(inputs.num_classes - k, 1)  # unused when k = K
    return torch.where(top, probs, rest)
