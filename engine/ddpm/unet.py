"""The noise-predicting U-Net of a DDPM, read top to bottom: time embedding, residual block, attention, the U-Net.

References:
1) Ho, Jain, Abbeel 2020, "Denoising Diffusion Probabilistic Models", appendix B: a PixelCNN++-like U-Net
   with GroupNorm, the Transformer's sinusoidal position embedding for t, and self-attention at 16x16.
2) Their released code (diffusion_tf/models/unet.py) and openai/improved-diffusion's unet.py: `num_res_blocks`
   per level going down, one more per level coming up (each takes one skip), and the last convolution of
   every block initialised to zero, so that each block starts as the identity.
3) Ho, Salimans 2021, "Classifier-Free Diffusion Guidance": a label embedding added to the time embedding,
   with one extra label, `null_label` (= num_classes), that means "no label".

Sized for MNIST (28x28, one channel): the default levels are 28, 14 and 7 pixels, with self-attention at 7.
This module never sees a beta: the schedule lives in schedule.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.nn import functional as F

from engine.core.config import check_fields, spec
from engine.core.errors import ConfigError

MAX_WIDTH = 512
MAX_DEPTH = 8
MAX_MULT = 8
MAX_HEADS = 64
MAX_IMAGE_SIZE = 256


@dataclass(frozen=True)
class UNetConfig:
    image_size: int = field(default=28, metadata=spec(4, MAX_IMAGE_SIZE, unit="pixels"))
    channels: int = field(default=1, metadata=spec(1, 4))  # grayscale
    width: int = field(default=32, metadata=spec(1, MAX_WIDTH))  # channels at the top level; level i has width * channel_mults[i]
    channel_mults: tuple[int, ...] = (1, 2, 2)  # one per level: 28, 14, 7 pixels for MNIST
    depth: int = field(default=1, metadata=spec(1, MAX_DEPTH, label="depth (residual blocks per level)"))  # going down (one more coming up)
    attention: bool = True  # self-attention at the lowest resolution and in the middle
    heads: int = field(default=4, metadata=spec(1, MAX_HEADS))
    groups: int = field(default=8, metadata=spec(1, MAX_WIDTH, label="groups (GroupNorm)"))  # every level's channels must divide by it
    num_classes: int = field(default=10, metadata=spec(0, 1000, note="(0: unconditional)"))  # else labels 0 .. num_classes-1, and num_classes is "no label"
    dropout: float = field(default=0.0, metadata=spec(0, 1, below=True))

    @property
    def level_channels(self) -> list[int]:
        return [self.width * mult for mult in self.channel_mults]

    @property
    def lowest_resolution(self) -> int:
        return self.image_size // 2 ** (len(self.channel_mults) - 1)

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def null_label(self) -> int:
        return self.num_classes

    def validate(self) -> "UNetConfig":
        def require(ok: bool, message: str):
            if not ok:
                raise ConfigError(message)

        check_fields(self)
        require(len(self.channel_mults) >= 1, "channel_mults needs at least one level.")
        require(
            all(isinstance(m, int) and 1 <= m <= MAX_MULT for m in self.channel_mults),
            f"Each channel multiplier must be a whole number between 1 and {MAX_MULT}, got {list(self.channel_mults)}.",
        )
        for level, channels in enumerate(self.level_channels):
            require(
                channels % self.groups == 0,
                f"width ({self.width}) times channel_mults[{level}] ({self.channel_mults[level]}) is {channels} channels, "
                f"which is not divisible by the {self.groups} GroupNorm groups: pick a width that is a multiple of {self.groups}.",
            )
        levels = len(self.channel_mults)
        require(
            self.image_size % 2 ** (levels - 1) == 0,
            f"image_size {self.image_size} halves {levels - 1} time(s) across {levels} levels, so it must be divisible by "
            f"{2 ** (levels - 1)}: use at most {max_levels(self.image_size)} levels.",
        )
        lowest = self.level_channels[-1]
        require(
            not self.attention or lowest % self.heads == 0,
            f"The lowest level's {lowest} channels must be divisible by the {self.heads} attention heads.",
        )
        return self


def max_levels(image_size: int) -> int:
    levels = 1
    while image_size % 2**levels == 0 and image_size // 2**levels >= 4:
        levels += 1
    return levels


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """The Transformer's sinusoidal embedding of the timesteps (B,) -> (B, dim): sin and cos at geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)  # (half,)
    angles = t.float()[:, None] * freqs[None]  # (B, half)
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # (B, 2 * half)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding


def zero_init(module: nn.Module) -> nn.Module:
    """A block whose last layer starts at zero adds nothing at first: the network starts near the identity."""
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


class ResidualBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 conv; add the projected time embedding; GroupNorm, SiLU, dropout, 3x3 conv; plus the input."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out, H, W)
        h = h + self.emb(F.silu(emb))[:, :, None, None]  # (B, out, 1, 1) broadcast over the pixels
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, as a residual: x + proj(attention(norm(x)))."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x))  # (B, 3C, H, W)
        qkv = qkv.reshape(B, 3, self.heads, C // self.heads, H * W)  # (B, 3, nh, hs, HW)
        q, k, v = qkv.permute(1, 0, 2, 4, 3).unbind(0)  # each (B, nh, HW, hs)
        # softmax(q k^T / sqrt(hs)) v written out: on the CPU, scaled_dot_product_attention takes a path that
        # spends as long checking for fully masked rows as attending, and with 49 pixels nothing is gained by fusing
        weights = torch.softmax(q @ k.transpose(-2, -1) * (C // self.heads) ** -0.5, dim=-1)  # (B, nh, HW, HW)
        h = weights @ v  # (B, nh, HW, hs)
        h = h.transpose(2, 3).reshape(B, C, H, W)  # (B, nh, hs, HW) -> (B, C, H, W)
        return x + self.proj(h)


class Stage(nn.Module):
    """A residual block, followed by self-attention at the resolutions that have it."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, config: UNetConfig, attention: bool):
        super().__init__()
        self.block = ResidualBlock(in_channels, out_channels, emb_dim, config.groups, config.dropout)
        self.attention = SelfAttention(out_channels, config.heads, config.groups) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = self.block(x, emb)
        return self.attention(x) if self.attention is not None else x


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (B, C, H/2, W/2)


class Upsample(nn.Module):
    """Nearest-neighbour doubling, then a 3x3 conv that already narrows to the next level's channels.

    At 28x28 that convolution is the network's largest when it keeps the 14x14 level's width; narrowing it,
    and so the next block's input, saves a ninth of the arithmetic at width 32.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C_out, 2H, 2W)


class UNet(nn.Module):
    """eps_theta(x_t, t, label): predicts the noise in x_t. Shapes (B, C, H, W), (B,), (B,) -> (B, C, H, W)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config.validate()
        width, emb_dim = config.width, 4 * config.width
        channels = config.level_channels
        levels = len(channels)
        attend = [config.attention and level == levels - 1 for level in range(levels)]

        self.time_mlp = nn.Sequential(nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_embedding = nn.Embedding(config.num_classes + 1, emb_dim) if config.conditional else None
        self.conv_in = nn.Conv2d(config.channels, width, 3, padding=1)

        # going down, every stage's output (and every downsampling's) is kept for a skip connection
        self.down = nn.ModuleList()
        skips = [width]
        current = width
        for level, out in enumerate(channels):
            for _ in range(config.depth):
                self.down.append(Stage(current, out, emb_dim, config, attend[level]))
                current = out
                skips.append(current)
            if level < levels - 1:
                self.down.append(Downsample(current))
                skips.append(current)

        self.middle = nn.ModuleList(
            [
                Stage(current, current, emb_dim, config, attention=config.attention),
                Stage(current, current, emb_dim, config, attention=False),
            ]
        )

        # coming up, depth + 1 stages per level, each concatenating one skip
        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            for _ in range(config.depth + 1):
                self.up.append(Stage(current + skips.pop(), channels[level], emb_dim, config, attend[level]))
                current = channels[level]
            if level > 0:
                self.up.append(Upsample(current, channels[level - 1]))
                current = channels[level - 1]

        self.norm_out = nn.GroupNorm(config.groups, current)
        self.conv_out = zero_init(nn.Conv2d(current, config.channels, 3, padding=1))
        self.set_memory_format(torch.channels_last)

    def set_memory_format(self, memory_format: torch.memory_format) -> "UNet":
        """Channels-last feature maps by default: on this lab's 2-core CPU, one thread, they sample 7-16% faster than
        torch's default layout and train about as fast (bench/ddpm_speed.py --memory-formats compares the two)."""
        self.memory_format = memory_format
        return self.to(memory_format=memory_format)

    def embed(self, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.config.width))  # (B, 4 * width)
        if self.label_embedding is not None:
            if labels is None:
                labels = torch.full_like(t, self.config.null_label)
            emb = emb + self.label_embedding(labels)
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embed(t, labels)
        h = self.conv_in(x.contiguous(memory_format=self.memory_format))  # (B, width, H, W)
        skips = [h]
        for module in self.down:
            h = module(h, emb) if isinstance(module, Stage) else module(h)
            skips.append(h)
        for stage in self.middle:
            h = stage(h, emb)
        for module in self.up:
            if isinstance(module, Stage):
                h = module(torch.cat([h, skips.pop()], dim=1), emb)  # (B, C + C_skip, H, W)
            else:
                h = module(h)
        return self.conv_out(F.silu(self.norm_out(h)))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
