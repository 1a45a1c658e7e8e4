"""A/A under peeking: the sequential tests hold their false-positive rate at alpha, the fixed-horizon one not.

Simulated A/A experiments (no true difference), read every 100 users up to 10,000 (5,000 per arm) and stopped at
the first significant look. Compared side by side at alpha = 0.05:

- the experiment's sequential test with its planned sample size declared (10,000): the mSPRT calibrated to that
  horizon (`ab_testing.horizon`). Its rate must lie in 5% +- 1.5%: a little under alpha, since it is calibrated for
  continuous looks and these are every 100 users (the row reading every 10 users comes closer);
- the open-ended mSPRT (no planned size; tau2 for the default n_star): at most alpha + 1.5%, and well below alpha,
  because its guarantee also pays for looks after the horizon, forever;
- the fixed-horizon tests (pooled z for conversion, Welch for the mean) read at every look: far above alpha;
- the fixed-horizon tests read once, at the horizon: alpha, as designed.

A power line runs the same looks on a real effect. The arithmetic is the library's, on numpy arrays (tests check
that the two agree). `python -m benchmarks.bench_sequential [simulations] [seed]`
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
from scipy import stats

from ab_testing.horizon import horizon_log_threshold
from ab_testing.sequential import PLANNED_SAMPLE_SIZE

ALPHA = 0.05
DEFAULT_SIMULATIONS = 20_000  # at least 2,000; 20,000 puts the rates within +-0.3% (2 standard errors)
DEFAULT_SEED = 7
LOOK_EVERY = 100  # users in total (50 per arm) between looks
HORIZON = 10_000  # users in total
BAND = (0.035, 0.065)


def msprt_log_lr(diff: np.ndarray, variance: np.ndarray, n: np.ndarray, alpha: float = ALPHA,
                 planned_n: int = PLANNED_SAMPLE_SIZE) -> np.ndarray:
    """`sequential.mixing_variance` and `sequential.log_likelihood_ratio` on arrays; -inf where V is 0."""
    log_alpha = -2 * np.log(alpha)
    tau2 = (log_alpha + np.log(1 + log_alpha)) / planned_n * variance * n
    with np.errstate(divide="ignore", invalid="ignore"):
        total = variance + tau2
        log_lr = 0.5 * np.log(variance / total) + tau2 * diff**2 / (2 * variance * total)
    return np.where(variance > 0, log_lr, -np.inf)


def conversion_looks(rng: np.random.Generator, simulations: int, rate_t: float, rate_c: float,
                     look_every: int = LOOK_EVERY) -> dict[str, Any]:
    """Per look: difference, unpooled variance (mSPRT) and pooled z p-value (fixed horizon), shape (sims, looks)."""
    per_arm, looks = look_every // 2, HORIZON // look_every
    x_t = rng.binomial(per_arm, rate_t, size=(simulations, looks)).cumsum(axis=1)
    x_c = rng.binomial(per_arm, rate_c, size=(simulations, looks)).cumsum(axis=1)
    n_arm = per_arm * np.arange(1, looks + 1)
    p_t, p_c = x_t / n_arm, x_c / n_arm
    variance = p_t * (1 - p_t) / n_arm + p_c * (1 - p_c) / n_arm
    pooled = (x_t + x_c) / (2 * n_arm)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p_t - p_c) / np.sqrt(pooled * (1 - pooled) * 2 / n_arm)
    fixed_p = np.where(np.isfinite(z), 2 * stats.norm.sf(np.abs(np.nan_to_num(z))), 1.0)
    return {"diff": p_t - p_c, "variance": variance, "n": 2 * n_arm, "fixed_p": fixed_p}


def mean_looks(rng: np.random.Generator, simulations: int, shift: float) -> dict[str, Any]:
    """A skewed continuous metric (lognormal, like latency) with Welch's test at every look; treatment + `shift`."""
    per_arm, looks = LOOK_EVERY // 2, HORIZON // LOOK_EVERY
    n_arm = per_arm * np.arange(1, looks + 1)
    arms = []
    for offset in (shift, 0.0):
        values = rng.lognormal(0.0, 0.5, size=(simulations, looks, per_arm)) + offset
        total, total_sq = values.sum(axis=2).cumsum(axis=1), (values**2).sum(axis=2).cumsum(axis=1)
        arms.append((total / n_arm, (total_sq - total**2 / n_arm) / (n_arm - 1)))
    (mean_t, var_t), (mean_c, var_c) = arms
    a, b = var_t / n_arm, var_c / n_arm
    df = (a + b) ** 2 / (a**2 / (n_arm - 1) + b**2 / (n_arm - 1))
    fixed_p = 2 * stats.t.sf(np.abs(mean_t - mean_c) / np.sqrt(a + b), df)
    return {"diff": mean_t - mean_c, "variance": a + b, "n": 2 * n_arm, "fixed_p": fixed_p}


