"""A quick A/A run of the real decision path; the full 2,000-simulation figure is in benchmarks/bench_ab_calibration."""

from __future__ import annotations

from benchmarks.bench_ab_calibration import false_positive_rate


def test_aa_false_positive_rate_is_about_alpha():
    report = false_positive_rate(500, seed=11)
    # 500 simulations: sd of the rate is ~0.0097, so [0.02, 0.085] is a > 3-sigma band around 0.05.
    assert 0.02 <= report["false_positive_rate"] <= 0.085
