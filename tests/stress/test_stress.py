"""The circuit-breaker and dynamic-margin figures of scripts/stress.py, asserted (own anvils)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import stress  # noqa: E402

N = 16


@pytest.fixture(scope="module")
def wick() -> dict[str, Any]:
    return stress.flash_wick(N, seed=5)


def test_wick_with_breakers_liquidates_no_account_healthy_after_recovery(wick):
    on = wick["breakers_on"]
    assert on["liquidated"] == 0
    assert on["liquidated_but_healthy_after_recovery"] == 0
    assert on["blocks_price_held"] >= 3  # the wick and the jump back were both held


def test_wick_without_breakers_liquidates_healthy_accounts(wick):
    off = wick["breakers_off"]
    assert off["liquidated_but_healthy_after_recovery"] > N // 2
    assert off["first_liquidation_step"] == 0  # at the wick's first block
    assert off["blocks_price_held"] == 0


def test_real_crash_is_liquidated_with_breakers_on(wick):
    crash = wick["real_crash_breakers_on"]
    # The same accounts fall as without breakers, only after the move is confirmed.
    assert crash["liquidated"] == wick["breakers_off"]["liquidated"]
    assert crash["first_liquidation_step"] == 3  # three agreeing rounds confirm it
    assert crash["liquidatable_left"] == 0


def test_volatility_jump_raises_requirements_without_liquidating_anyone_at_an_update():
    r = stress.vol_jump(N, seed=5)
    assert r["updates"] >= 3
    assert r["final_scalar"] >= 2.5  # 50% -> 150% vol: the scalar follows, within limits
    assert r["newly_liquidatable_at_updates"] == 0
    assert r["mm_total_after_last_ramp"] > r["mm_total_at_last_update"]  # MM ramps in
    assert r["im_total_at_last_update"] > r["mm_total_after_last_ramp"]  # IM leads
    assert r["newly_liquidatable_after_ramp_owners_topped_up"] == 0
    scalars = r["scalars"]
    assert all(b <= a * 1.5 + 1e-9 for a, b in zip([1.0, *scalars], scalars))  # step limit
