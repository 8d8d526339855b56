"""Honest statistics for incident forensics: intervals, tests, corrections, change points.

Small, dependency-light public functions over counts and small arrays (the heavy
aggregation happens in DuckDB first). Other stages (detection gap, containment) import
these, so every function documents its inputs and the method it uses.

>>> [round(v, 4) for v in wilson(12, 400).as_dict().values()]
[0.03, 0.0172, 0.0517]
>>> round(newcombe(12, 400, 60, 410).estimate, 4)          # p2 - p1
0.1163
>>> benjamini_hochberg([0.01, 0.04, 0.03, 0.5]).round(4).tolist()
[0.04, 0.0533, 0.0533, 0.5]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

__all__ = [
    "ChangePoint", "Interval", "MHResult", "Onset", "benjamini_hochberg",
    "binomial_changepoints", "bootstrap_ci", "bootstrap_diff", "cusum_onset", "exact_cmh_p",
    "mantel_haenszel", "newcombe", "onset",
    "ruptures_changepoints", "small_sample", "two_proportion_test", "weighted_corr", "wilson",
    "wilson_arrays",
    "z_value",
]

SMALL_N = 30          # fewer events than this in a cohort: flagged as a small sample
SMALL_EVENTS = 5      # or fewer expected events of either outcome


def z_value(level: float) -> float:
    """Two-sided normal quantile: ``z_value(0.95)`` = 1.95996..."""
    return float(sps.norm.ppf(0.5 + level / 2))


@dataclass(frozen=True)
class Interval:
    """A point estimate with its interval."""

    estimate: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# ---------------------------------------------------------------------------------------
# proportions

def wilson(x: float, n: float, level: float = 0.95) -> Interval:
    """Wilson score interval for a proportion ``x / n`` (NaN when ``n`` is 0).

    >>> round(wilson(0, 50).high, 4)    # never a zero-width interval at 0
    0.0713
    """
    if n <= 0:
        return Interval(math.nan, math.nan, math.nan)
    z = z_value(level)
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, min(max(0.0, centre - half), p), max(min(1.0, centre + half), p))


def newcombe(x1: float, n1: float, x2: float, n2: float, level: float = 0.95) -> Interval:
    """Newcombe's hybrid score interval (method 10) for the difference ``p2 - p1``.

    >>> [round(v, 4) for v in newcombe(56, 70, 48, 80).as_dict().values()]   # Newcombe 1998
    [-0.2, -0.3339, -0.0524]
    """
    a, b = wilson(x1, n1, level), wilson(x2, n2, level)
    if math.isnan(a.estimate) or math.isnan(b.estimate):
        return Interval(math.nan, math.nan, math.nan)
    d = b.estimate - a.estimate
    low = d - math.sqrt((b.estimate - b.low) ** 2 + (a.high - a.estimate) ** 2)
    high = d + math.sqrt((b.high - b.estimate) ** 2 + (a.estimate - a.low) ** 2)
    return Interval(d, max(-1.0, low), min(1.0, high))


def two_proportion_test(x1: float, n1: float, x2: float, n2: float) -> float:
    """Two-sided p-value for ``p1 == p2``: Fisher's exact test when an expected cell is
    below 5, else the pooled z-test (same as Pearson's chi-square without correction)."""
    if n1 <= 0 or n2 <= 0:
        return math.nan
    pooled = (x1 + x2) / (n1 + n2)
    expected = min(n1 * pooled, n1 * (1 - pooled), n2 * pooled, n2 * (1 - pooled))
    if expected < 5:
        table = [[int(x1), int(n1 - x1)], [int(x2), int(n2 - x2)]]
        return float(sps.fisher_exact(table).pvalue)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x2 / n2 - x1 / n1) / se
    return float(2 * sps.norm.sf(abs(z)))


def small_sample(x: float, n: float, min_n: int = SMALL_N) -> bool:
    """True when a proportion rests on too little: fewer than ``min_n`` trials, or fewer
    than 5 events (or non-events) observed."""
    return bool(n < min_n or x < SMALL_EVENTS or n - x < SMALL_EVENTS)


