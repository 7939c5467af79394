"""The U-Net: shapes, conditioning, its starting point, and the size checks a person meets."""

import pytest
import torch

from engine.core.errors import ConfigError
from engine.ddpm.unet import UNet, UNetConfig, timestep_embedding

SMALL = UNetConfig(width=8, channel_mults=(1, 2, 2), heads=2, groups=4)


def test_predicts_noise_of_the_input_shape():
    model = UNet(SMALL)
    x = torch.randn(3, 1, 28, 28)
    out = model(x, torch.tensor([0, 500, 999]), torch.tensor([1, 2, 10]))
    assert out.shape == x.shape


def test_starts_at_zero_output_so_each_block_starts_as_the_identity():
    model = UNet(SMALL)
    out = model(torch.randn(2, 1, 28, 28), torch.tensor([5, 900]))
    assert torch.count_nonzero(out) == 0


def test_the_label_and_the_time_change_the_prediction():
    torch.manual_seed(0)
    model = UNet(SMALL)
    for parameter in model.parameters():  # move off the zero start
        torch.nn.init.normal_(parameter, std=0.05)
    x = torch.randn(1, 1, 28, 28)
    t = torch.tensor([300])
    three, seven = model(x, t, torch.tensor([3])), model(x, t, torch.tensor([7]))
    assert not torch.allclose(three, seven)
    assert not torch.allclose(three, model(x, torch.tensor([301]), torch.tensor([3])))
    # no label means the null label
    assert torch.equal(model(x, t), model(x, t, torch.tensor([SMALL.null_label])))


def test_unconditional_model_has_no_label_embedding():
    model = UNet(UNetConfig(width=8, channel_mults=(1, 2), heads=2, groups=4, num_classes=0))
    assert model.label_embedding is None and not model.config.conditional
    assert model(torch.randn(2, 1, 28, 28), torch.tensor([1, 2])).shape == (2, 1, 28, 28)


def test_width_and_depth_set_the_size():
    small = UNet(UNetConfig(width=16, channel_mults=(1, 2, 4)))
    wide = UNet(UNetConfig(width=32, channel_mults=(1, 2, 4)))
    deep = UNet(UNetConfig(width=16, channel_mults=(1, 2, 4), depth=2))
    assert wide.parameter_count() > 3 * small.parameter_count()
    assert deep.parameter_count() > small.parameter_count()
    assert small.parameter_count() == sum(p.numel() for p in small.parameters())


def test_attention_sits_at_the_lowest_resolution_and_in_the_middle():
    model = UNet(UNetConfig(width=16, channel_mults=(1, 2, 4)))
    attended = [name for name, module in model.named_modules() if type(module).__name__ == "SelfAttention"]
    assert "middle.0.attention" in attended
    assert all(name.startswith(("down.4", "middle", "up.0", "up.1")) for name in attended)
    without = UNet(UNetConfig(width=16, channel_mults=(1, 2, 4), attention=False))
    assert not any(type(module).__name__ == "SelfAttention" for module in without.modules())


def test_timestep_embedding_is_sinusoidal():
    embedding = timestep_embedding(torch.tensor([0, 10]), 8)
    assert embedding.shape == (2, 8)
    assert torch.allclose(embedding[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    assert embedding[1, 0].item() == pytest.approx(torch.sin(torch.tensor(10.0)).item())
    assert timestep_embedding(torch.tensor([3]), 7).shape == (1, 7)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"width": 20, "groups": 8}, r"width \(20\) times channel_mults\[0\] \(1\) is 20 channels, which is not divisible by the 8 GroupNorm groups"),
        ({"width": 0}, "width must be between 1 and 512, got 0"),
        ({"depth": 0}, r"depth \(residual blocks per level\) must be between 1 and 8, got 0"),
        ({"channel_mults": (1, 2, 2, 2)}, "image_size 28 halves 3 time\\(s\\) across 4 levels, so it must be divisible by 8: use at most 3 levels"),
        ({"heads": 3}, "64 channels must be divisible by the 3 attention heads"),
        ({"num_classes": -1}, "num_classes must be between 0"),
        ({"channel_mults": ()}, "at least one level"),
    ],
)
def test_invalid_sizes_are_config_errors_a_person_can_act_on(changes, words):
    config = UNetConfig(width=32, channel_mults=(1, 2, 2))
    fields = {**config.__dict__, **changes}
    with pytest.raises(ConfigError, match=words):
        UNetConfig(**fields).validate()
