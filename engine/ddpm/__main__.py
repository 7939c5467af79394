"""Command line for the diffusion lab: `python -m engine.ddpm train|sample|export|classifier --help`.

    python -m engine.ddpm train --preset cpu --out runs/ddpm/cpu
    python -m engine.ddpm train --preset tiny --toy                  # seconds, on toy shapes instead of MNIST
    python -m engine.ddpm train --resume runs/ddpm/cpu --epochs 15
    python -m engine.ddpm train --init-from checkpoints/ddpm_mnist --label-dropout 0.5 --epochs 3 --out runs/ddpm/tuned
    python -m engine.ddpm sample --checkpoint runs/ddpm/cpu --out samples.png --n 40 --sampler ddim --steps 50
    python -m engine.ddpm sample --out denoise.gif --n 16 --digit 7 --guidance 3 --seed 1
    python -m engine.ddpm sample --out samples.npy --n 1000 --score --classifier runs/ddpm/classifier
    python -m engine.ddpm sweep --checkpoint runs/ddpm/cpu --n 500 --guidance unconditional,1,2,3
    python -m engine.ddpm export --checkpoint runs/ddpm/cpu --out checkpoints/ddpm_mnist
    python -m engine.ddpm record                       # the player's first digits, kept beside the shipped checkpoint
    python -m engine.ddpm classifier train --out runs/ddpm/classifier
    python -m engine.ddpm classifier score --samples samples.npy --classifier runs/ddpm/classifier
    python -m torch.distributed.run --nproc-per-node 2 -m engine.ddpm train --preset cpu   # each process half of each batch
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.core.checkpoints import card_path, runs_dir, weights_path, write_atomically
from engine.core.cli import (
    CommandParser, check_readable_pair, check_writable_pair, command_line, config_arguments, config_in_card, flags_given, path_argument,
    command_resuming, run_command, train_command, train_in_console,
)
from engine.core.device import configure_threads, pick_device
from engine.core.errors import ConfigError
from engine.core.files import check_writable
from engine.core.jobs import ConsoleReporter
from engine.ddpm.checkpoint import SHIPPED_CHECKPOINT, best_in, export_checkpoint, find_checkpoint, last_in, load_model, record_in_card
from engine.ddpm.classifier import ClassifierConfig, load_classifier, read_samples, score_samples, train_classifier
from engine.ddpm.data import load_mnist, to_unit, toy_shapes
from engine.ddpm.quality import parse_guidances, reference, sweep, sweep_record
from engine.ddpm.recording import FIRST_SETTINGS, SHIPPED_RECORDING, record, save_recording
from engine.ddpm.sample import DEFAULT_GUIDANCE, SAMPLERS, SampleSettings, denoising_gif, frames, frames_to_keep, generate, grid_png, sample_labels
from engine.ddpm.train import PRESETS, DDPMTrainConfig, train

OUTPUT_KINDS = (".png", ".npy", ".gif")
MAX_GIF_SAMPLES = 100
MAX_GIF_FRAMES = 1000


def base_config(args: argparse.Namespace) -> DDPMTrainConfig:
    """A preset's settings, or those of the run to resume or of the weights to fine-tune (their model must match)."""
    start = args.resume or (args.init_from if not args.preset else None)
    if start is None:
        return PRESETS[args.preset or "cpu"]
    return config_in_card(readable_checkpoint(start, prefer="last" if args.resume else "best"), DDPMTrainConfig, start)


def readable_checkpoint(path: Path | None, prefer: str = "best") -> Path:
    """The checkpoint a --checkpoint or --resume names, its two files checked to be regular files, so reading them ends."""
    return check_readable_pair(find_checkpoint(path if path is not None else SHIPPED_CHECKPOINT, prefer=prefer))


def training_data(args: argparse.Namespace):
    if args.toy is not None:  # --toy 0 is a mistake, not "all of MNIST"
        return toy_shapes(args.toy)
    return load_mnist(args.data_dir)


