"""Training the character-level GPT, in the order of nanoGPT's train.py.

    python -m engine.gpt train --preset cpu                  # nanoGPT's CPU settings: val loss ~1.88 in a few minutes
    python -m engine.gpt train --preset gpu                  # config/train_shakespeare_char.py: val loss ~1.47 on one A100
    python -m engine.gpt train --preset tiny                 # seconds, on any text; what the tests use
    python -m engine.gpt train --resume runs/gpt/cpu --max-iters 3000

One loop, in a fixed order: set the learning rate; every eval_interval estimate the train and val
loss, report a text sample and keep the best checkpoint; stop at max_iters or when asked (after a
last evaluation, so a stopped run keeps what it reached); forward, backward and step, with gradient
accumulation and clipping; time and log.

Under torchrun (engine/core/distributed.py) the same loop runs on every rank: the gradient accumulation's
micro-batches are shared among the ranks, so a config trains the same run on any number of processes.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from engine.core.config import Config, check_fields, preset_named, require, same_spec, seed_spec, spec
from engine.core.device import autocast_dtype, seed_everything
from engine.core.distributed import World, join, world_from_environment
from engine.core.jobs import Reporter, StopDeadline
from engine.core.lr import LRSchedule, get_lr
from engine.gpt.checkpoint import checkpoint_in, restore_training, save_training
from engine.gpt.data import CharData, CharTokenizer, get_batch
from engine.gpt.model import GPT, GPTConfig
from engine.gpt.sample import generate

MAX_ITERS = 1_000_000
MAX_BATCH_SIZE = 4096
MAX_ACCUMULATION = 1024
MAX_EVAL_ITERS = 10_000
MAX_WEIGHT_DECAY = 1.0  # AdamW scales each matrix by 1 - learning_rate * weight_decay a step: kept at or above 0


@dataclass(frozen=True)
class GPTTrainConfig(Config, what="GPT training settings"):
    # model (see model.GPTConfig, which checks these ranges); the vocabulary size comes from the data
    n_layer: int = field(default=6, metadata=same_spec(GPTConfig, "n_layer"))
    n_head: int = field(default=6, metadata=same_spec(GPTConfig, "n_head"))
    n_embd: int = field(default=384, metadata=same_spec(GPTConfig, "n_embd"))
    block_size: int = field(default=256, metadata=same_spec(GPTConfig, "block_size"))  # context of up to 256 previous characters
    dropout: float = field(default=0.2, metadata=same_spec(GPTConfig, "dropout"))
    bias: bool = False  # no biases in Linears and LayerNorms: a little better and faster
    # AdamW
    # batch_size is one micro-batch of one process (nanoGPT's meaning); a step sums gradient_accumulation_steps of
    # them, shared among torchrun's processes: a step's batch is batch_size x gradient_accumulation_steps, however many
    batch_size: int = field(default=64, metadata=spec(1, MAX_BATCH_SIZE))
    gradient_accumulation_steps: int = field(default=1, metadata=spec(1, MAX_ACCUMULATION))  # micro-batches summed into one step
    max_iters: int = field(default=5000, metadata=spec(1, MAX_ITERS))
    learning_rate: float = field(default=1e-3, metadata=spec(0, 1, above=True))  # baby networks can afford a higher rate than GPT-2's 6e-4
    weight_decay: float = field(default=0.1, metadata=spec(0, MAX_WEIGHT_DECAY))  # on matrices only
    beta1: float = field(default=0.9, metadata=spec(0, 1, below=True))
    beta2: float = field(default=0.99, metadata=spec(0, 1, below=True))  # a bit above GPT-2's 0.95: few tokens per iteration
    grad_clip: float = field(default=1.0, metadata=spec(0, note="(0 turns clipping off)"))  # clip the gradient's global norm at this value
    # learning-rate schedule: linear warmup, then cosine decay to min_lr
    decay_lr: bool = True
    warmup_iters: int = field(default=100, metadata=spec(0, MAX_ITERS))
    lr_decay_iters: int = field(default=5000, metadata=spec(0, MAX_ITERS))  # usually max_iters
    min_lr: float = field(default=1e-4, metadata=spec(0, 1))  # usually learning_rate / 10
    # evaluation and logging
    eval_interval: int = field(default=250, metadata=spec(1, MAX_ITERS, unit="iterations"))  # iterations between evaluations (and checkpoints)
    eval_iters: int = field(default=200, metadata=spec(1, MAX_EVAL_ITERS, unit="batches"))  # batches averaged per split at each evaluation
    log_interval: int = field(default=10, metadata=spec(1, MAX_ITERS, unit="iterations"))  # iterations between metric rows
    sample_chars: int = field(default=200, metadata=spec(0, 10_000))  # length of the text sample reported at each evaluation
    # system
    seed: int = field(default=1337, metadata=seed_spec())
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
    compile: bool = True  # torch.compile the model; used on CUDA only

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(
            block_size=self.block_size,
            vocab_size=vocab_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            dropout=self.dropout,
            bias=self.bias,
        )

    @property
    def tokens_per_iter(self) -> int:
        return self.gradient_accumulation_steps * self.batch_size * self.block_size

    def validate(self) -> "GPTTrainConfig":
        check_fields(self)
        self.model_config(vocab_size=2).validate()
        require(self.min_lr <= self.learning_rate, f"min_lr must be between 0 and learning_rate ({self.learning_rate}), got {self.min_lr}.")
        require(
            not self.decay_lr or self.lr_decay_iters > self.warmup_iters,
            f"lr_decay_iters ({self.lr_decay_iters}) must be larger than warmup_iters ({self.warmup_iters}): the cosine decay runs between them.",
        )
        return self

    def lr_schedule(self) -> LRSchedule:
        return LRSchedule(self.learning_rate, self.min_lr, self.warmup_iters, self.lr_decay_iters, self.decay_lr)


# nanoGPT's config/train_shakespeare_char.py, which the defaults above are.
# Reaches val loss 1.4697 in about 3 minutes on one A100 (nanoGPT's README).
GPU = GPTTrainConfig()

# nanoGPT README's settings for a CPU ("I only have a macbook"); val loss 1.8857 at iter 2000.
CPU = replace(
    GPU,
    n_layer=4,  # a smaller model ...
    n_head=4,
    n_embd=128,
    block_size=64,  # ... on shorter contexts ...
    batch_size=12,  # ... and smaller batches, so an iteration takes tens of milliseconds
    max_iters=2000,
    lr_decay_iters=2000,  # decay over the whole, shorter run
    dropout=0.0,  # a small model trained briefly does not overfit
    eval_iters=20,  # a rougher but 10x cheaper loss estimate
)

# nanoGPT's CPU recipe's quality, sooner: the same model, data and batches, with a learning rate four times higher
# over 1,200 iterations instead of 2,000. A 128-wide model tolerates the higher rate, and the recipe at 1e-3 is
# still far from its best when it stops. Over the whole validation split it reached 1.877 against the recipe's
# 1.898 (seed 1337); `python -m bench.gpt_time_to_quality` times both as whole processes.
FAST = replace(
    CPU,
    learning_rate=4e-3,
    min_lr=4e-4,  # learning_rate / 10, as the recipe's
    max_iters=1200,
    lr_decay_iters=1200,
)

# For tests and trying things: seconds on a few hundred characters.
TINY = replace(
    CPU,
    n_layer=2,
    n_head=2,
    n_embd=32,
    block_size=16,
    batch_size=8,
    max_iters=60,
    lr_decay_iters=60,
    warmup_iters=10,
    learning_rate=3e-3,  # a 26k-parameter model learns faster with a higher rate
    min_lr=3e-4,
    eval_interval=20,
    eval_iters=4,
    log_interval=5,
    sample_chars=40,
)

PRESETS = {"cpu": CPU, "fast": FAST, "gpu": GPU, "tiny": TINY}
REFERENCE_VAL_LOSS = {"cpu": 1.8857, "gpu": 1.4697}  # nanoGPT's figures for its two Shakespeare recipes
# the nanoGPT recipe each preset answers to: its own, or for fast, the CPU recipe whose quality it reaches sooner
REFERENCE_RECIPE = {"cpu": "cpu", "fast": "cpu", "gpu": "gpu"}


def preset_of(config: GPTTrainConfig) -> str | None:
    """The preset's name if `config` is one, setting aside where it runs."""
    return preset_named(config, PRESETS, ignoring=("device", "compile", "seed"))