@dataclass(frozen=True)
class MHResult:
    """Mantel-Haenszel pooled risk difference (exposed minus unexposed) over strata."""

    risk_difference: float
    low: float
    high: float
    z: float
    p_value: float
    strata: int          # informative strata (both arms present)
    x1: int
    n1: int
    x0: int
    n0: int

    @property
    def rate1(self) -> float:
        return self.x1 / self.n1 if self.n1 else math.nan

    @property
    def rate0(self) -> float:
        return self.x0 / self.n0 if self.n0 else math.nan


def mantel_haenszel(x1: Sequence[float] | np.ndarray, n1: Sequence[float] | np.ndarray,
                    x0: Sequence[float] | np.ndarray, n0: Sequence[float] | np.ndarray,
                    level: float = 0.95, exact: bool | None = None) -> MHResult:
    """Stratified comparison of two arms: per stratum ``x1`` bad of ``n1`` exposed and
    ``x0`` bad of ``n0`` unexposed (e.g. strata = hours, so that time effects cancel).

    Risk difference: Mantel-Haenszel weights ``n1 n0 / N`` with Sato's (1989) variance;
    p-value: Cochran-Mantel-Haenszel chi-square (1 df, no continuity correction), or the
    exact conditional test (:func:`exact_cmh_p`) when ``exact`` or, by default, when
    there are at most 200 events in all (the chi-square misleads on few events).
    Strata with an empty arm carry no information and are dropped.

    >>> r = mantel_haenszel([10, 20], [100, 100], [5, 10], [100, 100])
    >>> round(r.risk_difference, 3), r.strata
    (0.075, 2)
    """
    a1, m1, a0, m0 = (np.asarray(v, dtype=float) for v in (x1, n1, x0, n0))
    keep = (m1 > 0) & (m0 > 0)
    a1, m1, a0, m0 = a1[keep], m1[keep], a0[keep], m0[keep]
    counts = (int(a1.sum()), int(m1.sum()), int(a0.sum()), int(m0.sum()))
    if not keep.any():
        return MHResult(math.nan, math.nan, math.nan, math.nan, math.nan, 0, *counts)
    big_n = m1 + m0
    w = m1 * m0 / big_n
    rd = float(((a1 * m0 - a0 * m1) / big_n).sum() / w.sum())
    p_term = ((m1 ** 2 * a0 - m0 ** 2 * a1 + m1 * m0 * (m0 - m1) / 2) / big_n ** 2).sum()
    q_term = ((a1 * (m0 - a0) + a0 * (m1 - a1)) / (2 * big_n)).sum()
    var = max(float((rd * p_term + q_term) / w.sum() ** 2), 0.0)
    half = z_value(level) * math.sqrt(var)
    events = a1 + a0
    expected = m1 * events / big_n
    v = np.where(big_n > 1, m1 * m0 * events * (big_n - events) /
                 (big_n ** 2 * np.maximum(big_n - 1, 1)), 0.0)
    vsum = float(v.sum())
    if exact is None:
        exact = events.sum() <= EXACT_MAX_EVENTS
    if exact and events.sum() > 0:
        p = exact_cmh_p(a1, m1, m0, events)
        z = float((a1 - expected).sum() / math.sqrt(vsum)) if vsum > 0 else 0.0
    elif vsum > 0:
        z = float((a1 - expected).sum() / math.sqrt(vsum))
        p = float(2 * sps.norm.sf(abs(z)))
    else:
        z, p = 0.0, 1.0
    return MHResult(rd, max(-1.0, rd - half), min(1.0, rd + half), z, p, int(keep.sum()),
                    *counts)


EXACT_MAX_EVENTS = 200


