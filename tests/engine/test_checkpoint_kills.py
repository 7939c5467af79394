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
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from engine.core.checkpoints import load_checkpoint, read_card, save_checkpoint
from engine.core.errors import CheckpointError
from tests import torch_threads
from tests.checkpoint_labs import ddpm_lab, gpt_lab, sae_lab

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
