"""`partialkd.training.read_runs`: every track's checkpoints load as networks that score as they did in training."""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
from helpers.runs import student_config
from helpers.image_folder import write_image_folder
from helpers.image_runs import MEAN, STD, image_config, make_dataset
from helpers.lm_runs import lm_config, markov_dataset

import partialkd.train as train
import partialkd.train_imagenet as train_imagenet
import partialkd.train_images as train_images
import partialkd.train_lm as train_lm
from partialkd import prepare
from partialkd.common.devices import Placement
from partialkd.core.metrics import classification_metrics
from partialkd.data.imagenet import FolderImages, InputSize
from partialkd.data.prepared import Split, as_features, load_dataset, save_dataset
from partialkd.models.vision import classifier
from partialkd.training.images import DeviceImages, ImageTrainConfig, predict
from partialkd.training.lm import split_logits
from partialkd.training.read_runs import checkpoint_networks, teacher_network

CPU = Placement(torch.device("cpu"), bf16=False)


def valid_accuracy(network, dataset) -> float:
    split = dataset["valid"]
    return float(classification_metrics(network.logits(split), split.truth(dataset.num_classes))["acc"])


def test_each_variant_of_a_stack_scores_its_recorded_best_validation_accuracy(data_path, student_run) -> None:
    run_dir, metrics = student_run
    dataset = load_dataset(data_path)
    networks = checkpoint_networks(run_dir / "model.pt", dataset)
    assert list(networks) == [variant["label"] for variant in metrics["variants"]]
    for variant in metrics["variants"]:
        network = networks[variant["label"]]
        assert network.variant.label == variant["label"]
        assert network.class_weights.shape == (dataset.num_classes, 8)
        assert valid_accuracy(network, dataset) == pytest.approx(variant["best"]["valid"]["acc"], abs=1e-6)
    assert networks[metrics["variants"][0]["label"]].training["tau_squared"] is True


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A tiny image dataset and a resnet8 teacher run on it (CPU, exact float32)."""
    folder = tmp_path_factory.mktemp("image-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: False)
        save_dataset(make_dataset(), folder / "data.pt")
        metrics = train_images.run(folder / "data.pt", {"ce": {}}, image_config(), folder / "run",
                            tags={"role": "teacher"})
    return folder / "data.pt", folder / "run" / "model.pt", metrics


def test_an_image_run_scores_its_recorded_best_validation_accuracy(image_run, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data, model, metrics = image_run
    dataset = load_dataset(data)
    teacher = teacher_network(model, dataset)
    assert teacher.variant.method == "ce"
    assert teacher.class_weights.shape[0] == dataset.num_classes
    assert valid_accuracy(teacher, dataset) == pytest.approx(metrics["variants"][0]["best"]["valid"]["acc"],
                                                             abs=1e-6)


def test_an_mlp_stack_distils_from_an_image_teacher_on_normalised_pixels(image_run, tmp_path,
                                                                          monkeypatch) -> None:
    """Fashion-MNIST's layout: a CNN teacher on images, MLP students on the flattened pixels."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data, model, _ = image_run
    grid = {"ce": {}, "kd": {"lam": [0.9], "tau": [4]}, "kd_sim": {"lam": [0.9], "tau": [1], "alpha": [0.5]}}
    metrics = train.run(data, grid, student_config(hidden=(8,), train_size=None), tmp_path, teacher=model)
    dataset = load_dataset(data)
    features = as_features(dataset["valid"], dataset.meta).x
    assert features.shape[1] == 3 * 32 * 32 and abs(float(features.mean())) < 0.5  # normalised
    networks = checkpoint_networks(tmp_path / "model.pt", dataset)
    for variant in metrics["variants"]:
        assert valid_accuracy(networks[variant["label"]], dataset) == pytest.approx(
            variant["best"]["valid"]["acc"], abs=1e-6)


def test_the_oracle_teacher_has_the_posterior_as_probabilities(data_path) -> None:
    dataset = load_dataset(data_path)
    oracle = teacher_network("oracle", dataset)
    probabilities = oracle.logits(dataset["valid"]).softmax(-1)
    torch.testing.assert_close(probabilities, dataset["valid"].posterior, atol=1e-6, rtol=1e-5)
    assert oracle.variant is None and oracle.training == {}


def test_a_stack_cannot_be_a_teacher_nor_load_against_another_dataset(data_path, student_run, tmp_path) -> None:
    dataset = load_dataset(data_path)
    with pytest.raises(ValueError, match=r"holds \d+ networks"):
        teacher_network(student_run[0] / "model.pt", dataset)
    save_dataset(make_dataset(num_classes=10), tmp_path / "other.pt")
    with pytest.raises(ValueError, match="trained for 6 classes but the dataset has 10"):
        checkpoint_networks(student_run[0] / "model.pt", load_dataset(tmp_path / "other.pt"))


