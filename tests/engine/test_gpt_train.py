"""Training the GPT: the schedule, the presets, a tiny run that learns, stopping, resuming, checkpoints."""

import json
import math
from dataclasses import replace

import pytest
import torch

from bench.nanogpt_reference import train_like_nanogpt
from engine.core.lr import get_lr
from engine.core.errors import CheckpointError, ConfigError, DataError
from engine.core.jobs import SilentReporter
from engine.gpt.checkpoint import load_model, restore_training
from engine.gpt.data import load_shakespeare, prepare_text
from engine.gpt.model import GPT
from engine.gpt.train import CPU, FAST, GPU, REFERENCE_RECIPE, TINY, GPTTrainConfig, estimate_loss, preset_of, split_loss, train
from tests.texts import rhymes


@pytest.fixture(scope="module")
def data():
    return prepare_text(rhymes(), "rhymes")


def test_lr_schedule_warms_up_then_decays_to_min_lr():
    assert get_lr(0, CPU.lr_schedule()) == pytest.approx(1e-3 / 101)
    assert get_lr(99, CPU.lr_schedule()) == pytest.approx(1e-3 * 100 / 101)
    assert get_lr(100, CPU.lr_schedule()) == pytest.approx(1e-3)
    assert get_lr(1050, CPU.lr_schedule()) == pytest.approx((1e-3 + 1e-4) / 2)  # half-way through the cosine
    assert get_lr(2000, CPU.lr_schedule()) == pytest.approx(1e-4)
    assert get_lr(5000, CPU.lr_schedule()) == 1e-4
    decaying = [get_lr(it, CPU.lr_schedule()) for it in range(100, 2001)]
    assert all(a >= b for a, b in zip(decaying, decaying[1:]))
    assert get_lr(0, replace(CPU, decay_lr=False).lr_schedule()) == 1e-3


def test_presets_are_nanogpts_recipes():
    assert (GPU.n_layer, GPU.n_head, GPU.n_embd, GPU.block_size, GPU.batch_size, GPU.max_iters, GPU.dropout) == (6, 6, 384, 256, 64, 5000, 0.2)
    assert (CPU.n_layer, CPU.n_head, CPU.n_embd, CPU.block_size, CPU.batch_size, CPU.max_iters) == (4, 4, 128, 64, 12, 2000)
    assert (CPU.lr_decay_iters, CPU.min_lr, CPU.dropout, CPU.eval_iters, CPU.warmup_iters, CPU.beta2) == (2000, 1e-4, 0.0, 20, 100, 0.99)
    assert preset_of(replace(CPU, device="cpu")) == "cpu"
    assert preset_of(replace(CPU, n_layer=5)) is None


def test_the_fast_preset_is_the_cpu_recipe_on_a_shorter_steeper_schedule():
    """So its quality is compared like for like: the same model, context, batches and evaluation; only the schedule differs."""
    schedule = {"learning_rate", "min_lr", "max_iters", "lr_decay_iters"}
    changed = {name for name in GPTTrainConfig.__dataclass_fields__ if getattr(FAST, name) != getattr(CPU, name)}
    assert changed == schedule
    assert FAST.max_iters <= 0.7 * CPU.max_iters and FAST.learning_rate > CPU.learning_rate
    assert FAST.min_lr == FAST.learning_rate / 10 and FAST.lr_decay_iters == FAST.max_iters
    assert preset_of(replace(FAST, device="cpu")) == "fast"
    assert REFERENCE_RECIPE["fast"] == "cpu"


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"n_embd": 30, "n_head": 4}, r"n_embd \(30\) must be divisible by n_head \(4\)"),
        ({"lr_decay_iters": 10, "warmup_iters": 10}, r"lr_decay_iters \(10\) must be larger than warmup_iters \(10\)"),
        ({"min_lr": 1.0}, "min_lr must be between 0 and learning_rate"),
        ({"batch_size": 0}, "batch_size must be between 1"),
        ({"max_iters": 0}, "max_iters must be between 1"),
    ],
)
def test_bad_settings_are_config_errors_naming_value_and_limit(changes, words):
    with pytest.raises(ConfigError, match=words):
        replace(TINY, **changes).validate()


def test_block_size_larger_than_the_text_allows_is_a_data_error():
    short = prepare_text(rhymes(300), "short.txt")
    with pytest.raises(DataError, match="block_size of at most 29"):
        train(replace(TINY, block_size=64), short, SilentReporter())


def test_tiny_training_reduces_the_loss_and_reports_as_it_goes(data):
    report = SilentReporter()
    result = train(TINY, data, report)
    evaluations = [row for row in report.metrics if "val_loss" in row]
    logs = [row for row in report.metrics if "loss" in row]
    assert [row["step"] for row in evaluations] == [0, 20, 40, 60]
    assert evaluations[0]["val_loss"] == pytest.approx(math.log(data.tokenizer.vocab_size), abs=0.3)  # near uniform at first
    assert result.best_val_loss < evaluations[0]["val_loss"] - 0.8
    assert {"loss", "lr", "ms_per_iter", "tokens_per_s"} <= set(logs[0])
    assert [row["step"] for row in logs][:3] == [0, 5, 10]
    assert isinstance(report.snapshots["sample"], str) and len(report.snapshots["sample"]) == TINY.sample_chars
    assert report.done_total == (60, 60)
    assert (result.iterations, result.stopped, result.checkpoint) == (60, False, None)
    assert not result.model.training


