"""Tests for the target distributions ρ of NOTES §2 and their input validation."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.testing import assert_close

from partialkd.core import targets
from partialkd.core.methods import SIMILARITY_TARGETS
from partialkd.core.targets import TARGETS, build_target, class_similarity, method_params, similarity_entropy
from helpers.target_examples import F64, gen, random_batch, example_params, example_target


def assert_distribution(rho: Tensor, num_examples: int, num_classes: int) -> None:
    assert rho.shape == (num_examples, num_classes)
    assert bool((rho >= 0).all())
    assert_close(rho.sum(1), torch.ones(num_examples, dtype=rho.dtype))


# Teacher rows at τ = 1: p_t = 1 (first), p_t ≈ 0 (second), a tie between wrong classes (third).
SATURATED = (
    torch.tensor([[100.0, 0, 0], [0, 100, 0], [0, 50, 50]], dtype=F64),
    torch.tensor([0, 0, 0]),
)
CASES: dict[str, tuple[Tensor, Tensor, float]] = {
    "random_tau1": (*random_batch(8, 6), 1.0),
    "random_tau4": (*random_batch(8, 6), 4.0),
    "two_classes": (*random_batch(8, 2), 2.0),
    "saturated_teacher": (*SATURATED, 1.0),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("method", sorted(TARGETS))
def test_every_target_is_a_distribution(method: str, case: str) -> None:
    teacher, labels, tau = CASES[case]
    assert_distribution(example_target(method, teacher, labels, tau), *teacher.shape)


def test_all_paper_methods_are_registered() -> None:
    assert set(TARGETS) >= {"ce", "ls", "kd", "kd_pt", "kd_sim", "kd_pt_sim", "kd_topk"}
    assert method_params("kd") == ()
    assert method_params("kd_pt_sim") == ("class_weights", "alpha")
    assert method_params("kd_topk") == ("k", "renormalize")


def test_ce_is_one_hot_and_ls_is_uniform() -> None:
    labels = torch.tensor([2, 0, 1])
    assert torch.equal(
        build_target("ce", None, labels, tau=1.0, num_classes=3), torch.eye(3)[labels]
    )
    assert torch.equal(
        build_target("ls", None, labels, tau=1.0, num_classes=4), torch.full((3, 4), 0.25)
    )


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_kd_is_the_tempered_teacher(tau: float) -> None:
    teacher, labels = random_batch(5, 4)
    assert_close(build_target("kd", teacher, labels, tau=tau), torch.softmax(teacher / tau, 1))


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_kd_pt_keeps_true_class_and_spreads_the_rest_uniformly(tau: float) -> None:
    teacher, labels = random_batch(5, 4)
    rho = build_target("kd_pt", teacher, labels, tau=tau)
    p_true = torch.softmax(teacher / tau, 1).gather(1, labels[:, None])
    is_true = torch.eye(4, dtype=torch.bool)[labels]
    assert_close(rho.gather(1, labels[:, None]), p_true)
    assert_close(rho[~is_true].view(5, 3), ((1 - p_true) / 3).expand(5, 3))


def test_kd_pt_equals_kd_with_two_classes() -> None:
    teacher, labels = random_batch(6, 2)
    assert_close(
        build_target("kd_pt", teacher, labels, tau=2.0),
        build_target("kd", teacher, labels, tau=2.0),
    )


def test_kd_pt_sim_splits_the_rest_by_class_similarity() -> None:
    teacher, labels = random_batch(5, 4)
    params = example_params("kd_pt_sim", 4)
    rho = build_target("kd_pt_sim", teacher, labels, tau=2.0, **params)
    similarity = class_similarity(params["class_weights"], params["alpha"])[labels]
    is_true = torch.eye(4, dtype=torch.bool)[labels]
    p_true = torch.softmax(teacher / 2, 1).gather(1, labels[:, None])
    others = similarity[~is_true].view(5, 3)
    assert_close(rho.gather(1, labels[:, None]), p_true)
    assert_close(rho[~is_true].view(5, 3), (1 - p_true) * others / others.sum(1, keepdim=True))


def test_class_similarity_is_a_softmax_of_cosines() -> None:
    weights = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]], dtype=F64)
    cosines = torch.tensor([[1, 0, 0.5**0.5], [0, 1, 0.5**0.5], [0.5**0.5, 0.5**0.5, 1]], dtype=F64)
    assert_close(class_similarity(weights, 0.5), torch.softmax(cosines / 0.5, 1))


def test_class_similarity_rows_are_the_rows_of_the_whole_matrix() -> None:
    weights = torch.randn(7, 3, generator=gen(2), dtype=F64)
    rows = torch.tensor([4, 0, 4, 6, 0, 2])  # repeated and unordered, as a batch's labels are
    assert_close(class_similarity(weights, 0.3, rows), class_similarity(weights, 0.3)[rows])


def normalised_entropy(rows: Tensor) -> Tensor:
    """H(row)/log(len(row)) of each row of a [N, M] matrix of distributions."""
    return torch.special.entr(rows).sum(1) / math.log(rows.shape[1])


@pytest.mark.parametrize("method", sorted(SIMILARITY_TARGETS))
def test_similarity_entropy_is_that_of_the_rows_the_target_uses(method: str) -> None:
    """kd_sim: ρ itself, over K classes; kd_pt_sim: ρ's wrong classes over their mass, K − 1."""
    num_classes = 7
    teacher, _ = random_batch(num_classes, num_classes)
    labels = torch.arange(num_classes)  # one target per class
    params = example_params(method, num_classes)
    rho = build_target(method, teacher, labels, tau=2.0, **params)
    if SIMILARITY_TARGETS[method]:
        rho = rho[~torch.eye(num_classes, dtype=torch.bool)].view(num_classes, num_classes - 1)
        rho = rho / rho.sum(1, keepdim=True)
    measured = similarity_entropy(
        params["class_weights"], params["alpha"], exclude_true=SIMILARITY_TARGETS[method]
    )
    assert measured == pytest.approx(float(normalised_entropy(rho).mean()), abs=1e-12)


