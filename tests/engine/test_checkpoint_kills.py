"""A save killed at any point leaves a complete checkpoint: the previous one or the new one, never neither.

Each save runs in a forked child whose k-th `os.replace` sends it SIGKILL first, for every k the save
makes; then the folder is loaded here (for sampling and, where the lab resumes, for resuming), and the
next save must finish or remove what the killed one left. Every checkpoint is a "generation": its
weights are filled with the generation's number and its card says the same number, so a card paired
with another save's weights is seen at once.
"""

import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from engine.core.checkpoints import load_checkpoint, read_card, save_checkpoint
from engine.core.errors import CheckpointError
from tests import torch_threads

SAVE_REPLACES = 4  # staged weights, staged card, then each renamed over the main pair
FIRST_SAVE_REPLACES = 2  # with nothing to keep: weights, then card


@pytest.fixture(autouse=True)
def one_torch_thread():
    with torch_threads.one_torch_thread():
        yield


def counting_replaces(monkeypatch) -> list:
    """Record os.replace's destinations, for counting the renames a save makes."""
    calls, real = [], os.replace

    def replace(source, destination, **kwargs):
        calls.append(Path(destination).name)
        return real(source, destination, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return calls


def run_killed_at(k: int, work: Callable[[], None], counts: Callable[[str], bool] = lambda name: True) -> bool:
    """Run `work` in a forked child that is SIGKILLed just before its k-th os.replace (of those whose destination's
    name `counts`); True if the kill came."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            calls, real = [0], os.replace

            def replace(source, destination, **kwargs):
                calls[0] += counts(Path(destination).name)
                if calls[0] == k:
                    os.kill(os.getpid(), signal.SIGKILL)
                return real(source, destination, **kwargs)

            os.replace = replace
            work()
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status):
        assert os.WEXITSTATUS(status) == 0, "the save failed in the child instead of being killed"
        return False
    assert os.WTERMSIG(status) == signal.SIGKILL
    return True


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or ".next." in p.name)


# --- the pair itself, with numpy only ---------------------------------------------------------------------------


def save_generation(path: Path, generation: int) -> None:
    save_checkpoint(path, "toy", {"W": np.full((3, 4), generation, np.float32)}, {"metrics": {"generation": generation}})


def loaded_generation(path: Path) -> int:
    arrays, card = load_checkpoint(path, "toy")
    generation = card["metrics"]["generation"]
    assert np.all(arrays["W"] == generation), "a card was paired with another save's weights"
    assert read_card(path)["metrics"]["generation"] == generation, "read_card sees another card than the loader"
    return generation


def test_a_save_makes_the_renames_the_kill_tests_cover(tmp_path, monkeypatch):
    calls = counting_replaces(monkeypatch)
    save_generation(tmp_path / "model", 1)
    assert len(calls) == FIRST_SAVE_REPLACES
    save_generation(tmp_path / "model", 2)
    assert calls[FIRST_SAVE_REPLACES:] == ["model.next.safetensors", "model.next.json", "model.safetensors", "model.json"]


@pytest.mark.parametrize("k", range(1, SAVE_REPLACES + 1))
def test_a_killed_save_leaves_the_previous_or_the_new_pair(tmp_path, k):
    path = tmp_path / "model"
    save_generation(path, 1)
    assert run_killed_at(k, lambda: save_generation(path, 2))
    assert loaded_generation(path) == (1 if k <= 2 else 2)  # from the staged card on, the new pair is complete
    assert leftovers(tmp_path), "the kill should have left something for the next save to clean"
    save_generation(path, 3)
    assert loaded_generation(path) == 3 and leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]


@pytest.mark.parametrize("first_kill", range(1, SAVE_REPLACES + 1))
def test_a_second_kill_while_finishing_the_first_still_leaves_a_complete_pair(tmp_path, first_kill):
    base = tmp_path / "base"
    save_generation(base / "model", 1)
    assert run_killed_at(first_kill, lambda: save_generation(base / "model", 2))
    survivor = loaded_generation(base / "model")
    for second_kill in range(1, 2 * SAVE_REPLACES + 1):  # settling the first kill's files adds up to two renames
        folder = tmp_path / f"kill{second_kill}"
        shutil.copytree(base, folder)
        killed = run_killed_at(second_kill, lambda: save_generation(folder / "model", 3))
        assert loaded_generation(folder / "model") in ((survivor, 3) if killed else (3,))
        save_generation(folder / "model", 4)
        assert loaded_generation(folder / "model") == 4 and leftovers(folder) == []


def test_a_killed_first_save_leaves_no_checkpoint_and_its_leftovers_go(tmp_path):
    path = tmp_path / "model"
    for k in range(1, FIRST_SAVE_REPLACES + 1):
        assert run_killed_at(k, lambda: save_generation(path, 1))
        with pytest.raises(CheckpointError, match="No checkpoint card"):
            load_checkpoint(path, "toy")
    assert leftovers(tmp_path)
    save_generation(path, 2)
    assert loaded_generation(path) == 2 and leftovers(tmp_path) == []


def test_a_staged_card_whose_weights_are_gone_is_passed_over(tmp_path):
    """The loader trusts checksums, not names: a staged card without its weights does not hide the main pair."""
    path = tmp_path / "model"
    save_generation(path, 1)
    assert run_killed_at(3, lambda: save_generation(path, 2))
    (tmp_path / "model.next.safetensors").unlink()
    assert load_checkpoint(path, "toy")[1]["metrics"]["generation"] == 1


# --- the three labs ---------------------------------------------------------------------------------------------


@dataclass
class Lab:
    """How one lab saves generation g into a folder and reads back which generation it finds."""

    save: Callable[[Path, int], None]
    sampled: Callable[[Path], int]  # load for sampling -> the generation found (weights and card agreeing)
    resumed: Callable[[Path], int] | None  # restore for training -> the generation found


def filled(model: torch.nn.Module, generation: int) -> None:
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(generation)


def generation_of(model: torch.nn.Module) -> int:
    values = torch.cat([p.detach().flatten() for p in model.parameters()]).unique()
    assert len(values) == 1, "parameters from two saves were mixed"
    return int(values.item())


def gpt_lab() -> Lab:
    from engine.gpt.checkpoint import checkpoint_in, load_model, restore_training, save_training
    from engine.gpt.data import prepare_text
    from engine.gpt.model import GPT, GPTConfig

    data = prepare_text("the cat sat on the mat. " * 20, "rhymes")
    config = GPTConfig(block_size=8, vocab_size=data.tokenizer.vocab_size, n_layer=1, n_head=1, n_embd=8)

    def parts():
        model = GPT(config)
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3)

    def save(folder, generation):
        model, optimizer = parts()
        model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))[1].backward()
        optimizer.step()  # AdamW's moments exist, so the checkpoint can be resumed
        filled(model, generation)
        card = {"metrics": {"iter": generation, "best_val_loss": 1.0, "seconds": 0.5}}
        save_training(checkpoint_in(folder), model, optimizer, data.tokenizer, card, torch.Generator().get_state())

    def sampled(folder):
        model, _, card = load_model(folder)
        assert card["metrics"]["iter"] == generation_of(model)
        return generation_of(model)

    def resumed(folder):
        model, optimizer = parts()
        state = restore_training(folder, model, optimizer, data)
        assert state.iter_num == generation_of(model) and state.batch_stream is not None
        return state.iter_num

    return Lab(save, sampled, resumed)


def ddpm_lab() -> Lab:
    from engine.ddpm.checkpoint import last_in, load_model, restore_training, save_training
    from engine.ddpm.schedule import ScheduleConfig
    from engine.ddpm.unet import UNet, UNetConfig

    config = UNetConfig(image_size=8, width=4, channel_mults=(1,), depth=1, attention=False, heads=1, groups=2, num_classes=0)
    schedule = ScheduleConfig(timesteps=10)

    def parts():
        model = UNet(config)
        return model, UNet(config), torch.optim.Adam(model.parameters(), lr=1e-3)

    def save(folder, generation):
        model, ema, optimizer = parts()
        for parameter in model.parameters():
            parameter.grad = torch.ones_like(parameter)
        optimizer.step()
        filled(model, generation)
        filled(ema, generation)
        save_training(last_in(folder), model, ema, optimizer, schedule, {"metrics": {"step": generation, "best_val_loss": 1.0}})

    def sampled(folder):
        ema, _, card = load_model(folder)  # no best: the folder's last
        assert card["metrics"]["step"] == generation_of(ema)
        return generation_of(ema)

    def resumed(folder):
        model, ema, optimizer = parts()
        state = restore_training(folder, model, ema, optimizer, schedule)
        assert state.step == generation_of(model) == generation_of(ema)
        return state.step

    return Lab(save, sampled, resumed)


def sae_lab() -> Lab:
    from engine.sae.model import CostTerms
    from engine.sae.train import SAETrainConfig, SAEResult, load_result, save_result

    config = SAETrainConfig(patch_size=2, hidden_size=3)
    size = 2 * config.hidden_size * config.visible_size + config.hidden_size + config.visible_size

    def save(folder, generation):
        terms = CostTerms(1.0, 0.5, 0.25)
        result = SAEResult(config, np.full(size, float(generation)), terms, terms, generation, False, 0.1,
                           np.zeros(config.hidden_size), np.zeros((config.visible_size, 2)), [])
        save_result(folder / "sae", result, "python -m engine.sae train", "fingerprint")

    def sampled(folder):
        result, _ = load_result(folder / "sae")
        assert set(result.theta.tolist()) == {float(result.iterations)}
        return result.iterations

    return Lab(save, sampled, None)


LABS = {"gpt": gpt_lab, "ddpm": ddpm_lab, "sae": sae_lab}


@pytest.mark.parametrize("name", list(LABS))
def test_every_lab_samples_and_resumes_after_a_kill_at_every_rename(tmp_path, monkeypatch, name):
    lab = LABS[name]()
    base = tmp_path / "base"
    lab.save(base, 1)
    calls = counting_replaces(monkeypatch)
    lab.save(tmp_path / "counted", 1)
    lab.save(tmp_path / "counted", 2)
    monkeypatch.undo()
    assert len(calls) == FIRST_SAVE_REPLACES + SAVE_REPLACES
    for k in range(1, SAVE_REPLACES + 1):
        folder = tmp_path / f"kill{k}"
        shutil.copytree(base, folder)
        assert run_killed_at(k, lambda: lab.save(folder, 2))
        expected = 1 if k <= 2 else 2
        assert lab.sampled(folder) == expected
        if lab.resumed is not None:
            assert lab.resumed(folder) == expected
        assert leftovers(folder)
        lab.save(folder, 3)
        assert lab.sampled(folder) == 3 and leftovers(folder) == []


def test_a_gpt_run_killed_while_saving_resumes_from_a_complete_checkpoint(tmp_path, monkeypatch):
    """End to end: engine.gpt.runs.train_run killed during its second checkpoint, then loaded and resumed."""
    from dataclasses import replace

    import engine.gpt.train
    from engine.core.jobs import SilentReporter
    from engine.gpt.checkpoint import load_model
    from engine.gpt.data import prepare_text
    from engine.gpt.runs import train_run
    from engine.gpt.train import TINY

    text = "the cat sat on the mat.\na dog ran to the log.\n" * 12
    data = prepare_text(text, "rhymes")
    config = replace(TINY, max_iters=30, lr_decay_iters=30, warmup_iters=5, eval_interval=10, eval_iters=2, sample_chars=0)
    saved_iters, real_save = [], engine.gpt.train.save_training
    monkeypatch.setattr(engine.gpt.train, "save_training", lambda path, model, optimizer, tokenizer, card, *rest: (
        saved_iters.append(card["metrics"]["iter"]), real_save(path, model, optimizer, tokenizer, card, *rest))[1])
    train_run(config, data, SilentReporter(), tmp_path / "counted", text=text)
    monkeypatch.undo()
    assert len(saved_iters) >= 2, "the run should save at least twice for a kill in its second save"

    def checkpoint_file(name: str) -> bool:
        return name.startswith("model.")

    for k in range(FIRST_SAVE_REPLACES + 1, FIRST_SAVE_REPLACES + SAVE_REPLACES + 1):  # the second save's renames
        folder = tmp_path / f"kill{k}"
        assert run_killed_at(k, lambda: train_run(config, data, SilentReporter(), folder, text=text), checkpoint_file)
        _, _, card = load_model(folder)
        assert card["metrics"]["iter"] == saved_iters[0 if k <= FIRST_SAVE_REPLACES + 2 else 1]
        result = train_run(config, data, SilentReporter(), folder, resume=True)
        assert result.iterations == config.max_iters and leftovers(folder) == []
        assert load_model(folder)[2]["metrics"]["iter"] == saved_iters[-1]
