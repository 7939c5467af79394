"""How fast this lab's DDPM U-Net trains and samples, beside diffusers' UNet2DModel in its common MNIST setup.

    python -m bench.ddpm_speed --threads 1          # about 3 minutes on this lab's 2-core machine
    python -m bench.ddpm_speed --memory-formats     # also: channels-last against torch's default layout

Prints figures and ratios; asserts nothing.

1. Training throughput, images/s: the same training step for both networks (forward on a noised batch,
   the MSE to the noise, backward, gradient clipping, Adam, the EMA update), batch --batch, timed over
   --steps steps after two of warm-up, the two networks taking turns so that a busy machine slows both alike.
   This lab's U-Net is the shipped recipe's (engine.ddpm.train.CPU: width 16, levels 28/14/7 with 16/32/64
   channels, one block per level, attention at 7x7, class-conditional). The baseline is the UNet2DModel of
   Hugging Face's diffusion course on MNIST: block_out_channels (32, 64, 64), layers_per_block 2,
   attention in the two lower blocks, unconditional. It needs `pip install -r requirements-bench.txt`;
   without diffusers only this lab's figures are printed.
   Then the real loop, engine.ddpm.train.train, for --loop-steps steps: images/s as it reports them.
2. Sampling: milliseconds per denoising step (one network call) for --samples samples, both networks;
   for this lab's, also with classifier-free guidance (a batch of twice the size).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from engine.core.jobs import SilentReporter  # noqa: E402
from engine.ddpm.data import mnist_available, load_mnist, toy_shapes  # noqa: E402
from engine.ddpm.schedule import NoiseSchedule  # noqa: E402
from engine.ddpm.train import CPU, ema_decay_at, train, update_ema  # noqa: E402
from engine.ddpm.unet import UNet  # noqa: E402


def diffusers_mnist_unet():
    """The baseline, or None when diffusers is not installed."""
    try:
        from diffusers import UNet2DModel
    except ImportError:
        return None
    return UNet2DModel(
        sample_size=28,
        in_channels=1,
        out_channels=1,
        layers_per_block=2,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    )


class Contender:
    """One network with its optimizer, EMA copy and a fixed batch, so each timed step does the same work."""

    def __init__(self, name: str, model: torch.nn.Module, conditional: bool, batch: int, schedule: NoiseSchedule):
        import copy

        self.name, self.model, self.conditional = name, model, conditional
        self.ema = copy.deepcopy(model).requires_grad_(False)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(0)
        x0 = torch.rand(batch, 1, 28, 28, generator=generator) * 2 - 1
        self.noise = torch.randn(x0.shape, generator=generator)
        self.t = torch.randint(0, schedule.timesteps, (batch,), generator=generator)
        self.labels = torch.randint(0, 11, (batch,), generator=generator)
        self.x_t = schedule.add_noise(x0, self.noise, self.t)
        self.step_seconds: list[float] = []
        self.steps = 0

    def predict(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.conditional:
            return self.model(x, t, labels)
        return self.model(x, t).sample

    def train_step(self) -> None:
        started = time.perf_counter()
        loss = F.mse_loss(self.predict(self.x_t, self.t, self.labels), self.noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        update_ema(self.ema, self.model, ema_decay_at(self.steps, CPU))
        self.steps += 1
        self.step_seconds.append(time.perf_counter() - started)

    def forward_flops(self) -> int:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            self.predict(self.x_t[:1], self.t[:1], self.labels[:1])
        return counter.get_total_flops()

    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def time_training(contenders: list[Contender], steps: int) -> dict[str, float]:
    """Median images/s of each, the contenders taking turns step by step."""
    for contender in contenders:
        for _ in range(2):
            contender.train_step()
        contender.step_seconds.clear()
    for _ in range(steps):
        for contender in contenders:
            contender.train_step()
    return {c.name: len(c.t) / statistics.median(c.step_seconds) for c in contenders}


@torch.inference_mode()
def time_sampling(contenders: list[Contender], samples: int, steps: int, guided: bool = False) -> dict[str, float]:
    """Median milliseconds per denoising step (one network call on `samples` images, twice as many when guided)."""
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    x = torch.randn(samples * (2 if guided else 1), 1, 28, 28)
    labels = torch.randint(0, 11, (len(x),))
    for contender in contenders:
        contender.model.eval()
    for round_ in range(steps + 1):
        t = torch.full((len(x),), 999 - 20 * round_)
        for contender in contenders:
            started = time.perf_counter()
            contender.predict(x, t, labels)
            if round_:  # the first round warms up
                times[contender.name].append(time.perf_counter() - started)
    for contender in contenders:
        contender.model.train()
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def time_real_loop(steps: int) -> float:
    """engine.ddpm.train.train itself, the shipped recipe on --loop-steps steps: median images/s as the loop reports it."""
    data = load_mnist() if mnist_available() else toy_shapes(CPU.batch_size * (steps + 2))
    config = replace(CPU, train_images=CPU.batch_size * (steps + 2), epochs=1, log_interval=1, sample_count=0, val_images=64, device="cpu")
    report = SilentReporter()
    train(config, data, report)
    rates = [row["images_per_s"] for row in report.metrics if "images_per_s" in row][2:]
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--batch", type=int, default=CPU.batch_size, help="training batch (default %(default)s, the shipped recipe's)")
    parser.add_argument("--steps", type=int, default=12, help="timed training steps per network (default %(default)s)")
    parser.add_argument("--loop-steps", type=int, default=30, help="steps of the real training loop; 0 skips it (default %(default)s)")
    parser.add_argument("--samples", type=int, default=64, help="samples drawn at once when timing sampling (default %(default)s)")
    parser.add_argument("--sample-steps", type=int, default=10, help="timed denoising steps (default %(default)s)")
    parser.add_argument("--memory-formats", action="store_true", help="also time this U-Net in torch's default (NCHW) layout")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    schedule = NoiseSchedule(CPU.schedule_config())
    print(f"machine: {describe_machine()}; torch threads: {torch.get_num_threads()}")

    ours = Contender("this lab's U-Net", UNet(CPU.unet_config()), True, args.batch, schedule)
    contenders = [ours]
    if args.memory_formats:
        nchw = UNet(CPU.unet_config()).set_memory_format(torch.contiguous_format)
        contenders.append(Contender("this lab's U-Net, NCHW", nchw, True, args.batch, schedule))
    baseline_model = diffusers_mnist_unet()
    if baseline_model is not None:
        contenders.append(Contender("diffusers UNet2DModel", baseline_model, False, args.batch, schedule))
    else:
        print("diffusers is not installed (pip install -r requirements-bench.txt): no baseline")
    for c in contenders:
        print(f"{c.name}: {c.parameters() / 1e6:.2f} M parameters, {c.forward_flops() / 1e6:.0f} MFLOP per 28x28 image (forward)")

    training = time_training(contenders, args.steps)
    sampling = time_sampling(contenders, args.samples, args.sample_steps)
    guided = time_sampling([ours], args.samples, args.sample_steps, guided=True)
    print(f"\ntraining, batch {args.batch}, median of {args.steps} steps:")
    for name, rate in training.items():
        print(f"  {name}: {rate:.0f} images/s")
    print(f"sampling, {args.samples} samples, median of {args.sample_steps} steps:")
    for name, ms in sampling.items():
        print(f"  {name}: {ms:.0f} ms per step ({ms / args.samples:.2f} ms per sample and step)")
    print(f"  {ours.name} with guidance (2 x {args.samples} images per call): {guided[ours.name]:.0f} ms per step")
    for c in contenders[1:]:
        print(
            f"ratio {ours.name} / {c.name}: training {training[ours.name] / training[c.name]:.2f}x, "
            f"sampling {sampling[c.name] / sampling[ours.name]:.2f}x faster per step"
            + (" (target: 1.5x training throughput)" if c.name.startswith("diffusers") else "")
        )
    if args.loop_steps:
        rate = time_real_loop(args.loop_steps)
        print(f"\nengine.ddpm.train.train, the shipped recipe, {args.loop_steps} steps: {rate:.0f} images/s as it reports them")
        epoch_minutes = 60_000 / rate / 60
        print(f"  so one epoch of MNIST takes about {epoch_minutes:.1f} min, the recipe's {CPU.epochs} epochs about {CPU.epochs * epoch_minutes:.0f} min")


if __name__ == "__main__":
    main()
