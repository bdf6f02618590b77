"""The Fashion-MNIST step on small files in the real IDX format: parsing, the order of the
sources, checksums (published .gz, recompressed .gz, plain), download from a local HTTP
server, a torchvision root (made by torchvision itself from such files), the offline error,
the split, the class groups, the meta and the command line."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets

from helpers.idx_files import NAMES, checksums, fake_fashion_mnist, gzipped, idx_bytes, published, write_files
from helpers.local_server import UNREACHABLE, clear_proxies, serve
from partialkd.data import fashion_mnist
from partialkd.data.fashion_mnist import CLASS_GROUPS, DEBIAN_DIR, locate, parse_idx, prepare_fashion_mnist
from partialkd.data.prepared import load_dataset
from partialkd.prepare import main

FILES = fake_fashion_mnist()  # 120 training and 30 test images
MD5S = checksums(FILES)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxies(monkeypatch)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four files as published (NAME.gz); never modified."""
    return write_files(tmp_path_factory.mktemp("published"), FILES)


def from_dir(directory: Path, valid_size: int = 20, split_seed: int = 0, **kwargs):
    source = locate(directory.parent / "unused-download", directory, None, UNREACHABLE, MD5S, **kwargs)
    return prepare_fashion_mnist(source, valid_size, split_seed, MD5S)


def test_parse_idx_reads_the_real_layout() -> None:
    data = FILES["train-images-idx3-ubyte"]
    images = parse_idx(data, 2051, "images")
    assert images.shape == (120, 28, 28) and images.dtype == np.uint8
    assert data[:4] == b"\x00\x00\x08\x03" and data[4:8] == (120).to_bytes(4, "big")
    for i, row, col in ((0, 0, 0), (3, 5, 27), (119, 27, 1)):
        assert images[i, row, col] == data[16 + i * 784 + row * 28 + col]
    labels_data = FILES["train-labels-idx1-ubyte"]
    labels = parse_idx(labels_data, 2049, "labels")
    assert labels.shape == (120,) and labels.tolist() == list(labels_data[8:])
    assert np.array_equal(parse_idx(idx_bytes(np.arange(6, dtype=np.uint8).reshape(1, 2, 3)), 2051, "x"),
                          [[[0, 1, 2], [3, 4, 5]]])


