"""Training the DDPM on MNIST, in the order of nanoGPT's train.py.

    python -m engine.ddpm train --preset cpu                    # where the shipped checkpoint began: ~42 min on one CPU thread
    python -m engine.ddpm train --preset quick                  # ~9 min on one CPU thread: recognisable digits
    python -m engine.ddpm train --preset tiny --toy             # seconds, on toy shapes; what the tests use
    python -m engine.ddpm train --resume runs/ddpm/cpu --epochs 8
    python -m engine.ddpm train --init-from checkpoints/ddpm_mnist --epochs 3   # fine-tune: new run, its weights to start

The objective is DDPM's L_simple (eq. 14): draw t uniformly, noise x_0 to x_t = sqrt(alpha_bar_t) x_0 +
sqrt(1 - alpha_bar_t) eps, and regress the U-Net's output on eps with a mean squared error. Adam, with a
linear warmup and a cosine decay of the learning rate; the gradient's norm clipped; an exponential moving
average (EMA) of the weights, which is what samples are drawn with (DDPM appendix B: decay 0.9999).
With class conditioning, each label is replaced by the null label with probability `label_dropout`, so
one network learns both eps(x_t, label) and eps(x_t, null) for classifier-free guidance.

One loop, in a fixed order: set the learning rate; at each epoch's end (and when the run ends or is
stopped) evaluate the EMA's loss on fixed test images, noise levels and noise, report a grid of samples,
write the `last` checkpoint and, when the loss improved, `best`; draw a batch, forward, backward, clip,
step, update the EMA; time and log.

Under torchrun (engine/core/distributed.py) the same loop runs on every rank, each on its share of every
batch, so a config trains the same run on any number of processes.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from engine.core.config import Config, check_fields, preset_named, require, same_spec, seed_spec, spec
from engine.core.device import autocast_dtype, seed_everything
from engine.core.distributed import World, join, world_from_environment
from engine.core.errors import ConfigError, DataError
from engine.core.jobs import Reporter, StopDeadline
from engine.core.lr import LRSchedule, get_lr
from engine.ddpm.checkpoint import TrainingState, best_in, last_in, restore_training, save_training, start_from_weights
from engine.ddpm.data import CLASSES, DigitData, batch_images
from engine.ddpm.sample import DEFAULT_GUIDANCE, SampleSettings, generate
from engine.ddpm.schedule import NoiseSchedule, ScheduleConfig
from engine.ddpm.unet import UNet, UNetConfig

MAX_EPOCHS = 1000
MAX_BATCH_SIZE = 4096
MAX_STEPS = 100_000_000  # far beyond MAX_EPOCHS of MNIST at batch size 1
MAX_TRAIN_IMAGES = 10_000_000


@dataclass(frozen=True)
class DDPMTrainConfig(Config, what="DDPM training settings", renamed={"warmup_steps": "warmup_iters"}):
    # the U-Net (see unet.UNetConfig, which checks these ranges)
    width: int = field(default=16, metadata=same_spec(UNetConfig, "width"))  # channels at 28x28; 32 at 14x14, 64 at 7x7 with channel_mults (1, 2, 4): 0.65 M parameters
    channel_mults: tuple[int, ...] = (1, 2, 4)  # the width goes where pixels are few, and arithmetic cheap
    depth: int = field(default=1, metadata=same_spec(UNetConfig, "depth"))  # residual blocks per level going down, one more coming up
    attention: bool = True  # self-attention at 7x7 and in the middle
    heads: int = field(default=4, metadata=same_spec(UNetConfig, "heads"))
    groups: int = field(default=8, metadata=same_spec(UNetConfig, "groups"))  # GroupNorm groups
    conditional: bool = True  # learn eps(x_t, digit) too, for digit choice and guidance
    dropout: float = field(default=0.0, metadata=same_spec(UNetConfig, "dropout"))
    # the noise schedule: DDPM's (see schedule.ScheduleConfig)
    timesteps: int = field(default=1000, metadata=same_spec(ScheduleConfig, "timesteps"))
    schedule: str = field(default="linear", metadata=same_spec(ScheduleConfig, "schedule"))
    beta_start: float = 1e-4
    beta_end: float = 0.02
    # training
    epochs: int = field(default=5, metadata=spec(1, MAX_EPOCHS))
    # a step's whole batch, which torchrun's processes share (each trains on batch_size / processes of its images)
    batch_size: int = field(default=64, metadata=spec(1, MAX_BATCH_SIZE))  # half DDPM's 128: on a CPU, twice the steps for the same time learn faster
    learning_rate: float = field(default=2e-3, metadata=spec(0, 1, above=True))  # ten times DDPM's 2e-4: a small U-Net trained for minutes, not days
    warmup_iters: int = field(default=100, metadata=spec(0, MAX_STEPS))
    decay_lr: bool = True  # cosine decay to min_lr over the run
    min_lr: float = field(default=2e-4, metadata=spec(0, 1))
    ema_decay: float = field(default=0.999, metadata=spec(0, 1, below=True))  # DDPM's 0.9999 averages over ~10k steps, longer than a CPU run
    grad_clip: float = field(default=1.0, metadata=spec(0, note="(0 turns clipping off)"))  # DDPM's
    label_dropout: float = field(default=0.1, metadata=spec(0, 1, below=True))  # share of labels replaced by the null label (classifier-free guidance's p_uncond)
    train_images: int = field(default=0, metadata=spec(0, MAX_TRAIN_IMAGES, note="(0 means all)"))  # use the first N training images; 0: all of them
    # evaluation, each epoch
    val_images: int = field(default=1000, metadata=spec(1, 10_000))  # test images for the validation loss, each with a fixed t and noise
    sample_count: int = field(default=40, metadata=spec(0, 100))  # digits in the grid reported each epoch (0-9 in turn)
    sample_steps: int = 50  # DDIM steps for that grid
    sample_guidance: float = field(default=DEFAULT_GUIDANCE, metadata=spec(0, 20))  # guidance for that grid (conditional models)
    log_interval: int = field(default=20, metadata=spec(1, MAX_STEPS, unit="steps"))  # steps between metric rows
    # system
    seed: int = field(default=0, metadata=seed_spec())
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps

    def unet_config(self) -> UNetConfig:
        return UNetConfig(
            width=self.width,
            channel_mults=tuple(self.channel_mults),
            depth=self.depth,
            attention=self.attention,
            heads=self.heads,
            groups=self.groups,
            num_classes=CLASSES if self.conditional else 0,
            dropout=self.dropout,
        )

    def schedule_config(self) -> ScheduleConfig:
        return ScheduleConfig(timesteps=self.timesteps, schedule=self.schedule, beta_start=self.beta_start, beta_end=self.beta_end)

    def lr_schedule(self, total_iters: int) -> LRSchedule:
        """The schedule over a run of `total_iters` steps (epochs times the steps in an epoch of its images)."""
        return LRSchedule(self.learning_rate, self.min_lr, self.warmup_iters, total_iters, self.decay_lr)

    def validate(self) -> "DDPMTrainConfig":
        check_fields(self)
        self.unet_config().validate()
        self.schedule_config().validate()
        require(self.min_lr <= self.learning_rate, f"min_lr must be between 0 and learning_rate ({self.learning_rate}), got {self.min_lr}.")
        require(
            not self.conditional or self.label_dropout > 0 or self.sample_guidance == 1.0,
            f"sample_guidance {self.sample_guidance} needs the null label, which label_dropout 0 never trains: raise label_dropout or use guidance 1.",
        )
        require(
            1 <= self.sample_steps <= self.timesteps,
            f"sample_steps (DDIM steps for the grid) must be between 1 and timesteps ({self.timesteps}), got {self.sample_steps}.",
        )
        return self


# Where the shipped checkpoint began (its card's started_from; then fine-tuned with --init-from): the defaults above, on all 60,000 training digits: 4,685 steps,
# about 42 minutes on one thread of this lab's CPU (119 images/s, bench/ddpm_speed.py).
CPU = DDPMTrainConfig()

# A first look: 936 steps on the first 20,000 digits, a grid every 312 steps; 9.4 minutes on one CPU thread.
# Measured: of 200 digits drawn with DDIM (50 steps, guidance 3), 97.5% recognised by the classifier with
# confidence above 0.9 (67.5% without guidance).
QUICK = replace(
    CPU,
    epochs=3,
    train_images=20_000,
    warmup_iters=50,
    ema_decay=0.995,  # a short run: average over its last ~200 steps
    sample_count=20,
    sample_steps=25,
)

# For tests and trying the loop: seconds, on a few hundred images.
TINY = replace(
    CPU,
    width=8,
    channel_mults=(1, 2, 2),
    heads=2,
    groups=4,
    epochs=2,
    batch_size=32,
    train_images=256,
    warmup_iters=5,
    learning_rate=3e-3,
    min_lr=3e-4,
    ema_decay=0.9,
    val_images=64,
    sample_count=10,
    sample_steps=10,
    log_interval=2,
)

PRESETS = {"cpu": CPU, "quick": QUICK, "tiny": TINY}


def preset_of(config: DDPMTrainConfig) -> str | None:
    """The preset's name if `config` is one, setting aside where it runs."""
    return preset_named(config, PRESETS, ignoring=("device", "seed"))