def exact_cmh_p(x1: np.ndarray, n1: np.ndarray, n0: np.ndarray, events: np.ndarray) -> float:
    """Exact two-sided p-value of the stratified 2x2 test (R's ``mantelhaen.test(exact=
    TRUE)`` statistic): given each stratum's margins, the exposed events follow a sum of
    independent hypergeometric laws; p = mass of outcomes no more likely than observed.

    >>> round(exact_cmh_p(np.array([3]), np.array([10]), np.array([10]), np.array([3])), 4)
    0.2105
    """
    dist = np.array([1.0])
    for a, b, m in zip(n1.astype(int), n0.astype(int), events.astype(int), strict=True):
        if m == 0:
            continue
        lo, hi = max(0, m - b), min(m, a)
        pmf = sps.hypergeom(a + b, a, m).pmf(np.arange(lo, hi + 1))
        dist = np.convolve(dist, np.concatenate([np.zeros(lo), pmf]))
    observed = round(float(x1.sum()))
    if observed >= dist.size:
        return 0.0
    return float(min(1.0, dist[dist <= dist[observed] * (1 + 1e-7)].sum()))


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN p-values stay NaN and do not
    count as tests.

    >>> benjamini_hochberg([0.01, 0.02, float("nan")]).round(3).tolist()
    [0.02, 0.02, nan]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(ranked, 1.0)
    out[ok] = q
    return out


# ---------------------------------------------------------------------------------------
# bootstrap for means and quantiles

def _statistic(stat: str | float) -> Callable[[np.ndarray], np.ndarray]:
    """``"mean"``, ``"median"`` or a quantile in (0, 1); applied along the last axis."""
    if stat == "mean":
        return lambda a: a.mean(axis=-1)
    q = 0.5 if stat == "median" else float(stat)
    if not 0 < q < 1:
        raise ValueError(f"statistic must be 'mean', 'median' or a quantile in (0, 1): {stat}")
    return lambda a: np.quantile(a, q, axis=-1)


