"""Regenerates tests/data/ab_reference.json: reference values computed with statsmodels and scipy.

Not part of the product: statsmodels is not a dependency. Run it from a throwaway environment:
    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install statsmodels scipy numpy
    /tmp/refvenv/bin/python benchmarks/make_ab_reference.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "ab_reference.json"
SEED = 20261122


def main() -> None:
    import numpy as np
    from scipy import integrate, stats
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest

    rng = np.random.default_rng(SEED)
    proportion_cases = [(150, 1000, 100, 1000), (12, 30, 10, 30), (500, 5000, 480, 5000), (3, 200, 9, 210),
                        (0, 50, 2, 50), (81, 400, 60, 380), (1, 1, 0, 1)]
    ztest = []
    for x_t, n_t, x_c, n_c in proportion_cases:
        z, p = proportions_ztest([x_t, x_c], [n_t, n_c])
        low, high = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff")
        ztest.append({"x_t": x_t, "n_t": n_t, "x_c": x_c, "n_c": n_c, "z": float(z), "p_value": float(p),
                      "diff_ci": [float(low), float(high)]})
    wilson = []
    for x, n in [(0, 10), (5, 10), (10, 10), (37, 120), (1, 1000), (450, 1000)]:
        low, high = proportion_confint(x, n, alpha=0.05, method="wilson")
        wilson.append({"successes": x, "n": n, "ci": [float(low), float(high)]})
    welch = []
    for n_t, n_c, shift in [(40, 55, 0.4), (200, 180, 0.0), (12, 9, 1.0), (300, 320, 0.15)]:
        treatment = rng.integers(1, 6, n_t) + (rng.random(n_t) < shift)
        control = rng.integers(1, 6, n_c)
        result = stats.ttest_ind(treatment, control, equal_var=False)
        ci = result.confidence_interval(0.95)
        welch.append({"treatment": treatment.tolist(), "control": control.tolist(), "t": float(result.statistic),
                      "df": float(result.df), "p_value": float(result.pvalue), "diff_ci": [ci.low, ci.high]})
    holm = []
    for p_values in [[0.01, 0.04, 0.03], [0.04, 0.2], [0.001, 0.5, 0.02, 0.049], [0.3]]:
        holm.append({"p_values": p_values, "adjusted": multipletests(p_values, method="holm")[1].tolist()})
    srm = []
    srm_cases: list[tuple[list[int], list[float]]] = [
        ([500, 500], [1, 1]), ([540, 460], [1, 1]), ([330, 300, 370], [1, 1, 1]), ([210, 790], [0.2, 0.8]),
        ([1100, 900], [0.5, 0.5]),
    ]
    for counts, weights in srm_cases:
        expected = [sum(counts) * w / sum(weights) for w in weights]
        srm.append({"counts": counts, "weights": weights, "p_value": float(stats.chisquare(counts, expected).pvalue)})
    chance = []
    for x_t, n_t, x_c, n_c in [(60, 200, 45, 200), (5, 10, 5, 10), (30, 1000, 41, 1000), (0, 20, 1, 20)]:
        def integrand(p: float, x_t: int = x_t, n_t: int = n_t, x_c: int = x_c, n_c: int = n_c) -> float:
            return stats.beta.pdf(p, x_t + 1, n_t - x_t + 1) * stats.beta.cdf(p, x_c + 1, n_c - x_c + 1)
        value, _ = integrate.quad(integrand, 0, 1, epsabs=1e-12, limit=200)
        chance.append({"x_t": x_t, "n_t": n_t, "x_c": x_c, "n_c": n_c, "chance_to_win": value})
    sample_size = []
    for baseline, delta, alpha, power in [(0.2, 0.05, 0.05, 0.8), (0.1, 0.02, 0.05, 0.8), (0.5, -0.1, 0.01, 0.9),
                                          (0.03, 0.01, 0.05, 0.8)]:
        z_a, z_b = stats.norm.isf(alpha / 2), stats.norm.ppf(power)
        target = baseline + delta
        n = (z_a * math.sqrt(2 * baseline * (1 - baseline))
             + z_b * math.sqrt(baseline * (1 - baseline) + target * (1 - target))) ** 2 / delta**2
        sample_size.append({"baseline": baseline, "delta": delta, "alpha": alpha, "power": power, "n": math.ceil(n)})
    OUTPUT.write_text(json.dumps({
        "generated_by": "benchmarks/make_ab_reference.py (statsmodels proportions_ztest, confint_proportions_2indep, "
                        "proportion_confint, multipletests; scipy ttest_ind, chisquare, integrate.quad)",
        "seed": SEED, "ztest": ztest, "wilson": wilson, "welch": welch, "holm": holm, "srm": srm,
        "chance_to_win": chance, "sample_size_proportion": sample_size,
        "hash": HASH_VECTORS, "fnv1a32": FNV_VECTORS, "bucket_ranges": BUCKET_RANGES,
        "choose_variant": CHOOSE_VARIANT,
    }, indent=1) + "\n")
    print(f"wrote {OUTPUT}")


# GrowthBook's public SDK spec (cases.json), hash v2, and the FNV-1a 32-bit reference values.
HASH_VECTORS = [["seed", "a", 0.0505], ["foo", "ab", 0.2575], ["90850943850283058242805", "123", 0.7516]]
FNV_VECTORS = [["", 0x811C9DC5], ["a", 0xE40C292C], ["foobar", 0xBF9CF968]]
BUCKET_RANGES = [
    {"weights": [0.5, 0.5], "coverage": 1, "ranges": [[0, 0.5], [0.5, 1]]},
    {"weights": [0.5, 0.5], "coverage": 0.5, "ranges": [[0, 0.25], [0.5, 0.75]]},
    {"weights": [0.5, 0.5], "coverage": 0, "ranges": [[0, 0], [0.5, 0.5]]},
    {"weights": [0.25, 0.25, 0.25, 0.25], "coverage": 1,
     "ranges": [[0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1]]},
    {"weights": [0.4, 0.6], "coverage": 1, "ranges": [[0, 0.4], [0.4, 1]]},
    {"weights": [0.4, 0.6], "coverage": 0.5, "ranges": [[0, 0.2], [0.4, 0.7]]},
    {"weights": [20, 80], "coverage": 1, "ranges": [[0, 0.2], [0.2, 1]]},
]
CHOOSE_VARIANT = [
    {"hash": 0.2, "ranges": [[0, 0.5], [0.5, 1]], "index": 0},
    {"hash": 0.6, "ranges": [[0, 0.5], [0.5, 1]], "index": 1},
    {"hash": 0.5, "ranges": [[0, 0.5], [0.5, 1]], "index": 1},
    {"hash": 0.3, "ranges": [[0, 0.25], [0.5, 0.75]], "index": -1},
    {"hash": 0.9, "ranges": [[0, 0.25], [0.5, 0.75]], "index": -1},
    {"hash": 0.5, "ranges": [[0, 0.5], [0.5, 0.5]], "index": -1},
]

if __name__ == "__main__":
    main()
