"""Accounts left with cash debt against collateral: bought when their equity falls below zero,
written off when the collateral cannot be sold (or this keeper cannot buy it), left alone
while the collateral covers the debt."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from plimsoll.units import WAD, token_units, wad
from tests.keeper.conftest import Running, Setup, rpc
from tests.keeper.test_liquidator import interval_mining, wait_until

WBTC = 2
ETH_MARKET = 0


def debt_against_wbtc(s: Setup, who: str) -> int:
    """``who``: 0.05 WBTC (2,250 USD at its 75% haircut) and no positions after losing about
    1,500 USD on a closed ETH short: a cash debt the collateral covers. Returns the debt."""
    dep, core = s.dep, s.dep.core
    wbtc = dep.token(WBTC)
    dep.send(wbtc.functions.mint(who, token_units("0.05", 8)), who)
    dep.send(wbtc.functions.approve(core.address, 2**256 - 1), who)
    dep.send(core.functions.deposit(0, WBTC, token_units("0.05", 8)), who)
    dep.send(core.functions.trade(0, ETH_MARKET, -wad(5), 0), who)
    dep.set_price(1, 2300)
    dep.send(core.functions.trade(0, ETH_MARKET, wad(5), 0), who)
    equity = int(core.functions.accountMargin(who, 0).call()[0])
    assert equity > 0 and not core.functions.isLiquidatable(who, 0).call()
    return 2_250 * WAD - equity


def events(s: Setup, name: str, from_block: int) -> list[Any]:
    return list(getattr(s.dep.core.events, name)().get_logs(from_block=from_block))


def test_debt_against_collateral_is_bought_once_equity_falls_below_zero(
    setup: Setup, tmp_path: Path
) -> None:
    alice = setup.w3.eth.accounts[10]
    debt = debt_against_wbtc(setup, alice)
    keeper = setup.keeper(tmp_path, setup.keeper_key(), "buyer")
    interval_mining(setup)
    start = setup.w3.eth.block_number
    with Running(keeper):
        wait_until(lambda: keeper.last_block >= 0)
        # Covered (equity > 0 with MM 0): not liquidatable, nothing sent for 3 blocks.
        b0 = setup.w3.eth.block_number
        wait_until(lambda: keeper.last_block >= b0 + 3)
        assert not events(setup, "CollateralLiquidated", start)
        assert not events(setup, "BadDebtSettled", start)
        # WBTC -40%: 0.05 x 36,000 x 0.75 = 1,350 USD under the debt of about 1,510.
        setup.dep.set_price(2, 36_000)
        assert setup.dep.core.functions.isLiquidatable(alice, 0).call()
        wait_until(lambda: bool(events(setup, "CollateralLiquidated", start)))
        wait_until(lambda: keeper.stats.succeeded >= 1)
    (ev,) = events(setup, "CollateralLiquidated", start)
    assert ev["args"]["owner"] == alice and ev["args"]["liquidator"] == keeper.account.address
    # The whole debt repaid (rounded up to the cent), 1.05 x its value in WBTC to the keeper.
    repaid, seized = int(ev["args"]["repaidWad"]), int(ev["args"]["seized"])
    print(f"collateral bought: repaid {repaid / WAD:.2f} USD for {seized / 1e8} WBTC")
    assert 0 <= repaid - debt < WAD // 100
    assert abs(seized * 36_000 * 10**10 - repaid * 105 // 100) < 36_000 * 10**10
    assert int(setup.dep.core.functions.accountMargin(alice, 0).call()[0]) >= 0
    assert not setup.dep.core.functions.isLiquidatable(alice, 0).call()
    assert keeper.stats.reverted == 0 and keeper.stats.race_lost == 0


def test_unsellable_collateral_is_written_off(
    setup: Setup, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plimsoll.liquidator")
    alice = setup.w3.eth.accounts[10]
    debt_against_wbtc(setup, alice)
    keeper = setup.keeper(tmp_path, setup.keeper_key(), "writer")
    interval_mining(setup)
    start = setup.w3.eth.block_number
    with Running(keeper):
        wait_until(lambda: keeper.last_block >= 0)
        # The WBTC feed answers 0: not graded OK, the collateral counts nothing and cannot be
        # sold (liquidateCollateral would revert); the debt is a known deficit.
        setup.dep.feeds[2].functions.updateAnswer(0).transact(
            {"from": setup.dep.admin, "gas": 300_000}
        )
        wait_until(lambda: bool(events(setup, "BadDebtSettled", start)))
        wait_until(lambda: keeper.stats.succeeded >= 1)
    (ev,) = events(setup, "BadDebtSettled", start)
    assert ev["args"]["owner"] == alice and int(ev["args"]["deficit"]) > 1_000 * WAD
    (forfeit,) = events(setup, "CollateralForfeited", start)
    assert int(forfeit["args"]["amount"]) == token_units("0.05", 8)
    assert not events(setup, "CollateralLiquidated", start)
    # Never tried the purchase that cannot succeed.
    assert keeper.stats.race_lost == 0 and keeper.stats.reverted == 0
    (line,) = [r for r in caplog.records if r.getMessage() == "debt written off"]
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["action"] == "writeOff" and fields["owner"] == alice and fields["tx"]


def test_keeper_without_cash_writes_off_instead_of_failing_every_block(
    setup: Setup, tmp_path: Path
) -> None:
    alice = setup.w3.eth.accounts[10]
    debt_against_wbtc(setup, alice)
    key = Account.create()  # gas but no USDC: the purchase would fail
    rpc(setup.w3, "anvil_setBalance", [key.address, hex(10**20)])
    keeper = setup.keeper(tmp_path, key, "broke")
    interval_mining(setup)
    start = setup.w3.eth.block_number
    with Running(keeper):
        wait_until(lambda: keeper.last_block >= 0)
        setup.dep.set_price(2, 36_000)
        wait_until(lambda: bool(events(setup, "BadDebtSettled", start)))
        wait_until(lambda: keeper.stats.succeeded >= 1)
        time.sleep(1.5)
    assert events(setup, "BadDebtSettled", start)[0]["args"]["owner"] == alice
    assert not events(setup, "CollateralLiquidated", start)
    assert keeper.stats.race_lost == 0 and keeper.stats.sent == 1