class StepAbandoned(Exception):
    """A stop's deadline passed inside a forward or backward pass: the work in hand is dropped, not finished."""


def abandon_on_deadline(model: GPT, deadline: StopDeadline) -> list:
    """Hooks that let a stop cut into a single pass, whose length on a CPU can be seconds (the GPU recipe's
    step: about ten): before each block's forward, and as each block's gradient arrives in the backward
    pass, a passed deadline raises StepAbandoned. Returns the handles, to remove them when done."""

    def check(*_):
        if deadline.passed():
            raise StepAbandoned

    def before_block(module, args):
        check()
        if torch.is_grad_enabled() and args[0].requires_grad:
            args[0].register_hook(lambda grad: check())

    return [block.register_forward_pre_hook(before_block) for block in model.transformer.h]


@torch.no_grad()
def estimate_loss(model, data: CharData, config: GPTTrainConfig, device, autocast, batches: torch.Generator,
                  deadline: StopDeadline | None = None) -> dict[str, float] | None:
    """Mean loss over eval_iters batches of each split drawn from `batches`, in nats per character;
    None when a stop's deadline passed before it was done."""
    model.eval()
    losses = {}
    for split_name, split in (("train", data.train), ("val", data.val)):
        total = 0.0
        for n in range(config.eval_iters):
            if deadline is not None:
                if deadline.passed():
                    model.train()
                    return None
                done = n + (config.eval_iters if split_name == "val" else 0)
                deadline.phase(f"estimating the train and val loss: batch {done + 1:,} of {2 * config.eval_iters:,}")
            X, Y = get_batch(split, config.block_size, config.batch_size, batches, device)
            try:
                with autocast:
                    _, loss = model(X, Y)
            except StepAbandoned:
                model.train()
                return None
            total += loss.item()
        losses[split_name] = total / config.eval_iters
    model.train()
    return losses