def test_stop_requested_ends_cleanly_keeping_the_best_checkpoint(data, tmp_path):
    report = SilentReporter(stop_after=4, stop_grace=math.inf)  # rows: eval 0, log 0, log 5, log 10 -> stop
    result = train(TINY, data, report, out=tmp_path / "run")
    assert result.stopped and result.iterations == 11
    assert report.metrics[-1]["step"] == 11 and "val_loss" in report.metrics[-1]  # a last evaluation where it stopped
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["metrics"]["iter"] == 11 == result.best_iter
    assert card["metrics"]["best_val_loss"] == pytest.approx(result.best_val_loss)


class StopsWhenPhaseSays(SilentReporter):
    """Requests a stop when the loop names a phase containing `words` for the `time`-th time: a stop that lands in the middle of it."""

    def __init__(self, words: str, time: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.words, self.time, self.phases = words, time, []

    def snapshot(self, name, value):
        super().snapshot(name, value)
        if name == "phase":
            self.phases.append(value)
            if sum(self.words in phase for phase in self.phases) == self.time:
                self.stop_requested = True


def test_a_stop_in_a_long_evaluation_abandons_it_and_keeps_the_best_checkpoint(data, tmp_path):
    config = replace(TINY, eval_iters=500)  # an evaluation far longer than a stop may wait
    report = StopsWhenPhaseSays("batch 3 of", time=2, stop_grace=0.0)  # stops in the evaluation at iteration 20
    result = train(config, data, report, out=tmp_path / "run")
    assert result.stopped and result.best_iter == 0 and result.iterations == 20
    assert [row["step"] for row in report.metrics if "val_loss" in row] == [0]  # the abandoned evaluation left no row
    assert sum("batch" in phase for phase in report.phases) < 2 * 500 + 10  # it did not run on to the end
    assert not (tmp_path / "run" / "model.json").exists()  # iteration 0 is never saved, and nothing after it was measured


def test_the_phase_is_named_while_evaluating_and_sampling(data):
    report = StopsWhenPhaseSays("never", stop_grace=0.0)
    train(replace(TINY, max_iters=5), data, report)
    assert "estimating the train and val loss: batch 1 of 8" in report.phases
    assert "writing a text sample" in report.phases and report.phases[-1] == "training"


def test_resume_continues_from_the_saved_iteration_with_the_saved_state(data, tmp_path):
    first = train(replace(TINY, max_iters=40, lr_decay_iters=40), data, SilentReporter(), out=tmp_path / "run", command="first")
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    saved_iter = card["metrics"]["iter"]
    assert saved_iter == first.best_iter > 0 and card["optimizer_step"] == saved_iter

    report = SilentReporter()
    resumed = train(TINY, data, report, out=tmp_path / "run", resume=tmp_path / "run")
    assert report.metrics[0]["step"] == saved_iter
    # the same weights on the same evaluation batches: the same loss the checkpoint recorded
    assert report.metrics[0]["val_loss"] == pytest.approx(card["metrics"]["best_val_loss"], abs=1e-5)
    assert resumed.iterations == 60 and report.done_total == (60, 60)
    assert resumed.best_val_loss <= first.best_val_loss


def test_a_stopped_run_resumed_is_the_run_that_was_never_stopped(data, tmp_path):
    config = replace(TINY, log_interval=1)
    whole = SilentReporter()
    train(config, data, whole)
    stopped = train(config, data, SilentReporter(stop_after=12, stop_grace=math.inf), out=tmp_path / "run")  # rows: eval 0, losses 0-10 -> stop at 11
    assert stopped.stopped and stopped.best_iter == 11
    resumed = SilentReporter()
    train(config, data, resumed, resume=tmp_path / "run")  # the same weights, Adam moments and batches from iteration 11 on

    def losses(report):  # (step, training loss or evaluation) from iteration 11 on; the timings differ, of course
        return [(row["step"], row.get("loss", row.get("val_loss"))) for row in report.metrics if row["step"] >= 11]

    assert len(losses(resumed)) == 49 + 3  # 49 training steps, evaluations at 20, 40 and 60
    assert losses(resumed) == pytest.approx(losses(whole), rel=1e-5)


def test_restoring_puts_back_weights_and_adam_moments(data, tmp_path):
    first = train(TINY, data, SilentReporter(), out=tmp_path / "run")
    model = GPT(TINY.model_config(data.tokenizer.vocab_size))
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
    state = restore_training(tmp_path / "run", model, optimizer, data)
    assert state.iter_num == first.best_iter
    for (name, restored), original in zip(model.named_parameters(), first.model.parameters()):
        assert torch.equal(restored, original), name
    moments = optimizer.state[model.transformer.wte.weight]
    assert moments["exp_avg"].abs().sum() > 0 and int(moments["step"]) == state.iter_num


def test_checkpoint_round_trip_gives_identical_logits(data, tmp_path):
    result = train(TINY, data, SilentReporter(), out=tmp_path / "run")
    loaded, tokenizer, card = load_model(result.checkpoint)
    assert tokenizer == data.tokenizer and card["kind"] == "gpt"
    assert card["params"]["non_embedding"] == loaded.get_num_params()
    idx = torch.tensor([tokenizer.encode("the cat sat on ")])
    with torch.no_grad():
        assert torch.equal(loaded(idx)[0], result.model(idx)[0])


def test_truncated_or_corrupt_checkpoints_are_checkpoint_errors(data, tmp_path):
    result = train(TINY, data, SilentReporter(), out=tmp_path / "run")
    weights = result.checkpoint
    blob = weights.read_bytes()
    weights.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_model(tmp_path / "run")
    weights.write_bytes(blob)
    card_file = weights.with_suffix(".json")
    card_file.write_text(card_file.read_text()[:100])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(weights)
    with pytest.raises(CheckpointError, match="No checkpoint card"):
        load_model(tmp_path / "elsewhere")


def test_a_card_whose_vocabulary_does_not_fit_its_model_is_refused(data, tmp_path):
    result = train(TINY, data, SilentReporter(), out=tmp_path / "run")
    card_file = result.checkpoint.with_suffix(".json")
    card = json.loads(card_file.read_text())
    card["tokenizer"]["chars"] += "XYZ"
    card_file.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="vocabulary has 24 characters, its model 21"):
        load_model(tmp_path / "run")


