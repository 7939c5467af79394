"""The MNIST classifier that scores generated digits: it learns, it is saved with its accuracy, and it scores plainly."""

import json

import numpy as np
import pytest
import torch

from engine.core.errors import CheckpointError, ConfigError, DataError
from engine.core.jobs import SilentReporter
from engine.ddpm.classifier import ClassifierConfig, DigitClassifier, Score, load_classifier, score_samples, train_classifier
from engine.ddpm.data import load_mnist, toy_shapes

FAST = ClassifierConfig(epochs=3, batch_size=32, log_interval=5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("classifier") / "classifier"
    report = SilentReporter()
    return train_classifier(FAST, toy_shapes(600), report, out=path, command="test"), report, path


def test_it_learns_the_toy_shapes_and_reports_each_epoch(trained):
    result, report, _ = trained
    accuracies = [row["test_accuracy"] for row in report.metrics if "test_accuracy" in row]
    assert len(accuracies) == 3 and result.test_accuracy == accuracies[-1] > 0.9
    assert report.done_total == (result.steps, result.steps) == (54, 54)
    assert not result.model.training


def test_the_card_records_the_test_accuracy_and_loading_gives_the_same_model(trained):
    result, _, path = trained
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["kind"] == "mnist_classifier" and card["metrics"]["test_accuracy"] == pytest.approx(result.test_accuracy)
    model, loaded_card = load_classifier(path)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), result.model(x), atol=1e-6)
    assert loaded_card["command"] == "test"


def test_scoring_counts_confident_readings_by_digit_and_against_the_asked_digit(trained):
    result, _, _ = trained
    data = toy_shapes(100, seed=5)
    images = data.test_images.numpy() / 255.0
    score = score_samples(result.model, images, data.test_labels.numpy())
    assert score.count == 20 and score.recognised_share > 0.6
    assert score.histogram.sum() == score.recognised.sum() and len(score.histogram) == 10
    assert score.matching_share > 0.8
    assert "of 20 samples recognised with confidence > 0.9" in score.summary() and "read as the digit asked for" in score.summary()


def test_score_arithmetic():
    score = Score(np.array([1, 1, 7, 3]), np.array([0.95, 0.5, 0.99, 0.91]), np.array([1, 2, 7, 3]))
    assert score.recognised_share == 0.75 and score.matching_share == 0.75
    assert score.histogram.tolist() == [0, 1, 0, 1, 0, 0, 0, 1, 0, 0]
    assert Score(np.array([2]), np.array([0.99]), None).matching_share is None


def test_wrong_images_are_data_errors():
    model = DigitClassifier().eval()
    with pytest.raises(DataError, match=r"shape \(n, 28, 28\); got \(2, 32, 32\)"):
        score_samples(model, np.zeros((2, 32, 32)))
    with pytest.raises(DataError, match="in \\[0, 1\\]; these range from -1"):
        score_samples(model, np.full((2, 28, 28), -1.0))


def test_bad_settings_and_missing_checkpoints(tmp_path):
    with pytest.raises(ConfigError, match="epochs must be between 1 and 100, got 0"):
        ClassifierConfig(epochs=0).validate()
    with pytest.raises(CheckpointError, match="No checkpoint card"):
        load_classifier(tmp_path / "none")


@pytest.mark.data
def test_on_a_slice_of_mnist_it_reads_most_test_digits():
    data = load_mnist().subset(train=3000, test=1000)
    result = train_classifier(ClassifierConfig(epochs=2, batch_size=32), data, SilentReporter())
    assert result.test_accuracy > 0.9
