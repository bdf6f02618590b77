"""Where and how a network's forward passes run: the device, bf16 autocast on a GPU, and the
channels_last layout of images and convolution weights."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

# The layout of images and convolution weights on every device: on one CPU thread a training
# step of the Fashion-MNIST CNNs and of the CIFAR ResNets is 1.3-1.5x faster than in the default
# layout (bench/memory_format.py, docs/benchmarks.md); the GPU runs used it before the CPU did.
MEMORY_FORMAT = torch.channels_last
PRECISIONS = ("auto", "fp32")  # auto: bf16 autocast on a GPU, fp32 on a CPU


@dataclass(frozen=True)
class Placement:
    """Where and how the forward passes run."""
    device: torch.device
    bf16: bool

    @classmethod
    def choose(cls, precision: str) -> Placement:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return cls(device, device.type == "cuda" and precision == "auto")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, model: nn.Module) -> nn.Module:
        return model.to(self.device, memory_format=MEMORY_FORMAT)
