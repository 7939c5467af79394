"""The quality figures behind the guidance sweep, the recording the player starts from, and fine-tuning."""

import json
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import scipy.linalg
import torch

from engine.core.cache import BoundedCache
from engine.core.checkpoints import card_path, read_card, weights_path
from engine.core.errors import CheckpointError
from engine.core.jobs import SilentReporter
from engine.ddpm.checkpoint import load_model, record_in_card, start_from_weights
from engine.ddpm.classifier import load_classifier
from engine.ddpm.data import toy_shapes
from engine.ddpm.quality import (
    CLOSE_TO_REAL, FeatureStats, QualityRow, frechet_distance, parse_guidances, read_sweep, reference, suggested_guidance, sweep, sweep_record,
)
from engine.ddpm.recording import load_recording, record, save_recording
from engine.ddpm.sample import SampleSettings
from engine.ddpm.train import TINY, train
from engine.ddpm.unet import UNet


@pytest.fixture(scope="module")
def data():
    return toy_shapes(256)


@pytest.fixture(scope="module")
def run(data, train_tiny_ddpm):
    return train_tiny_ddpm(data, command="tiny")[2]  # the run folder


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()[0]


def test_frechet_distance_matches_scipy_and_is_zero_for_the_same_statistics():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 6)), rng.normal(0.5, 2.0, size=(300, 6)) @ rng.normal(size=(6, 6))
    sa, sb = FeatureStats.of(a), FeatureStats.of(b)
    root = scipy.linalg.sqrtm(sa.covariance @ sb.covariance).real
    expected = ((sa.mean - sb.mean) ** 2).sum() + np.trace(sa.covariance + sb.covariance - 2 * root)
    assert frechet_distance(sa, sb) == pytest.approx(expected, rel=1e-6)
    assert abs(frechet_distance(sa, sa)) < 1e-8
    assert frechet_distance(sa, sb) == pytest.approx(frechet_distance(sb, sa), rel=1e-6)


