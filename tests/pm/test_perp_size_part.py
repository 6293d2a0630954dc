"""Regression: the size part portfolio margin adds per perp (``MarginEngine.
_addSizeRequirements``) is |q| p min(min(|q| slope, 1) s, 1) (x mmFactor for MM), in USD.
``perp_size_margin`` scaled slope and factor by 1e-18 twice and returned ~1e-18 of it."""

from __future__ import annotations

import pytest

from plimsoll import pm

WAD = 10**18


def test_perp_size_margin_is_the_contracts_size_requirement() -> None:
    market = pm.MarketData(
        spot=(2000 * WAD, 60000 * WAD), iv=(WAD, WAD), timestamp=0,
        size_slope=(WAD // 50_000, WAD // 2000), mm_factor=(WAD // 2, WAD // 2),
        im_scalar=(WAD, 2 * WAD), mm_scalar=(WAD, 2 * WAD))
    book = pm.OptionBook.from_positions([[]], [[100 * WAD, -3 * WAD]], [0])
    im, mm = pm.perp_size_margin(book, market)
    # ETH: rate 100 x 0.00002 = 0.002 on 200,000 USD; BTC: 3 x 0.0005 = 0.0015 x 2 on 180,000
    assert im[0] == pytest.approx(200_000 * 0.002 + 180_000 * 0.003, rel=1e-12)
    assert mm[0] == pytest.approx((200_000 * 0.002 + 180_000 * 0.003) * 0.5, rel=1e-12)
