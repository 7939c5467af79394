"""Are the diffusion lab's digits recognised and varied? The goals of issue 8, checked at n >= 500.

    DLLAB_DATA_DIR=../shared/data python -m bench.ddpm_quality                     # the shipped model, ~15 min on 2 cores
    python -m bench.ddpm_quality --checkpoint runs/ddpm/tuned --n 1000 --guidance unconditional,1,2

Draws n digits for each guidance value with DDIM (50 steps, the CLI's and the page's sampler) and
measures them with engine.ddpm.quality, the code behind the page's sweep and `python -m engine.ddpm sweep`:
recognised (confidence > 0.9 by the shipped classifier), read as the digit asked for, the rarest digit's
share, and the Fréchet distance from MNIST's test digits in the classifier's features. The yardstick is
the same distance for n real training digits, drawn in the same run: the ratio is "how much further from
real digits than real digits are", and this bench calls a ratio up to CLOSE_TO_REAL close.

Then it prints each goal, the figure that meets or misses it, and the default guidance the sweep
supports (the most recognised value whose digits are still close to real). Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.machine import describe_machine  # noqa: E402
from engine.core.device import configure_threads  # noqa: E402
from engine.ddpm.checkpoint import SHIPPED_CHECKPOINT, load_model  # noqa: E402
from engine.ddpm.classifier import load_classifier  # noqa: E402
from engine.ddpm.data import load_mnist  # noqa: E402
from engine.ddpm.quality import CLOSE_TO_REAL, parse_guidances, reference, suggested_guidance, sweep  # noqa: E402
from engine.ddpm.sample import DEFAULT_GUIDANCE  # noqa: E402

GOAL_RECOGNISED_UNCONDITIONAL = 0.90
GOAL_RECOGNISED_DEFAULT = 0.95
GOAL_AS_ASKED = 0.95
ALL_DIGITS = 0.05  # "all ten digits": each is at least half its fair share of the samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--n", type=int, default=500, help="samples per guidance value (default %(default)s)")
    parser.add_argument("--guidance", type=parse_guidances, default=parse_guidances(f"unconditional,1,1.5,2,{DEFAULT_GUIDANCE:g},3"))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    configure_threads()
    print(describe_machine())
    classifier, _ = load_classifier()
    model, schedule, card = load_model(args.checkpoint)
    started = time.perf_counter()
    ref = reference(classifier, load_mnist(), args.n, seed=args.seed)
    print(f"checkpoint {args.checkpoint}: {card.get('command')}")
    print(f"{ref.n} real training digits: {ref.real_recognised:.1%} recognised, distance {ref.real_distance:.1f} from MNIST's test digits\n")
    guidances = list(dict.fromkeys(args.guidance))
    rows = sweep(model, schedule, classifier, ref, guidances, args.n, args.steps, args.seed,
                 progress=lambda done, total: print(f"\r{done}/{total} sampling steps", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    print(f"{'sampling':<16} {'recognised':>10} {'as asked':>9} {'rarest digit':>13} {'distance':>9} {'x real':>7} {'seconds':>8}")
    for row in rows:
        asked = f"{row.as_asked:.1%}" if row.as_asked is not None else "-"
        print(f"{row.label:<16} {row.recognised:>10.1%} {asked:>9} {row.rarest_digit:>13.1%} {row.distance:>9.1f} {row.distance_ratio:>7.2f} {row.seconds:>8.1f}")

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print(f"\ngoals (n = {args.n}; close to real: distance at most {CLOSE_TO_REAL:g} x real digits'):")
    by_guidance = {row.guidance: row for row in rows}
    free = by_guidance.get(None)
    if free is not None:
        print(f"  unconditional recognised >= {GOAL_RECOGNISED_UNCONDITIONAL:.0%}: {free.recognised:.1%} {verdict(free.recognised >= GOAL_RECOGNISED_UNCONDITIONAL)}")
        print(f"  unconditional, all ten digits (rarest >= {ALL_DIGITS:.0%}): {free.rarest_digit:.1%} {verdict(free.rarest_digit >= ALL_DIGITS)}")
        print(f"  unconditional close to real: {free.distance_ratio:.2f} x {verdict(free.distance_ratio <= CLOSE_TO_REAL)}")
    default = by_guidance.get(float(DEFAULT_GUIDANCE))
    if default is not None:
        ok = default.recognised >= GOAL_RECOGNISED_DEFAULT
        print(f"  default guidance {DEFAULT_GUIDANCE:g} recognised >= {GOAL_RECOGNISED_DEFAULT:.0%}: {default.recognised:.1%} {verdict(ok)}")
        print(f"  default guidance {DEFAULT_GUIDANCE:g} close to real: {default.distance_ratio:.2f} x {verdict(default.distance_ratio <= CLOSE_TO_REAL)}")
        print(f"  default guidance {DEFAULT_GUIDANCE:g} gives the digit asked >= {GOAL_AS_ASKED:.0%}: {default.as_asked:.1%} {verdict(default.as_asked >= GOAL_AS_ASKED)}")
    best = suggested_guidance(rows)
    print(f"  the sweep suggests guidance {best:g}" if best is not None else "  no guidance value here is both recognised and close to real")
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