def test_a_sweep_measures_each_guidance_and_real_digits_are_the_yardstick(run, data, classifier):
    model, schedule, _ = load_model(run)
    ref = reference(classifier, data, 40)
    assert ref.n == 40 and ref.real_distance > 0 and 0 <= ref.real_recognised <= 1
    seen = []
    rows = sweep(model, schedule, classifier, ref, [None, 1.0, 3.0], 40, steps=4, progress=lambda done, total: seen.append((done, total)))
    assert [row.guidance for row in rows] == [None, 1.0, 3.0]
    assert rows[0].as_asked is None and rows[1].as_asked is not None
    for row in rows:
        assert row.n == 40 and 0 <= row.recognised <= 1 and 0 <= row.rarest_digit <= 0.1 + 1e-9
        assert row.distance_ratio == pytest.approx(row.distance / ref.real_distance)
    assert seen[-1] == (12, 12) and [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_a_stopped_sweep_returns_the_rows_it_finished(run, data, classifier):
    model, schedule, _ = load_model(run)
    ref = reference(classifier, data, 20)
    calls = []
    rows = sweep(model, schedule, classifier, ref, [1.0, 2.0], 20, steps=3, should_stop=lambda: len(calls) > 4,
                 progress=lambda done, total: calls.append(done))
    assert len(rows) == 1


def rows_of(*values):
    return [QualityRow(g, 500, r, None if g is None else 0.99, 0.08, d * 10, d, 1.0) for g, r, d in values]


def test_the_suggested_guidance_is_the_lowest_recognised_one_that_stays_close_to_real():
    rows = rows_of((None, 0.80, 1.3), (1.0, 0.93, 1.1), (1.5, 0.96, 1.4), (2.0, 0.99, 1.9), (3.0, 1.0, 6.0))
    assert suggested_guidance(rows) == 1.5
    assert suggested_guidance(rows_of((1.0, 0.90, 1.2), (2.0, 0.92, 1.8), (3.0, 0.99, 5.0))) == 2.0  # none reaches 95%: the best close one
    assert suggested_guidance(rows_of((None, 0.9, 1.0), (3.0, 1.0, CLOSE_TO_REAL + 1))) is None


def test_a_recorded_sweep_goes_into_the_card_and_comes_back(run, data, classifier, tmp_path):
    model, schedule, _ = load_model(run)
    ref = reference(classifier, data, 20)
    rows = sweep(model, schedule, classifier, ref, [None, 2.0], 20, steps=2)
    sha = read_card(run / "best")["weights_sha256"]
    record_in_card(run / "best", "guidance_sweep", sweep_record(rows, ref, "python -m engine.ddpm sweep --record", 2, 0))
    card = read_card(run / "best")
    assert card["weights_sha256"] == sha  # the weights are the same
    back, fields = read_sweep(card)
    assert back == rows and fields["command"] == "python -m engine.ddpm sweep --record" and fields["real_digits"]["n"] == 20
    load_model(run)  # still a loadable pair


@pytest.mark.parametrize("broken", [
    {"guidance_sweep": "rows"},
    {"guidance_sweep": {"rows": [{"guidance": 1.0}]}},
    {"guidance_sweep": {"rows": [dict(rows_of((1.0, 1.5, 1.0))[0].as_dict())]}},  # a share above 1
    {"guidance_sweep": {"rows": [dict(rows_of((1.0, 0.9, 1.0))[0].as_dict(), distance=float("nan"))]}},
    {"guidance_sweep": {"rows": [dict(rows_of((1.0, 0.9, 1.0))[0].as_dict(), guidance="3")]}},
    {},
])
def test_a_card_without_a_readable_sweep_shows_none(broken):
    assert read_sweep(broken) is None


def test_guidance_lists_parse_or_say_which_part_is_wrong():
    assert parse_guidances("unconditional, 1,1.5 ,3") == [None, 1.0, 1.5, 3.0]
    for text, words in [("1,x", "'x'"), ("-1", "between 0"), ("25", "between 0"), ("1,,2", "''")]:
        with pytest.raises(ValueError, match=words):
            parse_guidances(text)


def test_a_kept_recording_plays_the_same_frames_and_only_for_its_own_weights(run, tmp_path):
    model, schedule, card = load_model(run)
    settings = SampleSettings(n=6, steps=5, guidance=2.0, seed=3)
    steps_seen = []
    drawn = record(model, schedule, settings, progress=lambda done, total: steps_seen.append(done))
    assert steps_seen == [1, 2, 3, 4, 5]
    save_recording(tmp_path / "player", drawn, card["weights_sha256"], "python -m engine.ddpm record")
    kept = load_recording(tmp_path / "player", card["weights_sha256"])
    assert kept.settings == drawn.settings and len(kept.frames) == len(drawn.frames) and kept.calls == drawn.calls
    assert [f.t for f in kept.frames] == [f.t for f in drawn.frames]
    assert np.abs(kept.images - drawn.images).max() <= 1 / 255 + 1e-6  # kept as 8-bit pixels, as the player shows them
    assert np.array_equal(kept.labels, drawn.labels)
    assert load_recording(tmp_path / "player", "another model's sha256") is None
    assert load_recording(tmp_path / "nothing here", card["weights_sha256"]) is None


def test_a_broken_recording_is_a_checkpoint_error(run, tmp_path):
    model, schedule, card = load_model(run)
    drawn = record(model, schedule, SampleSettings(n=2, steps=2, guidance=1.0))
    save_recording(tmp_path / "player", drawn, card["weights_sha256"])
    written = json.loads(card_path(tmp_path / "player").read_text())
    written["frames"] = written["frames"][:1]
    card_path(tmp_path / "player").write_text(json.dumps(written))
    with pytest.raises(CheckpointError, match="engine.ddpm record"):
        load_recording(tmp_path / "player", card["weights_sha256"])
    weights_path(tmp_path / "player").write_bytes(b"\0" * 64)
    with pytest.raises(CheckpointError):
        load_recording(tmp_path / "player", card["weights_sha256"])


def test_fine_tuning_starts_from_the_weights_with_a_fresh_optimizer_and_says_so(run, data, tmp_path):
    source, _, _ = load_model(run)
    model, ema = UNet(TINY.unet_config()), UNet(TINY.unet_config())
    lineage = start_from_weights(run, model, ema, TINY.schedule_config())
    for (name, a), b, c in zip(source.named_parameters(), model.parameters(), ema.parameters()):
        assert torch.equal(a, b) and torch.equal(a, c), name  # the source's EMA, to train and to average
    assert lineage["command"] == "tiny" and lineage["metrics"]["step"] == 16
    full = train(replace(TINY, epochs=1, label_dropout=0.5), data, SilentReporter(), out=tmp_path / "tuned2", init_from=run, command="tune")
    card = read_card(tmp_path / "tuned2" / "last")
    assert card["started_from"]["checkpoint"].endswith("best.safetensors") and card["started_from"]["command"] == "tiny"
    assert card["metrics"]["step"] == full.steps == 8 and card["optimizer_step"] == 8  # counted from 0, not from the source's steps
    resumed = train(replace(TINY, epochs=2, label_dropout=0.5), data, SilentReporter(), out=tmp_path / "tuned2", resume=tmp_path / "tuned2")
    assert resumed.steps == 16 and read_card(tmp_path / "tuned2" / "last")["started_from"] == card["started_from"]


def test_fine_tuning_refuses_another_model_and_resuming_at_once(run, data, tmp_path):
    with pytest.raises(CheckpointError, match="fine-tuning keeps the model"):
        train(replace(TINY, width=16, groups=8), data, SilentReporter(), init_from=run)
    with pytest.raises(Exception, match="not both"):
        train(TINY, data, SilentReporter(), init_from=run, resume=run)


def test_the_cache_computes_a_missing_key_once_for_callers_at_once_and_keeps_the_newest():
    cache, calls = BoundedCache(2), []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return len(calls)

    threads = [threading.Thread(target=lambda: cache.get("a", slow)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and cache.get("a", slow) == 1
    cache.get("b", lambda: 2)
    cache.get("c", lambda: 3)
    assert cache.get("a", lambda: "again") == "again"  # the oldest went
    with pytest.raises(ZeroDivisionError):
        cache.get("d", lambda: 1 / 0)
    assert cache.get("d", lambda: 4) == 4  # a failure is not kept


def test_a_finished_run_of_the_same_shape_paces_the_estimate_before_the_probe(run, data):
    from engine.ddpm.estimate import estimated_seconds, recorded_speed
    from engine.ddpm.runs import read_run

    finished = read_run(run)
    assert finished.seconds > 0 and finished.steps == 16
    speed, name = recorded_speed(TINY, [finished])
    assert name == "run" and speed == pytest.approx(16 * TINY.batch_size / finished.seconds)
    seconds, basis = estimated_seconds(replace(TINY, epochs=4), TINY.train_images, 1e6, [finished])
    assert seconds == pytest.approx(2 * finished.seconds) and "your run run" in basis  # twice the epochs, the same pace
    assert recorded_speed(replace(TINY, batch_size=16), [finished]) is None  # another shape says nothing
    seconds, basis = estimated_seconds(replace(TINY, batch_size=16), TINY.train_images, 100.0, [finished])
    assert "timed just now" in basis and seconds == pytest.approx(1.03 * 2 * 16 * 16 / 100.0)
