"""snnlib.stats against textbook values, hand computations, brute-force enumeration and properties.

z = 1.959964 (z^2 = 3.841459) throughout the hand computations at 95 %.
"""
import math
import time
from fractions import Fraction

import numpy as np
import pytest

from snnlib.stats import (
    PairedComparison, _z, binom_two_sided_p, clopper_pearson, compare_paired, equivalence_verdict, holm,
    mcnemar_exact, paired_difference_ci, seed_summary, superiority_verdict, wilson_interval)

Z95 = 1.959963984540054


# ---------------------------------------------------------------------------------------------------------------
# brute-force references (exact integer / rational arithmetic, independent of the module's log-space code)


def brute_two_sided_p(k, n, p=Fraction(1, 2)):
    """Sum of P(X = i) over all outcomes i with P(X = i) <= P(X = k) (1 + 1e-7), in exact rationals."""
    p = Fraction(p)
    r, s = p.numerator, p.denominator
    w = [math.comb(n, i) * r ** i * (s - r) ** (n - i) for i in range(n + 1)]  # P(X = i) * s^n, integers
    limit = Fraction(w[k]) * (1 + Fraction(1, 10 ** 7))
    return float(Fraction(sum(x for x in w if x <= limit), s ** n))


def brute_lower_tail_half(k, n, start=0):
    """P(start <= X <= k) for X ~ Binomial(n, 1/2), exactly, by running the binomial row in Python integers."""
    total, c = 0, math.comb(n, start)
    for i in range(start, k + 1):
        total += c
        c = c * (n - i) // (i + 1)
    return Fraction(total, 2 ** n)


def exact_tail(n, k, p, upper):
    """P(X >= k) (upper) or P(X <= k) at a float p taken as an exact rational."""
    p = Fraction(p)
    rng = range(k, n + 1) if upper else range(0, k + 1)
    return float(sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in rng))


def cell(n11, n10, n01, n00, seeds=()):
    """Correctness arrays with the given 2x2 table per seed, shape seeds + (N,)."""
    a = np.array([1] * n11 + [1] * n10 + [0] * n01 + [0] * n00, dtype=bool)
    b = np.array([1] * n11 + [0] * n10 + [1] * n01 + [0] * n00, dtype=bool)
    return np.broadcast_to(a, seeds + a.shape).copy(), np.broadcast_to(b, seeds + b.shape).copy()


def cmp_of(n11, n10, n01, n00, conf=0.95):
    return compare_paired(*cell(n11, n10, n01, n00), conf=conf)


# ---------------------------------------------------------------------------------------------------------------
# normal quantile


def test_normal_quantile_matches_tables():
    # standard normal tables (R: qnorm(0.975), qnorm(0.995), qnorm(0.95))
    assert _z(0.95) == pytest.approx(1.959963984540054, rel=1e-13)
    assert _z(0.99) == pytest.approx(2.5758293035489004, rel=1e-13)
    assert _z(0.90) == pytest.approx(1.6448536269514722, rel=1e-13)
    # and deep in the tail, where Bonferroni puts it: P(|Z| > z) = 1e-6 -> z = 4.891638 (qnorm(1 - 5e-7))
    assert _z(1 - 1e-6) == pytest.approx(4.891638475698, rel=1e-10)


# ---------------------------------------------------------------------------------------------------------------
# Wilson


