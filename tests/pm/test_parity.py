"""The vectorized mirror equals the scalar reference on random books (several markets,
expiries incl. expired / settled / expiring now, calls and puts, perps, vol scalars)."""

from __future__ import annotations

import numpy as np
import pytest

from plimsoll.pm import (
    WAD,
    account_reference,
    encode_witness,
    option_marks,
    portfolio_margin,
    scenario_losses,
    standard_option_margin,
    witness_loss,
    witness_loss_reference,
)
from plimsoll.risk import bs
from tests.pm.conftest import OCFG, PCFG, random_book

REL = 1e-9


def _scale(rb, a: int) -> float:
    """Gross notional of account a [USD]: the tolerance's yardstick."""
    spot = np.array(rb.market.spot, dtype=float) / WAD
    gross = sum(abs(q) / WAD * spot[s.market_id] for s, q in rb.book.positions(a))
    gross += float((np.abs(rb.book.perp_sizes[a].astype(float)) / WAD * spot).sum())
    return gross + 1.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorized_matches_scalar_reference(seed: int) -> None:
    rb = random_book(seed)
    std = standard_option_margin(rb.book, rb.market, OCFG)
    pm = portfolio_margin(rb.book, rb.market, PCFG, chunk_size=17)
    other = rb.book.other_equity.astype(float) / WAD
    for a in range(rb.book.n_accounts):
        ref = account_reference(
            rb.book.positions(a), list(rb.book.perp_sizes[a]), rb.market, OCFG, PCFG
        )
        tol = REL * _scale(rb, a)
        assert std.value[a] == pytest.approx(ref.std_value, abs=tol)
        assert std.equity[a] == pytest.approx(other[a] + ref.std_value, abs=tol + 1e-9)
        assert std.im[a] == pytest.approx(ref.std_im, abs=tol)
        assert std.mm[a] == pytest.approx(ref.std_mm, abs=tol)
        assert pm.value[a] == pytest.approx(ref.pm_value, abs=tol)
        assert pm.mm[a] == pytest.approx(ref.pm_mm, abs=tol)
        assert pm.im[a] == pytest.approx(ref.pm_im, abs=3 * tol)
        held = {m for m in range(rb.market.n_markets) if pm.worst[a, m] >= 0}
        assert held == set(ref.worst)
        for m in held:
            row = np.array(ref.losses[m])
            np.testing.assert_allclose(pm.grid.losses[a, m], row, rtol=0, atol=tol)
            assert pm.worst_loss[a, m] == pytest.approx(ref.worst_loss[m], abs=tol)
            assert pm.contingency[a, m] == pytest.approx(ref.contingency[m], abs=tol)
            second = np.sort(row)[-2]
            if row.max() - second > 2 * tol:  # a clear worst: the same index
                assert pm.worst[a, m] == ref.worst[m]


def test_witness_loss_matches_reference_for_random_witnesses() -> None:
    rb = random_book(7, n_accounts=60)
    rng = np.random.default_rng(70)
    ks = rng.integers(0, PCFG.n_scenarios, (rb.book.n_accounts, rb.market.n_markets))
    got = witness_loss(rb.book, rb.market, PCFG, ks)
    for a in range(rb.book.n_accounts):
        wit = encode_witness({m: int(k) for m, k in enumerate(ks[a])})
        ref = witness_loss_reference(
            rb.book.positions(a), list(rb.book.perp_sizes[a]), rb.market, PCFG, wit
        )
        assert got[a] == pytest.approx(ref, abs=REL * _scale(rb, a))


def test_marks_are_black_scholes_before_expiry_and_intrinsic_after() -> None:
    rb = random_book(11)
    marks = option_marks(rb.book.series, rb.market)
    spot = np.array(rb.market.spot, dtype=float) / WAD
    iv = np.array(rb.market.iv, dtype=float) / WAD
    now = rb.market.timestamp
    for s, v in zip(rb.book.series, marks, strict=True):
        k, sp = s.strike / WAD, spot[s.market_id]
        if s.expiry > now:
            want = float(
                bs.price(
                    sp, k, (s.expiry - now) / (365 * 86_400), iv[s.market_id], 0.0, 0.0, s.is_call
                )
            )
        else:
            at = s.settlement_price / WAD if s.settlement_price else sp
            want = max(at - k, 0.0) if s.is_call else max(k - at, 0.0)
        assert v == pytest.approx(want, rel=1e-12, abs=1e-12 * sp)


def test_chunking_does_not_change_the_result() -> None:
    rb = random_book(5, n_accounts=50)
    a = scenario_losses(rb.book, rb.market, PCFG, chunk_size=1)
    b = scenario_losses(rb.book, rb.market, PCFG)
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_array_equal(a.contingency, b.contingency)
    np.testing.assert_array_equal(a.held, b.held)
