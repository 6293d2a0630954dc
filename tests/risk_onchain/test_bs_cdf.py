"""The on-chain normal CDF against a 50-digit reference (Python ``decimal``).

The library documents |cdf(x) - N(x)| <= MAX_CDF_ERROR = 5 wei (5e-18); this measures it on every
x in [-10, 10] with step 1e-3, on 20,000 uniform random points, and around each range boundary of
Cody's approximation (0.66291, sqrt(32) as rounded in ANORM, the 9 cut-off) to the wei.
"""

from __future__ import annotations

import random

from web3.contract import Contract

from plimsoll.risk_fixed import MAX_CDF_ERROR, WAD
from tests.risk_onchain.conftest import BATCH
from tests.risk_onchain.reference import norm_cdf_exact_wad

BOUNDARIES = (662_910_000_000_000_000, 5_656_854_248_000_000_000, 9 * WAD)


def _onchain_cdf(h: Contract, xs: list[int]) -> list[int]:
    out: list[int] = []
    for i in range(0, len(xs), 4 * BATCH):
        out += h.functions.cdfBatch(xs[i : i + 4 * BATCH]).call({"gas": 10**9})
    return out


def _grid() -> list[int]:
    rnd = random.Random(20261125)
    xs = [i * 10**15 for i in range(-10_000, 10_001)]
    xs += [rnd.randint(-10 * WAD, 10 * WAD) for _ in range(20_000)]
    for b in BOUNDARIES:
        for d in (-(10**9), -2, -1, 0, 1, 2, 10**9):
            xs += [b + d, -(b + d)]
    return xs


def test_cdf_max_abs_error_within_documented_bound(bs_harness: Contract) -> None:
    xs = _grid()
    got = _onchain_cdf(bs_harness, xs)
    errs = [abs(g - norm_cdf_exact_wad(x)) for x, g in zip(xs, got, strict=True)]
    worst = max(range(len(xs)), key=lambda i: errs[i])
    print(f"\ncdf: {len(xs)} points, max |error| = {float(errs[worst]):.3f} wei at x = {xs[worst]}")
    assert errs[worst] <= MAX_CDF_ERROR, (xs[worst], got[worst])


def test_cdf_is_symmetric_to_the_wei(bs_harness: Contract) -> None:
    xs = [x for x in _grid() if x > 0][::7]
    pos = _onchain_cdf(bs_harness, xs)
    neg = _onchain_cdf(bs_harness, [-x for x in xs])
    assert all(p + n == WAD for p, n in zip(pos, neg, strict=True))
    assert bs_harness.functions.cdf(0).call() == WAD // 2


def test_cdf_saturates_far_out(bs_harness: Contract) -> None:
    for x, want in ((9 * WAD, WAD), (-9 * WAD, 0), (2**255 - 1, WAD), (-(2**255), 0)):
        assert bs_harness.functions.cdf(x).call() == want
