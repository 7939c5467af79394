"""Command line for the sparse autoencoder: `python -m engine.sae train|gradcheck --help`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.core.checkpoints import runs_dir
from engine.core.cli import CommandParser, check_writable_pair, command_line, flags_given, path_argument, run_command
from engine.core.files import check_writable, read_bounded
from engine.core.grids import png_bytes, tile_images, upscale
from engine.core.jobs import ConsoleReporter
from engine.sae.images import MAX_UPLOAD_BYTES, SOURCES
from engine.sae.checkpoint import save_result
from engine.sae.train import UFLDL, UFLDL_COST_TRAINED, SAETrainConfig, gradient_check, prepare_data, train


def config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--patch-size", type=int, default=UFLDL.patch_size, help="side of the square patches, pixels (default %(default)s)")
    parser.add_argument("--hidden", type=int, default=UFLDL.hidden_size, help="hidden units (default %(default)s)")
    parser.add_argument("--patches", type=int, default=UFLDL.num_patches, help="number of training patches (default %(default)s)")
    parser.add_argument("--rho", type=float, default=UFLDL.rho, help="target mean activation (default %(default)s)")
    parser.add_argument("--beta", type=float, default=UFLDL.beta, help="sparsity weight (default %(default)s)")
    parser.add_argument("--lam", type=float, default=UFLDL.lam, help="weight decay lambda (default %(default)s)")
    parser.add_argument("--seed", type=int, default=UFLDL.seed, help="seed for patches and initial weights (default %(default)s)")
    parser.add_argument("--source", choices=list(SOURCES), default=UFLDL.source, help="images to sample (default %(default)s)")
    parser.add_argument("--images", nargs="+", type=path_argument, default=[], help="image files, with --source upload")
    parser.add_argument("--data-dir", type=path_argument, help="a folder holding natural_images/ (looked in before DLLAB_DATA_DIR)")


def config_from(args: argparse.Namespace, max_iters: int = UFLDL.max_iters) -> SAETrainConfig:
    # the flags --hidden, --patches and --iterations set fields of other names
    return SAETrainConfig(**flags_given(args, SAETrainConfig), hidden_size=args.hidden, num_patches=args.patches, max_iters=max_iters).validate()


def read_images(paths: list[Path]) -> list[tuple[str, bytes]]:
    return [(path.name, read_bounded(path, MAX_UPLOAD_BYTES)) for path in paths]


def check_outputs(args: argparse.Namespace) -> None:
    """Before minutes of training: can the checkpoint's two files and the filters' PNG be written?"""
    check_writable_pair(args.out)
    if args.filters_png:
        check_writable(args.filters_png, "--filters-png")


def run_gradcheck(args: argparse.Namespace) -> int:
    config = config_from(args)
    data = prepare_data(config, read_images(args.images), folder=args.data_dir)
    check = gradient_check(config, data.patches, args.examples, args.epsilon)
    verdict = "PASS" if check.passed else "FAIL"
    print(f"relative difference {check.relative_difference:.3e} over {check.parameters} parameters "
          f"and {check.examples} patches: {verdict} (threshold {check.threshold:.0e})")
    return 0 if check.passed else 1


def run_train(args: argparse.Namespace, command: str) -> int:
    config = config_from(args, args.iterations)
    check_outputs(args)
    data = prepare_data(config, read_images(args.images), folder=args.data_dir)
    reporter = ConsoleReporter("L-BFGS", log_every=50)
    with reporter.ctrl_c_stops():
        result = train(config, data.patches, reporter)
    reporter.close()
    path = save_result(args.out, result, command, data.fingerprint)
    print(f"cost {result.initial.total:.4f} -> {result.final.total:.4f} in {result.iterations} iterations, "
          f"{result.seconds:.2f} s (UFLDL: 48.85 -> {UFLDL_COST_TRAINED})")
    print(f"saved {path} and {path.with_suffix('.json')}")
    if args.filters_png:
        args.filters_png.write_bytes(png_bytes(upscale(tile_images(result.filters()), 8)))
        print(f"saved {args.filters_png}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m engine.sae", description="UFLDL's sparse autoencoder on natural image patches.")
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser("train", help="train with L-BFGS and save a checkpoint")
    config_arguments(train_parser)
    train_parser.add_argument("--iterations", type=int, default=UFLDL.max_iters, help="L-BFGS iterations (default %(default)s)")
    train_parser.add_argument("--out", type=path_argument, default=runs_dir() / "sae" / "latest", help="checkpoint path, without extension (default %(default)s)")
    train_parser.add_argument("--filters-png", type=path_argument, help="also write the learned filters as a PNG")
    check_parser = commands.add_parser("gradcheck", help="compare backprop with central differences")
    config_arguments(check_parser)
    check_parser.add_argument("--examples", type=int, default=100, help="patches used by the check (default %(default)s)")
    check_parser.add_argument("--epsilon", type=float, default=1e-4, help="finite-difference step (default %(default)s)")
    args = parser.parse_args(argv)
    if args.command == "gradcheck":
        return run_command(lambda: run_gradcheck(args))
    command = command_line("engine.sae", argv)
    return run_command(lambda: run_train(args, command))


if __name__ == "__main__":
    sys.exit(main())
