"""Property tests of the simulator's market rules: square-root impact, Chainlink's oracle rule,
EIP-1559, and the keeper rule against ``keepers/profit.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keepers import profit
from plimsoll.sim import (
    AssetSpec,
    GasSpec,
    KeeperSpec,
    LiquidationSpec,
    SimConfig,
    SimInputError,
    close_fraction,
    keeper_reward,
    keeper_sends,
    next_base_fee,
    oracle_update,
    sqrt_impact,
)

ASSETS = (
    AssetSpec("X", 100.0, daily_volume=1e7, sigma_daily=0.05, deviation=0.005, heartbeat=3600),
    AssetSpec("Y", 1.0, daily_volume=5e6, sigma_daily=0.01, deviation=0.01, heartbeat=86400),
)
usd = st.floats(min_value=0.0, max_value=1e9, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(q1=usd, q2=usd)
def test_impact_is_monotone_odd_and_zero_at_zero(q1: float, q2: float) -> None:
    lo, hi = sorted((q1, q2))
    a = sqrt_impact([[lo, -lo]], ASSETS)[0]
    b = sqrt_impact([[hi, -hi]], ASSETS)[0]
    assert b[0] >= a[0] >= 0.0  # buying more moves the price up at least as far
    assert b[1] <= a[1] <= 0.0  # selling more moves it down at least as far
    assert sqrt_impact([[-hi, hi]], ASSETS)[0] == pytest.approx(-b, abs=0)  # odd
    assert np.all(sqrt_impact([[0.0, 0.0]], ASSETS) == 0.0)


@settings(max_examples=200, deadline=None)
@given(q=st.floats(min_value=1.0, max_value=1e9))
def test_impact_follows_the_square_root_law(q: float) -> None:
    one = sqrt_impact([[-q, 0.0]], ASSETS)[0, 0]
    four = sqrt_impact([[-4 * q, 0.0]], ASSETS)[0, 0]
    assert four == pytest.approx(2 * one, rel=1e-12)
    assert one == pytest.approx(-0.05 * math.sqrt(q / 1e7), rel=1e-12)


prices = st.floats(min_value=0.01, max_value=1e6)


@settings(max_examples=300, deadline=None)
@given(posted=prices, market=prices, age=st.floats(min_value=0, max_value=2e5))
def test_oracle_posts_on_deviation_or_heartbeat_only(posted: float, market: float,
                                                    age: float) -> None:
    p = np.array([posted, posted])
    at = np.array([0.0, 0.0])
    m = np.array([market, market])
    new, new_at, upd = oracle_update(p, at, m, age, ASSETS)
    for i, a in enumerate(ASSETS):
        due = abs(market / posted - 1) >= a.deviation - 1e-15 or age >= a.heartbeat
        assert bool(upd[i]) == due
        assert new[i] == (market if due else posted)
        assert new_at[i] == (age if due else 0.0)
        if not due:  # what the protocol sees is within the threshold of the market
            assert abs(market / new[i] - 1) < a.deviation


def test_oracle_lags_a_slow_slide_in_steps() -> None:
    """A 0.1% per step slide is posted every 5th step by a 0.5% feed: the protocol sees the
    price late and in steps, never more than one threshold away."""
    p, at = np.array([100.0]), np.array([0.0])
    posts = 0
    for k in range(1, 51):
        m = np.array([100.0 * 0.999**k])
        p, at, upd = oracle_update(p, at, m, float(k), ASSETS[:1])
        posts += int(upd[0])
        assert abs(m[0] / p[0] - 1) < 0.005
    assert 8 <= posts <= 10


@settings(max_examples=100, deadline=None)
@given(u=st.floats(min_value=0, max_value=1), blocks=st.integers(1, 50))
def test_base_fee_rises_only_when_blocks_are_over_target(u: float, blocks: int) -> None:
    gas = GasSpec(min_base_fee=0.0)
    nxt = float(next_base_fee(10.0, u, blocks, gas))
    if u > 0.5:
        assert nxt > 10.0
    elif u < 0.5:
        assert nxt < 10.0
    assert nxt <= 10.0 * 1.125**blocks * (1 + 1e-12)  # at most +12.5% per full block


WAD = 10**18
LC = LiquidationSpec()
LP = profit.LiquidationParams(
    penalty=WAD // 100, keeper_share=WAD // 2, buffer=WAD // 4, collateral_bonus=WAD // 20,
    reward_cap=100 * WAD, dust_notional=1000 * WAD, reward_min=5 * WAD)


@settings(max_examples=400, deadline=None)
@given(
    notional=st.integers(1_000, 10_000_000),
    mm_rate=st.floats(min_value=0.01, max_value=0.5),
    health=st.floats(min_value=-0.5, max_value=0.999),
)
def test_close_fraction_and_reward_match_keepers_profit(notional: int, mm_rate: float,
                                                       health: float) -> None:
    mm = notional * mm_rate
    equity = mm * health
    mm_w, eq_w, n_w = int(mm * WAD), int(equity * WAD), notional * WAD
    f_ref = profit.close_fraction(eq_w, mm_w, n_w, LP) / WAD
    f = float(close_fraction(np.array([eq_w / WAD]), np.array([mm_w / WAD]),
                             np.array([float(notional)]), LC)[0])
    assert f == pytest.approx(f_ref, abs=1e-9)
    r_ref = profit.keeper_reward(eq_w, int(f_ref * n_w), LP) / WAD
    r = float(keeper_reward(np.array([eq_w / WAD]), np.array([f_ref * notional]), LC)[0])
    assert r == pytest.approx(r_ref, abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(
    equity=st.integers(-10_000, 100_000),
    notional=st.integers(0, 1_000_000),
    reward=st.integers(0, 100),
    gas=st.integers(0, 200),
)
def test_keeper_sends_exactly_when_keepers_profit_does(equity: int, notional: int, reward: int,
                                                      gas: int) -> None:
    ks = KeeperSpec(min_profit=1.0, guard_move=0.05)
    ref = profit.decide(reward * WAD, gas * WAD, equity * WAD, notional * WAD, WAD // 20, WAD)
    got = bool(keeper_sends(np.array([float(equity)]), np.array([float(notional)]),
                            np.array([float(reward)]), float(gas), ks)[0])
    assert got == (ref is not profit.Decision.SKIP)


def test_bad_parameters_raise_one_clear_error() -> None:
    with pytest.raises(SimInputError, match="deviation"):
        AssetSpec("Z", 1.0, daily_volume=1.0, sigma_daily=0.1, deviation=1.5)
    with pytest.raises(SimInputError, match="asset index"):
        SimConfig(markets=(SimConfig().markets[0].__class__("Q", asset=9),))


@settings(max_examples=100, deadline=None)
@given(fee=st.floats(min_value=1, max_value=5000), blocks=st.integers(1, 500))
def test_congestion_lifts_the_base_fee_to_the_cap_at_most(fee: float, blocks: int) -> None:
    gas = GasSpec(fee_cap=500.0)
    nxt = float(next_base_fee(fee, 1.0, blocks, gas))
    assert nxt <= max(fee, 500.0) * (1 + 1e-12)
    assert nxt >= fee  # full blocks never lower it