@pytest.mark.parametrize("data, magic, message", [
    (FILES["train-labels-idx1-ubyte"], 2051, r"magic number 2049, expected 2051"),
    (FILES["train-images-idx3-ubyte"], 2049, r"magic number 2051, expected 2049"),
    (FILES["train-images-idx3-ubyte"][:-1], 2051, r"payload of 94079 bytes, expected 94080"),
    (FILES["train-images-idx3-ubyte"] + b"\0", 2051, r"payload of 94081 bytes"),
    (FILES["train-images-idx3-ubyte"][:10], 2051, r"truncated IDX header \(10 of 16 bytes\)"),
    (b"\x00\x00", 2049, r"truncated IDX header"),
])
def test_malformed_idx_is_refused(data: bytes, magic: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_idx(data, magic, "the file")


def test_prepared_dataset_partitions_the_training_set(folder: Path) -> None:
    dataset = from_dir(folder, valid_size=20)
    images = torch.from_numpy(parse_idx(FILES["train-images-idx3-ubyte"], 2051, "x"))
    labels = torch.from_numpy(parse_idx(FILES["train-labels-idx1-ubyte"], 2049, "x")).long()
    train, valid, test = dataset["train"], dataset["valid"], dataset["test"]
    assert (len(train), len(valid), len(test)) == (100, 20, 30) and dataset.num_classes == 10
    for split in (train, valid, test):
        assert split.x.dtype == torch.uint8 and split.x.shape[1:] == (1, 28, 28)
        assert split.labels.dtype == torch.int64 and split.posterior is None
    rows = {(image.numpy().tobytes(), int(label)) for image, label in zip(images, labels)}
    for split in (train, valid):
        assert {(x[0].numpy().tobytes(), int(y)) for x, y in zip(split.x, split.labels)} <= rows
    together = torch.cat([train.x, valid.x])[:, 0]
    assert sorted(map(bytes, together.reshape(120, -1).numpy())) == \
        sorted(map(bytes, images.reshape(120, -1).numpy()))
    assert torch.equal(test.x[:, 0], torch.from_numpy(parse_idx(FILES["t10k-images-idx3-ubyte"], 2051, "x")))
    assert test.labels.tolist() == list(FILES["t10k-labels-idx1-ubyte"][8:])


def test_valid_split_is_fixed_by_the_seed(folder: Path) -> None:
    def valid_labels(seed: int) -> list[int]:
        return from_dir(folder, valid_size=30, split_seed=seed)["valid"].labels.tolist()

    assert valid_labels(5) == valid_labels(5)
    first, second = from_dir(folder, 30, 5)["valid"].x, from_dir(folder, 30, 6)["valid"].x
    assert not torch.equal(first, second)


@pytest.mark.parametrize("valid_size", [0, -1, 120, 121])
def test_valid_size_out_of_range_is_refused(folder: Path, valid_size: int) -> None:
    with pytest.raises(ValueError, match=r"valid_size must be in \[1, 120\)"):
        from_dir(folder, valid_size=valid_size)


def test_class_groups_are_upper_body_footwear_and_the_rest(folder: Path) -> None:
    dataset = from_dir(folder)
    groups, names = dataset.class_groups, dataset.meta["class_group_names"]
    assert groups.dtype == torch.int64 and groups.shape == (10,)
    members = {names[g]: {c for c in range(10) if groups[c] == g} for g in range(len(names))}
    assert members == {"upper_body": {0, 2, 4, 6}, "footwear": {5, 7, 9}, "other": {1, 3, 8}}
    class_names = dataset.meta["class_names"]
    assert [class_names[c] for c in sorted(members["footwear"])] == ["Sandal", "Sneaker", "Ankle boot"]


def test_meta_records_content_checksums_and_train_moments_but_not_the_source(folder: Path) -> None:
    dataset = from_dir(folder, valid_size=20, split_seed=3)
    meta = dataset.meta
    assert {key: meta[key] for key in ("track", "valid_size", "split_seed", "sizes")} == {
        "track": "fashion_mnist", "valid_size": 20, "split_seed": 3,
        "sizes": {"train": 100, "valid": 20, "test": 30}}
    # the IDX contents' MD5s, whichever compression the source had: same data, same file
    assert meta["md5"] == {name: MD5S[name] for name in NAMES} and "source" not in meta
    assert meta["class_names"][0] == "T-shirt/top" and len(meta["class_names"]) == 10
    pixels = dataset["train"].x.double() / 255
    assert meta["channel_mean"] == pytest.approx([float(pixels.mean())], abs=1e-12)
    assert meta["channel_std"] == pytest.approx([float(pixels.std(unbiased=False))], abs=1e-12)


@pytest.mark.parametrize("form", ["published", "debian", "plain"])
def test_every_form_gives_the_same_data(folder: Path, tmp_path: Path, form: str) -> None:
    """Published .gz match their MD5; Debian's recompressed .gz and plain files match by content;
    all give the same dataset, meta included."""
    expected = from_dir(folder)
    dataset = from_dir(write_files(tmp_path / form, FILES, form))
    assert dataset.meta == expected.meta
    for name in ("train", "valid", "test"):
        assert torch.equal(dataset[name].x, expected[name].x)
        assert torch.equal(dataset[name].labels, expected[name].labels)


def test_sources_in_order_user_dir_then_debian_then_download(tmp_path: Path) -> None:
    user, debian = write_files(tmp_path / "user", FILES), write_files(tmp_path / "debian", FILES, "debian")
    download = write_files(tmp_path / "download", FILES, "plain")
    kind = {}
    for label, user_dir, debian_dir in (("all", user, debian), ("no user", None, debian),
                                        ("no user, no debian", tmp_path / "absent", tmp_path / "absent"),
                                        ("no debian", None, None)):
        kind[label] = locate(download, user_dir, debian_dir, UNREACHABLE, MD5S).kind
    assert kind == {"all": "directory", "no user": "debian", "no user, no debian": "download",
                    "no debian": "download"}
    (user / "t10k-labels-idx1-ubyte.gz").unlink()  # an incomplete source is passed over
    source = locate(download, user, debian, UNREACHABLE, MD5S)
    assert (source.kind, source.folder) == ("debian", debian)
    assert source.files["train-images-idx3-ubyte"] == debian / "train-images-idx3-ubyte.gz"


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("form, name", [("published", "train-images-idx3-ubyte.gz"),
                                        ("debian", "t10k-labels-idx1-ubyte.gz"),
                                        ("plain", "train-labels-idx1-ubyte")])
def test_damaged_file_is_refused_by_checksum_before_parsing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str, name: str) -> None:
    directory = write_files(tmp_path / "user", FILES, form)
    path = directory / name
    corrupt(path)
    actual = hashlib.md5(path.read_bytes()).hexdigest()

    def no_parsing(*args, **kwargs):
        raise AssertionError("a file was parsed before its checksum was checked")

    monkeypatch.setattr(fashion_mnist, "parse_idx", no_parsing)
    with pytest.raises(ValueError) as error:
        from_dir(directory)
    for part in (str(path), actual, MD5S[name], "leave out --dir"):
        assert part in str(error.value)
    assert not (tmp_path / "unused-download").exists()
    with pytest.raises(SystemExit) as exit_:
        main(["fashion_mnist", "--dir", str(directory), "--no-debian", "--download-dir",
              str(tmp_path / "download"), "--url", UNREACHABLE, *md5_options(), "--valid-size", "10",
              "--split-seed", "0", "--out", str(tmp_path / "data.pt")])
    assert str(exit_.value.code).startswith("prepare fashion_mnist: Fashion-MNIST file")
    assert actual in str(exit_.value.code) and not (tmp_path / "data.pt").exists()


