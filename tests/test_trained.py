"""`partialkd.trained`: every track's checkpoints load as networks that score as they did in training."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import student_config
from test_image_training import image_config, make_dataset

from partialkd.datasets import as_features, load_dataset, save_dataset
from partialkd.train import run as run_stack
from partialkd.metrics import classification_metrics
from partialkd.train_images import run as run_image
from partialkd.trained import checkpoint_networks, teacher_network


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
        metrics = run_image(folder / "data.pt", {"ce": {}}, image_config(), folder / "run",
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
    metrics = run_stack(data, grid, student_config(hidden=(8,), train_size=None), tmp_path, teacher=model)
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
