"""The keeper buys the protocol's recovered collateral (``buyRecovered``) when it pays, so
the insurance fund is refilled; it does not when the price is not trusted, the gas eats the
discount, it has no cash, or its kill switch is on."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from keepers.recovery_pass import WAD, paid_for, plan_purchase, worth_buying
from plimsoll.units import token_units
from tests.keeper.conftest import Running, Setup, rpc
from tests.keeper.test_collateral import WBTC, debt_against_wbtc, events
from tests.keeper.test_liquidator import interval_mining, wait_until

BONUS = WAD * 5 // 100  # the deployment's collateral bonus
HELD = token_units("0.05", 8)


def forfeit_wbtc(s: Setup) -> int:
    """An account written off: 0.05 WBTC against some 1,510 USD of cash debt, WBTC at 36,000
    (1,350 USD at the haircut, short of the debt): ``writeOff`` (anyone may call it) books the
    debt through the waterfall and forfeits the WBTC to the recovery account. Returns the
    block of the write-off."""
    alice = s.w3.eth.accounts[10]
    debt_against_wbtc(s, alice)
    s.dep.set_price(2, 36_000)
    rc = s.dep.send(s.dep.core.functions.writeOff(alice, 0), s.dep.admin)
    assert int(s.dep.core.functions.recoveredBalance(WBTC).call()) == HELD
    return int(rc["blockNumber"])


def skip_lines(caplog: pytest.LogCaptureFixture, reason: str) -> list[Any]:
    return [
        r for r in caplog.records if r.getMessage() == f"recovered collateral not bought: {reason}"
    ]


def test_recovered_collateral_is_bought_in_the_keepers_next_block_and_refills_the_fund(
    setup: Setup, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plimsoll.liquidator")
    s = setup
    core, cash = s.dep.core, s.dep.cash
    forfeit_wbtc(s)
    ins0 = int(core.functions.insuranceFund().call())
    booked0 = int(core.functions.cashBooked().call())
    wbtc = s.dep.token(WBTC)
    keeper = s.keeper(tmp_path, s.keeper_key(), "recovery")
    me = keeper.account.address  # type: ignore[union-attr]
    cash0 = int(cash.functions.balanceOf(me).call())
    interval_mining(s)
    start = s.w3.eth.block_number
    with Running(keeper):
        wait_until(lambda: bool(events(s, "RecoveredSold", start)))
        wait_until(lambda: keeper.stats_recovery_purchases >= 1)
    (synced,) = [r for r in caplog.records if r.getMessage() == "synced"]
    first = synced.fields["block"]  # type: ignore[attr-defined]
    (ev,) = events(s, "RecoveredSold", start)
    # Seen in the keeper's first block, bought in the next one.
    assert ev["blockNumber"] == first + 1, (ev["blockNumber"], first)
    assert ev["args"]["buyer"] == me and ev["args"]["assetId"] == WBTC
    assert ev["args"]["amount"] == HELD
    paid = int(ev["args"]["paid"])
    # 0.05 x 36,000 / 1.05 = 1,714.285715 USD (rounded up to the cash token's unit)
    assert paid == paid_for(HELD, 8, 36_000 * WAD, BONUS, 6) == 1_714_285_715
    # The fund rose by exactly what the keeper paid; the keeper holds the WBTC.
    assert int(core.functions.insuranceFund().call()) - ins0 == paid * 10**12
    assert int(core.functions.cashBooked().call()) - booked0 == paid * 10**12
    assert cash0 - int(cash.functions.balanceOf(me).call()) == paid
    assert int(wbtc.functions.balanceOf(me).call()) == HELD
    # Every token accounted: nothing left in recovery, the core's totals match its holdings.
    assert int(core.functions.recoveredBalance(WBTC).call()) == 0
    for asset in range(1, int(core.functions.assetCount().call()) + 1):
        total = int(core.functions.assetConfig(asset).call()[6])
        owners = [*s.traders, s.w3.eth.accounts[10]]
        held = sum(int(core.functions.collateralBalance(o, 0, asset).call()) for o in owners)
        held += int(core.functions.recoveredBalance(asset).call())
        assert total == held, asset
        assert int(s.dep.token(asset).functions.balanceOf(core.address).call()) == total
    assert int(cash.functions.balanceOf(core.address).call()) * 10**12 >= int(
        core.functions.cashBooked().call()
    )
    summary = keeper.summary()
    assert summary["recovery_purchases"] == 1
    assert summary["recovery_paid_usd"] == pytest.approx(paid / 1e6, abs=0.01)
    assert keeper.metrics.recovery_purchases._value.get() == 1
    assert keeper.metrics.recovery_paid_usd._value.get() == pytest.approx(paid / 1e6)
    gas = None
    for r in caplog.records:
        if r.getMessage() == "recovered collateral purchase sent":
            gas = r.fields["gas_usd"]  # type: ignore[attr-defined]
    print(f"buyRecovered: paid {paid / 1e6:.2f} USD, gas {gas} USD")
    rc = s.w3.eth.get_transaction_receipt(ev["transactionHash"])
    print(f"buyRecovered gas used: {rc['gasUsed']}")
    assert 40_000 < rc["gasUsed"] < 200_000


def test_no_purchase_while_the_price_is_not_graded_ok(
    setup: Setup, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plimsoll.liquidator")
    s = setup
    forfeit_wbtc(s)
    # The WBTC feed answers 0: graded INVALID, buyRecovered would revert.
    s.dep.feeds[2].functions.updateAnswer(0).transact({"from": s.dep.admin, "gas": 300_000})
    keeper = s.keeper(tmp_path, s.keeper_key(), "untrusted")
    interval_mining(s)
    start = s.w3.eth.block_number
    with Running(keeper):
        wait_until(lambda: keeper.last_block >= start + 4)
        # The price comes back: bought at once.
        s.dep.feeds[2].functions.updateAnswer(36_000 * 10**8).transact(
            {"from": s.dep.admin, "gas": 300_000}
        )
        wait_until(lambda: bool(events(s, "RecoveredSold", start)))
    assert len(skip_lines(caplog, "price not graded OK")) == 1  # once, not every block
    (ev,) = events(s, "RecoveredSold", start)
    assert ev["args"]["amount"] == HELD


def test_no_purchase_when_the_gas_is_above_the_discount(
    setup: Setup, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plimsoll.liquidator")
    s = setup
    forfeit_wbtc(s)
    # Gas priced at 10^9 USD per ETH: ~100k gas at a few gwei costs far more than the discount
    # (1,800 - 1,714.29 = 85.71 USD).
    keeper = s.keeper(tmp_path, s.keeper_key(), "dear", gas_token_feed=0, eth_price_usd=1e9)
    interval_mining(s)
    start = s.w3.eth.block_number
    with Running(keeper):
        wait_until(lambda: keeper.last_block >= start + 4)
    assert not events(s, "RecoveredSold", start)
    (line,) = skip_lines(caplog, "gas above the discount")
    f = line.fields  # type: ignore[attr-defined]
    assert f["discount_usd"] == pytest.approx(85.714, abs=0.01) and f["gas_usd"] > 85.72
    assert int(s.dep.core.functions.recoveredBalance(WBTC).call()) == HELD


def test_no_purchase_without_cash(
    setup: Setup, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plimsoll.liquidator")
    s = setup
    forfeit_wbtc(s)
    key = Account.create()  # gas money but no USDC
    rpc(s.w3, "anvil_setBalance", [key.address, hex(10**20)])
    keeper = s.keeper(tmp_path, key, "broke")
    interval_mining(s)
    start = s.w3.eth.block_number
    with Running(keeper):
        wait_until(lambda: keeper.last_block >= start + 4)
    assert not events(s, "RecoveredSold", start)
    assert len(skip_lines(caplog, "no cash to pay with")) == 1
    assert keeper.stats.refused == 0 and keeper.stats.reverted == 0


def test_kill_switch_stops_recovery_purchases(setup: Setup, tmp_path: Path) -> None:
    s = setup
    forfeit_wbtc(s)
    switch = tmp_path / "STOP"
    switch.write_text("maintenance\n")
    keeper = s.keeper(tmp_path, s.keeper_key(), "killed", kill_switch_file=switch)
    interval_mining(s)
    start = s.w3.eth.block_number
    with Running(keeper):
        wait_until(lambda: keeper.last_block >= start + 4)
        assert not events(s, "RecoveredSold", start)
        assert keeper.sender is not None and not keeper.sender.pending
        switch.unlink()  # the switch was the only reason
        wait_until(lambda: bool(events(s, "RecoveredSold", start)))


def test_recovery_purchases_off_buys_nothing(setup: Setup, tmp_path: Path) -> None:
    s = setup
    forfeit_wbtc(s)
    keeper = s.keeper(tmp_path, s.keeper_key(), "off", recovery_purchases=False)
    interval_mining(s)
    start = s.w3.eth.block_number
    with Running(keeper):
        wait_until(lambda: keeper.last_block >= start + 3)
        time.sleep(0.5)
    assert not events(s, "RecoveredSold", start)


def test_the_spend_cap_bounds_each_blocks_purchase(setup: Setup, tmp_path: Path) -> None:
    """A cap of 1,000 USD per block: 1,000 USD worth (0.0291666 WBTC) in one block, the
    remaining 714.29 USD in the next."""
    s = setup
    forfeit_wbtc(s)
    keeper = s.keeper(tmp_path, s.keeper_key(), "capped", recovery_max_usd_per_block=1_000.0)
    interval_mining(s)
    start = s.w3.eth.block_number
    with Running(keeper):
        wait_until(lambda: len(events(s, "RecoveredSold", start)) >= 2)
    first, second = events(s, "RecoveredSold", start)[:2]
    assert int(first["args"]["paid"]) <= 1_000 * 10**6
    assert int(first["args"]["paid"]) > 999 * 10**6
    assert first["args"]["amount"] + second["args"]["amount"] == HELD
    assert int(s.dep.core.functions.recoveredBalance(WBTC).call()) == 0


# ---------------------------------------------------------------------- the rule itself


def test_paid_matches_the_contracts_rounding_on_an_example() -> None:
    # 2 WETH at 1,400 USD, 5% bonus: 2,800 / 1.05 = 2,666.666667 (rounded up)
    assert paid_for(2 * WAD, 18, 1_400 * WAD, BONUS, 6) == 2_666_666_667


@given(
    held=st.integers(1, 10**30),
    decimals=st.sampled_from([6, 8, 18]),
    price=st.integers(10**12, 10**26),
    bonus=st.integers(0, WAD // 2),
    budget=st.integers(0, 10**15),
)
def test_a_planned_purchase_is_the_largest_that_fits_the_budget(
    held: int, decimals: int, price: int, bonus: int, budget: int
) -> None:
    p = plan_purchase(1, held, decimals, price, bonus, 6, budget)
    if p is None:
        # not one unit fits (or the budget is 0)
        assert budget == 0 or paid_for(1, decimals, price, bonus, 6) > budget
        return
    assert 0 < p.amount <= held
    assert p.paid == paid_for(p.amount, decimals, price, bonus, 6) <= budget
    if p.amount < held:  # one more unit would not fit
        assert paid_for(p.amount + 1, decimals, price, bonus, 6) > budget
    # the discount is the bonus's share of the value, within the rounding of the price
    expected = p.value * bonus // (WAD + bonus)
    assert abs(p.discount - expected) <= 10**12 + 2
    assert p.discount <= expected + 1


@given(
    discount=st.integers(0, 10**24),
    gas=st.integers(0, 10**24),
    min_profit=st.integers(0, 10**21),
)
def test_a_purchase_is_sent_only_when_the_discount_beats_gas_and_the_minimum(
    discount: int, gas: int, min_profit: int
) -> None:
    ok = worth_buying(discount, gas, min_profit)
    assert ok == (discount > gas and discount - gas >= min_profit)
    if ok:  # more gas can only turn it off; a larger discount keeps it on
        assert worth_buying(discount + 1, gas, min_profit)
    else:
        assert not worth_buying(discount, gas + 1, min_profit)
