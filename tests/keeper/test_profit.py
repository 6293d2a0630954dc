"""The profit rule: the contract's reward, gas priced from the chain, when to send."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keepers.candidates import legs, notional
from keepers.profit import (
    EPISODE,
    EPISODE_UNIT,
    WAD,
    Decision,
    LiquidationParams,
    LossBudget,
    close_fraction,
    decide,
    expected_reward,
    gas_cost_usd,
    keeper_reward,
    open_episode,
    waiting_cost_usd,
)
from plimsoll.margin import compute_margin
from tests.keeper.conftest import Setup, rpc

# The deployment's parameters: 1% penalty, half to the keeper, 25% buffer, reward 5..100 USD.
LC = LiquidationParams(
    penalty=WAD // 100,
    keeper_share=WAD // 2,
    buffer=WAD // 4,
    collateral_bonus=WAD // 20,
    reward_cap=100 * WAD,
    dust_notional=1_000 * WAD,
    reward_min=5 * WAD,
)


def test_reward_is_the_share_of_the_penalty_between_min_and_cap() -> None:
    assert keeper_reward(10_000 * WAD, 4_000 * WAD, LC) == 20 * WAD  # 4000 x 1% x 50%
    assert keeper_reward(10_000 * WAD, 100 * WAD, LC) == 5 * WAD  # the minimum
    assert keeper_reward(10_000 * WAD, 10**7 * WAD, LC) == 100 * WAD  # the cap


def test_reward_is_capped_at_equity_and_zero_underwater() -> None:
    assert keeper_reward(3 * WAD, 4_000 * WAD, LC) == 3 * WAD
    assert keeper_reward(0, 4_000 * WAD, LC) == 0
    assert keeper_reward(-500 * WAD, 4_000 * WAD, LC) == 0


def test_close_fraction_is_full_when_equity_is_gone_or_the_rest_is_dust() -> None:
    assert close_fraction(4 * WAD, 500 * WAD, 10_000 * WAD, LC) == WAD  # equity <= min reward
    # Partial: equity 4k under MM 5k on 100k notional: f = (6250 - 4000) / (6250 - 1000).
    f = close_fraction(4_000 * WAD, 5_000 * WAD, 100_000 * WAD, LC)
    assert f == -(-2_250 * WAD // 5_250)
    assert close_fraction(50 * WAD, 60 * WAD, 1_200 * WAD, LC) == WAD  # 720 of dust left


def test_episode_pays_the_minimum_and_the_cap_once() -> None:
    """Issue 13, finding 6: within a liquidation episode the rewards add up to the reward of
    one liquidation of the whole (``Liquidations._liquidate``)."""
    rich = 10**9 * WAD
    # Minimum regime: 100 + 100 of notional (penalty 1 + 1): 5 once, then nothing more.
    first = keeper_reward(rich, 100 * WAD, LC)
    assert first == 5 * WAD
    assert keeper_reward(rich, 100 * WAD, LC, episode=WAD) == 0
    # Proportional: what each step closes is paid (4,000 -> 20, then 2,000 more -> 10).
    assert keeper_reward(rich, 2_000 * WAD, LC, episode=40 * WAD) == 10 * WAD
    # Cap: 100 once; a continuation past the cap pays nothing.
    assert keeper_reward(rich, 10**6 * WAD, LC, episode=10_000 * WAD) == 0
    # The episode from getAccount's tuple: open for EPISODE seconds from its start.
    acct = (0, 0, 0, 0, 2, 1_000, 3 * 10**6)
    assert open_episode(acct, 1_000 + EPISODE - 1) == 3 * 10**6 * EPISODE_UNIT
    assert open_episode(acct, 1_000 + EPISODE) is None
    # No minimum reward is counted in the close fraction within an episode.
    # (equity 490, MM 500, 2,000 notional: the minimum reward binds outside an episode.)
    args = (490 * WAD, 500 * WAD, 2_000 * WAD, LC)
    assert close_fraction(*args, in_episode=True) == -(-135 * WAD // 605)
    assert close_fraction(*args) == -(-140 * WAD // 625)


@given(
    p1=st.integers(0, 10**6 * WAD),
    p2=st.integers(0, 10**6 * WAD),
)
def test_rewards_within_an_episode_telescope_to_one_reward(p1: int, p2: int) -> None:
    """Two liquidations in one episode (closed notionals n1, n2) pay no more than one of
    n1 + n2 (up to the rounding of the booked penalty, share x 1e-6 USD)."""
    rich = 10**12 * WAD
    n1, n2 = p1 * 100, p2 * 100  # penalties p1, p2 at 1%
    booked = -(-p1 // EPISODE_UNIT) * EPISODE_UNIT
    two = keeper_reward(rich, n1, LC) + keeper_reward(rich, n2, LC, episode=booked)
    one = keeper_reward(rich, n1 + n2, LC)
    assert two <= one + EPISODE_UNIT * LC.keeper_share // WAD + 1


@given(
    equity=st.integers(-(10**6) * WAD, 10**6 * WAD),
    closed=st.integers(0, 10**8 * WAD),
)
def test_reward_never_exceeds_cap_or_positive_equity(equity: int, closed: int) -> None:
    r = keeper_reward(equity, closed, LC)
    assert 0 <= r <= LC.reward_cap
    assert r <= max(equity, 0)


def test_gas_cost_in_usd_from_gas_price_and_token_price() -> None:
    # 300k gas at 200 gwei at 1,700 USD per ETH: 0.06 ETH = 102 USD.
    assert gas_cost_usd(300_000, 200 * 10**9, 1_700 * WAD) == 102 * WAD


def test_decide_profit_protect_bad_debt_skip() -> None:
    guard = WAD // 20  # 5%
    # Pays for itself.
    assert decide(20 * WAD, 5 * WAD, 400 * WAD, 20_000 * WAD, guard, 0) is Decision.PROFIT
    # A 200-gwei spike: gas 100 USD over a 20 USD reward, but equity 300 on 20k notional would
    # be 700 USD underwater after a 5% move: sent at a loss.
    assert decide(20 * WAD, 100 * WAD, 300 * WAD, 20_000 * WAD, guard, 0) is Decision.PROTECT
    # Plenty of equity left: a 5% move leaves it solvent, the loss is not worth it yet.
    assert decide(20 * WAD, 100 * WAD, 1_001 * WAD, 20_000 * WAD, guard, 0) is Decision.SKIP
    assert decide(0, 10**6 * WAD, -1, 20_000 * WAD, guard, 0) is Decision.BAD_DEBT
    assert waiting_cost_usd(300 * WAD, 20_000 * WAD, guard) == 700 * WAD


def test_small_account_near_zero_is_protected_in_an_800_gwei_spike() -> None:
    """The 800-gwei finding: gas 340 USD against a reward of 10 on a 2,000 USD account with
    60 USD of equity. A 5% move leaves it 40 USD underwater, far less than the keeper's loss:
    the old rule (waiting cost >= loss) skipped it until it was bad debt. It is sent."""
    guard = WAD // 20
    assert decide(10 * WAD, 340 * WAD, 60 * WAD, 2_000 * WAD, guard, 0) is Decision.PROTECT
    assert waiting_cost_usd(60 * WAD, 2_000 * WAD, guard) == 40 * WAD


@given(
    reward=st.integers(0, 100 * WAD),
    gas=st.integers(0, 10_000 * WAD),
    equity=st.integers(-(10**6) * WAD, 10**6 * WAD),
    notional=st.integers(0, 10**7 * WAD),
    guard=st.integers(0, WAD // 2),
)
def test_decide_never_skips_an_account_a_guard_move_would_sink(
    reward: int, gas: int, equity: int, notional: int, guard: int
) -> None:
    d = decide(reward, gas, equity, notional, guard, 0)
    if equity < notional * guard // WAD:  # underwater now, or after a further guard move
        assert d is not Decision.SKIP
    if d is Decision.SKIP:
        assert reward < gas and equity >= notional * guard // WAD


def test_loss_budget_rolls_over_an_hour() -> None:
    now = [0.0]
    b = LossBudget(100 * WAD, clock=lambda: now[0])
    assert b.allows(60 * WAD)
    b.spend(60 * WAD)
    assert not b.allows(50 * WAD) and b.allows(40 * WAD)
    assert b.allows(-(10**30))  # a profit never needs budget
    now[0] = 3601.0
    assert b.used() == 0 and b.allows(100 * WAD)


@pytest.mark.parametrize("crash", [0.9, 0.86])
def test_expected_reward_equals_the_reward_the_contract_pays(
    setup: Setup, tmp_path: Path, crash: float
) -> None:
    """Every account the crash makes liquidatable, liquidated one by one: the reward the
    keeper predicted from the state before equals the Liquidated event's reward. A 10% crash
    leaves the 7x accounts equity above the reward; a 14% one leaves them 0-60 USD, under
    the reward the penalty would pay: the equity cap binds."""
    keeper = setup.keeper(tmp_path, setup.keeper_key(), "reward")
    assert keeper.lc == LiquidationParams.from_chain(
        setup.dep.core.functions.liquidationConfig().call()
    )
    setup.crash(crash)
    core = setup.dep.core
    checked = capped = 0
    for t in setup.traders:
        if not core.functions.isLiquidatable(t, 0).call():
            continue
        block = setup.w3.eth.block_number
        state = keeper.reader.read([(t, 0)], block)
        # The liquidation's block one second later: funding accrues over that second, and the
        # equity cap binds on equity then.
        nxt = int(state.timestamp) + 1
        rpc(setup.w3, "evm_setNextBlockTimestamp", [nxt])
        result = compute_margin(dataclasses.replace(state, timestamp=nxt))
        equity, mm = int(result.equity[0]), int(result.mm[0])
        predicted = expected_reward(equity, mm, notional(state, 0), keeper.lc, legs(state, 0))
        h = core.functions.liquidate(t, 0).transact({"from": setup.w3.eth.accounts[0]})
        receipt = setup.w3.eth.wait_for_transaction_receipt(h)
        (ev,) = core.events.Liquidated().process_receipt(receipt)
        paid = int(ev["args"]["keeperReward"])
        # To the wei, the equity cap included (an account at or below zero pays nothing).
        assert paid == predicted, (t, equity / WAD, paid / WAD, predicted / WAD)
        checked += 1
        capped += predicted == max(equity, 0)
    assert checked >= 3, checked
    if crash < 0.88:
        assert capped >= 3, (checked, capped)
    else:
        assert capped == 0, (checked, capped)
    print(f"rewards predicted to the wei: {checked} liquidations, {capped} capped at equity")