@pytest.mark.parametrize("exclude_true", [False, True])
def test_similarity_entropy_is_one_for_uniform_rows(exclude_true: bool) -> None:
    identical = torch.ones(6, 3, dtype=F64)
    spread = torch.randn(6, 3, generator=gen(3), dtype=F64)
    assert similarity_entropy(identical, 0.05, exclude_true=exclude_true) == pytest.approx(1, abs=1e-6)
    assert similarity_entropy(spread, 1e6, exclude_true=exclude_true) == pytest.approx(1, abs=1e-6)
    assert similarity_entropy(spread, 0.3, exclude_true=exclude_true) < 0.99


@pytest.mark.parametrize("exclude_true, expected", [(False, math.log(5) / math.log(10)),
                                                    (True, math.log(4) / math.log(9))])
def test_similarity_entropy_of_clustered_classes_at_small_alpha(
    exclude_true: bool, expected: float
) -> None:
    """Two opposite clusters of five classes: at α = 0.05 each row is uniform over its own cluster
    (with the true class or without it) and about 0 elsewhere."""
    centres = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]], dtype=F64).repeat_interleave(5, 0)
    weights = centres + 1e-3 * torch.randn(10, 3, generator=gen(4), dtype=F64)
    measured = similarity_entropy(weights, 0.05, exclude_true=exclude_true)
    assert measured == pytest.approx(expected, abs=1e-3) and measured < 0.75


@pytest.mark.parametrize("exclude_true", [False, True])
def test_similarity_entropy_in_chunks_equals_the_whole_matrix_at_once(exclude_true: bool) -> None:
    weights = torch.randn(11, 4, generator=gen(5), dtype=torch.float32)
    whole = similarity_entropy(weights, 0.2, exclude_true=exclude_true, chunk=11)
    for chunk in (1, 3, 4):
        assert similarity_entropy(weights, 0.2, exclude_true=exclude_true, chunk=chunk) == (
            pytest.approx(whole, abs=1e-12)
        )