def _boot(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], reps: int,
          rng: np.random.Generator) -> np.ndarray:
    out = np.empty(reps)
    chunk = max(1, 2_000_000 // max(len(x), 1))
    for start in range(0, reps, chunk):
        k = min(chunk, reps - start)
        out[start:start + k] = fn(x[rng.integers(0, len(x), size=(k, len(x)))])
    return out


def bootstrap_ci(x: Sequence[float] | np.ndarray, stat: str | float = "mean",
                 reps: int = 1000, seed: int = 0, level: float = 0.95,
                 population: int | None = None) -> Interval:
    """Percentile bootstrap interval of a mean or quantile.

    ``population``: when ``x`` is a uniform random sample of a larger cohort of that size
    (the point estimate is still the sample's), deviations are rescaled by
    ``sqrt(len(x) / population)`` (the statistic is root-n consistent).

    >>> bootstrap_ci([1.0, 2.0, 3.0, 4.0], "median", reps=200).estimate
    2.5
    """
    arr = np.asarray(x, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    fn = _statistic(stat)
    point = float(fn(arr))
    dist = _boot(arr, fn, reps, np.random.default_rng(seed)) - point
    dist *= _scale(arr.size, population)
    tail = (1 - level) / 2
    return Interval(point, point + float(np.quantile(dist, tail)),
                    point + float(np.quantile(dist, 1 - tail)))


def _scale(m: int, population: int | None) -> float:
    return math.sqrt(m / population) if population and population > m else 1.0


@dataclass(frozen=True)
class BootstrapDiff:
    estimate: float      # stat(b) - stat(a)
    low: float
    high: float
    p_value: float       # two-sided, normal approximation with the bootstrap standard error
    a: float
    b: float


def bootstrap_diff(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                   stat: str | float = "mean", reps: int = 1000, seed: int = 0,
                   level: float = 0.95, population: tuple[int, int] | None = None,
                   point: tuple[float, float] | None = None) -> BootstrapDiff:
    """Bootstrap interval and p-value for ``stat(b) - stat(a)`` (independent samples).

    ``population`` = (size of cohort a, size of cohort b) when ``a``/``b`` are random
    samples of them (deviations rescaled as in :func:`bootstrap_ci`); ``point`` = the exact
    statistics of the full cohorts (computed in SQL), used as the centre.

    >>> d = bootstrap_diff([1, 2, 3, 4], [3, 4, 5, 6], reps=500)
    >>> d.estimate
    2.0
    """
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    xa, xb = xa[~np.isnan(xa)], xb[~np.isnan(xb)]
    if xa.size == 0 or xb.size == 0:
        return BootstrapDiff(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    fn = _statistic(stat)
    rng = np.random.default_rng(seed)
    sa, sb = float(fn(xa)), float(fn(xb))
    pa, pb = point if point is not None else (sa, sb)
    dev_a = (_boot(xa, fn, reps, rng) - sa) * _scale(xa.size, population[0] if population
                                                     else None)
    dev_b = (_boot(xb, fn, reps, rng) - sb) * _scale(xb.size, population[1] if population
                                                     else None)
    dev = dev_b - dev_a
    est = pb - pa
    tail = (1 - level) / 2
    se = float(dev.std(ddof=1))
    if se > 0:
        p = float(2 * sps.norm.sf(abs(est) / se))
    else:
        p = 1.0 if est == 0 else 0.0
    return BootstrapDiff(est, est + float(np.quantile(dev, tail)),
                         est + float(np.quantile(dev, 1 - tail)), p, pa, pb)


# ---------------------------------------------------------------------------------------
# change points on a bucketed rate

@dataclass(frozen=True)
class ChangePoint:
    """A shift in a bucketed rate: buckets ``[.., index)`` vs ``[index, ..)``."""

    index: int
    before: float        # rate of the segment before
    after: float         # rate of the segment after
    llr: float           # log-likelihood ratio of the split (binomial)

    @property
    def upward(self) -> bool:
        return self.after > self.before


def _binom_ll(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Maximised binomial log-likelihood of segments with ``x`` events in ``n`` trials."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, x / np.maximum(n, 1), 0.0)
        ll = np.where(x > 0, x * np.log(np.where(p > 0, p, 1.0)), 0.0) + \
            np.where(n - x > 0, (n - x) * np.log(np.where(p < 1, 1 - p, 1.0)), 0.0)
    return np.asarray(ll, dtype=float)


def _best_split(cx: np.ndarray, cn: np.ndarray, lo: int, hi: int,
                min_size: int) -> tuple[int, float]:
    """Best single split of buckets [lo, hi) by binomial LLR, from cumulative sums."""
    ks = np.arange(lo + min_size, hi - min_size + 1)
    if ks.size == 0:
        return -1, 0.0
    xl, nl = cx[ks] - cx[lo], cn[ks] - cn[lo]
    xr, nr = cx[hi] - cx[ks], cn[hi] - cn[ks]
    whole = _binom_ll(np.array([cx[hi] - cx[lo]]), np.array([cn[hi] - cn[lo]]))[0]
    gain = _binom_ll(xl, nl) + _binom_ll(xr, nr) - whole
    gain = np.where((nl > 0) & (nr > 0), gain, -np.inf)
    best = int(np.argmax(gain))
    return int(ks[best]), float(gain[best])


def binomial_changepoints(bad: Sequence[float] | np.ndarray, n: Sequence[float] | np.ndarray,
                          penalty: float | None = None, min_size: int = 2,
                          max_points: int = 8) -> list[ChangePoint]:
    """Shifts in a rate (``bad`` of ``n`` per bucket) by binary segmentation with the exact
    binomial likelihood, so quiet night-time buckets weigh less than busy ones.

    A split is kept when its log-likelihood ratio exceeds ``penalty`` (default
    ``1.5 * log(T)``, i.e. twice the LLR above ``3 log T``: roughly a family-wise 5 % false
    alarm rate over the positions tried). Returns change points sorted by index, each with
    the rates of the segments on either side (after all splits).

    >>> bad = [1] * 48 + [10] * 24; n = [100] * 72
    >>> [c.index for c in binomial_changepoints(bad, n)]
    [48]
    """
    x = np.asarray(bad, dtype=float)
    m = np.asarray(n, dtype=float)
    t = x.size
    if t < 2 * min_size:
        return []
    pen = penalty if penalty is not None else 1.5 * math.log(max(t, 2))
    cx = np.concatenate([[0.0], np.cumsum(x)])
    cn = np.concatenate([[0.0], np.cumsum(m)])
    found: list[tuple[int, float]] = []
    stack = [(0, t)]
    while stack and len(found) < max_points:
        lo, hi = stack.pop()
        k, gain = _best_split(cx, cn, lo, hi, min_size)
        if k < 0 or gain < pen:
            continue
        found.append((k, gain))
        stack += [(lo, k), (k, hi)]
    bounds = sorted(k for k, _ in found)
    edges = [0, *bounds, t]
    out = []
    llr = dict(found)
    for i, k in enumerate(bounds):
        lo, hi = edges[i], edges[i + 2]
        before = (cx[k] - cx[lo]) / max(cn[k] - cn[lo], 1)
        after = (cx[hi] - cx[k]) / max(cn[hi] - cn[k], 1)
        out.append(ChangePoint(k, float(before), float(after), llr[k]))
    return out


def ruptures_changepoints(rate: Sequence[float] | np.ndarray, penalty: float | None = None,
                          model: str = "l2", min_size: int = 2) -> list[int]:
    """Change points of a rate series with ruptures' PELT (indices where a new segment
    starts). Default penalty: ``3 * var * log(T)`` (BIC-like for a mean shift)."""
    import ruptures as rpt

    signal = np.nan_to_num(np.asarray(rate, dtype=float)).reshape(-1, 1)
    if signal.shape[0] < 2 * min_size:
        return []
    pen = penalty if penalty is not None else \
        3 * max(float(signal.var()), 1e-12) * math.log(signal.shape[0])
    ends = rpt.Pelt(model=model, min_size=min_size, jump=1).fit(signal).predict(pen=pen)
    return [int(e) for e in ends[:-1]]


def cusum_onset(bad: Sequence[float] | np.ndarray, n: Sequence[float] | np.ndarray,
                baseline: float | None = None, ratio: float = 2.0,
                threshold: float = 5.0, warmup: int = 24) -> tuple[int, int] | None:
    """Bernoulli CUSUM for an upward shift of a rate: (alarm bucket, onset bucket) or None.

    ``baseline``: in-control rate (default: the rate of the first ``warmup`` buckets);
    the chart looks for a ``ratio``-fold increase and alarms when the log-likelihood
    ratio statistic exceeds ``threshold``; the onset estimate is the bucket after the
    statistic last stood at zero (the classical CUSUM change-time estimate). The gap
    between onset and alarm is the detection delay.

    >>> cusum_onset([1] * 30 + [6] * 10, [100] * 40)
    (31, 30)
    """
    x = np.asarray(bad, dtype=float)
    m = np.asarray(n, dtype=float)
    if baseline is None:
        w = min(warmup, x.size)
        baseline = float(x[:w].sum() / max(m[:w].sum(), 1))
    p0 = min(max(baseline, 1e-6), 0.5)
    p1 = min(p0 * ratio, 0.999)
    up, down = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    s, last_zero = 0.0, 0
    for i in range(x.size):
        s = max(0.0, s + x[i] * up + (m[i] - x[i]) * down)
        if s == 0.0:
            last_zero = i + 1
        elif s > threshold:
            return i, min(last_zero, i)
    return None


@dataclass(frozen=True)
class Onset:
    """The start of a rise in a bucketed rate."""

    index: int
    before: float
    after: float
    llr: float
    method: str
    points: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def onset(bad: Sequence[float] | np.ndarray, n: Sequence[float] | np.ndarray,
          method: str = "binseg", penalty: float | None = None) -> Onset | None:
    """Where the rate started to rise: the beginning of the rising run of change points
    that contains the largest upward shift (a gradual rollout shows as several steps).

    ``method``: ``binseg`` (binomial binary segmentation, default), ``ruptures`` (PELT on
    the rate, then binomial rates around each point) or ``cusum``.

    >>> o = onset([2] * 40 + [7] * 4 + [12] * 20, [200] * 64)
    >>> o.index
    40
    """
    x = np.asarray(bad, dtype=float)
    m = np.asarray(n, dtype=float)
    if method == "cusum":
        hit = cusum_onset(x, m)
        if hit is None:
            return None
        k = hit[1]
        return Onset(k, _rate(x[:k], m[:k]), _rate(x[k:hit[0] + 1], m[k:hit[0] + 1]),
                     math.nan, "cusum", (k,))
    if method == "ruptures":
        rate = np.where(m > 0, x / np.maximum(m, 1), 0.0)
        idx = ruptures_changepoints(rate, penalty)
        points = _rates_at(x, m, idx)
    elif method == "binseg":
        points = binomial_changepoints(x, m, penalty)
    else:
        raise ValueError(f"unknown onset method {method!r}: binseg, ruptures or cusum")
    ups = [i for i, c in enumerate(points) if c.upward]
    if not ups:
        return None
    top = max(ups, key=lambda i: points[i].llr if not math.isnan(points[i].llr)
              else points[i].after - points[i].before)
    first = top
    while first - 1 in ups and points[first - 1].index >= points[first].index - 24:
        first -= 1
    c = points[first]
    return Onset(c.index, c.before, points[top].after, points[top].llr, method,
                 tuple(p.index for p in points))


def _rate(x: np.ndarray, m: np.ndarray) -> float:
    return float(x.sum() / m.sum()) if m.sum() > 0 else math.nan


def _rates_at(x: np.ndarray, m: np.ndarray, idx: list[int]) -> list[ChangePoint]:
    edges = [0, *idx, x.size]
    out = []
    for i, k in enumerate(idx):
        lo, hi = edges[i], edges[i + 2]
        gain = float(_binom_ll(np.array([x[lo:k].sum()]), np.array([m[lo:k].sum()]))[0]
                     + _binom_ll(np.array([x[k:hi].sum()]), np.array([m[k:hi].sum()]))[0]
                     - _binom_ll(np.array([x[lo:hi].sum()]), np.array([m[lo:hi].sum()]))[0])
        out.append(ChangePoint(k, _rate(x[lo:k], m[lo:k]), _rate(x[k:hi], m[k:hi]), gain))
    return out


def weighted_corr(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
                  w: Sequence[float] | np.ndarray | None = None) -> float:
    """Weighted Pearson correlation (NaN when either side does not vary).

    >>> round(weighted_corr([0, 0.5, 1], [0.01, 0.03, 0.05], [10, 10, 10]), 3)
    1.0
    """
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    wt = np.ones_like(a) if w is None else np.asarray(w, dtype=float)
    ok = ~(np.isnan(a) | np.isnan(b)) & (wt > 0)
    a, b, wt = a[ok], b[ok], wt[ok]
    if a.size < 3 or wt.sum() == 0:
        return math.nan
    ma, mb = np.average(a, weights=wt), np.average(b, weights=wt)
    va = np.average((a - ma) ** 2, weights=wt)
    vb = np.average((b - mb) ** 2, weights=wt)
    if va <= 0 or vb <= 0:
        return math.nan
    return float(np.average((a - ma) * (b - mb), weights=wt) / math.sqrt(va * vb))


def wilson_arrays(x: Sequence[float] | np.ndarray, n: Sequence[float] | np.ndarray,
                  level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised :func:`wilson`: (rate, low, high) arrays; NaN where ``n`` is 0."""
    xs = np.asarray(x, dtype=float)
    ns = np.asarray(n, dtype=float)
    z = z_value(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(ns > 0, xs / ns, np.nan)
        denom = 1 + z * z / ns
        centre = (p + z * z / (2 * ns)) / denom
        half = z * np.sqrt(p * (1 - p) / ns + z * z / (4 * ns * ns)) / denom
    low = np.minimum(np.clip(centre - half, 0, 1), p)     # rounding never puts p outside
    return p, low, np.maximum(np.clip(centre + half, 0, 1), p)