def test_other_content_in_a_valid_gzip_is_refused(tmp_path: Path) -> None:
    directory = write_files(tmp_path / "user", FILES)
    other = fake_fashion_mnist(seed=1)["train-labels-idx1-ubyte"]
    (directory / "train-labels-idx1-ubyte.gz").write_bytes(gzipped(other, ""))
    with pytest.raises(ValueError, match=MD5S["train-labels-idx1-ubyte"] + r", found [0-9a-f]{32}\)"):
        from_dir(directory)


def md5_options() -> list[str]:
    return [option for name, md5 in MD5S.items() for option in ("--md5", f"{name}={md5}")]


def test_download_from_local_server_fetches_only_what_is_missing(folder: Path, tmp_path: Path) -> None:
    download = write_files(tmp_path / "download", {"t10k-labels-idx1-ubyte": FILES["t10k-labels-idx1-ubyte"]})
    with serve(published(FILES)) as (url, requests):
        source = locate(download, None, tmp_path / "absent", url, MD5S)
    assert source.kind == "download" and requests == {f"{name}.gz": 1 for name in NAMES[:3]}
    assert sorted(path.name for path in download.iterdir()) == sorted(f"{name}.gz" for name in NAMES)
    dataset, expected = prepare_fashion_mnist(source, 20, 0, MD5S), from_dir(folder)
    assert torch.equal(dataset["train"].x, expected["train"].x)
    assert torch.equal(dataset["test"].labels, expected["test"].labels)


