"""GrowthBook hash v2 vectors, bucket ranges and variant choice, and the split of 1,000 users."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ab_testing.hashing import NOT_ENROLLED, assign, bucket_ranges, choose_variant, fnv1a32, gbhash

REFERENCE = json.loads((Path(__file__).parent / "data" / "ab_reference.json").read_text())


@pytest.mark.parametrize(("seed", "value", "expected"), REFERENCE["hash"])
def test_growthbook_hash_v2_vectors(seed, value, expected):
    assert gbhash(seed, value) == expected


@pytest.mark.parametrize(("text", "expected"), REFERENCE["fnv1a32"])
def test_fnv1a32_reference_values(text, expected):
    assert fnv1a32(text) == expected


@pytest.mark.parametrize("case", REFERENCE["bucket_ranges"])
def test_bucket_ranges(case):
    ranges = bucket_ranges(case["weights"], case["coverage"])
    assert [list(r) for r in ranges] == [pytest.approx(r) for r in case["ranges"]]


@pytest.mark.parametrize("case", REFERENCE["choose_variant"])
def test_choose_variant(case):
    assert choose_variant(case["hash"], [tuple(r) for r in case["ranges"]]) == case["index"]


@pytest.mark.parametrize(("weights", "coverage"), [([1, -1], 1.0), ([0, 0], 1.0), ([], 1.0), ([1, 1], 1.5)])
def test_invalid_ranges_are_refused(weights, coverage):
    with pytest.raises(ValueError):
        bucket_ranges(weights, coverage)


def test_thousand_users_split_fifty_fifty_within_binomial_noise():
    counts = [0, 0]
    for i in range(1000):
        counts[assign("exp-seed", f"user-{i}", [1, 1])] += 1
    sigma = math.sqrt(1000 * 0.25)
    assert abs(counts[0] - 500) < 3.3 * sigma


def test_coverage_leaves_users_out_and_weights_are_respected():
    results = [assign("seed-2", f"u{i}", [20, 80], coverage=0.5) for i in range(4000)]
    enrolled = [r for r in results if r != NOT_ENROLLED]
    assert abs(len(enrolled) - 2000) < 3.3 * math.sqrt(4000 * 0.25)
    assert abs(enrolled.count(0) - 0.2 * len(enrolled)) < 3.3 * math.sqrt(len(enrolled) * 0.16)