@pytest.mark.parametrize("k, n, lo, hi", [
    # Newcombe (1998a), the paper's worked examples, method 3 (score interval without continuity correction)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_textbook(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=5e-5)


def test_wilson_hand_computed():
    # k = 0, n = 20: centre = (z^2/2)/(n + z^2), half = z/(n + z^2) * z/2 = the same, so lo = 0 and
    # hi = z^2 / (n + z^2) = 3.841459 / 23.841459 = 0.161125
    assert wilson_interval(0, 20) == (0.0, pytest.approx(0.161125, abs=1e-6))
    # k = 5, n = 10: centre = 0.5, half = z/13.841459 * sqrt(2.5 + 0.960365) = 0.141601 * 1.860206 = 0.263407
    assert wilson_interval(5, 10) == pytest.approx((0.236593, 0.763407), abs=1e-6)


def test_wilson_edges_and_properties():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(7, 7)[1] == 1.0
    for n in (1, 2, 10, 57):
        prev = (-1.0, -1.0)
        for k in range(n + 1):
            lo, hi = wilson_interval(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0
            assert lo >= prev[0] and hi >= prev[1]  # monotone in k
            prev = (lo, hi)
            # symmetry: the interval for failures is the mirror image of the interval for successes
            lo2, hi2 = wilson_interval(n - k, n)
            assert (lo, hi) == pytest.approx((1 - hi2, 1 - lo2), abs=1e-12)
            # a higher confidence level gives a wider interval
            lo99, hi99 = wilson_interval(k, n, 0.99)
            assert lo99 <= lo and hi99 >= hi
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(1, 2, conf=1.0)


# ---------------------------------------------------------------------------------------------------------------
# Clopper-Pearson


@pytest.mark.parametrize("k, n, lo, hi", [
    # Newcombe (1998a), the paper's worked examples, method 5 (Clopper-Pearson 'exact')
    (81, 263, 0.2527, 0.3676),
    (15, 148, 0.0578, 0.1617),
    (0, 20, 0.0, 0.1684),
    (1, 29, 0.0009, 0.1776),
    # R: binom.test(682, 925, p = 3/4)$conf.int (the help page's Mendel example)
    (682, 925, 0.7076683, 0.7654066),
])
def test_clopper_pearson_textbook(k, n, lo, hi):
    tol = 5e-8 if n == 925 else 5e-5
    assert clopper_pearson(k, n) == pytest.approx((lo, hi), abs=tol)


def test_clopper_pearson_closed_forms():
    # k = 0: P(X <= 0 | hi) = (1 - hi)^n = alpha/2  ->  hi = 1 - 0.025^(1/n)
    # k = n: P(X >= n | lo) = lo^n = alpha/2         ->  lo = 0.025^(1/n)
    # k = 1: P(X >= 1 | lo) = 1 - (1 - lo)^n = alpha/2  ->  lo = 1 - 0.975^(1/n)
    for n in (1, 5, 20, 1000, 50_000):
        assert clopper_pearson(0, n) == (0.0, pytest.approx(1 - 0.025 ** (1 / n), rel=1e-9))
        assert clopper_pearson(n, n) == (pytest.approx(0.025 ** (1 / n), rel=1e-9), 1.0)
        assert clopper_pearson(1, n)[0] == pytest.approx(-math.expm1(math.log(0.975) / n), rel=1e-9)
    # n = 20, k = 0 at 95 %: 1 - 0.025^(1/20) = 1 - exp(ln 0.025 / 20) = 1 - exp(-0.184444) = 0.168434
    assert clopper_pearson(0, 20)[1] == pytest.approx(0.168434, abs=1e-6)


def test_clopper_pearson_solves_the_exact_tail_equations():
    # brute force: at the returned bounds the exact binomial tails (rational arithmetic) equal alpha/2
    for n in (1, 4, 13, 30):
        for k in range(n + 1):
            lo, hi = clopper_pearson(k, n)
            if k > 0:
                assert exact_tail(n, k, lo, upper=True) == pytest.approx(0.025, rel=1e-9)
            if k < n:
                assert exact_tail(n, k, hi, upper=False) == pytest.approx(0.025, rel=1e-9)


def test_clopper_pearson_properties_and_coverage():
    for n in (1, 3, 20, 101):
        prev = (-1.0, -1.0)
        for k in range(n + 1):
            lo, hi = clopper_pearson(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0
            assert lo > prev[0] and hi > prev[1]  # strictly monotone in k
            prev = (lo, hi)
            assert clopper_pearson(n - k, n) == pytest.approx((1 - hi, 1 - lo), abs=1e-12)
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    # coverage never below nominal (Clopper & Pearson's guarantee), checked exactly for n = 20 on a grid of p
    n = 20
    bounds = [clopper_pearson(k, n) for k in range(n + 1)]
    for p in np.linspace(0.005, 0.995, 199):
        cover = sum(math.comb(n, k) * p ** k * (1 - p) ** (n - k) for k, (lo, hi) in enumerate(bounds) if lo <= p <= hi)
        assert cover >= 0.95 - 1e-12


def test_clopper_pearson_fast_and_stable_for_large_n():
    clopper_pearson(9000, 10_000)  # warm the cache of log C(n, i), as a harness would for repeated cells
    best = math.inf
    for k in (9000, 9123, 9876):
        t = time.perf_counter()
        lo, hi = clopper_pearson(k, 10_000)
        best = min(best, time.perf_counter() - t)
        assert lo < k / 10_000 < hi
    assert best < 0.05
    # n = 50,000 at the mean: close to the Wilson interval (both ~ p +- 1.96 sqrt(pq/n) = 0.5 +- 0.004383)
    lo, hi = clopper_pearson(25_000, 50_000)
    assert (lo, hi) == pytest.approx((0.5 - 0.004383, 0.5 + 0.004383), abs=2e-5)


# ---------------------------------------------------------------------------------------------------------------
# exact binomial test


def test_binom_two_sided_textbook():
    # R: binom.test(682, 925, p = 3/4)$p.value = 0.3825 (the help page's Mendel example)
    assert binom_two_sided_p(682, 925, 0.75) == pytest.approx(0.3825, abs=5e-5)
    # hand: n = 10, k = 2, p = 1/2: outcomes no more likely than 2 are {0, 1, 2, 8, 9, 10}:
    # 2 (1 + 10 + 45) / 1024 = 112 / 1024 = 0.109375
    assert binom_two_sided_p(2, 10) == pytest.approx(0.109375, rel=1e-12)
    # hand: n = 5, k = 0, p = 0.2: P = 0.32768, 0.4096, 0.2048, 0.0512, 0.0064, 0.00032 for 0..5; only k = 1 is more
    # likely than k = 0, so p = 1 - 0.4096 = 0.5904
    assert binom_two_sided_p(0, 5, 0.2) == pytest.approx(0.5904, rel=1e-12)


def test_binom_two_sided_equals_brute_force():
    for p in (Fraction(1, 2), Fraction(3, 10), Fraction(3, 4), Fraction(1, 7)):
        for n in range(1, 16):
            for k in range(n + 1):
                assert binom_two_sided_p(k, n, float(p)) == pytest.approx(brute_two_sided_p(k, n, p), rel=1e-10)
    assert binom_two_sided_p(682, 925, 0.75) == pytest.approx(brute_two_sided_p(682, 925, Fraction(3, 4)), rel=1e-9)


def test_binom_two_sided_symmetry_and_edges():
    for n in (1, 9, 40, 1001):
        for k in range(0, n + 1, max(1, n // 17)):
            assert binom_two_sided_p(k, n) == binom_two_sided_p(n - k, n)  # exactly symmetric at p = 1/2
            assert binom_two_sided_p(k, n, 0.3) == pytest.approx(binom_two_sided_p(n - k, n, 0.7), rel=1e-9)
            assert 0.0 <= binom_two_sided_p(k, n, 0.3) <= 1.0  # p < 1e-308 underflows to 0, as in R
    assert binom_two_sided_p(0, 0) == 1.0
    assert binom_two_sided_p(0, 5, 0.0) == 1.0 and binom_two_sided_p(1, 5, 0.0) == 0.0
    assert binom_two_sided_p(5, 5, 1.0) == 1.0 and binom_two_sided_p(4, 5, 1.0) == 0.0
    assert binom_two_sided_p(50, 100) == 1.0  # the mean is the mode: every outcome is at most as likely
    with pytest.raises(ValueError):
        binom_two_sided_p(1, 2, 1.5)


def test_binom_two_sided_large_n_against_exact_integers():
    # p = 1/2, k below n/2: by exact symmetry p = 2 P(X <= k), summed exactly in Python integers
    # (n = 100,000, k = 45,000 is 31.6 standard deviations out: p = 8.6e-220, where a float comb would overflow
    # and a float pmf product underflow)
    exact = float(2 * brute_lower_tail_half(9700, 20_000))
    assert binom_two_sided_p(9700, 20_000) == pytest.approx(exact, rel=1e-8)
    # at n = 100,000 the full row is slow in integers; below i = k - 400 the terms shrink by at least
    # k/(n - k + 1) = 0.818 per step, so leaving them out changes the sum by < 0.818^400 / 0.182 ~ 1e-34 relative
    exact = float(2 * brute_lower_tail_half(45_000, 100_000, start=45_000 - 400))
    assert binom_two_sided_p(45_000, 100_000) == pytest.approx(exact, rel=1e-8)


# ---------------------------------------------------------------------------------------------------------------
# McNemar


def test_mcnemar_textbook():
    # b = 1, c = 8: b ~ Bin(9, 1/2); P(X <= 1) = (1 + 9)/512; two-sided 20/512 = 0.0390625
    assert mcnemar_exact(1, 8) == pytest.approx(0.0390625, rel=1e-12)
    # b = 0, c = 5: 2 / 32 = 0.0625
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625, rel=1e-12)
    # b = c: the observed split is the mode
    assert mcnemar_exact(10, 10) == 1.0
    assert mcnemar_exact(0, 0) == 1.0
    # b = 15, c = 5: 2 (1 + 20 + 190 + 1140 + 4845 + 15504) / 2^20 = 43400 / 1048576 = 0.0413895
    assert mcnemar_exact(15, 5) == pytest.approx(43400 / 2 ** 20, rel=1e-12)


def test_mcnemar_equals_brute_force_over_all_outcomes():
    for n in range(1, 41):
        w = [math.comb(n, i) for i in range(n + 1)]
        for b in range(n + 1):
            # sum of the probabilities of all outcomes no more likely than b (exact integers: ties are exact)
            brute = Fraction(sum(x for x in w if x <= w[b]), 2 ** n)
            # the textbook form: twice the smaller tail, capped at 1
            tails = min(1, 2 * Fraction(sum(w[: min(b, n - b) + 1]), 2 ** n))
            got = mcnemar_exact(b, n - b)
            assert got == pytest.approx(float(brute), rel=1e-12)
            assert got == pytest.approx(float(tails), rel=1e-12)
            assert got == mcnemar_exact(n - b, b)


# ---------------------------------------------------------------------------------------------------------------
# paired difference CI (Newcombe 1998b, method 10)


def test_paired_ci_published_example():
    # Fagerland, Lydersen & Laake (2017), ch. 8: complete response before/after consolidation therapy
    # (Cavo et al. 2012), table [[59, 6], [16, 80]]; Newcombe square-and-add: -0.0621 (-0.1186 to -0.0046)
    lo, hi = paired_difference_ci(59, 6, 16, 80)
    assert (lo, hi) == pytest.approx((-0.1186, -0.0046), abs=5e-5)
    # hand computation of the same, to 6 digits:
    #   n = 161, p_A = 65/161 = 0.403727, p_B = 75/161 = 0.465839, D = -10/161 = -0.062112
    #   Wilson 65/161: centre 0.405970, half 0.074934 -> (0.331037, 0.480904)
    #   Wilson 75/161: centre 0.466635, half 0.076154 -> (0.390481, 0.542789)
    #   A = 59*80 - 6*16 = 4624 > n/2, C = 65*96*75*86 = 40,248,000, sqrt C = 6344.131
    #   phi = (4624 - 80.5)/6344.131 = 0.716174
    #   p_A - l1 = 0.072690, u2 - p_B = 0.076950, p_B - l2 = 0.075358, u1 - p_A = 0.077177
    #   L = D - sqrt(0.072690^2 - 2 phi 0.072690 0.076950 + 0.076950^2) = -0.062112 - 0.056509 = -0.118621
    #   U = D + sqrt(0.075358^2 - 2 phi 0.075358 0.077177 + 0.077177^2) = -0.062112 + 0.057487 = -0.004625
    assert (lo, hi) == pytest.approx((-0.118621, -0.004625), abs=1e-6)


def test_paired_ci_hand_computed_negative_phi():
    # table n11 = 36, n10 = 12, n01 = 2, n00 = 0 (the negative-association branch of phi):
    #   n = 50, p_A = 48/50 = 0.96, p_B = 38/50 = 0.76, D = 10/50 = 0.2
    #   Wilson 48/50: centre (48 + 1.920730)/53.841459 = 0.927180, half 1.959964/53.841459 * sqrt(1.92 + 0.960365)
    #                 = 0.036403 * 1.697164 = 0.061781 -> (0.865399, 0.988961)
    #   Wilson 38/50: centre 0.741450, half 0.036403 * sqrt(9.12 + 0.960365) = 0.115576 -> (0.625873, 0.857026)
    #   A = 36*0 - 12*2 = -24 < 0, C = 48*2*38*12 = 43776, phi = -24/209.227 = -0.114708
    #   p_A - l1 = 0.094601, u2 - p_B = 0.097026 -> delta = sqrt(0.008949 + 2*0.114708*0.009179 + 0.009414) = 0.143070
    #   p_B - l2 = 0.134127, u1 - p_A = 0.028961 -> eps = sqrt(0.017990 + 2*0.114708*0.003884 + 0.000839) = 0.140428
    #   CI = (0.2 - 0.143070, 0.2 + 0.140428) = (0.056930, 0.340428)
    assert paired_difference_ci(36, 12, 2, 0) == pytest.approx((0.056930, 0.340428), abs=1e-6)


def test_paired_ci_phi_zero_branch_is_square_and_add():
    # Bentur et al. 2009 (Fagerland et al. 2017, ch. 8): [[1, 1], [7, 12]]; A = 12 - 7 = 5 <= n/2 = 10.5 -> phi = 0,
    # so the interval is the plain square-and-add of the two Wilson intervals
    n = 21
    l1, u1 = wilson_interval(2, n)
    l2, u2 = wilson_interval(8, n)
    p1, p2, d = 2 / n, 8 / n, -6 / n
    expect = (d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(p2 - l2, u1 - p1))
    assert paired_difference_ci(1, 1, 7, 12) == pytest.approx(expect, abs=1e-12)


def test_paired_ci_properties():
    rng = np.random.default_rng(0)
    for _ in range(300):
        t = [int(x) for x in rng.integers(0, 30, size=4)]
        if sum(t) == 0:
            continue
        n = sum(t)
        d = (t[1] - t[2]) / n
        lo, hi = paired_difference_ci(*t)
        assert -1.0 <= lo <= d <= hi <= 1.0
        # swapping A and B mirrors the interval
        assert paired_difference_ci(t[0], t[2], t[1], t[3]) == pytest.approx((-hi, -lo), abs=1e-12)
        lo90, hi90 = paired_difference_ci(*t, conf=0.90)
        assert lo90 >= lo - 1e-15 and hi90 <= hi + 1e-15
    assert paired_difference_ci(0, 0, 0, 0) == (-1.0, 1.0)
    # all pairs agree: D = 0, the interval still has width (the Wilson intervals do)
    lo, hi = paired_difference_ci(9000, 0, 0, 1000)
    assert lo < 0.0 < hi and hi < 0.001
    # everything right for both: margins empty -> phi = 0, interval = -+ (1 - Wilson lower bound of n/n)
    assert paired_difference_ci(50, 0, 0, 0) == pytest.approx((-(1 - wilson_interval(50, 50)[0]),
                                                               1 - wilson_interval(50, 50)[0]))
    with pytest.raises(ValueError):
        paired_difference_ci(1, -1, 0, 0)


# ---------------------------------------------------------------------------------------------------------------
# Holm


def test_holm_hand_computed():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04; running max -> 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # capped at 1: 0.5 * 2 = 1.0, 0.9 -> max(1.0, 0.9) = 1.0
    assert holm([0.9, 0.5]) == pytest.approx([1.0, 1.0])
    # one test: unchanged
    assert holm([0.0413]) == pytest.approx([0.0413])
    assert holm([]).shape == (0,)
    with pytest.raises(ValueError):
        holm([0.1, 1.2])


def test_holm_against_definition():
    rng = np.random.default_rng(1)
    for m in (1, 2, 3, 7):
        for _ in range(50):
            p = rng.random(m) ** 3
            adj = holm(p)
            order = np.argsort(p)
            ref = np.empty(m)
            for i in range(m):  # definition: max over j <= i of min(1, (m - j) p_(j)), 0-based
                ref[order[i]] = max(min(1.0, (m - j) * p[order[j]]) for j in range(i + 1))
            assert adj == pytest.approx(ref)
            assert (adj >= p).all() and (adj <= 1).all()
            assert (np.diff(adj[order]) >= 0).all()  # monotone in the order of the raw p-values


# ---------------------------------------------------------------------------------------------------------------
# compare_paired


def test_compare_paired_hand_counts():
    a = np.array([1, 1, 1, 0, 0, 1, 0], dtype=bool)
    b = np.array([1, 0, 0, 1, 0, 1, 0], dtype=bool)
    # pairs: (1,1) (1,0) (1,0) (0,1) (0,0) (1,1) (0,0) -> n11 = 2, b = 2, c = 1, n00 = 2
    r = compare_paired(a, b)
    assert (r.n_pairs, r.n_seeds, r.b, r.c, r.n11, r.n00) == (7, 1, 2, 1, 2, 2)
    assert r.acc_a == pytest.approx(4 / 7) and r.acc_b == pytest.approx(3 / 7) and r.delta == pytest.approx(1 / 7)
    # 2 of 3 discordant pairs for A: p = 2 (1 + 3)/8 -> capped at 1
    assert r.p == 1.0
    assert r.ci == paired_difference_ci(2, 2, 1, 2)
    # 0/1 integers are accepted, other values are not
    assert compare_paired(a.astype(int), b.astype(np.int8)) == r
    with pytest.raises(ValueError):
        compare_paired(a.astype(int) * 2, b)
    with pytest.raises(ValueError):
        compare_paired(a, b[:-1])


def test_compare_paired_pools_seeds_like_concatenation():
    rng = np.random.default_rng(2)
    a = rng.random((3, 500)) < 0.9
    b = rng.random((3, 500)) < 0.85
    pooled = compare_paired(a, b)
    concat = compare_paired(np.concatenate(list(a)), np.concatenate(list(b)))
    assert pooled.n_seeds == 3 and concat.n_seeds == 1 and pooled.n_pairs == 1500
    for f in ("n_pairs", "acc_a", "acc_b", "delta", "ci", "b", "c", "p", "n11", "n00"):
        assert getattr(pooled, f) == getattr(concat, f)
    # counts are the sums of the per-seed counts
    per_seed = [compare_paired(a[s], b[s]) for s in range(3)]
    assert pooled.b == sum(x.b for x in per_seed) and pooled.c == sum(x.c for x in per_seed)
    # more leading axes are seeds too
    assert compare_paired(a.reshape(3, 1, 500), b.reshape(3, 1, 500)).n_seeds == 3
    assert isinstance(pooled, PairedComparison)


# ---------------------------------------------------------------------------------------------------------------
# superiority verdicts


def test_superiority_supported_then_not_significant_when_discordance_shrinks():
    # three cells (e.g. T = 1, 2, 4), each b = 60, c = 20 of 10,000: delta = +0.004, z ~ 40/sqrt(80) = 4.5,
    # McNemar p ~ 7e-6, Holm x3 still << 0.05
    strong = [cmp_of(8900, 60, 20, 1020)] * 3
    verdict, details = superiority_verdict(strong)
    assert verdict == "supported"
    assert all(d["p_holm"] < 1e-4 and d["delta"] == pytest.approx(0.004) for d in details)
    # the same delta (+0.004) on 1,000 images: b = 6, c = 2, p = 2 (1 + 8 + 28)/256 = 0.2890625 -> not significant
    weak = [cmp_of(890, 6, 2, 102)] * 3
    verdict, details = superiority_verdict(weak)
    assert verdict == "not significant"
    assert details[0]["delta"] == pytest.approx(0.004) and details[0]["p"] == pytest.approx(0.2890625)
    # b = 15, c = 5: p = 0.0413895 each; alone it is significant, but Holm over three cells
    # (all equal: 3 p, 2 p, 1 p, running max -> 3 p = 0.124) makes the three-cell claim not significant
    mid = cmp_of(8900, 15, 5, 1080)
    assert superiority_verdict([mid])[0] == "supported"
    verdict, details = superiority_verdict([mid] * 3)
    assert verdict == "not significant"
    assert [d["p_holm"] for d in details] == pytest.approx([3 * 43400 / 2 ** 20] * 3)


def test_superiority_contradicted_and_mixed():
    good = cmp_of(8900, 60, 20, 1020)
    bad = cmp_of(8900, 20, 60, 1020)
    null = cmp_of(8900, 10, 10, 1080)
    # a significant reversal in one cell contradicts 'A beats B'
    assert superiority_verdict([good, bad, good])[0] == "contradicted"
    # the reverse claim on strong data is contradicted; on the reversed data it is supported
    assert superiority_verdict([good] * 3, direction=-1)[0] == "contradicted"
    assert superiority_verdict([bad] * 3, direction=-1)[0] == "supported"
    # one cell without a difference: not every cell supports the claim, none contradicts it
    verdict, details = superiority_verdict([good, null])
    assert verdict == "not significant"
    assert details[1]["delta"] == 0.0 and details[1]["p"] == 1.0 and not details[1]["significant"]
    # details keep the input order and the Holm values: p = [p_good, 1] -> [2 p_good, 1]
    assert details[0]["p_holm"] == pytest.approx(2 * good.p)
    assert set(details[0]) >= {"delta", "ci", "b", "c", "p", "p_holm"}
    with pytest.raises(ValueError):
        superiority_verdict([good], direction=0)
    with pytest.raises(ValueError):
        superiority_verdict([])


# ---------------------------------------------------------------------------------------------------------------
# equivalence verdicts


def test_equivalence_verdicts():
    margin = 0.001  # 0.1 pp
    # 10,000 images, 5 + 5 discordant: delta 0, 95 % CI about +-0.0007, Bonferroni-3 (98.33 %) about +-0.0009
    tight = cmp_of(8995, 5, 5, 995)
    verdict, details = equivalence_verdict([tight] * 3, margin)
    assert verdict == "supported"
    assert details[0]["conf"] == pytest.approx(1 - 0.05 / 3)
    assert all(-margin <= d["ci"][0] and d["ci"][1] <= margin for d in details)
    assert details[0]["ci"] == pytest.approx(paired_difference_ci(8995, 5, 5, 995, 1 - 0.05 / 3))
    # the same split on 1,000 images: CI about +-0.007 -> can't tell
    assert equivalence_verdict([cmp_of(895, 5, 5, 95)] * 3, margin)[0] == "not significant"
    # 100 discordant pairs all for A on 10,000 images: delta 0.01, CI about (0.008, 0.012), entirely above margin
    far = cmp_of(8900, 100, 0, 1000)
    assert equivalence_verdict([tight, far, tight], margin)[0] == "contradicted"
    assert equivalence_verdict([cmp_of(8900, 0, 100, 1000)], margin)[0] == "contradicted"
    # Bonferroni matters: b = 4, c = 1 on 10,000 -> 95 % CI (-0.00027, 0.00087) inside the margin for one cell,
    # but the 98.33 % CI for three cells reaches 0.00105 > margin
    edge = cmp_of(8996, 4, 1, 999)
    assert equivalence_verdict([edge], margin)[0] == "supported"
    assert equivalence_verdict([edge] * 3, margin)[0] == "not significant"
    with pytest.raises(ValueError):
        equivalence_verdict([tight], 0.0)


# ---------------------------------------------------------------------------------------------------------------
# seeds


def test_seed_summary():
    # mean (0.90 + 0.92 + 0.94)/3 = 0.92; deviations -0.02, 0, 0.02 -> variance 0.0008/2 = 0.0004, std 0.02
    mean, std, n = seed_summary([0.90, 0.92, 0.94])
    assert (mean, std, n) == (pytest.approx(0.92), pytest.approx(0.02), 3)
    # two values: std = |x1 - x2| / sqrt 2
    assert seed_summary([1.0, 2.0])[1] == pytest.approx(1 / math.sqrt(2))
    mean, std, n = seed_summary([0.91])
    assert mean == 0.91 and math.isnan(std) and n == 1
    mean, std, n = seed_summary([])
    assert math.isnan(mean) and math.isnan(std) and n == 0
