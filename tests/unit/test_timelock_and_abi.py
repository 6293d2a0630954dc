"""Admin behind a timelock, and every revert a core call can return decodable from the ABI the
SDK ships (issue 12: admin safety, finding 9)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import ETH, fund, reverts, set_price, trade, usdc, wad

from plimsoll.chain import ErrorDecoder, revert_data
from plimsoll.client import load_abi
from plimsoll.deploy import Deployment, deploy_local
from plimsoll.timelock import Timelock

DELAY = 3_600


@pytest.fixture
def timelocked(w3) -> Iterator[Deployment]:
    """A second deployment whose admin is a timelock with a one-hour delay."""
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    yield deploy_local(w3, timelock_delay=DELAY, options=False)
    w3.provider.make_request("evm_revert", [snap])


def _liq_change(dep: Deployment):
    cfg = list(dep.core.functions.liquidationConfig().call())
    cfg[0] = wad("0.02")  # penalty 1% -> 2%
    return dep.core.functions.setLiquidationConfig(tuple(cfg))


def test_admin_change_before_its_delay_reverts(timelocked):
    dep = timelocked
    assert dep.core.functions.admin().call() == dep.timelock.address
    assert dep.oracle.functions.admin().call() == dep.timelock.address
    tl = Timelock(dep.timelock, dep.admin, dep.decoder)
    assert tl.min_delay() == DELAY
    change = _liq_change(dep)

    # The old admin key alone can no longer change anything.
    with reverts("Unauthorized", caller=dep.admin):
        dep.send(change, dep.admin)

    salt = tl.schedule(change)
    scheduled = dep.timelock.events.CallScheduled().get_logs(
        from_block=dep.w3.eth.block_number
    )
    assert len(scheduled) == 1, "the change is announced before it can run"
    with reverts("TimelockUnexpectedOperationState"):
        tl.execute(change, salt)
    assert dep.core.functions.liquidationConfig().call()[0] == wad("0.01")

    dep.w3.provider.make_request("evm_increaseTime", [DELAY])
    dep.w3.provider.make_request("evm_mine", [])
    tl.execute(change, salt)
    assert dep.core.functions.liquidationConfig().call()[0] == wad("0.02")


def test_guardian_pauses_at_once_without_the_timelock(timelocked):
    dep = timelocked
    dep.send(dep.core.functions.setPaused(4), dep.admin)  # the guardian (the deployer here)
    assert dep.core.functions.paused().call() == 4


def test_delay_zero_deployment_drives_the_timelock_in_one_call(w3):
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        dep = deploy_local(w3, timelock_delay=0, options=False)
        dep.admin_send(_liq_change(dep))
        assert dep.core.functions.liquidationConfig().call()[0] == wad("0.02")
        assert dep.to_json()["timelock"] == dep.timelock.address
    finally:
        w3.provider.make_request("evm_revert", [snap])


def test_shipped_core_abi_has_every_error_a_call_can_bubble_up():
    core = {e["name"] for e in load_abi("Plimsoll") if e["type"] == "error"}
    for callee in ("OracleRouter", "OptionsMarket"):
        for e in load_abi(callee):
            if e["type"] == "error":
                assert e["name"] in core, f"{callee}.{e['name']} missing from Plimsoll.json"
    assert "TokenCallFailed" in core
    pool = {e["name"] for e in load_abi("LiquidityPool") if e["type"] == "error"}
    assert {"PriceNotTrusted", "InsufficientMargin", "NonPositivePrice"} <= pool


def test_a_zero_feed_answer_is_decoded_from_the_shipped_abi_alone(dep, accounts):
    alice = accounts[1]
    fund(dep, alice, 0, usdc(10_000))
    dep.send(dep.core.functions.deposit(0, 0, usdc(10_000)), alice)
    trade(dep, alice, 0, ETH, wad(1))
    set_price(dep, 1, 0)  # the ETH feed answers 0
    shipped = ErrorDecoder([load_abi("Plimsoll")])
    with pytest.raises(Exception) as info:
        dep.core.functions.trade(0, ETH, wad(1), 0).call({"from": alice})
    err = shipped.decode(revert_data(info.value))
    assert err.name == "NonPositivePrice", err
    # Views never revert on it: the account reads as unpriced, not as an error.
    dep.core.functions.accountMargin(alice, 0).call()
    assert dep.core.functions.isLiquidatable(alice, 0).call() is False