def record_construction(monkeypatch: pytest.MonkeyPatch, trainer: ModuleType, name: str) -> list[torch.nn.Module]:
    """Copies of the networks `trainer` builds through its seeded construction `name`, as built."""
    built: list[torch.nn.Module] = []
    construct = getattr(trainer, name)

    def recording(*args, **kwargs) -> torch.nn.Module:
        model = construct(*args, **kwargs)
        built.append(copy.deepcopy(model))
        return model

    monkeypatch.setattr(trainer, name, recording)
    return built


def assert_starts_from(run_dir: Path, data: Path, expected: Callable[[Split], list[torch.Tensor]]) -> None:
    """Each network of the run, rebuilt at initialisation, gives the `expected` logits (one
    tensor per variant) on the validation split, its trained weights other ones."""
    dataset = load_dataset(data)
    split = dataset["valid"]
    initial = checkpoint_networks(run_dir / "model.pt", dataset, initial=True)
    trained = checkpoint_networks(run_dir / "model.pt", dataset)
    for label, logits in zip(initial, expected(split), strict=True):
        torch.testing.assert_close(initial[label].logits(split), logits, rtol=1e-5, atol=1e-6)
        assert (trained[label].logits(split) - logits).abs().max() > 1e-2


def test_the_rebuilt_initial_stack_is_the_one_its_training_started_from(data_path, tmp_path, monkeypatch) -> None:
    """Every variant of a stack starts from the same weights: the slots are interchangeable."""
    built = record_construction(monkeypatch, train, "seeded_stack")
    grid = {"ce": {}, "ls": {"lam": [0.5], "tau": [1]}}
    train.run(data_path, grid, student_config(seed=3), tmp_path)
    [model] = built
    dataset = load_dataset(data_path)
    assert_starts_from(tmp_path, data_path,
                       lambda split: list(model(as_features(split, dataset.meta).x).detach()))
    ce, ls = checkpoint_networks(tmp_path / "model.pt", dataset, initial=True).values()
    assert torch.equal(ce.class_weights, ls.class_weights)


def test_the_rebuilt_initial_image_network_is_the_one_its_training_started_from(image_run, tmp_path,
                                                                                 monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = image_run[0]
    built = record_construction(monkeypatch, train_images, "seeded_model")
    train_images.run(data, {"ce": {}}, image_config(epochs=1, seed=4), tmp_path)
    [model] = built
    assert_starts_from(tmp_path, data, lambda split: [
        predict(model, DeviceImages(split, MEAN, STD, CPU), 25, CPU).detach()])
    [network] = checkpoint_networks(tmp_path / "model.pt", load_dataset(data), initial=True).values()
    assert torch.equal(network.class_weights, classifier(model).weight.detach())


def test_the_rebuilt_initial_language_model_is_the_one_its_training_started_from(tmp_path,
                                                                                 monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    save_dataset(markov_dataset(), tmp_path / "data.pt")
    built = record_construction(monkeypatch, train_lm, "seeded_lm")
    config = lm_config(epochs=1, seed=2)
    train_lm.run(tmp_path / "data.pt", {"ce": {}}, config, tmp_path / "run")
    [model] = built
    assert_starts_from(tmp_path / "run", tmp_path / "data.pt", lambda split: [
        split_logits(model.eval(), split, config.eval_batch_size, config.bptt, CPU)])


def test_the_rebuilt_initial_imagenet_network_is_the_one_its_training_started_from(tmp_path,
                                                                                   monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    root = write_image_folder(tmp_path / "root", num_classes=3, train_per_class=2, val_per_class=2)
    prepare.main(["imagenet", "--root", str(root), "--valid-per-class", "1", "--split-seed", "0",
                  "--out", str(tmp_path / "index.pt")])
    built = record_construction(monkeypatch, train_imagenet, "seeded_model")
    size = InputSize(crop=24, resize=32)
    config = ImageTrainConfig(arch="resnet18", epochs=1, batch_size=3, lr=0.01, momentum=0.9,
                              weight_decay=1e-4, milestones=(1,), lr_decay=0.1, seed=5)
    train_imagenet.run(tmp_path / "index.pt", {"ce": {}}, config, tmp_path / "run", size)
    [model] = built
    assert_starts_from(tmp_path / "run", tmp_path / "index.pt", lambda split: [
        predict(model, FolderImages(split, root, size, CPU, 0), 3, CPU).detach()])
