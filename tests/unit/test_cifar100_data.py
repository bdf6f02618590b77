"""The CIFAR-100 step on small archives in the real format: reading, splitting, checksums,
download (file:// and a local HTTP server), a torchvision root (made by torchvision itself from
such an archive) and the command line."""

from __future__ import annotations

import hashlib
import http.server
import logging
import pickle
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torchvision.datasets import CIFAR100

from helpers.cifar_archive import fake_cifar100, write_cifar100_archive, write_members
from partialkd.data import cifar100
from partialkd.data.cifar100 import FILE_MD5, fetch_archive, load, prepare_cifar100, read_archive, read_folder
from partialkd.data.prepared import Dataset, load_dataset
from partialkd.prepare import main

TRAIN_PER_CLASS, TEST_PER_CLASS = 3, 1
UNREACHABLE = "http://127.0.0.1:9/cifar.tar.gz"  # the discard port: refused at once


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local URLs must not go through a proxy the environment may name."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A fake archive (300 training, 100 test images) and its MD5; never modified."""
    path = tmp_path_factory.mktemp("source") / "cifar-100-python.tar.gz"
    return path, write_cifar100_archive(path, TRAIN_PER_CLASS, TEST_PER_CLASS)


@pytest.fixture(scope="module")
def pickled(source: tuple[Path, str]) -> dict[str, dict]:
    """The archive's members as pickled, read independently of the code under test."""
    with tarfile.open(source[0]) as tar:
        return {name: pickle.load(tar.extractfile(f"cifar-100-python/{name}"), encoding="latin1")
                for name in ("train", "test", "meta")}


def copy_of(source: tuple[Path, str], directory: Path) -> Path:
    path = directory / "cifar-100-python.tar.gz"
    path.write_bytes(source[0].read_bytes())
    return path


def rows(x: torch.Tensor, labels: torch.Tensor) -> list[tuple[bytes, int]]:
    """Each image with its label, as a sortable multiset."""
    return sorted((image.numpy().tobytes(), int(label)) for image, label in zip(x, labels))


def test_read_archive_keeps_labels_and_pixel_layout(source: tuple[Path, str],
                                                     pickled: dict[str, dict]) -> None:
    archive = read_archive(*source)
    assert archive.fine_names == pickled["meta"]["fine_label_names"] and len(archive.fine_names) == 100
    assert archive.coarse_names == pickled["meta"]["coarse_label_names"]
    for name, part, per_class in (("train", archive.train, TRAIN_PER_CLASS),
                                  ("test", archive.test, TEST_PER_CLASS)):
        assert part.images.shape == (100 * per_class, 3, 32, 32) and part.images.dtype == torch.uint8
        assert part.fine.dtype == part.coarse.dtype == torch.int64
        assert part.fine.tolist() == pickled[name]["fine_labels"]
        assert part.coarse.tolist() == pickled[name]["coarse_labels"]
        data = pickled[name]["data"]
        for i, c, h, w in ((0, 0, 0, 1), (1, 1, 5, 30), (7, 2, 31, 3), (len(data) - 1, 2, 17, 9)):
            assert part.images[i, c, h, w] == data[i, c * 1024 + h * 32 + w]  # R, G, B planes, row-major


def test_prepared_dataset_partitions_the_training_set(source: tuple[Path, str]) -> None:
    dataset = prepare_cifar100(read_archive(*source), valid_size=60, split_seed=1)
    archive = read_archive(*source)
    train, valid, test = dataset["train"], dataset["valid"], dataset["test"]
    assert (len(train), len(valid), len(test)) == (240, 60, 100)
    for split in (train, valid, test):
        assert split.x.dtype == torch.uint8 and split.x.shape[1:] == (3, 32, 32)
        assert split.labels.dtype == torch.int64 and split.posterior is None
    assert dataset.num_classes == 100 and dataset.oracle_class_vectors is None and not dataset.has_oracle
    assert len(set(rows(train.x, train.labels)) & set(rows(valid.x, valid.labels))) == 0
    assert rows(torch.cat([train.x, valid.x]), torch.cat([train.labels, valid.labels])) == \
        rows(archive.train.images, archive.train.fine)
    assert torch.equal(test.x, archive.test.images) and torch.equal(test.labels, archive.test.fine)


