"""The CIFAR model family of the standard knowledge-distillation benchmark (32x32 inputs), and
the small CNNs of the Fashion-MNIST track (1x28x28 inputs), and torchvision's ImageNet ResNets
(resnet18, resnet34; randomly initialised, 224x224 inputs).

Architectures and sizes follow the benchmark's reference definitions (RepDistiller, Tian et al.
2020): CIFAR ResNets with basic blocks and a 1x1 conv + BN projection shortcut wherever the
shape changes, and pre-activation Wide ResNets. Every model maps images [N, 3, H, W] to logits
[N, K] through global average pooling and one biased `nn.Linear`, whose weight rows [K, h] are
the class vectors KD-sim uses (`classifier`). All randomness comes from the global torch RNG,
so a caller seeds construction with `torch.manual_seed`.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from partialkd.models.seeding import seeded_network

IMAGENET_ARCHITECTURES = ("resnet18", "resnet34")  # torchvision's, for 224x224 inputs
RESNET_WIDTHS = (16, 16, 32, 64)  # stem, then the three stages
RESNET_X4_WIDTHS = (32, 64, 128, 256)


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Post-activation residual block: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class PreActBlock(nn.Module):
    """Wide-ResNet block: conv(relu(bn(conv(relu(bn(x)))))) + shortcut.

    When the shape changes the shortcut is a 1x1 conv of the pre-activated input, as in the
    reference definition; otherwise it is the raw input.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.shortcut: nn.Conv2d | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        residual = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(self.dropout(F.relu(self.bn2(self.conv1(out)))))
        return out + residual


def _stages(block: Callable[[int, int, int], nn.Module], widths: tuple[int, int, int, int],
            n: int) -> list[nn.Sequential]:
    """Three stages of n blocks from the stem width widths[0] to widths[1:], strides 1, 2, 2;
    each stage's first block changes the width and stride, the others keep them."""
    return [nn.Sequential(*(block(in_width if i == 0 else width, width, stride if i == 0 else 1)
                            for i in range(n)))
            for in_width, width, stride in zip(widths[:-1], widths[1:], (1, 2, 2))]


class CifarResNet(nn.Module):
    """ResNet-(6n+2): a 3x3 stem, three stages of n basic blocks (strides 1, 2, 2), pool, fc."""

    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet's depth must be 6n+2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = _conv3x3(3, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1, self.layer2, self.layer3 = _stages(BasicBlock, widths, n)
        self.fc = nn.Linear(widths[-1], num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class WideResNet(nn.Module):
    """WRN-depth-k: a 3x3 stem (16 channels), three stages of (depth-4)/6 pre-activation
    blocks of widths 16k, 32k, 64k (strides 1, 2, 2), a final BN-ReLU, pool and fc."""

    def __init__(self, depth: int, widen_factor: int, num_classes: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"a Wide ResNet's depth must be 6n+4 with n >= 1, got {depth}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = _conv3x3(3, widths[0])
        self.block1, self.block2, self.block3 = _stages(
            partial(PreActBlock, dropout=dropout), widths, n)
        self.bn = nn.BatchNorm2d(widths[-1])
        self.fc = nn.Linear(widths[-1], num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn(out))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class SmallCNN(nn.Module):
    """The Fashion-MNIST teacher (NOTES §4): for 1x28x28 images, two blocks of 3x3 conv (padding
    1), ReLU and 2x2 max-pool (c1 then c2 channels), then a ReLU hidden layer of 128 units and the
    classifier. c1, c2 = 16, 32 gives the pilot's 207k parameters."""

    def __init__(self, c1: int, c2: int, num_classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.hidden = nn.Linear(c2 * 7 * 7, hidden)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(F.relu(self.hidden(torch.flatten(self.features(x), 1))))


def _init_weights(model: nn.Module) -> None:
    """Kaiming-normal convs (fan_out, relu), BN weight 1 / bias 0; Linear keeps its default."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _torchvision(name: str) -> Callable[[int], nn.Module]:
    """torchvision's architecture `name`, randomly initialised (weights=None)."""
    def build(num_classes: int) -> nn.Module:
        from torchvision import models  # here: importing torchvision takes about a second
        return models.get_model(name, weights=None, num_classes=num_classes)
    return build


_BUILDERS: dict[str, Callable[[int], nn.Module]] = {
    **{f"resnet{depth}": partial(CifarResNet, depth, RESNET_WIDTHS)
       for depth in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": partial(CifarResNet, 8, RESNET_X4_WIDTHS),
    "resnet32x4": partial(CifarResNet, 32, RESNET_X4_WIDTHS),
    "wrn_16_2": partial(WideResNet, 16, 2),
    "wrn_40_2": partial(WideResNet, 40, 2),
    **{f"cnn_{c1}_{c2}": partial(SmallCNN, c1, c2) for c1, c2 in ((16, 32), (24, 48), (32, 64), (64, 128))},
    **{name: _torchvision(name) for name in IMAGENET_ARCHITECTURES},
}
ARCHITECTURES: tuple[str, ...] = tuple(_BUILDERS)


def input_shape(arch: str) -> tuple[int, int, int]:
    """(channels, height, width) of the images `arch` is built for: 1x28x28 for the Fashion-MNIST
    CNNs, 3x32x32 for the CIFAR family (torchvision's ResNets pool globally: any size works)."""
    return (1, 28, 28) if arch.startswith("cnn_") else (3, 32, 32)


def build_image_model(arch: str, num_classes: int) -> nn.Module:
    """A freshly initialised `arch` (one of ARCHITECTURES) with `num_classes` outputs."""
    if arch not in _BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    return _BUILDERS[arch](num_classes)


def classifier(model: nn.Module) -> nn.Linear:
    """The model's last linear layer; its weight [K, h] holds the class vectors."""
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer")
    return linears[-1]


def multiply_adds(model: nn.Module, input_size: tuple[int, ...] = (1, 3, 32, 32)) -> int:
    """Forward multiply-adds per image of the Conv2d and Linear layers, counted with hooks on
    one forward pass of zeros of `input_size` (in eval mode, without gradients)."""
    counts: list[int] = []

    def count(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kernel_area = module.kernel_size[0] * module.kernel_size[1]
            counts.append(output.numel() * (module.in_channels // module.groups) * kernel_area)
        else:
            counts.append(output.numel() * module.in_features)

    handles = [module.register_forward_hook(count) for module in model.modules()
               if isinstance(module, (nn.Conv2d, nn.Linear))]
    parameter = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_size, device=parameter.device, dtype=parameter.dtype))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return sum(counts) // input_size[0]


def seeded_model(arch: str, num_classes: int, seed: int) -> nn.Module:
    """The initial image network of `seed`: the same weights for every method (paired comparison)."""
    return seeded_network(lambda: build_image_model(arch, num_classes), seed)
