"""bf16 autocast against float32 on a GPU: the same run (seed, data, schedule) in both precisions.

Not a test: it prints figures for docs/benchmarks.md. For each precision it trains `--arch` with
`ce` on a prepared dataset through the real trainer and prints the per-epoch training loss and
the final validation and test accuracy; then it scores the float32-trained weights under both
precisions and prints how far the logits and the accuracy move.

    python bench/bf16_parity.py --data results/cifar100/data/data.pt --arch resnet20 --epochs 30
"""
from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from partialkd.common.devices import Placement
from partialkd.common.torch_files import load_torch
from partialkd.data.prepared import load_dataset
from partialkd.models.vision import build_image_model
from partialkd.train_images import run
from partialkd.training.images import DeviceImages, ImageTrainConfig, predict


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a prepared image dataset (data.pt)")
    parser.add_argument("--arch", default="resnet20")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bf16_parity needs a GPU: on a CPU the trainer runs in float32 only")
    print(f"device: {torch.cuda.get_device_name()}; {args.arch}, {args.epochs} epochs, seed {args.seed}")
    out = Path(tempfile.mkdtemp(prefix="bf16_parity_"))
    results = {}
    for precision in ("fp32", "auto"):
        config = ImageTrainConfig(args.arch, args.epochs, 64, 0.05, 0.9, 5e-4,
                                  (args.epochs // 2, 3 * args.epochs // 4), 0.1, args.seed,
                                  precision=precision)
        results[precision] = run(args.data, {"ce": {}}, config, out / precision)
        variant = results[precision]["variants"][0]
        print(f"{'bf16' if precision == 'auto' else 'fp32'}: last valid acc {variant['last']['valid']['acc']:.4f}, "
              f"last test acc {variant['last']['test']['acc']:.4f}, "
              f"best-on-valid test acc {variant['best']['test']['acc']:.4f}")
    _score_both_ways(args.data, args.arch, out / "fp32" / "model.pt")


def _score_both_ways(data: str, arch: str, model_path: Path) -> None:
    """The float32-trained network's test logits under float32 and under bf16 autocast."""
    dataset = load_dataset(data)
    model = build_image_model(arch, dataset.num_classes)
    model.load_state_dict(load_torch(model_path, "model")["final_state"])
    logits = {}
    for precision in ("fp32", "auto"):
        placement = Placement.choose(precision)
        images = DeviceImages(dataset["test"], dataset.meta["channel_mean"], dataset.meta["channel_std"],
                              placement)
        logits[precision] = predict(placement.prepare(model), images, 1000, placement)
    difference = (logits["auto"] - logits["fp32"]).abs()
    agree = (logits["auto"].argmax(1) == logits["fp32"].argmax(1)).float().mean()
    print(f"fp32-trained weights, test logits bf16 vs fp32: max |Δ| {difference.max():.4f}, "
          f"mean |Δ| {difference.mean():.4f} (logit scale: mean |z| {logits['fp32'].abs().mean():.3f}); "
          f"same prediction on {100 * agree:.2f}% of test images")


if __name__ == "__main__":
    main()
