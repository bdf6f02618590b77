"""A teacher's logits of every augmented training view, once, for its students:
`python -m partialkd.cache_teacher --data data.pt --teacher T/model.pt --out logits.pt`.

The cache (training.teacher_cache) holds the logits of the 162 pad-4 crop × flip views of every
training image, computed as the students' trainer computes them (`--precision`: the students'
recipe precision), with the teacher's and the data's sha256 inside; `train_images
--teacher-cache` reads it and refuses one computed from another teacher or other data.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from partialkd.common.devices import PRECISIONS, Placement
from partialkd.data.prepared import load_dataset
from partialkd.training.cli import positive_int
from partialkd.training.images import DeviceImages, load_image_teacher
from partialkd.training.run_directory import sha256
from partialkd.training.teacher_cache import CACHE_DTYPES, save_cache, view_logits


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m partialkd.cache_teacher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="prepared dataset (data.pt)")
    parser.add_argument("--teacher", required=True, help="a teacher run's model.pt")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="as the students' recipe: bf16 autocast on a GPU for auto")
    parser.add_argument("--dtype", choices=CACHE_DTYPES, default="auto",
                        help="the logits' dtype in the cache: auto keeps the teacher's (exact)")
    parser.add_argument("--batch-size", type=positive_int, default=500, help="images per forward pass")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    dataset = load_dataset(args.data)
    placement = Placement.choose(args.precision)
    teacher = placement.prepare(load_image_teacher(args.teacher, dataset.num_classes))
    train = DeviceImages(dataset["train"], dataset.meta["channel_mean"], dataset.meta["channel_std"], placement)
    logits = view_logits(teacher, train, placement, args.batch_size, args.dtype)
    save_cache(logits, args.out, sha256(args.teacher), sha256(args.data))
    logging.info("%s: logits %s (%s, %.2f GB) of %s", args.out, list(logits.shape), logits.dtype,
                 logits.nbytes / 1e9, args.teacher)


if __name__ == "__main__":
    main()