def skip_evaluation_batches(data: CharData, config: GPTTrainConfig, batches: torch.Generator) -> None:
    """Draw what estimate_loss draws, without the model: a rank that does not evaluate keeps its batch stream
    in step with rank 0's."""
    for split in (data.train, data.val):
        for _ in range(config.eval_iters):
            get_batch(split, config.block_size, config.batch_size, batches)


@torch.no_grad()
def split_loss(model: GPT, split: torch.Tensor, batch_size: int = 64, device=None) -> float:
    """Mean loss over a whole split, in nats per character: every character but the first is predicted once.

    The split is cut into back-to-back windows of block_size + 1 characters, so each prediction sees between
    0 and block_size - 1 characters of context, as in a random training window. estimate_loss's figure is a
    sample of this one: nanoGPT's CPU recipe averages 20 batches, about 15k of the 111k validation characters.
    """
    block_size = model.config.block_size
    usable = (len(split) - 1) // block_size * block_size
    inputs = split[:usable].view(-1, block_size)
    targets = split[1 : usable + 1].view(-1, block_size)
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, len(inputs), batch_size):
        x, y = inputs[start : start + batch_size], targets[start : start + batch_size]
        _, loss = model(x.to(device) if device else x, y.to(device) if device else y)
        total += loss.item() * y.numel()
    model.train(was_training)
    return total / usable


