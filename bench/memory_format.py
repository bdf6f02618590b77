"""The convolution layout on this machine: one training step in the default (NCHW) layout
against channels_last, for the image tracks' architectures.

Not a test: it prints figures (docs/benchmarks.md records them with the device). Both layouts
train the same weights on the same random batch in one run; the last column is how far their
logits differ (the layouts sum in different orders, so float rounding differs).

    python bench/memory_format.py                                    # CPU, one thread
    python bench/memory_format.py --archs resnet20 resnet56 --batch-size 64 --threads 2
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from partialkd.models.vision import build_image_model, input_shape

NUM_CLASSES = 10


def milliseconds_per_call(step: Callable[[], None], calls: int) -> float:
    for _ in range(2):  # warm-up: allocator and kernel selection
        step()
    start = time.perf_counter()
    for _ in range(calls):
        step()
    return (time.perf_counter() - start) / calls * 1e3


def training_step(model: nn.Module, images: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(images).logsumexp(dim=1).sum().backward()
    return step


def compare(arch: str, batch_size: int, calls: int, device: torch.device) -> str:
    torch.manual_seed(0)
    plain = build_image_model(arch, NUM_CLASSES).to(device)
    images = torch.randn(batch_size, *input_shape(arch), device=device)
    last = build_image_model(arch, NUM_CLASSES).to(device, memory_format=torch.channels_last)
    last.load_state_dict(plain.state_dict())
    images_last = images.contiguous(memory_format=torch.channels_last)
    times = [milliseconds_per_call(training_step(model, x), calls)
             for model, x in ((plain, images), (last, images_last))]
    with torch.no_grad():
        gap = (plain.eval()(images) - last.eval()(images_last)).abs().max().item()
    return f"| {arch} | {times[0]:.1f} | {times[1]:.1f} | {times[0] / times[1]:.2f} | {gap:.1e} |"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["cnn_16_32", "cnn_24_48", "resnet20", "resnet56"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"{name}; batch {args.batch_size}; ms per training step (forward and backward)")
    print("| architecture | NCHW | channels_last | speed-up | max logit gap |\n|---|---:|---:|---:|---:|")
    for arch in args.archs:
        print(compare(arch, args.batch_size, args.calls, device))


if __name__ == "__main__":
    main()