def test_meta_records_provenance_and_train_channel_moments(source: tuple[Path, str]) -> None:
    dataset = prepare_cifar100(read_archive(*source), valid_size=60, split_seed=1)
    meta = dataset.meta
    assert {key: meta[key] for key in ("track", "md5", "valid_size", "split_seed", "sizes")} == {
        "track": "cifar100", "md5": member_md5s(source[0]), "valid_size": 60, "split_seed": 1,
        "sizes": {"train": 240, "valid": 60, "test": 100}}
    assert meta["fine_class_names"][:2] == ["apple", "aquarium_fish"] and len(meta["coarse_class_names"]) == 20
    pixels = dataset["train"].x.double() / 255
    assert meta["channel_mean"] == pytest.approx(pixels.mean(dim=(0, 2, 3)).tolist(), abs=1e-12)
    assert meta["channel_std"] == pytest.approx(pixels.std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-12)


def test_valid_split_is_fixed_by_the_seed(source: tuple[Path, str]) -> None:
    def valid_x(seed: int) -> torch.Tensor:
        return prepare_cifar100(read_archive(*source), valid_size=30, split_seed=seed)["valid"].x

    assert torch.equal(valid_x(5), valid_x(5))
    assert not torch.equal(valid_x(5), valid_x(6))


@pytest.mark.parametrize("valid_size", [0, -1, 300, 301])
def test_valid_size_out_of_range_is_refused(source: tuple[Path, str], valid_size: int) -> None:
    with pytest.raises(ValueError, match=r"valid_size must be in \[1, 300\)"):
        prepare_cifar100(read_archive(*source), valid_size=valid_size, split_seed=0)


