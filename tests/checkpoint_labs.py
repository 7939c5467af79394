"""Each lab's checkpoint at its smallest, for the tests that save, kill, spoil or load checkpoints (tests/engine and tests/cli).

Every checkpoint is a "generation": its weights are filled with the generation's number and its card says
the same number, so a card paired with another save's weights is seen at once.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch


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
    from engine.sae.checkpoint import load_result, save_result
    from engine.sae.train import SAETrainConfig, SAEResult

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