def test_similarity_entropy_of_two_classes_without_the_true_one_is_one() -> None:
    """With K = 2 the wrong classes' part is one class: kd_pt_sim is kd_pt, uniform by definition."""
    weights = torch.randn(2, 3, generator=gen(6), dtype=F64)
    assert similarity_entropy(weights, 0.1, exclude_true=True) == 1.0


def test_kd_sim_argmax_is_the_true_class_for_small_alpha() -> None:
    weights = torch.randn(6, 4, generator=gen(1), dtype=F64)
    labels = torch.arange(6)
    rho = build_target("kd_sim", None, labels, tau=1.0, class_weights=weights, alpha=0.05)
    assert torch.equal(rho.argmax(1), labels)


def test_kd_sim_ignores_teacher_logits() -> None:
    (teacher_a, labels), (teacher_b, _) = random_batch(5, 4, seed=0), random_batch(5, 4, seed=1)
    params = example_params("kd_sim", 4)
    rhos = [
        build_target("kd_sim", t, labels, tau=2.0, **params) for t in (teacher_a, teacher_b, None)
    ]
    assert torch.equal(rhos[0], rhos[1]) and torch.equal(rhos[0], rhos[2])


@pytest.mark.parametrize("renormalize", [False, True])
@pytest.mark.parametrize("k", [1, 3, 6])
def test_kd_topk_keeps_the_k_largest_teacher_probabilities(k: int, renormalize: bool) -> None:
    teacher, labels = random_batch(8, 6)
    rho = build_target("kd_topk", teacher, labels, tau=2.0, k=k, renormalize=renormalize)
    probs = torch.softmax(teacher / 2, 1)
    kept, top = probs.topk(k, 1)
    rest = torch.ones_like(probs, dtype=torch.bool).scatter(1, top, False)
    mass = kept.sum(1, keepdim=True)
    expected_rest = torch.zeros_like(mass) if renormalize else (1 - mass) / max(6 - k, 1)
    assert_distribution(rho, 8, 6)
    assert_close(rho.gather(1, top), kept / mass if renormalize else kept)
    assert_close(rho[rest].view(8, 6 - k), expected_rest.expand(8, 6 - k))


@pytest.mark.parametrize("renormalize", [False, True])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_kd_topk_with_a_saturated_teacher_is_a_distribution(k: int, renormalize: bool) -> None:
    teacher, labels = SATURATED
    rho = build_target("kd_topk", teacher, labels, tau=1.0, k=k, renormalize=renormalize)
    assert_distribution(rho, 3, 3)


def test_kd_topk_with_k_equal_to_num_classes_is_kd() -> None:
    teacher, labels = random_batch(8, 6)
    kd = build_target("kd", teacher, labels, tau=3.0)
    assert torch.equal(build_target("kd_topk", teacher, labels, tau=3.0, k=6), kd)
    assert_close(build_target("kd_topk", teacher, labels, tau=3.0, k=6, renormalize=True), kd)


@pytest.mark.parametrize(
    ("method", "teacher_dtype", "expected"),
    [
        ("kd", torch.float32, torch.float32),
        ("ce", F64, F64),
        ("kd_sim", None, F64),
        ("ls", None, torch.float32),
    ],
)
def test_output_dtype(
    method: str, teacher_dtype: torch.dtype | None, expected: torch.dtype
) -> None:
    teacher, labels = random_batch(3, 4)
    teacher_logits = None if teacher_dtype is None else teacher.to(teacher_dtype)
    rho = build_target(
        method, teacher_logits, labels, tau=1.0, num_classes=4, **example_params(method, 4)
    )
    assert rho.dtype == expected


def test_register_target_adds_a_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets, "TARGETS", dict(TARGETS))

    @targets.register_target("half_teacher", needs_teacher=True, params=("weight",))
    def _half(inputs: targets.TargetInputs, *, weight: float) -> Tensor:
        return weight * inputs.teacher_probs() + (1 - weight) / inputs.num_classes

    teacher, labels = random_batch(4, 5)
    assert_distribution(
        targets.build_target("half_teacher", teacher, labels, tau=1.0, weight=0.5), 4, 5
    )
    with pytest.raises(ValueError, match="already registered"):
        targets.register_target("kd", needs_teacher=True)(_half)