def steps_per_epoch(config: DDPMTrainConfig, images: int) -> int:
    """Full batches per pass over the images; a remainder smaller than a batch waits for the next epoch's shuffle."""
    return max(images // min(config.batch_size, images), 1)


def ema_decay_at(step: int, config: DDPMTrainConfig) -> float:
    """The EMA's decay grows as (1 + n) / (10 + n) up to ema_decay, so the average is not stuck on the random start."""
    return min(config.ema_decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: UNet, model: UNet, decay: float) -> None:
    for averaged, current in zip(ema.parameters(), model.parameters()):
        averaged.lerp_(current, 1.0 - decay)  # averaged = decay * averaged + (1 - decay) * current


def training_images(config: DDPMTrainConfig, data: DigitData) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = data.train_images, data.train_labels
    if config.train_images:
        if config.train_images > len(images):
            raise DataError(f"train_images is {config.train_images:,}, but {data.name} has only {len(images):,} training images.")
        images, labels = images[: config.train_images], labels[: config.train_images]
    if len(images) == 0:
        raise DataError(f"{data.name} has no training images.")
    if config.conditional and (labels.min() < 0 or labels.max() >= CLASSES):
        raise DataError(f"{data.name}'s labels must lie between 0 and {CLASSES - 1} for a class-conditional model.")
    return images, labels


class Validation:
    """The EMA's loss on fixed test images, each with its own fixed t, noise and (true) label, so epochs compare fairly."""

    def __init__(self, config: DDPMTrainConfig, data: DigitData, schedule: NoiseSchedule):
        count = min(config.val_images, len(data.test_images))
        if count == 0:
            raise DataError(f"{data.name} has no test images to validate on.")
        generator = torch.Generator().manual_seed(config.seed + 7)
        self.x0 = batch_images(data.test_images[:count])
        self.labels = data.test_labels[:count] if config.conditional else None
        self.t = torch.randint(0, schedule.timesteps, (count,), generator=generator)
        self.noise = torch.randn(self.x0.shape, generator=generator)
        self.x_t = schedule.add_noise(self.x0, self.noise, self.t)
        self.batch_size = config.batch_size

    @torch.no_grad()
    def loss(self, model: UNet, device, autocast, deadline: StopDeadline | None = None) -> float | None:
        """The mean squared error per pixel of the predicted noise; None when a stop's deadline passed first."""
        model.eval()
        total = 0.0
        for start in range(0, len(self.x0), self.batch_size):
            if deadline is not None:
                if deadline.passed():
                    return None
                deadline.phase(f"validation loss: image {start:,} of {len(self.x0):,}")
            part = slice(start, start + self.batch_size)
            labels = self.labels[part].to(device) if self.labels is not None else None
            with autocast:
                eps = model(self.x_t[part].to(device), self.t[part].to(device), labels)
            total += F.mse_loss(eps.float(), self.noise[part].to(device), reduction="sum").item()
        return total / self.noise.numel()


def sample_grid(ema: UNet, schedule: NoiseSchedule, config: DDPMTrainConfig, device, deadline: StopDeadline | None = None) -> np.ndarray | None:
    """The same noise every epoch (seeded), so a person sees the same digits sharpen: (sample_count, 28, 28) in [0, 1];
    None when a stop's deadline passed first."""
    guidance = config.sample_guidance if config.conditional else 1.0
    settings = SampleSettings(sampler="ddim", n=config.sample_count, steps=config.sample_steps, guidance=guidance, seed=config.seed)

    def drawn(done: int, total: int) -> None:
        if deadline is not None:
            deadline.phase(f"drawing sample digits: step {done:,} of {total:,}")

    stopped = (lambda: deadline.passed()) if deadline is not None else None
    images, _ = generate(ema, schedule, settings, device, progress=drawn, should_stop=stopped)
    return images


def card_for(config: DDPMTrainConfig, data: DigitData, images: int, metrics: dict, command: str, started_from: dict | None = None) -> dict:
    """What a checkpoint's card says about its training; checkpoint.py adds the model's part."""
    lineage = {"started_from": started_from} if started_from else {}
    return {
        **lineage,
        "config": asdict(config),
        "preset": preset_of(config),
        "metrics": metrics,
        "command": command,
        "data": {"name": data.name, "train_images": images, "val_images": min(config.val_images, len(data.test_images))},
        "data_fingerprint": data.fingerprint,
    }


@dataclass(frozen=True)
class DDPMResult:
    config: DDPMTrainConfig
    model: UNet  # the EMA weights at the end, in eval mode: what to sample from
    schedule: NoiseSchedule
    steps: int  # optimizer steps taken, including those of the run it resumed
    epochs: float  # passes over the training images
    val_loss: float  # the EMA's validation loss where the run ended
    best_val_loss: float
    stopped: bool
    seconds: float  # training time, including that of the run it resumed
    samples: np.ndarray | None  # the last grid's digits, (sample_count, 28, 28) in [0, 1]
    checkpoint: Path | None  # the best checkpoint's weights file, when the run had somewhere to save it
    last_checkpoint: Path | None


class Batches:
    """The training batches: each epoch's shuffled order (seeded by the epoch, so a resumed run goes on where it was),
    and each batch's t, noise and dropped labels.

    Every rank draws the whole batch's t, noise and dropped labels from the same seeded generators and trains on its own
    slice of it, so two processes see exactly one process's batch, and train the same weights up to the order of float
    sums (DDP averages the slices' gradients: the batch's mean).
    """

    def __init__(self, config: DDPMTrainConfig, images, labels, schedule: NoiseSchedule, world: World, batch_size: int, share: int,
                 per_epoch: int, step: int):
        self.config, self.images, self.labels, self.schedule = config, images, labels, schedule
        self.batch_size, self.per_epoch = batch_size, per_epoch
        self.mine = slice(world.rank * share, (world.rank + 1) * share)
        self.noise_generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)  # a resumed run draws fresh noise
        self.order: torch.Tensor | None = None

    def order_at(self, step: int) -> torch.Tensor:
        """The indices of the images of the batch at `step`."""
        epoch, position = divmod(step, self.per_epoch)
        if self.order is None or position == 0:
            self.order = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(self.config.seed + epoch))
        return self.order[position * self.batch_size : (position + 1) * self.batch_size]

    def draw(self, index: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """This rank's slice of the batch of images `index`: (x_t, t, noise, labels or None)."""
        config, mine = self.config, self.mine
        t = torch.randint(0, self.schedule.timesteps, (len(index),), generator=self.noise_generator)
        noise = torch.randn((len(index), 1, *self.images.shape[1:]), generator=self.noise_generator)  # (B, 1, 28, 28)
        dropped = torch.rand(len(index), generator=self.noise_generator) < config.label_dropout if config.conditional else None
        x0 = batch_images(self.images[index[mine]], device)  # (B / ranks, 1, 28, 28) in [-1, 1]
        y = None
        if config.conditional:
            y = torch.where(dropped, torch.full_like(self.labels[index], CLASSES), self.labels[index])[mine].to(device)
        t, noise = t[mine].to(device), noise[mine].to(device)
        return self.schedule.add_noise(x0, noise, t), t, noise, y


@dataclass(frozen=True)
class Setup:
    """What the loop works with and never replaces, built once before it, as nanoGPT's train.py builds its globals."""

    config: DDPMTrainConfig
    data: DigitData
    world: World
    device: torch.device
    autocast: AbstractContextManager
    schedule: NoiseSchedule
    model: UNet  # what is saved: one process's checkpoint
    ema: UNet
    trained: torch.nn.Module  # DDP's wrapper around `model` under torchrun, which runs the steps; else `model` itself
    optimizer: torch.optim.Optimizer
    batches: Batches
    validation: Validation
    per_epoch: int
    total_steps: int
    lr_schedule: LRSchedule
    out: Path | None  # the run folder where this process saves; None when it saves nothing
    command: str
    resumed: TrainingState  # where a resumed run was (step, best loss, seconds); zeros for a new run


def set_up(config: DDPMTrainConfig, data: DigitData, out, resume, command: str, init_from) -> Setup:
    """Check the settings and the data, join the other processes, build the U-Net, its EMA and Adam, and load the
    checkpoint to resume or to start from."""
    config.validate()
    if resume is not None and init_from is not None:
        raise ConfigError("A run either resumes (with its optimizer and step) or starts from other weights, not both.")
    images, labels = training_images(config, data)
    world = world_from_environment()
    batch_size = min(config.batch_size, len(images))
    share = world.share(batch_size, "The batch size")  # the images of each batch this rank trains on
    device = join(world, config.device)
    seed_everything(config.seed)
    dtype = autocast_dtype(device)
    autocast = torch.autocast(device_type="cuda", dtype=dtype) if dtype == torch.bfloat16 else nullcontext()

    schedule = NoiseSchedule(config.schedule_config())
    model = UNet(config.unet_config()).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    trained = world.wrap(model, device)
    if world.distributed:
        torch.manual_seed(config.seed + world.rank)  # each rank its own dropout masks; the batches come from seeded generators
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    resumed = TrainingState(0, math.inf, 0.0)
    if init_from is not None:
        resumed = replace(resumed, started_from=start_from_weights(init_from, model, ema, config.schedule_config()))
    if resume is not None:
        resumed = restore_training(resume, model, ema, optimizer, config.schedule_config())
    validation = Validation(config, data, schedule)
    per_epoch = steps_per_epoch(config, len(images))
    total_steps = config.epochs * per_epoch
    if resume is not None and resumed.step >= total_steps:
        raise ConfigError(
            f"The run to resume is already at step {resumed.step:,} (epoch {resumed.step / per_epoch:.2f}); ask for more than "
            f"{config.epochs} epochs to train it further."
        )
    batches = Batches(config, images, labels, schedule, world, batch_size, share, per_epoch, resumed.step)
    return Setup(
        config=config, data=data, world=world, device=device, autocast=autocast, schedule=schedule, model=model, ema=ema, trained=trained,
        optimizer=optimizer, batches=batches, validation=validation, per_epoch=per_epoch, total_steps=total_steps,
        lr_schedule=config.lr_schedule(total_steps), out=Path(out) if out is not None and world.is_main else None, command=command,
        resumed=resumed,
    )


@dataclass
class Kept:
    """What the epochs' ends have measured and saved so far: the result's part."""

    best_val_loss: float
    val_loss: float = math.nan
    samples: np.ndarray | None = None
    best: Path | None = None  # the weights file of `best`, once saved
    last: Path | None = None


def evaluate_and_save(run: Setup, kept: Kept, step: int, seconds: float, report: Reporter, deadline: StopDeadline) -> None:
    """The EMA's validation loss, a grid of samples, `last`, and `best` when the loss improved.

    A stop skips an evaluation or a sample that would take over a second more, but still saves `last`; rank 0 alone
    evaluates, and drops only its own work, so no other rank waits on it.
    """
    config = run.config
    measured = run.validation.loss(run.ema, run.device, run.autocast, deadline)
    if measured is not None:
        kept.val_loss = measured
        report.metric(step, val_loss=measured, epoch=step / run.per_epoch)
    if config.sample_count and measured is not None:
        drawn = sample_grid(run.ema, run.schedule, config, run.device, deadline)
        if drawn is not None:
            kept.samples = drawn
            report.snapshot("samples", drawn)
    improved = measured is not None and measured < kept.best_val_loss
    kept.best_val_loss = min(kept.best_val_loss, measured) if measured is not None else kept.best_val_loss
    if run.out is not None:
        metrics = {"step": step, "epoch": round(step / run.per_epoch, 3), "val_loss": kept.val_loss, "best_val_loss": kept.best_val_loss,
                   "seconds": round(seconds, 2)}
        card = card_for(config, run.data, len(run.batches.images), metrics, run.command, run.resumed.started_from)
        deadline.phase("saving the checkpoint")
        kept.last = save_training(last_in(run.out), run.model, run.ema, run.optimizer, config.schedule_config(), card)
        if improved:
            kept.best = save_training(best_in(run.out), run.model, run.ema, run.optimizer, config.schedule_config(), card)
    run.model.train()
    deadline.phase("training")


def train(config: DDPMTrainConfig, data: DigitData, report: Reporter, out: str | Path | None = None, resume: str | Path | None = None,
          command: str = "", init_from: str | Path | None = None) -> DDPMResult:
    """Train a DDPM on `data`'s training images. Checkpoints go to the folder `out` (when given); `resume` continues a
    run; `init_from` starts a new run (fresh Adam, step 0) from a checkpoint's weights: fine-tuning."""
    run = set_up(config, data, out, resume, command, init_from)
    report = run.world.reporter(report)
    step = first_step = run.resumed.step
    kept = Kept(best_val_loss=run.resumed.best_val_loss)
    started = time.perf_counter()
    window_seconds, window_images = 0.0, 0
    run.model.train()
    report.progress(step, run.total_steps)
    deadline = StopDeadline(report)
    deadline.phase("training")
    while True:
        lr = get_lr(step, run.lr_schedule)
        for group in run.optimizer.param_groups:
            group["lr"] = lr

        # at each epoch's end, and where the run ends: evaluate, sample, checkpoint
        stopping = run.world.any(report.stop_requested, run.device)  # a stop on any rank stops them all, at this step
        finishing = step >= run.total_steps or stopping
        if step > first_step and (step % run.per_epoch == 0 or finishing) and run.world.is_main:
            evaluate_and_save(run, kept, step, run.resumed.seconds + time.perf_counter() - started, report, deadline)
        if finishing:
            break

        # a batch: this rank's slice of it, noised
        index = run.batches.order_at(step)
        t0 = time.perf_counter()
        x_t, t, noise, y = run.batches.draw(index, run.device)

        # forward, backward, update
        with run.autocast:
            predicted = run.trained(x_t, t, y)
        loss = F.mse_loss(predicted.float(), noise)  # L_simple, eq. (14); on rank 0 its slice's, when logged
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip if config.grad_clip > 0 else math.inf)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        update_ema(run.ema, run.model, ema_decay_at(step, config))

        # time and log; .item() waits for the GPU, so the steps timed since the last log are complete
        window_images += len(index)
        logging = step % config.log_interval == 0
        lossf, normf = (loss.item(), grad_norm.item()) if logging else (math.nan, math.nan)
        window_seconds += time.perf_counter() - t0
        if logging:
            report.metric(step, loss=lossf, lr=lr, grad_norm=normf, images_per_s=window_images / window_seconds)
            window_seconds, window_images = 0.0, 0
        step += 1
        report.progress(step, run.total_steps)

    run.ema.eval()
    stopped = (stopping or report.stop_requested) and step < run.total_steps
    return DDPMResult(config=config, model=run.ema, schedule=run.schedule, steps=step, epochs=step / run.per_epoch, val_loss=kept.val_loss,
                      best_val_loss=kept.best_val_loss, stopped=stopped, seconds=run.resumed.seconds + time.perf_counter() - started,
                      samples=kept.samples, checkpoint=kept.best, last_checkpoint=kept.last)
