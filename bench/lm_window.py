"""The cost of one Penn Treebank training window per method: target ρ, shared loss, whole step.

Not a test: it prints figures (docs/benchmarks.md records them with the machine). A window is
`--bptt` × `--batch-size` tokens of a 10k-word vocabulary, so every per-token tensor is
[tokens, 10k]. For each method it times the target alone, the loss's forward and backward
alone, and the real training step (`training.lm.window_loss`, backward, SGD) of `--student`
distilled from a random `--teacher`. Run it twice, with and without the allocator settings of
workflow/rules/common.smk, to see what they change:

    python bench/lm_window.py --threads 1
    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 python bench/lm_window.py --threads 1
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import torch

from partialkd.common.devices import Placement
from partialkd.core.grid import Variant
from partialkd.core.losses import distillation_loss
from partialkd.core.targets import TARGETS
from partialkd.models.lstm import ARCHITECTURES, build_lm
from partialkd.training.lm import window_loss
from partialkd.training.objective import NetworkObjective

VOCABULARY = 10_000
VARIANTS = (Variant("ce", 0.0, 1.0), Variant("ls", 0.1, 1.0), Variant("kd", 0.9, 2.0),
            Variant("kd_pt", 0.9, 2.0), Variant("kd_sim", 0.9, 1.0, (("alpha", 0.5),)),
            Variant("kd_pt_sim", 0.9, 2.0, (("alpha", 0.2),)), Variant("kd_topk", 0.9, 2.0, (("k", 100),)),
            Variant("kd_topk", 0.9, 2.0, (("k", 2500),)))


def milliseconds(work: Callable[[], object], repeats: int) -> float:
    """Mean wall time of `work` in ms, after one warm-up call."""
    work()
    started = time.perf_counter()
    for _ in range(repeats):
        work()
    return 1000 * (time.perf_counter() - started) / repeats


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", choices=ARCHITECTURES, default="tiny")
    parser.add_argument("--teacher", choices=ARCHITECTURES, default="small")
    parser.add_argument("--bptt", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tokens = args.bptt * args.batch_size
    student = build_lm(args.student, VOCABULARY)
    teacher = build_lm(args.teacher, VOCABULARY).requires_grad_(False).eval()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    placement = Placement(torch.device("cpu"), bf16=False)
    x, y = (torch.randint(VOCABULARY, (args.bptt, args.batch_size)) for _ in range(2))
    teacher_logits = teacher(x)[0].flatten(0, 1)
    class_weights = teacher.decoder.weight.float()
    print(f"{args.student} student, {args.teacher} teacher, {tokens} tokens a window, "
          f"{args.threads} thread(s); ms per window")
    print(f"{'variant':<42} {'target':>7} {'loss':>7} {'step':>7}  tokens/s")
    for variant in VARIANTS:
        target = variant.target(teacher_logits, y.flatten(), VOCABULARY, class_weights)
        logits = torch.randn(tokens, VOCABULARY, requires_grad=True)
        loss_ms = milliseconds(lambda: distillation_loss(logits, y.flatten(), target, lam=variant.lam,
                                                          tau=variant.tau).backward(), args.repeats)
        target_ms = milliseconds(lambda: variant.target(teacher_logits, y.flatten(), VOCABULARY,
                                                         class_weights), args.repeats)
        reads = TARGETS[variant.method].needs_teacher  # as train_lm: the teacher runs only if read
        objective = NetworkObjective(variant, teacher if reads else None, class_weights, VOCABULARY, True)

        def step() -> None:
            loss, _ = window_loss(student, objective, x, y, (None, None), placement)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        step_ms = milliseconds(step, args.repeats)
        print(f"{variant.label:<42} {target_ms:7.1f} {loss_ms:7.1f} {step_ms:7.1f}  {1000 * tokens / step_ms:8.0f}")


if __name__ == "__main__":
    main()