# (method, overrides of the valid inputs below, parameter the error must name)
BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("kd", {"tau": 0.0}, "tau"),
    ("kd", {"tau": -1.0}, "tau"),
    ("kd", {"tau": math.nan}, "tau"),
    ("kd", {"tau": math.inf}, "tau"),
    ("kd_topk", {"k": 0}, "k"),
    ("kd_topk", {"k": 4}, "k"),
    ("kd_topk", {"k": 1.0}, "k"),
    ("kd_topk", {"k": True}, "k"),
    ("kd_topk", {"renormalize": "no"}, "renormalize"),
    ("kd_sim", {"alpha": 0.0}, "alpha"),
    ("kd_pt_sim", {"alpha": -0.1}, "alpha"),
    ("kd", {"labels": torch.tensor([0, 1, 2, 3])}, "labels"),
    ("kd", {"labels": torch.tensor([0, -1, 2, 1])}, "labels"),
    ("kd", {"labels": torch.tensor([0.0, 1, 2, 1])}, "labels"),
    ("kd", {"labels": torch.zeros(4, 1, dtype=torch.long)}, "labels"),
    ("kd", {"teacher_logits": torch.zeros(4, 3, 1)}, "teacher_logits"),
    ("kd", {"teacher_logits": torch.zeros(4, 3, dtype=torch.long)}, "teacher_logits"),
    ("kd", {"teacher_logits": torch.zeros(5, 3)}, "teacher_logits"),
    ("kd_sim", {"class_weights": torch.zeros(3)}, "class_weights"),
    ("kd_sim", {"class_weights": [[1.0, 0.0]] * 3}, "class_weights"),
    ("kd_sim", {"class_weights": torch.randn(4, 2)}, "class_weights"),
    ("kd_pt_sim", {"class_weights": torch.randn(2, 2)}, "class_weights"),
    ("ls", {"teacher_logits": None}, "num_classes"),
    ("ls", {"num_classes": 5}, "num_classes"),
    (
        "ce",
        {"teacher_logits": None, "num_classes": 1, "labels": torch.zeros(4, dtype=torch.long)},
        "num_classes",
    ),
]


@pytest.mark.parametrize(("method", "overrides", "name"), BAD_INPUTS)
def test_bad_input_raises_naming_the_parameter(
    method: str, overrides: dict[str, Any], name: str
) -> None:
    teacher, labels = random_batch(4, 3)
    kwargs = {"teacher_logits": teacher, "labels": labels, "tau": 1.0, **example_params(method, 3)}
    with pytest.raises(ValueError, match=rf"^{name}:"):
        build_target(method, **(kwargs | overrides))


@pytest.mark.parametrize(
    "method", sorted(name for name, spec in TARGETS.items() if spec.needs_teacher)
)
def test_missing_teacher_logits_raises(method: str) -> None:
    _, labels = random_batch(4, 3)
    with pytest.raises(ValueError, match=r"^teacher_logits:"):
        build_target(method, None, labels, tau=1.0, num_classes=3, **example_params(method, 3))


def test_unknown_method_lists_the_registered_ones() -> None:
    teacher, labels = random_batch(4, 3)
    with pytest.raises(ValueError, match=r"'kd_fancy'.*registered: \[.*'kd_pt'"):
        build_target("kd_fancy", teacher, labels, tau=1.0)
    with pytest.raises(ValueError, match="kd_fancy"):
        method_params("kd_fancy")


def test_unknown_param_is_named_with_the_allowed_ones() -> None:
    teacher, labels = random_batch(4, 3)
    with pytest.raises(ValueError, match=r"^alpha: .*'kd_topk'.*\['k', 'renormalize'\]"):
        build_target("kd_topk", teacher, labels, tau=1.0, k=2, alpha=0.1)
    with pytest.raises(ValueError, match=r"^k: .*'kd'.*allowed: \[\]"):
        build_target("kd", teacher, labels, tau=1.0, k=2)