def test_resuming_on_a_text_with_another_vocabulary_is_refused(data, tmp_path):
    train(TINY, data, SilentReporter(), out=tmp_path / "run")
    other = prepare_text(rhymes().replace("!", "?"), "other.txt")
    with pytest.raises(CheckpointError, match=r"does not match other.txt's.*has 1 character\(s\).*'\?'.*lacks 1.*'!'"):
        train(TINY, other, SilentReporter(), resume=tmp_path / "run")


def test_resuming_with_another_model_shape_is_refused(data, tmp_path):
    train(TINY, data, SilentReporter(), out=tmp_path / "run")
    with pytest.raises(CheckpointError, match="trained with n_embd 32, but this run asks for n_embd 64"):
        train(replace(TINY, n_embd=64), data, SilentReporter(), resume=tmp_path / "run")


@pytest.mark.data
def test_cpu_preset_on_tiny_shakespeare_starts_at_the_uniform_loss():
    data = prepare_text(load_shakespeare(), "tiny Shakespeare")
    report = SilentReporter()
    result = train(replace(CPU, max_iters=5, sample_chars=0), data, report)
    assert round(result.model.get_num_params() / 1e6, 2) == 0.80
    assert report.metrics[0]["val_loss"] == pytest.approx(math.log(65), abs=0.05)  # 4.17 nats per character


def test_a_run_is_nanogpts_own_run_for_the_same_seed(data):
    """Same initial weights, same batches in the same order (training and evaluation), so the same losses as
    nanoGPT's train.py: what lets the CPU preset meet nanoGPT's figure exactly. Sampling at each evaluation
    must not disturb the stream."""
    config = replace(TINY, max_iters=40, log_interval=1, device="cpu")
    report = SilentReporter()
    train(config, data, report)
    reference = train_like_nanogpt(config, data)
    engine_losses = [row["loss"] for row in report.metrics if "loss" in row]
    assert engine_losses == pytest.approx(reference.losses, rel=1e-6) and len(engine_losses) == 40
    evaluations = {row["step"]: (row["train_loss"], row["val_loss"]) for row in report.metrics if "val_loss" in row}
    assert evaluations.keys() == reference.evaluations.keys() == {0, 20, 40}
    for step, (train_loss, val_loss) in evaluations.items():
        assert (train_loss, val_loss) == pytest.approx(reference.evaluations[step], rel=1e-6)


def test_the_whole_split_loss_is_what_random_windows_estimate(data):
    torch.manual_seed(0)
    result = train(replace(TINY, max_iters=30, sample_chars=0, device="cpu"), data, SilentReporter())
    whole = split_loss(result.model, data.val)
    assert whole == pytest.approx(split_loss(result.model, data.val, batch_size=1), rel=1e-5)  # batching changes nothing
    batches = torch.Generator().manual_seed(0)
    sampled = estimate_loss(result.model, data, replace(TINY, batch_size=64, eval_iters=40), "cpu", torch.no_grad(), batches)["val"]
    assert whole == pytest.approx(sampled, abs=0.05)
    assert whole < math.log(data.tokenizer.vocab_size) - 0.3  # and the model did learn something
