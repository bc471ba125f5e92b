"""The statistics behind the harness's claims: is method A's accuracy really above B's, or within a margin of it?

Every comparison in the harness is *paired*: A and B are evaluated on the same test images in the same order, so
each image gives one pair of outcomes (A right?, B right?). Only the discordant images carry information about the
difference (McNemar 1947): b = A right & B wrong, c = A wrong & B right.

  wilson_interval        CI for one proportion (Wilson 1927; Newcombe 1998a's method 3)
  clopper_pearson        exact CI for one proportion (Clopper & Pearson 1934)
  binom_two_sided_p      exact two-sided binomial test, as R's binom.test
  mcnemar_exact          exact McNemar test = binomial test of b out of b + c at p = 1/2
  paired_difference_ci   CI for p_A - p_B from paired data (Newcombe 1998b's method 10)
  holm                   Holm (1979) step-down adjusted p-values, for claims over several cells
  compare_paired         one cell (e.g. one T) of A vs B from per-image correctness, seeds pooled
  superiority_verdict    "A beats B" over several cells
  equivalence_verdict    "A matches B within a margin" over several cells
  seed_summary           mean, sample std and count of a per-seed quantity

References
  Wilson EB (1927) Probable inference, the law of succession, and statistical inference. JASA 22:209-212.
  Clopper CJ, Pearson ES (1934) The use of confidence or fiducial limits illustrated in the case of the binomial.
      Biometrika 26:404-413.
  Newcombe RG (1998a) Two-sided confidence intervals for the single proportion: comparison of seven methods.
      Statistics in Medicine 17:857-872.
  Newcombe RG (1998b) Improved confidence intervals for the difference between binomial proportions based on
      paired data. Statistics in Medicine 17:2635-2650.
  Brown LD, Cai TT, DasGupta A (2001) Interval estimation for a binomial proportion. Statistical Science 16:101-133.
  Agresti A (2013) Categorical Data Analysis, 3rd ed., Wiley: §11.1 (McNemar's test, paired proportions).
  Fagerland MW, Lydersen S, Laake P (2017) Statistical Analysis of Contingency Tables, CRC: ch. 8 (paired 2x2).
  Holm S (1979) A simple sequentially rejective multiple test procedure. Scand J Statistics 6:65-70.

Only numpy and the standard library are used (no scipy): the normal quantile is found by bisection on math.erfc,
binomial probabilities are summed exactly in log space.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# R's binom.test treats probabilities within a relative 1e-7 of the observed one as "equally likely", so that
# outcomes tied in exact arithmetic stay tied after floating-point rounding.
_REL_TOL = 1e-7


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _check_count(k, n) -> tuple[int, int]:
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    return k, n


def _check_conf(conf: float) -> float:
    conf = float(conf)
    if not 0.0 < conf < 1.0:
        raise ValueError(f"conf must lie in (0, 1), got {conf}")
    return conf


@lru_cache(maxsize=64)
def _z(conf: float) -> float:
    """The two-sided standard-normal quantile z with P(|Z| <= z) = conf (1.959964 for 0.95).

    Solves erfc(z / sqrt 2) = 1 - conf by bisection: erfc is accurate deep in the tail, so this stays exact to
    double precision even for the small Bonferroni-split alphas, and needs no scipy.
    """
    alpha = 1.0 - _check_conf(conf)
    lo, hi = 0.0, 40.0  # erfc(40 / sqrt 2) ~ 1e-350 underflows to 0 < any alpha
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if math.erfc(mid / math.sqrt(2.0)) > alpha:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@lru_cache(maxsize=8)
def _log_comb(n: int) -> np.ndarray:
    """log C(n, i) for i = 0..n, as a read-only array.

    Built from the ratio C(n, i) / C(n, i-1) = (n - i + 1) / i as a running sum of logs (fast for n ~ 1e5; the
    accumulated rounding is ~1e-11 relative, far below the 1e-7 tie tolerance), then mirrored so that
    C(n, i) = C(n, n - i) holds exactly and the p = 1/2 distribution is exactly symmetric.
    """
    half = n // 2
    i = np.arange(1, half + 1, dtype=np.float64)
    left = np.concatenate(([0.0], np.cumsum(np.log(n - i + 1.0) - np.log(i))))
    out = np.empty(n + 1)
    out[: half + 1] = left
    out[n - half:] = left[::-1]  # for odd n both halves meet without overlap; for even n the middle is shared
    out.setflags(write=False)
    return out


def _log_pmf(n: int, p: float) -> np.ndarray:
    """log P(X = i) for X ~ Binomial(n, p), i = 0..n, with 0 < p < 1."""
    i = np.arange(n + 1, dtype=np.float64)
    return _log_comb(n) + i * math.log(p) + (n - i) * math.log1p(-p)


def _logsumexp(x: np.ndarray) -> float:
    if x.size == 0:
        return -math.inf
    m = float(x.max())
    if m == -math.inf:
        return -math.inf
    return m + math.log(float(np.exp(x - m).sum()))


def _bisect_increasing(f, lo: float = 0.0, hi: float = 1.0) -> float:
    """The root of an increasing f on (lo, hi), to adjacent doubles (f(lo) < 0 < f(hi) assumed)."""
    for _ in range(1100):  # enough to resolve down to the smallest subnormal; typically ~60-80 steps
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if f(mid) < 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------------------------------------------
# one proportion


def wilson_interval(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n: the p whose score test |k - n p| / sqrt(n p (1-p)) <= z.

    Why Wilson and not the textbook Wald p +- z sqrt(p(1-p)/n): Wald collapses to zero width at k = 0 or n and
    its coverage oscillates far below nominal near 0 and 1 (Brown, Cai & DasGupta 2001) -- exactly where test
    error rates of good classifiers live. Solving the quadratic in p gives (Newcombe 1998a, method 3):
        centre = (k + z^2/2) / (n + z^2),   half-width = z / (n + z^2) * sqrt(k (n - k) / n + z^2 / 4).
    n = 0 carries no information: (0, 1).
    """
    k, n = _check_count(k, n)
    z = _z(conf)
    if n == 0:
        return 0.0, 1.0
    z2 = z * z
    centre = (k + z2 / 2.0) / (n + z2)
    half = z / (n + z2) * math.sqrt(k * (n - k) / n + z2 / 4.0)
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact 0 / 1 at the ends, without rounding residue
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def clopper_pearson(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson 'exact' interval: inverts two one-sided exact binomial tests, each at (1 - conf)/2.

    lo solves P(X >= k | lo) = alpha/2 (lo = 0 when k = 0), hi solves P(X <= k | hi) = alpha/2 (hi = 1 when k = n).
    Its coverage is never below conf (it is conservative; Brown, Cai & DasGupta 2001), which makes it the
    cautious choice for a single reported accuracy. The tails are summed exactly in log space and the equations
    solved by bisection on p (the tails are monotone in p), so no beta quantiles (scipy) are needed.
    """
    k, n = _check_count(k, n)
    alpha = 1.0 - _check_conf(conf)
    if n == 0:
        return 0.0, 1.0
    target = math.log(alpha / 2.0)
    logc = _log_comb(n)
    i = np.arange(n + 1, dtype=np.float64)

    def log_tail(p: float, sl: slice) -> float:
        return _logsumexp(logc[sl] + i[sl] * math.log(p) + (n - i[sl]) * math.log1p(-p))

    # P(X >= k | p) increases with p; P(X <= k | p) decreases with p.
    lo = 0.0 if k == 0 else _bisect_increasing(lambda p: log_tail(p, slice(k, None)) - target)
    hi = 1.0 if k == n else _bisect_increasing(lambda p: target - log_tail(p, slice(0, k + 1)))
    return lo, hi


def binom_two_sided_p(k: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided binomial test of k successes in n trials against success probability p.

    The p-value sums the probabilities of all outcomes no more likely than the observed one -- the 'method of
    small p-values' used by R's binom.test (with its relative tolerance 1e-7 for ties) -- which, unlike
    'twice the smaller tail', never exceeds 1 and is the natural choice for asymmetric p.
    Computed in log space, so n of 1e5 and more neither overflows nor underflows.
    """
    k, n = _check_count(k, n)
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    if n == 0:
        return 1.0
    if p == 0.0 or p == 1.0:  # a point mass: the observed outcome is either the certain one or impossible
        certain = 0 if p == 0.0 else n
        return 1.0 if k == certain else 0.0
    if k == n * p:  # the observed count is the mean, hence the mode: every outcome is at most as likely (R does this)
        return 1.0
    lp = _log_pmf(n, p)
    keep = lp <= lp[k] + math.log1p(_REL_TOL)
    return min(1.0, math.exp(_logsumexp(lp[keep])))


# ---------------------------------------------------------------------------------------------------------------
# paired comparisons


def mcnemar_exact(b: int, c: int) -> float:
    """Exact McNemar test from the discordant counts b (A right, B wrong) and c (A wrong, B right).

    Under H0 (equal accuracies) each discordant pair is equally likely to go either way, so b ~ Binomial(b + c,
    1/2) conditionally on b + c (Agresti 2013, §11.1); the concordant pairs carry no information. The exact test is
    preferred to the chi-square version because b + c is often small when two converted networks nearly agree.
    b + c = 0: no evidence either way, p = 1.
    """
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"counts must be non-negative, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return binom_two_sided_p(b, b + c, 0.5)


def paired_difference_ci(n11: int, n10: int, n01: int, n00: int, conf: float = 0.95) -> tuple[float, float]:
    """CI for p_A - p_B from paired binary outcomes: Newcombe's (1998b) method 10, the hybrid score interval.

    n11 both right, n10 A right & B wrong, n01 A wrong & B right, n00 both wrong; n = their sum,
    p_A = (n11 + n10)/n, p_B = (n11 + n01)/n, difference D = (n10 - n01)/n.
    Wilson intervals (l1, u1) for p_A and (l2, u2) for p_B are combined 'square-and-add' style, with a correlation
    term because paired proportions are positively correlated (the same images are hard for both):
        L = D - sqrt((p_A - l1)^2 - 2 phi (p_A - l1)(u2 - p_B) + (u2 - p_B)^2)
        U = D + sqrt((p_B - l2)^2 - 2 phi (p_B - l2)(u1 - p_A) + (u1 - p_A)^2)
    phi is the phi coefficient of the 2x2 table with Newcombe's continuity correction:
        A = n11 n00 - n10 n01; phi = (A - n/2)/sqrt(C) if A > n/2, 0 if 0 <= A <= n/2, A/sqrt(C) if A < 0,
        C = (n11+n10)(n01+n00)(n11+n01)(n10+n00), and phi = 0 when C = 0 (some margin empty).
    Why this interval: it is not degenerate at b + c = 0 or at 100 % accuracy, stays within [-1, 1] and has
    near-nominal coverage (Newcombe 1998b; Fagerland, Lydersen & Laake 2017, ch. 8 recommend it).
    n = 0: (-1, 1).
    """
    counts = [int(x) for x in (n11, n10, n01, n00)]
    if min(counts) < 0:
        raise ValueError(f"counts must be non-negative, got {counts}")
    a, b, c, d = counts
    n = a + b + c + d
    if n == 0:
        return -1.0, 1.0
    p1, p2 = (a + b) / n, (a + c) / n
    diff = (b - c) / n
    l1, u1 = wilson_interval(a + b, n, conf)
    l2, u2 = wilson_interval(a + c, n, conf)
    denom = (a + b) * (c + d) * (a + c) * (b + d)  # Python ints: exact, no overflow
    if denom == 0:
        phi = 0.0
    else:
        num = a * d - b * c
        cc = num - n / 2.0 if num > n / 2.0 else (0.0 if num >= 0 else float(num))
        phi = cc / math.sqrt(denom)
    dl1, du2 = p1 - l1, u2 - p2
    dl2, du1 = p2 - l2, u1 - p1
    lo = diff - math.sqrt(max(0.0, dl1 ** 2 - 2.0 * phi * dl1 * du2 + du2 ** 2))
    hi = diff + math.sqrt(max(0.0, dl2 ** 2 - 2.0 * phi * dl2 * du1 + du1 ** 2))
    return max(-1.0, lo), min(1.0, hi)


def holm(pvalues) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, in the input order.

    Sort p ascending, p_(1) <= ... <= p_(m); adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j)).
    Rejecting where the adjusted p < alpha controls the family-wise error rate at alpha under any dependence
    between the tests -- needed because a claim such as 'A beats B at T = 1, 2 and 4' is tested once per T --
    and is uniformly more powerful than plain Bonferroni. The running max keeps the adjusted values monotone.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if p.size and (np.isnan(p).any() or p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.maximum.accumulate(stepped)
    return out


@dataclass(frozen=True)
class PairedComparison:
    """A vs B on the same images (one cell, e.g. one T), seeds pooled. b = A right & B wrong, c = A wrong & B right."""

    n_pairs: int        # paired observations: seeds x images
    n_seeds: int        # product of the leading axes (1 for a single run)
    acc_a: float
    acc_b: float
    delta: float        # acc_a - acc_b
    ci: tuple[float, float]  # paired_difference_ci of delta at `conf`
    b: int
    c: int
    p: float            # mcnemar_exact(b, c)
    n11: int            # both right (kept so that the CI can be recomputed at another level)
    n00: int            # both wrong
    conf: float = 0.95


def _as_correct(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != bool:
        if not np.isin(x, (0, 1)).all():
            raise ValueError("correctness arrays must be boolean (or 0/1)")
        x = x.astype(bool)
    return x


def compare_paired(correct_a, correct_b, conf: float = 0.95) -> PairedComparison:
    """Paired comparison of two methods' per-image correctness, shape [..., N] (leading axes = seeds).

    Both arrays must cover the same images in the same order (and the same seeds along the leading axes).
    Seeds are combined by POOLING: every (seed, image) pair is one paired observation, so b, c and the 2x2 table
    are summed over seeds, and the result equals that of the arrays flattened and concatenated.
    What pooling assumes: repeats of one image under different seeds are treated as independent pairs. They are
    not (an image hard for one seed tends to be hard for the next), so with S > 1 the p-value and CI describe
    these S trained networks on this test set and are optimistic as statements about new seeds or new images;
    the effective sample size lies between N and S x N. Report seed_summary's spread across seeds alongside.
    """
    a, b_ = _as_correct(correct_a), _as_correct(correct_b)
    if a.shape != b_.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b_.shape}")
    if a.ndim == 0 or a.size == 0:
        raise ValueError("need at least one image, shape [..., N]")
    n_seeds = int(np.prod(a.shape[:-1], dtype=np.int64))
    n11 = int(np.count_nonzero(a & b_))
    n10 = int(np.count_nonzero(a & ~b_))
    n01 = int(np.count_nonzero(~a & b_))
    n00 = int(np.count_nonzero(~a & ~b_))
    n = a.size
    acc_a, acc_b = (n11 + n10) / n, (n11 + n01) / n
    return PairedComparison(
        n_pairs=n, n_seeds=n_seeds, acc_a=acc_a, acc_b=acc_b, delta=(n10 - n01) / n,
        ci=paired_difference_ci(n11, n10, n01, n00, conf), b=n10, c=n01, p=mcnemar_exact(n10, n01),
        n11=n11, n00=n00, conf=float(conf))


# ---------------------------------------------------------------------------------------------------------------
# verdicts on claims over several cells

SUPPORTED, CONTRADICTED, NOT_SIGNIFICANT = "supported", "contradicted", "not significant"


def superiority_verdict(cmp_list, alpha: float = 0.05, direction: int = +1) -> tuple[str, list[dict]]:
    """Verdict on 'A beats B' (direction=+1) or 'A is worse than B' (direction=-1) over several cells.

    The cells' exact McNemar p-values are Holm-adjusted together, since the claim is tested once per cell.
      supported        every cell's delta has the claimed sign and its adjusted p < alpha
      contradicted     some cell is significant (adjusted p < alpha) with delta of the opposite sign
      not significant  otherwise (the data can't tell at this sample size, or the cells disagree without
                       a significant reversal)
    Returns (verdict, details): one dict per cell, in input order.
    """
    if direction not in (+1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    cmps = list(cmp_list)
    if not cmps:
        raise ValueError("need at least one cell")
    p_holm = holm([x.p for x in cmps])
    details = []
    for x, ph in zip(cmps, p_holm):
        significant = bool(ph < alpha)
        details.append({
            "delta": x.delta, "ci": tuple(x.ci), "b": x.b, "c": x.c, "p": x.p, "p_holm": float(ph),
            "n_pairs": x.n_pairs, "significant": significant,
            "agrees": bool(np.sign(x.delta) == direction)})
    if any(d["significant"] and np.sign(d["delta"]) == -direction for d in details):
        verdict = CONTRADICTED
    elif all(d["significant"] and d["agrees"] for d in details):
        verdict = SUPPORTED
    else:
        verdict = NOT_SIGNIFICANT
    return verdict, details


def equivalence_verdict(cmp_list, margin: float, conf: float = 0.95) -> tuple[str, list[dict]]:
    """Verdict on 'A matches B within +-margin' (accuracy as a fraction: 0.001 = 0.1 pp) over several cells.

    Each cell's paired CI (Newcombe 1998b) is recomputed at the Bonferroni level conf' = 1 - (1 - conf)/m, so all m
    intervals hold simultaneously with probability >= conf.
      supported        every cell's CI lies inside [-margin, +margin]
      contradicted     some cell's CI lies entirely outside the band (the difference is surely bigger than margin)
      not significant  otherwise: the CIs are too wide to tell at this sample size
    Note this is the interval-inclusion form of equivalence testing; with a two-sided conf CI it is the
    two-one-sided-tests procedure at (1 - conf)/2 per side, i.e. on the conservative side.
    Returns (verdict, details): one dict per cell, in input order.
    """
    margin = float(margin)
    if not margin > 0.0:
        raise ValueError(f"margin must be positive, got {margin}")
    cmps = list(cmp_list)
    if not cmps:
        raise ValueError("need at least one cell")
    conf_cell = 1.0 - (1.0 - _check_conf(conf)) / len(cmps)
    details = []
    for x in cmps:
        lo, hi = paired_difference_ci(x.n11, x.b, x.c, x.n00, conf_cell)
        details.append({
            "delta": x.delta, "ci": (lo, hi), "conf": conf_cell, "margin": margin, "b": x.b, "c": x.c,
            "n_pairs": x.n_pairs, "inside": bool(-margin <= lo and hi <= margin),
            "outside": bool(lo > margin or hi < -margin)})
    if any(d["outside"] for d in details):
        verdict = CONTRADICTED
    elif all(d["inside"] for d in details):
        verdict = SUPPORTED
    else:
        verdict = NOT_SIGNIFICANT
    return verdict, details


def seed_summary(values) -> tuple[float, float, int]:
    """(mean, sample standard deviation with ddof=1, n) of a per-seed quantity; std is NaN for n < 2.

    ddof=1 (Bessel's correction) because the seeds are a sample of possible training runs; with one seed there is
    no estimate of the spread, and NaN says so rather than a misleading 0.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    n = int(v.size)
    mean = float(v.mean()) if n else math.nan
    std = float(v.std(ddof=1)) if n >= 2 else math.nan
    return mean, std, n
