"""Tests for the CIFAR model family: sizes and costs of the KD benchmark, shapes, seeding."""

from __future__ import annotations

from functools import cache

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from partialkd.models.vision import ARCHITECTURES, build_image_model, classifier, input_shape, multiply_adds

K = 100

# Parameter counts (K = 100) of the benchmark's reference definitions (RepDistiller
# models/resnet.py and models/wrn.py); the published sizes are resnet20 0.28 M, resnet56 0.86 M,
# resnet110 1.7 M, resnet8x4 1.23 M, resnet32x4 7.43 M, wrn_16_2 0.70 M, wrn_40_2 2.26 M.
REFERENCE_PARAMETERS = {
    "resnet8": 83_892,
    "resnet14": 181_108,
    "resnet20": 278_324,
    "resnet32": 472_756,
    "resnet44": 667_188,
    "resnet56": 861_620,
    "resnet110": 1_736_564,
    "resnet8x4": 1_233_540,
    "resnet32x4": 7_433_860,
    "wrn_16_2": 703_284,
    "wrn_40_2": 2_255_156,
    "cnn_16_32": 218_532,  # at K = 100; 206,922 at Fashion-MNIST's K = 10 (NOTES §4: ≈ 207k)
}
# Published forward costs per 32x32 image, in multiply-adds.
REFERENCE_MULTIPLY_ADDS = {"resnet20": 41e6, "resnet56": 126e6, "resnet110": 253e6}
# The classifier's input width h of each family.
FEATURE_WIDTHS = {"resnet8x4": 256, "resnet32x4": 256, "wrn_16_2": 128, "wrn_40_2": 128}


@cache
def model(arch: str) -> nn.Module:
    """One seeded instance of `arch` in eval mode, shared by the tests (built once)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_image_model(arch, K).eval()


def seeded_state(arch: str, seed: int) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_image_model(arch, K).state_dict()


def num_parameters(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def test_architectures_registry() -> None:
    assert set(ARCHITECTURES) == {
        "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
        "resnet8x4", "resnet32x4", "wrn_16_2", "wrn_40_2", "cnn_16_32", "cnn_24_48", "cnn_32_64", "cnn_64_128",
        "resnet18", "resnet34"}


@pytest.mark.parametrize("arch", REFERENCE_PARAMETERS)
def test_parameter_count_matches_benchmark(arch: str) -> None:
    count = num_parameters(model(arch))
    assert count == pytest.approx(REFERENCE_PARAMETERS[arch], rel=0.02)
    assert count == REFERENCE_PARAMETERS[arch]  # the reference definitions, exactly


@pytest.mark.parametrize("arch", REFERENCE_MULTIPLY_ADDS)
def test_multiply_adds_match_benchmark(arch: str) -> None:
    assert multiply_adds(model(arch)) == pytest.approx(REFERENCE_MULTIPLY_ADDS[arch], rel=0.05)


def test_multiply_adds_counts_convs_and_linears() -> None:
    net = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1, groups=2), nn.ReLU(),
                        nn.Conv2d(6, 8, 1, stride=2), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    expected = 6 * 8 * 8 * (4 // 2) * 9 + 8 * 4 * 4 * 6 + 8 * 4 * 4 * 5
    net.train()
    assert multiply_adds(net, input_size=(3, 4, 8, 8)) == expected
    assert net.training  # the mode is restored
    assert not net[0]._forward_hooks  # the hooks are removed


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_forward_gives_logits_also_in_channels_last(arch: str) -> None:
    net = model(arch)
    x = torch.randn(2, *input_shape(arch), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = net(x)
        logits_cl = net(x.to(memory_format=torch.channels_last))
    assert logits.shape == logits_cl.shape == (2, K)
    assert torch.isfinite(logits).all()
    assert_close(logits_cl, logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ["resnet8", "wrn_16_2"])
def test_trains_under_autocast_in_channels_last(arch: str) -> None:
    net = build_image_model(arch, K)  # a fresh one: training mode updates the BN statistics
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(x.to(memory_format=torch.channels_last))
    assert logits.shape == (4, K) and logits.dtype == torch.bfloat16
    logits.float().logsumexp(dim=1).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("arch", ["resnet20", *FEATURE_WIDTHS])
def test_classifier_is_the_last_linear_layer(arch: str) -> None:
    net = model(arch)
    layer = classifier(net)
    assert isinstance(layer, nn.Linear) and layer.bias is not None
    assert layer.weight.shape == (K, FEATURE_WIDTHS.get(arch, 64))
    features = []
    handle = layer.register_forward_hook(lambda module, inputs, output: features.append(output))
    try:
        with torch.no_grad():
            logits = net(torch.zeros(1, 3, 32, 32))
    finally:
        handle.remove()
    assert features[0] is logits  # its output is the model's output


def test_classifier_refuses_a_model_without_linear_layer() -> None:
    with pytest.raises(ValueError, match="no nn.Linear"):
        classifier(nn.Conv2d(3, 4, 3))


@pytest.mark.parametrize("arch", ["resnet8", "wrn_16_2"])
def test_same_seed_same_weights_different_seed_different(arch: str) -> None:
    first, again, other = seeded_state(arch, 0), seeded_state(arch, 0), seeded_state(arch, 1)
    for name, tensor in first.items():
        assert torch.equal(tensor, again[name]), name
    for name in ("conv1.weight", "fc.weight", "fc.bias"):
        assert not torch.equal(first[name], other[name]), name


def test_initialisation() -> None:
    """Kaiming-normal (fan_out, relu) convs and unit-weight, zero-bias batch norms."""
    net = model("resnet32x4")
    conv = net.layer3[1].conv1  # 256 -> 256, 3x3: std sqrt(2 / (256 * 9))
    assert conv.weight.std().item() == pytest.approx((2 / (256 * 9)) ** 0.5, rel=0.02)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.equal(module.weight, torch.ones_like(module.weight))
            assert torch.equal(module.bias, torch.zeros_like(module.bias))


def test_unknown_architecture_is_refused_with_the_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'resnet19'") as error:
        build_image_model("resnet19", K)
    assert all(arch in str(error.value) for arch in ARCHITECTURES)
