"""Statistics against published values and reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import StratifiedTable
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from forensics.core import stats


def test_wilson_matches_statsmodels() -> None:
    for x, n in [(0, 10), (3, 40), (81, 263), (500, 500)]:
        got = stats.wilson(x, n)
        low, high = proportion_confint(x, n, method="wilson")
        assert got.low == pytest.approx(low, abs=1e-9)
        assert got.high == pytest.approx(high, abs=1e-9)
    assert math.isnan(stats.wilson(0, 0).estimate)


def test_newcombe_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80
    d = stats.newcombe(48, 80, 56, 70)
    assert d.estimate == pytest.approx(0.2)
    assert (round(d.low, 4), round(d.high, 4)) == (0.0524, 0.3339)


def test_benjamini_hochberg_matches_statsmodels() -> None:
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    assert stats.benjamini_hochberg(p) == pytest.approx(multipletests(p, method="fdr_bh")[1])
    q = stats.benjamini_hochberg([0.01, float("nan"), 0.04])
    assert math.isnan(q[1]) and q[0] == pytest.approx(0.02)


def test_mantel_haenszel_p_matches_statsmodels_and_cancels_time() -> None:
    # two hours: the rate doubles in hour 2 for everyone; the version itself does nothing
    x1, n1, x0, n0 = [2, 40], [100, 400], [20, 10], [1000, 100]
    mh = stats.mantel_haenszel(x1, n1, x0, n0, exact=False)
    tables = [np.array([[a, n - a], [b, m - b]]) for a, n, b, m in zip(x1, n1, x0, n0, strict=True)]
    ref = StratifiedTable(tables).test_null_odds(correction=False).pvalue
    assert mh.p_value == pytest.approx(ref, rel=1e-6)
    crude = sum(x1) / sum(n1) - sum(x0) / sum(n0)
    assert crude > 0.05                       # pooling over time would blame the version
    assert abs(mh.risk_difference) < 0.01     # stratified by hour it does not
    assert mh.low < 0 < mh.high


def test_exact_test_on_few_events_equals_fisher() -> None:
    from scipy.stats import fisher_exact

    mh = stats.mantel_haenszel([3], [10], [0], [10])
    assert mh.p_value == pytest.approx(fisher_exact([[3, 7], [0, 10]]).pvalue)


def test_bootstrap_mean_and_quantile_intervals_cover() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(100, 10, 2000), rng.normal(103, 10, 2000)
    d = stats.bootstrap_diff(a, b, "mean", reps=400)
    assert d.low < 3 < d.high and d.p_value < 0.01
    q = stats.bootstrap_ci(a, 0.95, reps=300)
    assert q.low < np.quantile(a, 0.95) < q.high
    # a random sample of a bigger cohort: rescaled interval is narrower than the sample's
    wide = stats.bootstrap_ci(a[:500], "mean", reps=300)
    narrow = stats.bootstrap_ci(a[:500], "mean", reps=300, population=5000)
    assert narrow.high - narrow.low < (wide.high - wide.low) / 2


def test_change_points_find_a_step_and_not_noise() -> None:
    rng = np.random.default_rng(7)
    n = rng.integers(50, 300, 200)
    rate = np.where(np.arange(200) < 120, 0.02, 0.06)
    bad = rng.binomial(n, rate)
    o = stats.onset(bad, n)
    assert o is not None and abs(o.index - 120) <= 2 and o.after > o.before
    flat = rng.binomial(n, 0.02)
    assert stats.onset(flat, n) is None
    ru = stats.onset(bad, n, method="ruptures")
    assert ru is not None and abs(ru.index - 120) <= 3
    alarm = stats.cusum_onset(bad, n)
    assert alarm is not None and 115 <= alarm[1] <= alarm[0] <= 135


def test_weighted_corr_and_small_sample() -> None:
    assert stats.weighted_corr([0, 0.5, 1], [0.0, 0.5, 1.0]) == pytest.approx(1.0)
    assert math.isnan(stats.weighted_corr([1, 1, 1], [0, 1, 2]))
    assert stats.small_sample(2, 20) and not stats.small_sample(50, 1000)
