"""400 L-BFGS iterations of UFLDL's sparse autoencoder: this project's cost against a plain numpy one.

    DLLAB_DATA_DIR=../shared/data python -m bench.sae_lbfgs [--repeats 3]

The baseline is what one would write first: the float64 numpy cost and gradient
(`engine.sae.model.sparse_autoencoder_cost`, vectorised over all patches) handed to scipy's
L-BFGS-B with numpy's default threads. The project's path is `engine.sae.train.train` itself.
Both run on the same 10,000 patches from the same start, in this one process, in turn: a shared
machine's speed drifts by a third from minute to minute, so the median of the paired ratios is
printed beside the ratio of the medians.
"""

import argparse
import statistics
import time

import numpy as np
import scipy.optimize

from bench.machine import describe_machine
from engine.core.jobs import SilentReporter
from engine.sae.model import initialize_parameters, sparse_autoencoder_cost
from engine.sae.train import UFLDL, prepare_data, train


def baseline(patches: np.ndarray, theta: np.ndarray) -> tuple[float, float]:
    config = UFLDL
    started = time.perf_counter()
    result = scipy.optimize.minimize(
        lambda t: sparse_autoencoder_cost(t, patches, config.hidden_size, config.lam, config.beta, config.rho)[:2],
        theta, jac=True, method="L-BFGS-B", options={"maxiter": config.max_iters},
    )
    return time.perf_counter() - started, float(result.fun)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = prepare_data(UFLDL)
    theta = initialize_parameters(UFLDL.hidden_size, UFLDL.visible_size, np.random.default_rng(UFLDL.seed))
    print(f"machine: {describe_machine()}")
    print(f"{UFLDL.num_patches:,} patches of {UFLDL.patch_size}x{UFLDL.patch_size}, {UFLDL.hidden_size} hidden units, {UFLDL.max_iters} L-BFGS iterations")
    ours, theirs = [], []
    for _ in range(args.repeats):
        seconds, cost = baseline(data.patches, theta)
        theirs.append((seconds, cost))
        result = train(UFLDL, data.patches, SilentReporter())
        ours.append((result.seconds, result.final.total))
    base_s = statistics.median(s for s, _ in theirs)
    our_s = statistics.median(s for s, _ in ours)
    base_cost, our_cost = theirs[0][1], ours[0][1]
    print(f"baseline (numpy float64):    {base_s:6.2f} s  final cost {base_cost:.5f}   runs: {', '.join(f'{s:.2f}' for s, _ in theirs)}")
    print(f"engine.sae (float32, torch):  {our_s:6.2f} s  final cost {our_cost:.5f}   runs: {', '.join(f'{s:.2f}' for s, _ in ours)}")
    paired = statistics.median(base / our for (base, _), (our, _) in zip(theirs, ours))
    print(f"speed-up {base_s / our_s:.1f}x, each run against the baseline run just before it {paired:.1f}x (target >= 8x); "
          f"final cost differs by {100 * abs(our_cost - base_cost) / base_cost:.2f}% (target <= 1%)")


if __name__ == "__main__":
    main()