def test_class_groups_are_the_superclasses(source: tuple[Path, str]) -> None:
    groups = prepare_cifar100(read_archive(*source), valid_size=10, split_seed=0).class_groups
    assert groups.dtype == torch.int64 and groups.tolist() == [c // 5 for c in range(100)]


def test_fine_class_in_two_superclasses_is_refused(tmp_path: Path) -> None:
    members = fake_cifar100()
    index = members["test"]["fine_labels"].index(7)
    members["test"]["coarse_labels"][index] = 3  # fine class 7 is in superclass 1 elsewhere
    md5 = write_members(tmp_path / "a.tar.gz", members)
    with pytest.raises(ValueError, match=r"fine class 7 \(beetle\) has 2 superclasses"):
        prepare_cifar100(read_archive(tmp_path / "a.tar.gz", md5), valid_size=10, split_seed=0)


def test_bytes_keys_and_names_are_accepted(tmp_path: Path) -> None:
    """Python 2 pickles may load with bytes keys and names."""
    members = {name: {key.encode(): value for key, value in content.items()}
               for name, content in fake_cifar100().items()}
    members["meta"][b"fine_label_names"] = [name.encode() for name in members["meta"][b"fine_label_names"]]
    md5 = write_members(tmp_path / "a.tar.gz", members)
    dataset = prepare_cifar100(read_archive(tmp_path / "a.tar.gz", md5), valid_size=10, split_seed=0)
    assert dataset.meta["fine_class_names"][-1] == "worm" and dataset.num_classes == 100


@pytest.mark.parametrize("damage, message", [
    (lambda m: m.pop("meta"), r"lacks the member cifar-100-python/meta"),
    (lambda m: m["train"].update(data=m["train"]["data"][:, :-1]), r"train data is uint8 \[300, 3071\]"),
    (lambda m: m["test"].update(fine_labels=m["test"]["fine_labels"][:-1]), r"test fine_labels are not"),
    (lambda m: m["train"].pop("coarse_labels"), r"train lacks \['coarse_labels'\]"),
])
def test_malformed_archive_is_refused(tmp_path: Path, damage, message: str) -> None:
    members = fake_cifar100()
    damage(members)
    path = tmp_path / "a.tar.gz"
    md5 = write_members(path, members)
    with pytest.raises(ValueError, match=message) as error:
        read_archive(path, md5)
    assert str(path) in str(error.value)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def replace_by_another_archive(path: Path) -> None:
    write_cifar100_archive(path, TRAIN_PER_CLASS, TEST_PER_CLASS, seed=1)  # valid, but not the one


@pytest.mark.parametrize("damage", [flip_byte, truncate, replace_by_another_archive])
def test_damaged_archive_is_refused_by_checksum_before_any_pickle(
        source: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage) -> None:
    path = copy_of(source, tmp_path)
    damage(path)
    damaged = path.read_bytes()
    actual = hashlib.md5(damaged).hexdigest()

    def no_pickles(*args, **kwargs):
        raise AssertionError("a pickle was loaded before the checksum was checked")

    monkeypatch.setattr(cifar100.pickle, "loads", no_pickles)
    for attempt in (lambda: fetch_archive(path, UNREACHABLE, source[1]),
                    lambda: read_archive(path, source[1]),
                    lambda: load(path, None, UNREACHABLE, source[1])):
        with pytest.raises(ValueError) as error:
            attempt()
        for part in (str(path), source[1], actual, "Delete it and re-run"):
            assert part in str(error.value)
    assert path.read_bytes() == damaged  # the user's file is left for them to inspect
    with pytest.raises(SystemExit) as error:
        main(["cifar100", "--archive", str(path), "--url", UNREACHABLE, "--md5", source[1],
              "--valid-size", "10", "--split-seed", "0", "--out", str(tmp_path / "data.pt")])
    assert actual in str(error.value.code) and not (tmp_path / "data.pt").exists()


def test_missing_archive_without_network_names_where_to_put_it(tmp_path: Path) -> None:
    path = tmp_path / "raw" / "cifar-100-python.tar.gz"
    with pytest.raises(OSError, match="download of http://127.0.0.1:9/cifar.tar.gz failed") as error:
        fetch_archive(path, UNREACHABLE, "0" * 32)
    assert f"put it at {path} (its MD5 must be {'0' * 32})" in str(error.value)
    assert not path.parent.exists() or not any(path.parent.iterdir())
    with pytest.raises(FileNotFoundError, match=f"not found at {path} and downloading is off"):
        fetch_archive(path, UNREACHABLE, "0" * 32, download=False)


def test_download_from_file_url_lands_verified(source: tuple[Path, str], tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "raw" / "cifar-100-python.tar.gz"
    with caplog.at_level(logging.INFO, logger="partialkd.data.cifar100"):
        assert fetch_archive(path, source[0].as_uri(), source[1]) == path
    assert path.read_bytes() == source[0].read_bytes()
    assert list(path.parent.iterdir()) == [path]  # no temporary file left beside it
    assert "downloaded 100%" in caplog.text
    assert fetch_archive(path, UNREACHABLE, source[1]) == path  # present and valid: no download


def test_download_with_wrong_checksum_leaves_nothing(source: tuple[Path, str], tmp_path: Path) -> None:
    path = tmp_path / "cifar-100-python.tar.gz"
    with pytest.raises(ValueError, match=f"has MD5 {source[1]}, expected {'0' * 32}.*nothing was written"):
        fetch_archive(path, source[0].as_uri(), "0" * 32)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def server(source: tuple[Path, str]) -> Iterator[str]:
    """A local HTTP server: /full serves the archive, /cut announces all of it and sends half."""
    body = source[0].read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body if self.path == "/full" else body[: len(body) // 2])

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_http_download_lands_verified(server: str, source: tuple[Path, str], tmp_path: Path) -> None:
    path = tmp_path / "cifar-100-python.tar.gz"
    fetch_archive(path, f"{server}/full", source[1])
    assert path.read_bytes() == source[0].read_bytes() and list(tmp_path.iterdir()) == [path]


def test_interrupted_http_download_leaves_nothing(server: str, source: tuple[Path, str],
                                                  tmp_path: Path) -> None:
    path = tmp_path / "cifar-100-python.tar.gz"
    with pytest.raises(OSError, match=r"failed \(.*\); nothing was written") as error:
        fetch_archive(path, f"{server}/cut", source[1])
    assert f"put it at {path}" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_command_line_downloads_prepares_and_writes(source: tuple[Path, str], tmp_path: Path) -> None:
    archive, out = tmp_path / "raw" / "cifar-100-python.tar.gz", tmp_path / "data.pt"
    result = subprocess.run(
        [sys.executable, "-m", "partialkd.prepare", "cifar100", "--archive", str(archive),
         "--url", source[0].as_uri(), "--md5", source[1], "--valid-size", "40", "--split-seed", "2",
         "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert archive.read_bytes() == source[0].read_bytes()
    assert_same_dataset(load_dataset(out), prepare_cifar100(read_archive(*source), 40, 2))


def assert_same_dataset(dataset: Dataset, expected: Dataset) -> None:
    assert dataset.meta == expected.meta and dataset.num_classes == 100
    assert torch.equal(dataset.class_groups, expected.class_groups)
    for name in ("train", "valid", "test"):
        assert torch.equal(dataset[name].x, expected[name].x)
        assert torch.equal(dataset[name].labels, expected[name].labels)


def test_command_line_without_archive_or_download_fails_cleanly(tmp_path: Path) -> None:
    archive, out = tmp_path / "cifar-100-python.tar.gz", tmp_path / "data.pt"
    with pytest.raises(SystemExit) as error:
        main(["cifar100", "--archive", str(archive), "--url", UNREACHABLE, "--md5", "0" * 32,
              "--valid-size", "10", "--split-seed", "0", "--no-download", "--out", str(out)])
    assert str(error.value.code).startswith(f"prepare cifar100: CIFAR-100 archive not found at {archive}")
    assert list(tmp_path.iterdir()) == []


def member_md5s(archive: Path) -> dict[str, str]:
    """The MD5 of each pickle in `archive`, read independently of the code under test."""
    with tarfile.open(archive) as tar:
        return {name: hashlib.md5(tar.extractfile(f"cifar-100-python/{name}").read()).hexdigest()
                for name in ("train", "test", "meta")}


def torchvision_cifar100(address: str, source: tuple[Path, str]) -> type[CIFAR100]:
    """torchvision's CIFAR100 with the fake archive's address and MD5s in place of the published ones."""
    md5s = member_md5s(source[0])

    class FakeCIFAR100(CIFAR100):
        url, tgz_md5 = address, source[1]
        train_list, test_list = [["train", md5s["train"]]], [["test", md5s["test"]]]
        meta = {**CIFAR100.meta, "md5": md5s["meta"]}

    return FakeCIFAR100


@pytest.fixture(scope="module")
def torchvision_root(server: str, source: tuple[Path, str],
                     tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root as torchvision's CIFAR100(root, download=True) leaves it, made by torchvision from
    the fake archive on the local server; never modified."""
    root = tmp_path_factory.mktemp("torchvision")
    torchvision_cifar100(f"{server}/full", source)(root, download=True)
    assert sorted(path.name for path in (root / "cifar-100-python").iterdir()) == ["meta", "test", "train"]
    return root


def file_md5_options(source: tuple[Path, str]) -> list[str]:
    return [option for name, md5 in member_md5s(source[0]).items()
            for option in ("--file-md5", f"{name}={md5}")]


def test_torchvision_root_gives_the_dataset_of_the_archive(torchvision_root: Path, source: tuple[Path, str],
                                                           tmp_path: Path) -> None:
    """The data step reads the root, not the archive (absent, downloads off): the same dataset,
    meta included, with the images and labels that torchvision reads there."""
    archive, out = tmp_path / "absent" / "cifar-100-python.tar.gz", tmp_path / "data.pt"
    main(["cifar100", "--torchvision-root", str(torchvision_root), *file_md5_options(source),
          "--archive", str(archive), "--url", UNREACHABLE, "--md5", source[1], "--no-download",
          "--valid-size", "40", "--split-seed", "2", "--out", str(out)])
    assert_same_dataset(load_dataset(out), prepare_cifar100(read_archive(*source), 40, 2))
    assert not archive.parent.exists()
    data = read_folder(torchvision_root / "cifar-100-python", member_md5s(source[0]))
    for train, part in ((True, data.train), (False, data.test)):
        reference = torchvision_cifar100(UNREACHABLE, source)(torchvision_root, train=train)
        assert torch.equal(part.images.permute(0, 2, 3, 1), torch.from_numpy(reference.data))  # HWC there
        assert part.fine.tolist() == reference.targets
    assert data.fine_names == reference.classes


@pytest.mark.parametrize("name", ["train", "meta"])
def test_corrupt_file_in_torchvision_root_is_refused_before_any_pickle(
        torchvision_root: Path, source: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        name: str) -> None:
    folder = tmp_path / "root" / "cifar-100-python"
    shutil.copytree(torchvision_root / "cifar-100-python", folder)
    path = folder / name
    flip_byte(path)
    actual, expected = hashlib.md5(path.read_bytes()).hexdigest(), member_md5s(source[0])[name]

    def no_pickles(*args, **kwargs):
        raise AssertionError("a pickle was loaded before the checksum was checked")

    monkeypatch.setattr(cifar100.pickle, "loads", no_pickles)
    with pytest.raises(ValueError) as error:
        load(tmp_path / "absent.tar.gz", folder.parent, UNREACHABLE, source[1], member_md5s(source[0]),
             download=False)
    for part in (f"CIFAR-100 file {path} has MD5 {actual}, expected {expected}",
                 "set cifar100.data.torchvision_root to null"):
        assert part in str(error.value)
    out = tmp_path / "data.pt"
    with pytest.raises(SystemExit) as exit_:
        main(["cifar100", "--torchvision-root", str(folder.parent), *file_md5_options(source),
              "--archive", str(tmp_path / "absent.tar.gz"), "--url", UNREACHABLE, "--md5", source[1],
              "--valid-size", "10", "--split-seed", "0", "--out", str(out)])
    assert str(path) in str(exit_.value.code) and actual in str(exit_.value.code) and not out.exists()


def test_torchvision_root_is_checked_against_the_published_md5s(torchvision_root: Path,
                                                                source: tuple[Path, str]) -> None:
    """Without --file-md5 the files must be the published ones (torchvision's CIFAR100 lists)."""
    assert FILE_MD5 == {"train": "16019d7e3df5f24257cddd939b257f8d",
                        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
                        "meta": "7973b15100ade9c7d40fb424638fde48"}
    with pytest.raises(ValueError, match=f"train has MD5 {member_md5s(source[0])['train']}, "
                                         f"expected {FILE_MD5['train']}"):
        load(source[0], torchvision_root, UNREACHABLE, source[1])


def test_incomplete_torchvision_root_falls_back_to_the_archive(
        torchvision_root: Path, source: tuple[Path, str], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "root" / "cifar-100-python"
    shutil.copytree(torchvision_root / "cifar-100-python", folder)
    (folder / "meta").unlink()
    with caplog.at_level(logging.INFO, logger="partialkd.data.cifar100"):
        data = load(source[0], folder.parent, UNREACHABLE, source[1], {name: "0" * 32 for name in FILE_MD5},
                    download=False)
    assert f"lacks meta in {folder}" in caplog.text and data.md5 == member_md5s(source[0])


def test_command_line_refuses_an_unknown_file_md5_name(source: tuple[Path, str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"--file-md5 names unknown files \['data_batch_1'\]"):
        main(["cifar100", "--torchvision-root", str(tmp_path), "--file-md5", f"data_batch_1={'0' * 32}",
              "--archive", str(source[0]), "--url", UNREACHABLE, "--md5", source[1],
              "--valid-size", "10", "--split-seed", "0", "--out", str(tmp_path / "data.pt")])
