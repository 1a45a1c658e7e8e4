"""CUPED variance reduction on simulated data against the theory: Var(CUPED diff) / Var(plain diff) = 1 - rho^2.

Each unit has a pre-period value X ~ N(0, 1) and Y = effect + rho X + sqrt(1 - rho^2) e, so corr(X, Y) = rho.
"estimated" is the mean over replications of the ratio of the two variance estimates; "empirical" is the ratio of
the spread of the two estimators of the difference across replications (what the reduction really buys).
`python -m benchmarks.bench_cuped [replications] [units_per_arm] [seed]`
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ab_testing.cuped import CovariateSums, cuped_difference

RHOS = (0.0, 0.3, 0.5, 0.7, 0.9)
EFFECT = 0.1
DEFAULT_REPLICATIONS = 4000
DEFAULT_UNITS = 200
DEFAULT_SEED = 11


@dataclass(frozen=True)
class Reduction:
    """Theoretical and achieved Var(CUPED diff) / Var(plain diff) at one correlation."""

    rho: float
    theory: float
    estimated: float
    empirical: float


def simulate(rho: float, replications: int, units: int, rng: np.random.Generator) -> Reduction:
    """Variance ratios achieved at correlation `rho`, over `replications` experiments of `units` per arm."""
    x = rng.standard_normal((replications, 2, units))
    y = rho * x + np.sqrt(1 - rho * rho) * rng.standard_normal((replications, 2, units))
    y[:, 0] += EFFECT
    sums = np.stack([x.sum(-1), y.sum(-1), (x * x).sum(-1), (y * y).sum(-1), (x * y).sum(-1)], axis=-1)
    ratios, adjusted = [], []
    for rep in sums:
        t, c = (CovariateSums(units, *map(float, arm)) for arm in rep)
        result = cuped_difference(t, c)
        assert result is not None and result.variance_ratio is not None
        ratios.append(result.variance_ratio)
        adjusted.append(result.diff)
    plain = y[:, 0].mean(-1) - y[:, 1].mean(-1)
    return Reduction(rho, 1 - rho * rho, float(np.mean(ratios)), float(np.var(adjusted) / np.var(plain)))


def main(argv: list[str] | None = None) -> None:
    """Print achieved against theoretical variance ratios for each rho."""
    argv = sys.argv[1:] if argv is None else argv
    replications = int(argv[0]) if argv else DEFAULT_REPLICATIONS
    units = int(argv[1]) if len(argv) > 1 else DEFAULT_UNITS
    rng = np.random.default_rng(int(argv[2]) if len(argv) > 2 else DEFAULT_SEED)
    print(f"CUPED variance ratio, {replications} replications x {units} units per arm")
    print(f"{'rho':>5} {'1-rho^2':>9} {'estimated':>10} {'empirical':>10} {'reduction':>10}")
    for rho in RHOS:
        r = simulate(rho, replications, units, rng)
        print(f"{r.rho:5.2f} {r.theory:9.4f} {r.estimated:10.4f} {r.empirical:10.4f} {1 - r.empirical:10.1%}")


if __name__ == "__main__":
    main()