def test_download_with_wrong_checksum_leaves_nothing(tmp_path: Path) -> None:
    served = published(FILES)
    served["train-images-idx3-ubyte.gz"] = gzipped(fake_fashion_mnist(seed=1)["train-images-idx3-ubyte"], "x")
    with serve(served) as (url, _), pytest.raises(ValueError, match="nothing was written"):
        locate(tmp_path / "download", None, None, url, MD5S)
    assert not (tmp_path / "download" / "train-images-idx3-ubyte.gz").exists()


def test_offline_error_names_the_folder_and_the_files(tmp_path: Path) -> None:
    download = tmp_path / "raw"
    with pytest.raises(OSError, match=r"download of http://127.0.0.1:9/train-images-idx3-ubyte.gz failed") \
            as error:
        locate(download, None, None, UNREACHABLE, MD5S)
    message = str(error.value)
    assert f"into {download} by hand" in message and "dataset-fashion-mnist" in message
    for name in NAMES:
        assert f"{name}.gz (MD5 {MD5S[name + '.gz']})" in message
    assert not download.exists() or not any(download.iterdir())
    with pytest.raises(FileNotFoundError, match=f"not found in {download} and downloading is off"):
        locate(download, None, None, UNREACHABLE, MD5S, download=False)


def test_command_line_prepares_and_writes(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.pt"
    result = subprocess.run(
        [sys.executable, "-m", "partialkd.prepare", "fashion_mnist", "--dir", str(folder), "--no-debian",
         "--download-dir", str(tmp_path / "raw"), "--url", UNREACHABLE, *md5_options(),
         "--valid-size", "40", "--split-seed", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    dataset, expected = load_dataset(out), from_dir(folder, valid_size=40, split_seed=2)
    assert dataset.meta == expected.meta and dataset.num_classes == 10
    assert torch.equal(dataset.class_groups, torch.tensor(CLASS_GROUPS))
    for name in ("train", "valid", "test"):
        assert torch.equal(dataset[name].x, expected[name].x)
        assert torch.equal(dataset[name].labels, expected[name].labels)


def test_command_line_refuses_an_unknown_md5_name(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--md5 names unknown files"):
        main(["fashion_mnist", "--download-dir", str(tmp_path), "--md5", f"train.gz={'0' * 32}",
              "--valid-size", "10", "--split-seed", "0", "--out", str(tmp_path / "data.pt")])


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_package_files_are_the_published_data(tmp_path: Path) -> None:
    """The real files (≈ 1.5 s): Debian's recompressed .gz match the published content MD5s."""
    source = locate(tmp_path / "unused", None, DEBIAN_DIR, UNREACHABLE, download=False)
    dataset = prepare_fashion_mnist(source, 5000, 0)
    assert source.kind == "debian" and dataset.meta["sizes"] == {"train": 55000, "valid": 5000, "test": 10000}
    assert dataset["test"].labels.bincount().tolist() == [1000] * 10
    assert set(dataset.meta["md5"]) == set(NAMES)
    assert dataset.meta["channel_mean"][0] == pytest.approx(0.286, abs=1e-3)


@pytest.fixture(scope="module")
def torchvision_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root as torchvision's FashionMNIST(root, download=True) leaves it (FashionMNIST/raw/ with
    each NAME.gz and NAME), made by torchvision from the fake files on a local server; never modified."""
    root = tmp_path_factory.mktemp("torchvision")
    with serve(published(FILES)) as (url, _):
        torchvision_fashion_mnist(url)(root, download=True)
    assert sorted(path.name for path in (root / "FashionMNIST/raw").iterdir()) == \
        sorted([*NAMES, *(f"{name}.gz" for name in NAMES)])
    return root


def torchvision_fashion_mnist(url: str) -> type[datasets.FashionMNIST]:
    """torchvision's FashionMNIST (same class name: same folder) with the fake files' address and MD5s."""
    resources = [(f"{name}.gz", MD5S[f"{name}.gz"]) for name in NAMES]
    return type("FashionMNIST", (datasets.FashionMNIST,), {"mirrors": [url], "resources": resources})


def test_torchvision_root_gives_the_dataset_of_the_files(torchvision_root: Path, folder: Path,
                                                         tmp_path: Path) -> None:
    """The data step reads the root (no other source, downloads off): the same dataset as from the
    published files, meta included, with the images and labels that torchvision reads there."""
    out = tmp_path / "data.pt"
    main(["fashion_mnist", "--torchvision-root", str(torchvision_root), "--no-debian", "--download-dir",
          str(tmp_path / "absent"), "--url", UNREACHABLE, "--no-download", *md5_options(),
          "--valid-size", "40", "--split-seed", "2", "--out", str(out)])
    dataset, expected = load_dataset(out), from_dir(folder, valid_size=40, split_seed=2)
    assert dataset.meta == expected.meta and not (tmp_path / "absent").exists()
    for name in ("train", "valid", "test"):
        assert torch.equal(dataset[name].x, expected[name].x)
        assert torch.equal(dataset[name].labels, expected[name].labels)
    source = locate(tmp_path / "absent", None, None, UNREACHABLE, MD5S, torchvision_root=torchvision_root)
    data = fashion_mnist.verified_files(source, MD5S)
    for split, train in (("train", True), ("test", False)):
        reference = torchvision_fashion_mnist(UNREACHABLE)(torchvision_root, train=train)
        ours = fashion_mnist.read_split(data, split, source)
        assert torch.equal(ours.x[:, 0], reference.data) and torch.equal(ours.labels, reference.targets)


def test_torchvision_root_comes_after_the_user_dir_and_before_debian(torchvision_root: Path,
                                                                     tmp_path: Path) -> None:
    user, debian = write_files(tmp_path / "user", FILES), write_files(tmp_path / "debian", FILES, "debian")
    kinds = [locate(tmp_path / "download", user_dir, debian, UNREACHABLE, MD5S, torchvision_root=root).kind
             for user_dir, root in ((user, torchvision_root), (None, torchvision_root), (None, tmp_path))]
    assert kinds == ["directory", "torchvision", "debian"]  # tmp_path has no FashionMNIST/raw/
    source = locate(tmp_path / "download", None, debian, UNREACHABLE, MD5S,
                    torchvision_root=torchvision_root)
    assert source.folder == torchvision_root / "FashionMNIST/raw"
    assert source.files["t10k-labels-idx1-ubyte"].name == "t10k-labels-idx1-ubyte.gz"  # the published form


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte"])
def test_corrupt_file_in_torchvision_root_is_refused_before_parsing(
        torchvision_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A damaged file is refused, whichever form (a plain NAME is read where its NAME.gz is gone)."""
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    shutil.copytree(torchvision_root / "FashionMNIST/raw", raw)
    path = raw / name
    if name.endswith(".gz"):  # a sound gzip of other images
        path.write_bytes(gzipped(fake_fashion_mnist(seed=1)["train-images-idx3-ubyte"], name[:-3]))
    else:
        (raw / f"{name}.gz").unlink()
        corrupt(path)
    actual = hashlib.md5(path.read_bytes()).hexdigest()

    def no_parsing(*args, **kwargs):
        raise AssertionError("a file was parsed before its checksum was checked")

    monkeypatch.setattr(fashion_mnist, "parse_idx", no_parsing)
    out = tmp_path / "data.pt"
    with pytest.raises(SystemExit) as exit_:
        main(["fashion_mnist", "--torchvision-root", str(raw.parents[1]), "--no-debian", "--download-dir",
              str(tmp_path / "absent"), "--url", UNREACHABLE, *md5_options(), "--valid-size", "10",
              "--split-seed", "0", "--out", str(out)])
    message = str(exit_.value.code)
    for part in (f"Fashion-MNIST file {path} has MD5 {actual}, expected {MD5S[name]}",
                 "set fashion_mnist.data.torchvision_root to null"):
        assert part in message
    assert not out.exists() and not (tmp_path / "absent").exists()