class RunFolderReporter(ConsoleReporter):
    """The console's bar and log lines, and each epoch's grid of samples written to <run folder>/samples.png."""

    def __init__(self, folder: Path, log_every: int):
        super().__init__("training", log_every=log_every)
        self.folder = folder

    def metric(self, step: int, **values: float) -> None:
        if "val_loss" not in values:
            return super().metric(step, **values)
        # each epoch's evaluation gets its line, whether or not its step falls on a logged one
        line = f"epoch {values['epoch']:.2f}  step {step:>6}  val_loss {values['val_loss']:.6g}"
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream)

    def snapshot(self, name, value) -> None:
        if name == "samples":
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.folder / "samples.png", grid_png(value, columns=10))
        else:
            super().snapshot(name, value)


def run_train(args: argparse.Namespace, command: str) -> int:
    config = replace(base_config(args), **flags_given(args, DDPMTrainConfig)).validate()
    preset = args.preset or (None if args.resume or args.init_from else "cpu")
    if args.resume:
        out = args.out or find_checkpoint(args.resume, prefer="last").parent
        command = command_resuming(readable_checkpoint(args.resume, prefer="last"), command)
    else:
        out = args.out or runs_dir() / "ddpm" / (preset or "fine-tuned")
    init_from = readable_checkpoint(args.init_from) if args.init_from else None
    for checkpoint in (last_in(out), best_in(out)):
        check_writable_pair(checkpoint)
    data = training_data(args)
    reporter = RunFolderReporter(Path(out), config.log_interval)
    result = train_in_console(reporter, lambda: train(config, data, reporter, out=out, resume=args.resume, command=command, init_from=init_from))
    if result is None:
        return 0
    state = "stopped" if result.stopped else "done"
    print(
        f"{state}: val loss {result.val_loss:.4f} (best {result.best_val_loss:.4f}) after {result.steps} steps, "
        f"{result.epochs:.2f} epochs, {result.seconds:.1f} s"
    )
    if result.last_checkpoint:
        best = result.checkpoint or "no new best"
        print(f"saved {result.last_checkpoint} (to resume), {best} (to sample from) and {Path(out) / 'samples.png'}")
    else:
        print("no checkpoint saved: the run stopped before its first step")
    return 0


def output_paths(paths: list[Path]) -> list[Path]:
    for path in paths:
        if path.suffix.lower() not in OUTPUT_KINDS:
            raise ConfigError(f"--out {path} must end in .png (a grid), .npy (an N x 28 x 28 array in [0, 1]) or .gif (the animation).")
    return paths


def run_sample(args: argparse.Namespace) -> int:
    outs = output_paths(args.out or [Path("samples.png")])
    if not 2 <= args.gif_frames <= MAX_GIF_FRAMES:
        raise ConfigError(f"--gif-frames must be between 2 and {MAX_GIF_FRAMES}, got {args.gif_frames}.")
    for path in outs:
        check_writable(path)
    classifier = load_classifier(args.classifier) if args.score or args.classifier else None  # before the minutes of sampling
    device = pick_device(args.device)
    model, schedule, _ = load_model(readable_checkpoint(args.checkpoint), device)
    settings = SampleSettings(**flags_given(args, SampleSettings)).resolved(model.config, schedule.timesteps)
    wants_gif = any(path.suffix.lower() == ".gif" for path in outs)
    if wants_gif and settings.n > MAX_GIF_SAMPLES:
        raise ConfigError(f"An animation shows at most {MAX_GIF_SAMPLES} samples, not {settings.n}: lower --n, or write a .png or .npy.")
    reporter = ConsoleReporter(f"{settings.sampler} sampling")
    if wants_gif:
        keep = set(frames_to_keep(settings.steps, args.gif_frames))
        kept = []
        for frame in frames(model, schedule, settings, device):
            reporter.progress(frame.index, settings.steps)
            if frame.index in keep:
                kept.append(frame)
        images = to_unit(kept[-1].x)
        drawn = sample_labels(model.config, settings, settings.n)
        labels = drawn.numpy() if drawn is not None else None
    else:
        images, labels = generate(model, schedule, settings, device, progress=reporter.progress)
    reporter.close()
    columns = 10 if model.config.conditional and settings.digit is None and not settings.unconditional else None
    for path in outs:
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = path.suffix.lower()
        if kind == ".png":
            path.write_bytes(grid_png(images, columns=columns))
        elif kind == ".npy":
            np.save(path, images.astype(np.float32))
        else:
            path.write_bytes(denoising_gif(kept, columns=columns))
        print(f"saved {path}")
    what = f"digit {settings.digit}" if settings.digit is not None else ("no label" if settings.unconditional or not model.config.conditional else "digits 0-9 in turn")
    sampler = f"ddim with {settings.steps} steps (eta {settings.eta:g})" if settings.sampler == "ddim" else f"ddpm with {settings.steps} steps"
    print(f"{settings.n} samples, {sampler}, {what}, guidance {settings.guidance:g}, seed {settings.seed}")
    if classifier is not None:
        reader, classifier_card = classifier
        score = score_samples(reader, images, labels)
        accuracy = classifier_card.get("metrics", {}).get("test_accuracy")
        print(f"classifier ({'test accuracy ' + format(accuracy, '.2%') if accuracy else 'untested'}): {score.summary()}")
    return 0


