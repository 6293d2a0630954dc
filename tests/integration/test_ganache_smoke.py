"""Smoke test on ganache 7 (shanghai): deploy, deposit, trade, crash the price, liquidate.

The rest of the suite runs on anvil; this checks that the same bytecode, deployment script and
SDK transaction path work on the other local node the project supports: a partial liquidation
after a moderate drop, a full liquidation and a collateral sale after a crash, the keeper's
reward booked and withdrawable, decoded custom errors, a time warp, and the custody invariants.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from web3 import Web3

from plimsoll.chain import LocalNode
from plimsoll.deploy import Deployment, deploy_local
from plimsoll.errors import ContractRevert
from plimsoll.units import WAD, token_units

ETH, BTC = 0, 1  # market ids
CASH, WETH = 0, 1  # asset ids


@pytest.fixture(scope="module")
def ganache() -> Iterator[tuple[Web3, Deployment]]:
    node = LocalNode(kind="ganache", accounts=6)
    w3 = node.start(timeout=90)
    try:
        assert w3.eth.chain_id == 1337
        dep = deploy_local(w3)
        yield w3, dep
    finally:
        node.stop()


def _send(dep: Deployment, fn: Any, who: str) -> Any:
    """``dep.send`` that also decodes ganache's revert data.

    ganache 7 reports a revert in ``eth_estimateGas`` as ``error.data = {"result": "0x..."}``;
    web3 passes that dict on as ``ContractLogicError.data`` and ``plimsoll.chain.revert_data``
    only reads a string there, so the SDK raises ``ContractRevert("Unknown")``. Decode it here.
    """
    try:
        return dep.send(fn, who)
    except ContractRevert as exc:
        data = getattr(exc.__cause__, "data", None)
        if exc.name == "Unknown" and isinstance(data, dict) and isinstance(data.get("result"), str):
            raise dep.decoder.decode(data["result"]) from exc
        raise


def _fund(dep: Deployment, who: str, asset: int, amount: int) -> None:
    tok = dep.token(asset)
    dep.send(tok.functions.mint(who, amount), who)
    dep.send(tok.functions.approve(dep.core.address, 2**256 - 1), who)


def _deposit(dep: Deployment, who: str, sub: int, asset: int, amount: int) -> None:
    _fund(dep, who, asset, amount)
    dep.send(dep.core.functions.deposit(sub, asset, amount), who)


def _margin(dep: Deployment, who: str, sub: int) -> tuple[int, int, int]:
    e, im, mm = dep.core.functions.accountMargin(who, sub).call()
    return int(e), int(im), int(mm)


def _event(dep: Deployment, receipt: Any, name: str) -> dict[str, Any]:
    logs = [lg for lg in receipt["logs"] if lg["address"] == dep.core.address]
    for ev in getattr(dep.core.events, name)().process_receipt(
        {**receipt, "logs": logs}, errors=_discard()
    ):
        return dict(ev["args"])
    raise AssertionError(f"no {name} event in {receipt['transactionHash'].hex()}")


def _discard() -> Any:
    from web3.logs import DISCARD

    return DISCARD


def _assert_custody(dep: Deployment, accounts: list[tuple[str, int]]) -> None:
    core = dep.core
    booked = int(core.functions.cashBooked().call())
    held = int(dep.cash.functions.balanceOf(core.address).call())
    assert held * 10**12 >= booked
    cash_sum = sum(int(core.functions.getAccount(o, s).call()[0]) for o, s in accounts)
    cash_sum += int(core.functions.getAccount(dep.pool.address, 0).call()[0])
    cash_sum += int(core.functions.insuranceFund().call())
    assert booked == cash_sum, f"cashBooked {booked} != sum of cash balances {cash_sum}"
    for asset in (1, 2):
        total = int(core.functions.assetConfig(asset).call()[6])
        bal_sum = sum(
            int(core.functions.collateralBalance(o, s, asset).call()) for o, s in accounts
        )
        bal_sum += int(core.functions.recoveredBalance(asset).call())  # forfeited collateral
        assert total == bal_sum
        assert int(dep.token(asset).functions.balanceOf(core.address).call()) >= total


def test_ganache_deposit_trade_crash_liquidate(ganache: tuple[Web3, Deployment]) -> None:
    w3, dep = ganache
    core = dep.core
    _, alice, bob, keeper = w3.eth.accounts[:4]
    tracked = [(alice, 0), (bob, 1), (keeper, 0)]

    # Deposits: Alice cash in a cross subaccount, Bob WETH only (long ETH on WETH collateral is
    # double exposure).
    _deposit(dep, alice, 0, CASH, token_units(2_000, 6))
    _deposit(dep, bob, 1, WETH, token_units(2, 18))
    assert int(core.functions.getAccount(alice, 0).call()[0]) == 2_000 * WAD
    assert int(core.functions.collateralBalance(bob, 1, WETH).call()) == 2 * WAD

    # Trades: 8x long ETH for Alice, a long BTC leg too; Bob longs 10 ETH on his WETH.
    rc = dep.send(core.functions.trade(0, ETH, 8 * WAD, 0), alice)
    traded = _event(dep, rc, "Traded")
    assert traded["price"] == 2_000 * WAD and traded["sizeDelta"] == 8 * WAD
    dep.send(core.functions.trade(0, BTC, WAD // 100, 0), alice)
    dep.send(core.functions.trade(1, ETH, 10 * WAD, 0), bob)
    e, im, _ = _margin(dep, alice, 0)
    assert e >= im
    # A risk-increasing trade past IM is refused with the decoded custom error.
    with pytest.raises(ContractRevert) as exc:
        _send(dep, core.functions.trade(0, ETH, 100 * WAD, 0), alice)
    assert exc.value.name == "InsufficientMargin"
    # Healthy accounts cannot be liquidated.
    with pytest.raises(ContractRevert) as exc:
        _send(dep, core.functions.liquidate(alice, 0), keeper)
    assert exc.value.name == "AccountHealthy"

    # Time passes (funding accrues); answers are re-posted so that the feeds are not stale.
    w3.provider.make_request("evm_increaseTime", [3 * 3600])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    with pytest.raises(ContractRevert) as exc:
        _send(dep, core.functions.trade(0, ETH, WAD, 0), alice)
    assert exc.value.name == "MarketReduceOnly"  # a stale market takes reducing trades only
    for feed_id, price in ((1, 2000), (2, 60000), (3, 150)):
        dep.set_price(feed_id, price)
    assert int(core.functions.fundingIndex(ETH).call()) > 0  # longs pay: skew is long
    _assert_custody(dep, tracked)

    # A moderate drop: Alice falls below MM and is liquidated in part.
    dep.set_price(1, 1840)
    e, _, mm = _margin(dep, alice, 0)
    assert e < mm and core.functions.isLiquidatable(alice, 0).call()
    size_before = int(core.functions.getPosition(alice, 0, ETH).call()[0])
    rc = dep.send(core.functions.liquidate(alice, 0), keeper)
    liq = _event(dep, rc, "Liquidated")
    assert 0 < liq["fraction"] < WAD, liq
    assert liq["keeperReward"] > 0 and liq["badDebt"] == 0
    size_after = int(core.functions.getPosition(alice, 0, ETH).call()[0])
    assert 0 < size_after < size_before
    e, _, mm = _margin(dep, alice, 0)
    assert e >= mm and not core.functions.isLiquidatable(alice, 0).call()
    reward1 = int(core.functions.getAccount(keeper, 0).call()[0])
    assert reward1 == liq["keeperReward"]

    # A crash: Bob's position and his WETH lose value together; he is underwater. The
    # liquidation closes everything, pays no reward (there is no equity to pay it from) and
    # books the deficit at once: his WETH no longer covers his debt at its haircut, so the
    # debt goes through the waterfall and the WETH to the protocol's recovery account.
    dep.set_price(1, 1400)
    e, _, mm = _margin(dep, bob, 1)
    assert e < 0
    rc = dep.send(core.functions.liquidate(bob, 1), keeper)
    liq = _event(dep, rc, "Liquidated")
    assert liq["fraction"] == WAD and liq["keeperReward"] == 0 and liq["badDebt"] > 0
    acct = core.functions.getAccount(bob, 1).call()
    assert acct[0] == 0 and acct[1] == 0 and acct[2] == 0, "Bob's account is settled and empty"
    assert int(core.functions.recoveredBalance(WETH).call()) == 2 * WAD
    _assert_custody(dep, tracked)

    # The keeper buys the recovered WETH at the oracle less the bonus; the insurance fund
    # gets the cash.
    _fund(dep, keeper, CASH, token_units(1_000_000, 6))
    weth_before = int(dep.token(WETH).functions.balanceOf(keeper).call())
    ins_before = int(core.functions.insuranceFund().call())
    rc = dep.send(core.functions.buyRecovered(WETH, 2 * WAD), keeper)
    sold = _event(dep, rc, "RecoveredSold")
    assert sold["amount"] == 2 * WAD and sold["paid"] > 0
    assert int(dep.token(WETH).functions.balanceOf(keeper).call()) - weth_before == 2 * WAD
    assert int(core.functions.insuranceFund().call()) - ins_before == sold["paid"] * 10**12
    assert int(core.functions.assetConfig(WETH).call()[6]) == 0

    # The keeper takes its rewards out.
    keeper_cash = int(core.functions.getAccount(keeper, 0).call()[0])
    usdc_before = int(dep.cash.functions.balanceOf(keeper).call())
    dep.send(core.functions.withdraw(0, CASH, keeper_cash // 10**12), keeper)
    assert int(dep.cash.functions.balanceOf(keeper).call()) - usdc_before == keeper_cash // 10**12
    _assert_custody(dep, tracked)