def sample_text(model: GPT, data: CharData, config: GPTTrainConfig, deadline: StopDeadline | None = None) -> str | None:
    """What the model writes from an empty prompt; None when a stop's deadline passed while it wrote."""
    characters = []
    try:
        for character in generate(model, data.tokenizer, "", config.sample_chars, seed=config.seed):
            if deadline is not None and deadline.passed():
                characters = None
                break
            characters.append(character)
    except StepAbandoned:
        characters = None
    model.train()
    return "".join(characters) if characters is not None else None


def copy_weights(model: GPT) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}


def card_for(config: GPTTrainConfig, data: CharData, metrics: dict, command: str) -> dict:
    """What a checkpoint's card says about its training; checkpoint.py adds the model's part."""
    preset = preset_of(config)
    return {
        "config": asdict(config),
        "preset": preset,
        "reference_val_loss": REFERENCE_VAL_LOSS.get(preset),
        "metrics": metrics,
        "command": command,
        "data": {"name": data.name, "characters": data.characters, "train": len(data.train), "val": len(data.val)},
        "data_fingerprint": data.fingerprint,
    }


@dataclass(frozen=True)
class GPTResult:
    config: GPTTrainConfig
    model: GPT  # with the best validation loss's weights, in eval mode
    tokenizer: CharTokenizer
    best_val_loss: float
    best_iter: int
    iterations: int  # the iteration the run ended at
    stopped: bool
    seconds: float  # training time, including that of the run it resumed
    checkpoint: Path | None  # the best checkpoint's weights file, when the run had somewhere to save it


@dataclass
class TrainingRun:
    """What the loop's parts share: the model as it is saved, evaluated and trained, the optimizer, the batch
    stream and the best evaluation so far. One per call of `train`."""

    config: GPTTrainConfig
    data: CharData
    world: World
    device: torch.device
    report: Reporter
    autocast: object  # bf16 autocast on a CUDA card that supports it, else a null context
    raw_model: GPT  # what is evaluated and saved, so a checkpoint is one process's
    model: torch.nn.Module  # raw_model, compiled on CUDA: what rank 0 evaluates
    trained: torch.nn.Module  # model inside DDP's wrapper under torchrun: what trains
    optimizer: torch.optim.Optimizer
    batches: torch.Generator
    deadline: StopDeadline
    checkpoint: Path | None  # where the best checkpoint goes (rank 0, with `out`)
    command: str
    iter_num: int = 0
    best_val_loss: float = math.inf
    best_iter: int = 0
    best_weights: dict[str, torch.Tensor] | None = None  # the result's weights, even without `out`
    seconds_before: float = 0.0  # training time of the run this one resumed
    started: float = 0.0
    saved: Path | None = None
    hooks: list = field(default_factory=list)
    stream_before_batch: torch.Tensor | None = None  # the batch stream's state before X, Y were drawn
    X: torch.Tensor | None = None
    Y: torch.Tensor | None = None

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started


def autocast_for(device: torch.device):
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls for anything autocast leaves in float32
        torch.backends.cudnn.allow_tf32 = True
    dtype = autocast_dtype(device)
    return torch.autocast(device_type="cuda", dtype=dtype) if dtype == torch.bfloat16 else nullcontext()


