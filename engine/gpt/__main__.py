"""Command line for the character-level GPT: `python -m engine.gpt train|sample --help`.

    python -m engine.gpt train --preset cpu --out runs/gpt/cpu
    python -m engine.gpt train --preset tiny --text-file notes.txt --max-iters 200
    python -m engine.gpt train --resume runs/gpt/cpu --max-iters 3000 --lr-decay-iters 3000
    python -m engine.gpt sample --checkpoint runs/gpt/cpu --prompt "ROMEO:" --max-new-tokens 300
    python -m engine.gpt export --checkpoint runs/gpt/cpu --out checkpoints/gpt_shakespeare
    python -m torch.distributed.run --nproc-per-node 2 -m engine.gpt train --preset cpu --gradient-accumulation-steps 2
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from engine.core.cli import (
    CommandParser, check_readable_pair, check_writable_pair, command_line, config_arguments, config_in_card, flags_given, path_argument,
    command_resuming, run_command, train_command, train_in_console,
)
from engine.core.device import configure_threads, pick_device
from engine.core.jobs import ConsoleReporter
from engine.gpt.checkpoint import checkpoint_in, find_checkpoint, load_model
from engine.gpt.data import load_shakespeare, prepare_text, read_text_file
from engine.gpt.checkpoint import SHIPPED_CHECKPOINT
from engine.gpt.runs import export_checkpoint, gpt_runs_dir
from engine.gpt.sample import generate
from engine.gpt.train import PRESETS, REFERENCE_RECIPE, REFERENCE_VAL_LOSS, GPTTrainConfig, train


def base_config(args: argparse.Namespace) -> GPTTrainConfig:
    if args.resume is None:
        return PRESETS[args.preset or "cpu"]
    return config_in_card(readable_checkpoint(args.resume), GPTTrainConfig, args.resume)


def readable_checkpoint(path: Path) -> Path:
    """The checkpoint a --checkpoint or --resume names, its two files checked to be regular files, so reading them ends."""
    return check_readable_pair(find_checkpoint(path))


def run_train(args: argparse.Namespace, command: str) -> int:
    overrides = flags_given(args, GPTTrainConfig)
    config = replace(base_config(args), **overrides).validate()
    out = args.out or (find_checkpoint(args.resume).parent if args.resume else gpt_runs_dir() / (args.preset or "cpu"))
    if args.resume:
        command = command_resuming(readable_checkpoint(args.resume), command)
    check_writable_pair(checkpoint_in(out))
    if args.text_file:
        text, name = read_text_file(args.text_file), args.text_file.name
    else:
        text, name = load_shakespeare(args.data_dir), "tiny Shakespeare"
    data = prepare_text(text, name)
    reporter = ConsoleReporter("training", log_every=config.log_interval)
    result = train_in_console(reporter, lambda: train(config, data, reporter, out=out, resume=args.resume, command=command))
    if result is None:
        return 0
    preset = args.preset or (None if args.resume else "cpu")
    recipe = REFERENCE_RECIPE.get(preset)
    reference = f" (nanoGPT's {recipe} recipe: {REFERENCE_VAL_LOSS[recipe]} at iter {PRESETS[recipe].max_iters})" if recipe and not overrides else ""
    state = "stopped" if result.stopped else "done"
    print(
        f"{state}: best val loss {result.best_val_loss:.4f} at iter {result.best_iter}{reference}; "
        f"{result.iterations} iterations, {result.seconds:.1f} s"
    )
    if result.checkpoint:
        print(f"saved {result.checkpoint} and {result.checkpoint.with_suffix('.json')}")
    else:
        print("no checkpoint saved: no evaluation after iteration 0 improved the validation loss")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    model, tokenizer, _ = load_model(readable_checkpoint(args.checkpoint), device)
    characters = generate(
        model, tokenizer, args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed, device
    )
    sys.stdout.write(args.prompt)
    for character in characters:
        sys.stdout.write(character)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def run_export(args: argparse.Namespace) -> int:
    check_writable_pair(find_checkpoint(args.out))
    weights = export_checkpoint(readable_checkpoint(args.checkpoint), args.out)
    print(f"saved {weights} ({weights.stat().st_size / 2**20:.1f} MB, no optimizer state) and {weights.with_suffix('.json')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m engine.gpt", description="nanoGPT's character-level GPT on tiny Shakespeare.")
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = train_command(commands, "train, keeping the best checkpoint in a run folder", PRESETS)
    train_parser.add_argument("--out", type=path_argument, help="run folder (default runs/gpt/PRESET, or the resumed run's)")
    train_parser.add_argument("--data-dir", type=path_argument, help="a folder holding shakespeare/input.txt (else DLLAB_DATA_DIR, the cache, a download)")
    train_parser.add_argument("--text-file", type=path_argument, help="train on this UTF-8 text file instead of tiny Shakespeare")
    config_arguments(train_parser, GPTTrainConfig, PRESETS)

    sample_parser = commands.add_parser("sample", help="stream text from a checkpoint")
    sample_parser.add_argument("--checkpoint", type=path_argument, default=SHIPPED_CHECKPOINT,
                               help="a run folder or its model.safetensors (default: the shipped model, %(default)s)")
    sample_parser.add_argument("--prompt", default="", help="text to continue (default: a newline)")
    sample_parser.add_argument("--max-new-tokens", type=int, default=500, help="characters to generate (default %(default)s)")
    sample_parser.add_argument("--temperature", type=float, default=0.8, help="below 1 is more conservative (default %(default)s)")
    sample_parser.add_argument("--top-k", type=int, default=200, help="sample among the k likeliest characters (default %(default)s)")
    sample_parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling's mass; 1 turns it off (default %(default)s)")
    sample_parser.add_argument("--seed", type=int, help="for a repeatable sample (default: random)")
    sample_parser.add_argument("--device", default=None, help="auto, cpu, cuda or mps (default auto)")

    export_parser = commands.add_parser("export", help="copy a checkpoint's weights without AdamW's state: for sampling, a third of the size")
    export_parser.add_argument("--checkpoint", type=path_argument, required=True, help="a run folder or its model.safetensors")
    export_parser.add_argument("--out", type=path_argument, required=True, help="a folder, or a path without suffix such as checkpoints/gpt_shakespeare")
    args = parser.parse_args(argv)
    return run_command(lambda: run(args, argv))


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    configure_threads()
    if args.command == "sample":
        return run_sample(args)
    if args.command == "export":
        return run_export(args)
    command = command_line("engine.gpt", argv)
    return run_train(args, command)


if __name__ == "__main__":
    sys.exit(main())