def guidance_list(text: str) -> list[float | None]:
    try:
        return parse_guidances(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run_sweep(args: argparse.Namespace, command: str) -> int:
    if not 10 <= args.n <= 10_000:
        raise ConfigError(f"--n must be between 10 and 10,000 samples per guidance value, got {args.n}.")
    checkpoint = readable_checkpoint(args.checkpoint)
    if args.record:
        check_writable_pair(checkpoint)
    classifier, _ = load_classifier(args.classifier)
    device = pick_device(args.device)
    model, schedule, _ = load_model(checkpoint, device)
    steps = SampleSettings(steps=args.steps).resolved(model.config, schedule.timesteps).steps
    ref = reference(classifier, load_mnist(args.data_dir), args.n, seed=args.seed)
    print(f"{ref.n} real training digits: {ref.real_recognised:.1%} recognised, distance {ref.real_distance:.1f} from the test digits")
    reporter = ConsoleReporter("sweep")
    with reporter.ctrl_c_stops():
        rows = sweep(model, schedule, classifier, ref, args.guidance, args.n, steps, args.seed,
                     progress=reporter.progress, should_stop=lambda: reporter.stop_requested)
    reporter.close()
    print(f"{'sampling':<16} {'recognised':>10} {'as asked':>9} {'rarest digit':>13} {'distance':>9} {'x real':>7} {'seconds':>8}")
    for row in rows:
        asked = f"{row.as_asked:.1%}" if row.as_asked is not None else "-"
        print(f"{row.label:<16} {row.recognised:>10.1%} {asked:>9} {row.rarest_digit:>13.1%} {row.distance:>9.1f} {row.distance_ratio:>7.2f} {row.seconds:>8.1f}")
    if args.record and len(rows) == len(args.guidance):
        record_in_card(checkpoint, "guidance_sweep", sweep_record(rows, ref, command, steps, args.seed))
        print(f"recorded in {card_path(checkpoint)}")
    elif args.record:
        print("stopped before the sweep finished: nothing recorded")
    return 0


def run_record(args: argparse.Namespace, command: str) -> int:
    checkpoint = readable_checkpoint(args.checkpoint)
    check_writable_pair(args.out)
    model, schedule, card = load_model(checkpoint)
    reporter = ConsoleReporter("recording")
    recording = record(model, schedule, FIRST_SETTINGS, progress=reporter.progress)
    reporter.close()
    weights = save_recording(args.out, recording, card["weights_sha256"], command)
    print(f"saved {weights} ({weights.stat().st_size / 2**20:.1f} MB, {len(recording.frames)} frames of {recording.settings.n} digits) "
          f"and {weights.with_suffix('.json')}: the page plays it for {weights_path(checkpoint).name}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    check_writable_pair(best_in(args.out) if args.out.is_dir() else find_checkpoint(args.out))
    weights = export_checkpoint(readable_checkpoint(args.checkpoint), args.out)
    print(f"saved {weights} ({weights.stat().st_size / 2**20:.1f} MB, EMA weights only) and {weights.with_suffix('.json')}")
    return 0


def run_classifier(args: argparse.Namespace, command: str) -> int:
    if args.action == "train":
        config = ClassifierConfig(epochs=args.epochs, seed=args.seed).validate()
        check_writable_pair(args.out)
        data = training_data(args)
        reporter = ConsoleReporter("classifier", log_every=config.log_interval)
        with reporter.ctrl_c_stops():
            result = train_classifier(config, data, reporter, out=args.out, command=command)
        reporter.close()
        print(f"{'stopped' if result.stopped else 'done'}: test accuracy {result.test_accuracy:.2%} after {result.steps} steps, {result.seconds:.1f} s")
        print(f"saved {result.checkpoint} and {result.checkpoint.with_suffix('.json')}")
        return 0
    images = read_samples(args.samples)
    classifier, _ = load_classifier(args.classifier)
    asked = np.full(len(images), args.digit) if args.digit is not None else None
    print(score_samples(classifier, images, asked).summary())
    return 0


def add_train_command(commands) -> None:
    train_parser = train_command(commands, "train, keeping the last and the best checkpoint in a run folder", PRESETS)
    train_parser.add_argument("--init-from", type=path_argument, metavar="CHECKPOINT",
                              help="fine-tune: a new run that starts from these weights (a run folder or checkpoint, such as checkpoints/ddpm_mnist) "
                              "with a fresh optimizer, and their settings unless --preset is given")
    train_parser.add_argument("--out", type=path_argument, help="run folder (default runs/ddpm/PRESET, or the resumed run's)")
    train_parser.add_argument("--data-dir", type=path_argument, help="a folder holding mnist/MNIST/raw/ (else DLLAB_DATA_DIR, the cache, a download)")
    train_parser.add_argument("--toy", type=int, nargs="?", const=2000, metavar="N", help="train on N toy shapes instead of MNIST (default 2000)")
    config_arguments(train_parser, DDPMTrainConfig, PRESETS)


def add_sample_command(commands) -> None:
    sample_parser = commands.add_parser("sample", help="draw digits and write a grid, an array or the animation")
    sample_parser.add_argument("--checkpoint", type=path_argument, help="a run folder or checkpoint (default: the shipped one)")
    sample_parser.add_argument("--out", type=path_argument, action="append",
                               help="samples.png, samples.npy or denoise.gif; repeat --out for several (default: samples.png)")
    sample_parser.add_argument("--n", type=int, default=40, help="how many samples (default %(default)s)")
    sample_parser.add_argument("--sampler", choices=SAMPLERS, default="ddim", help="ddpm: all T steps; ddim: --steps steps (default %(default)s)")
    sample_parser.add_argument("--steps", type=int, help="DDIM's steps (default 50); DDPM always takes T")
    sample_parser.add_argument("--eta", type=float, default=SampleSettings.eta, help="DDIM's noise: 0 deterministic, 1 like DDPM (default %(default)s)")
    sample_parser.add_argument("--digit", type=int, help="draw only this digit, 0-9 (default: 0-9 in turn)")
    sample_parser.add_argument("--unconditional", action="store_true", help="draw with the null label: no digit asked for, no guidance")
    sample_parser.add_argument("--guidance", type=float, help=f"classifier-free guidance scale; 1 is none (default {DEFAULT_GUIDANCE:g} for a conditional model)")
    sample_parser.add_argument("--seed", type=int, default=0, help="(default %(default)s)")
    sample_parser.add_argument("--device", default=None, help="auto, cpu, cuda or mps (default auto)")
    sample_parser.add_argument("--gif-frames", type=int, default=60, help="frames in the animation (default %(default)s)")
    sample_parser.add_argument("--score", action="store_true", help="score the samples with the MNIST classifier")
    sample_parser.add_argument("--classifier", type=path_argument, help="the classifier to score with (default: the shipped one); implies --score")


def add_sweep_command(commands) -> None:
    sweep_parser = commands.add_parser("sweep", help="recognised and distance from real digits, for each guidance value")
    sweep_parser.add_argument("--checkpoint", type=path_argument, help="a run folder or checkpoint (default: the shipped one)")
    sweep_parser.add_argument("--guidance", type=guidance_list, default=parse_guidances("unconditional,1,1.5,2,3"),
                              help="comma-separated guidance values; 'unconditional' draws with the null label (default unconditional,1,1.5,2,3)")
    sweep_parser.add_argument("--n", type=int, default=500, help="samples per guidance value (default %(default)s)")
    sweep_parser.add_argument("--steps", type=int, help="DDIM's steps (default 50)")
    sweep_parser.add_argument("--seed", type=int, default=0, help="(default %(default)s)")
    sweep_parser.add_argument("--record", action="store_true", help="keep the sweep in the checkpoint's card, where the page shows it")
    sweep_parser.add_argument("--classifier", type=path_argument, help="the classifier that reads the digits (default: the shipped one)")
    sweep_parser.add_argument("--data-dir", type=path_argument, help="a folder holding mnist/MNIST/raw/ (for the real digits)")
    sweep_parser.add_argument("--device", default=None, help="auto, cpu, cuda or mps (default auto)")


def add_record_command(commands) -> None:
    record_parser = commands.add_parser("record", help="draw the digits the page's player shows first, and keep them beside the checkpoint")
    record_parser.add_argument("--checkpoint", type=path_argument, help="(default: the shipped one)")
    record_parser.add_argument("--out", type=path_argument, default=SHIPPED_RECORDING, help="path without suffix (default %(default)s)")


def add_export_command(commands) -> None:
    export_parser = commands.add_parser("export", help="copy a run's best EMA weights, without the training state: what the project ships")
    export_parser.add_argument("--checkpoint", type=path_argument, required=True, help="a run folder or checkpoint")
    export_parser.add_argument("--out", type=path_argument, required=True, help="a folder, or a path without suffix such as checkpoints/ddpm_mnist")


def add_classifier_command(commands) -> None:
    classifier_parser = commands.add_parser("classifier", help="the MNIST classifier that scores samples: train it, or score a .npy")
    actions = classifier_parser.add_subparsers(dest="action", required=True)
    classifier_train = actions.add_parser("train", help="train on MNIST's training digits; the test accuracy goes in the card")
    classifier_train.add_argument("--out", type=path_argument, default=runs_dir() / "ddpm" / "classifier" / "classifier", help="checkpoint path without suffix (default %(default)s)")
    classifier_train.add_argument("--epochs", type=int, default=ClassifierConfig.epochs, help="(default %(default)s)")
    classifier_train.add_argument("--seed", type=int, default=0, help="(default %(default)s)")
    classifier_train.add_argument("--data-dir", type=path_argument, help="a folder holding mnist/MNIST/raw/")
    classifier_train.add_argument("--toy", type=int, nargs="?", const=2000, metavar="N", help="train on N toy shapes instead of MNIST")
    classifier_score = actions.add_parser("score", help="how many digits of an N x 28 x 28 array in [0, 1] it recognises")
    classifier_score.add_argument("--samples", type=path_argument, required=True, help="a .npy written by `sample --out samples.npy`")
    classifier_score.add_argument("--classifier", type=path_argument, help="(default: the shipped one)")
    classifier_score.add_argument("--digit", type=int, help="the digit the samples were drawn as, to count how many read as it")


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m engine.ddpm", description="DDPM on MNIST: train, sample, score.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_train_command(commands)
    add_sample_command(commands)
    add_sweep_command(commands)
    add_record_command(commands)
    add_export_command(commands)
    add_classifier_command(commands)
    args = parser.parse_args(argv)
    return run_command(lambda: run(args, argv))


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    configure_threads()
    command = command_line("engine.ddpm", argv)
    if args.command == "sample":
        return run_sample(args)
    if args.command == "record":
        return run_record(args, command)
    if args.command == "sweep":
        return run_sweep(args, command)
    if args.command == "export":
        return run_export(args)
    if args.command == "classifier":
        return run_classifier(args, command)
    return run_train(args, command)


if __name__ == "__main__":
    sys.exit(main())