def start_run(config: GPTTrainConfig, data: CharData, world: World, device: torch.device, report: Reporter,
              out: str | Path | None, resume: str | Path | None, command: str) -> TrainingRun:
    """The model (resumed when asked), its optimizer, the batch stream and the stop's deadline, set up in nanoGPT's order."""
    autocast = autocast_for(device)
    raw_model = GPT(config.model_config(data.tokenizer.vocab_size)).to(device)
    optimizer = raw_model.configure_optimizers(config.weight_decay, config.learning_rate, (config.beta1, config.beta2), device.type)
    state = restore_training(resume, raw_model, optimizer, data) if resume is not None else None
    model = torch.compile(raw_model) if device.type == "cuda" and config.compile else raw_model
    # DDP's wrapper trains; rank 0 evaluates the model inside it, alone, and saves raw_model, so a checkpoint is one process's
    trained = world.wrap(model, device)
    checkpoint = checkpoint_in(out) if out is not None and world.is_main else None
    best_weights = copy_weights(raw_model) if resume is not None else None

    # Batches come from the random stream of nanoGPT's train.py: torch's global generator as the model's
    # initialisation left it, drawn in its order (the first training batch; at each evaluation eval_iters
    # batches of each split; then a training batch per iteration). Without dropout (whose masks come from
    # the global generator) a run is nanoGPT's own for the same seed, so its reference figures can be met
    # exactly (bench/gpt_cpu_preset.py). A checkpoint keeps the stream's state from before the batch in
    # hand was drawn, so a resumed run draws what the run would have drawn.
    # Under torchrun every rank draws every micro-batch of the step from this same stream and trains on its own
    # share of them (rank r: micro-batches r * micro_steps onwards), so two processes see exactly what one
    # process sees, step by step, and train the same weights up to the order of float sums.
    batches = torch.Generator().set_state(torch.get_rng_state())
    if state is not None:
        if state.batch_stream is not None:
            batches.set_state(state.batch_stream)
        else:  # a checkpoint from before the stream was saved: at least not the first run's batches again
            batches.manual_seed(config.seed + state.iter_num)
    started = time.perf_counter()
    model.train()
    report.progress(state.iter_num if state is not None else 0, config.max_iters)
    if world.distributed:
        # Under torchrun nothing is abandoned half-way: a rank that dropped its step (or rank 0 its evaluation)
        # while the others went on would leave them waiting in an all-reduce forever. The all-reduced stop
        # flag ends the loop on every rank at the next iteration instead.
        deadline = StopDeadline(report, grace=math.inf)
        torch.manual_seed(config.seed + world.rank)  # each rank its own dropout masks; the batches have their stream
    else:
        deadline = StopDeadline(report)
    hooks = abandon_on_deadline(raw_model, deadline) if device.type == "cpu" and not world.distributed else []  # a GPU's steps take milliseconds
    run = TrainingRun(config, data, world, device, report, autocast, raw_model, model, trained, optimizer, batches, deadline,
                      checkpoint, command, best_weights=best_weights, started=started, hooks=hooks)
    if state is not None:
        run.iter_num, run.best_val_loss, run.best_iter, run.seconds_before = state.iter_num, state.best_val_loss, state.iter_num, state.seconds
    return run


def draw_batch(run: TrainingRun) -> None:
    """The next training batch into run.X, run.Y, keeping the stream's state from before it for a checkpoint."""
    run.stream_before_batch = run.batches.get_state()
    run.X, run.Y = get_batch(run.data.train, run.config.block_size, run.config.batch_size, run.batches, run.device)


def evaluate_and_save(run: TrainingRun) -> bool:
    """Estimate the train and val loss, report them and a text sample, and keep the best weights (saved when the run
    has a checkpoint folder). Rank 0 alone evaluates; the others draw what it draws. False when a stop abandoned it."""
    config, data, deadline = run.config, run.data, run.deadline
    if not run.world.is_main:
        skip_evaluation_batches(data, config, run.batches)
        return True
    losses = estimate_loss(run.model, data, config, run.device, run.autocast, run.batches, deadline)
    if losses is None:
        return False
    run.report.metric(run.iter_num, train_loss=losses["train"], val_loss=losses["val"])
    if config.sample_chars:
        deadline.phase("writing a text sample")
        sample = sample_text(run.raw_model, data, config, deadline)
        if sample is not None:
            run.report.snapshot("sample", sample)
    if losses["val"] < run.best_val_loss:
        run.best_val_loss, run.best_iter = losses["val"], run.iter_num
        run.best_weights = copy_weights(run.raw_model)
        if run.checkpoint is not None and run.iter_num > 0:
            metrics = {
                "best_val_loss": run.best_val_loss,
                "train_loss": losses["train"],
                "iter": run.iter_num,
                "seconds": round(run.seconds(), 2),
            }
            deadline.phase("saving the checkpoint")
            run.saved = save_training(run.checkpoint, run.raw_model, run.optimizer, data.tokenizer,
                                      card_for(config, data, metrics, run.command), run.stream_before_batch)
    deadline.phase("training")
    return True