def rejection_rates(looks: dict[str, Any], alpha: float = ALPHA) -> dict[str, float]:
    """Share of simulations significant at any look (sequential with and without the horizon, fixed peeking) and
    at the horizon only."""
    open_ended = msprt_log_lr(looks["diff"], looks["variance"], looks["n"], alpha)
    calibrated = msprt_log_lr(looks["diff"], looks["variance"], looks["n"], alpha, planned_n=HORIZON)
    return {"horizon": float((calibrated >= horizon_log_threshold(alpha)).any(axis=1).mean()),
            "sequential": float((open_ended >= -np.log(alpha)).any(axis=1).mean()),
            "fixed_peeking": float((looks["fixed_p"] < alpha).any(axis=1).mean()),
            "fixed_at_horizon": float((looks["fixed_p"][:, -1] < alpha).mean())}


def run(simulations: int, seed: int) -> dict[str, dict[str, float]]:
    """A/A rates for conversion (p = 0.1) and the lognormal mean, and power on conversion 0.10 -> 0.12."""
    rng = np.random.default_rng(seed)
    return {"A/A conversion p=0.10": rejection_rates(conversion_looks(rng, simulations, 0.1, 0.1)),
            "A/A lognormal mean": rejection_rates(mean_looks(rng, simulations, 0.0)),
            "A/A conversion, look every 10": rejection_rates(conversion_looks(rng, simulations, 0.1, 0.1, 10)),
            "power conversion 0.10->0.12": rejection_rates(conversion_looks(rng, simulations, 0.12, 0.1))}


def main(argv: list[str] | None = None) -> int:
    """Print the figures side by side; exit status 1 when an A/A rate of a sequential test leaves its bound."""
    argv = sys.argv[1:] if argv is None else argv
    simulations = int(argv[0]) if argv else DEFAULT_SIMULATIONS
    seed = int(argv[1]) if len(argv) > 1 else DEFAULT_SEED
    started = time.perf_counter()
    report = run(simulations, seed)
    elapsed = time.perf_counter() - started
    print(f"{simulations} simulations (seed {seed}), a look every {LOOK_EVERY} users up to {HORIZON}, "
          f"alpha {ALPHA}; open-ended mSPRT planned n {PLANNED_SAMPLE_SIZE}; {elapsed:.1f}s")
    print(f"{'':30} {'planned size':>13} {'open-ended':>11} {'fixed any look':>15} {'fixed at end':>13}")
    ok = True
    for name, rates in report.items():
        verdict = "power"
        if name.startswith("A/A"):
            in_band = BAND[0] <= rates["horizon"] <= BAND[1] and rates["sequential"] <= BAND[1]
            ok = ok and in_band
            verdict = "ok" if in_band else "OUT OF BOUNDS"
        print(f"{name:30} {rates['horizon']:13.4f} {rates['sequential']:11.4f} {rates['fixed_peeking']:15.4f} "
              f"{rates['fixed_at_horizon']:13.4f}  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