def forward_backward(run: TrainingRun, micro_steps: int) -> torch.Tensor:
    """One step's gradients, summed over this rank's `micro_steps` of the step's micro-batches, while every rank draws
    them all; returns the last of its losses, divided by micro_steps. Raises StepAbandoned when a stop cuts in."""
    for micro_step in range(run.config.gradient_accumulation_steps):
        mine = micro_step // micro_steps == run.world.rank
        if mine:
            if run.world.distributed:  # DDP all-reduces the gradients after this rank's last micro-batch only
                run.trained.require_backward_grad_sync = micro_step % micro_steps == micro_steps - 1
            with run.autocast:
                _, loss = run.trained(run.X, run.Y)
                loss = loss / micro_steps  # the summed gradients are then the mean's (DDP averages over ranks)
        draw_batch(run)  # while the GPU works
        if mine:
            loss.backward()
    return loss


def finish(run: TrainingRun, stopped: bool) -> GPTResult:
    """The result, with the best evaluation's weights in the model."""
    for hook in run.hooks:
        hook.remove()
    if run.best_weights is not None:
        run.raw_model.load_state_dict(run.best_weights)
    run.raw_model.eval()
    return GPTResult(
        config=run.config,
        model=run.raw_model,
        tokenizer=run.data.tokenizer,
        best_val_loss=run.best_val_loss,
        best_iter=run.best_iter,
        iterations=run.iter_num,
        stopped=stopped,
        seconds=run.seconds(),
        checkpoint=run.saved,
    )


def train(
    config: GPTTrainConfig,
    data: CharData,
    report: Reporter,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    command: str = "",
) -> GPTResult:
    """Train a GPT on `data`. The best checkpoint goes to the folder `out` (when given); `resume` continues a checkpoint."""
    config.validate()
    data.require_block_size(config.block_size)
    world = world_from_environment()
    micro_steps = world.share(config.gradient_accumulation_steps, "gradient_accumulation_steps")  # this rank's
    device = join(world, config.device)
    report = world.reporter(report)
    seed_everything(config.seed)
    run = start_run(config, data, world, device, report, out, resume, command)
    lr_schedule = config.lr_schedule()
    step_seconds, steps_timed = 0.0, 0
    draw_batch(run)
    while True:
        lr = get_lr(run.iter_num, lr_schedule)
        for group in run.optimizer.param_groups:
            group["lr"] = lr

        # evaluate, sample, keep the best; the run's last iteration is always evaluated
        stopping = world.any(report.stop_requested, device)  # a stop on any rank stops them all, at this step
        finishing = run.iter_num >= config.max_iters or stopping
        # (a stop abandons an evaluation that would take over a second more; the run keeps its best checkpoint)
        if (run.iter_num % config.eval_interval == 0 or finishing) and not evaluate_and_save(run):
            break
        if finishing:
            break

        # forward, backward, update
        t0 = time.perf_counter()
        try:
            loss = forward_backward(run, micro_steps)
        except StepAbandoned:  # stopped inside a step: it is not taken, and the run keeps its best checkpoint
            run.optimizer.zero_grad(set_to_none=True)
            break
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)

        # time and log; loss.item() waits for the GPU, so the steps timed since the last log are complete
        lossf = loss.item() * micro_steps if run.iter_num % config.log_interval == 0 else None  # rank 0's last micro-batch
        step_seconds += time.perf_counter() - t0
        steps_timed += 1
        if lossf is not None:
            ms = 1000 * step_seconds / steps_timed
            report.metric(run.iter_num, loss=lossf, lr=lr, ms_per_iter=ms, tokens_per_s=config.tokens_per_iter / (ms / 1000))
            step_seconds, steps_timed = 0.0, 0
        run.iter_num += 1
        report.progress(run.iter_num, config.max_iters)

    return finish(run, stopped=(stopping or report.stop_requested) and run.iter_num < config.max_iters)
