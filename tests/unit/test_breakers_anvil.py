"""Circuit breakers and dynamic-margin limits against anvil (the forge suites cover the same in
forge's EVM): the sequencer feed, jump grading, pauses, and every limit on scalar updates."""

from __future__ import annotations

from helpers import ETH, WAD, deploy, deposit, reverts, trade, usdc, wad, warp

GRACE = 600


def _status(dep, feed_id: int = 1) -> int:
    return int(dep.oracle.functions.priceInfo(feed_id).call()[1])


def test_sequencer_down_holds_everything_then_grace(dep, w3, admin, alice, keeper):
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, wad(45))
    seq = deploy(w3, "MockFeed", admin, 0, 0)  # 0 = up
    warp(w3, GRACE + 1)
    for feed_id in (1, 2, 3):
        dep.set_price(feed_id, [2000, 60_000, 150][feed_id - 1])
    dep.send(dep.oracle.functions.setSequencer(seq.address, GRACE), admin)
    assert _status(dep) == 0
    dep.send(seq.functions.updateAnswer(1), admin)  # down
    assert _status(dep) == 3 and _status(dep, 2) == 3
    dep.set_price(1, 1800)  # the account is under MM, but nothing can be trusted
    assert dep.core.functions.isLiquidatable(alice, 0).call() is False
    with reverts("PriceNotTrusted", feedId=1, status=3):
        dep.send(dep.core.functions.liquidate(alice, 0), keeper)
    with reverts("MarketReduceOnly", marketId=ETH, status=3):
        trade(dep, alice, 0, ETH, wad(1))
    dep.send(seq.functions.updateAnswer(0), admin)  # back up: the grace period starts
    assert _status(dep) == 3
    warp(w3, GRACE)
    dep.set_price(1, 1800)
    assert _status(dep) == 0
    assert dep.core.functions.isLiquidatable(alice, 0).call() is True
    dep.send(dep.core.functions.liquidate(alice, 0), keeper)


def test_jump_is_suspect_until_three_rounds_agree(dep, admin, alice):
    dep.send(dep.oracle.functions.setBreaker(1, wad("0.15"), 3, 300), admin)
    deposit(dep, alice, 0, 0, usdc(10_000))
    dep.set_price(1, 1500)  # -25%
    assert _status(dep) == 1
    (ok, price) = dep.oracle.functions.tryPrice(1).call()
    assert (ok, price) == (False, 1500 * WAD)
    with reverts("MarketReduceOnly", marketId=ETH, status=1):
        trade(dep, alice, 0, ETH, wad(1))
    for _ in range(3):
        dep.set_price(1, 1500)
    assert _status(dep) == 0
    trade(dep, alice, 0, ETH, wad(1))
    rcpt = dep.send(dep.oracle.functions.poke([1, 2, 3]), admin)
    assert dep.oracle.events.FeedStatusChanged().process_receipt(rcpt) == ()  # all OK, as recorded


def test_vol_scalar_limits_on_anvil(dep, w3, admin, outsider):
    core = dep.core.functions
    with reverts("Unauthorized", caller=outsider):
        dep.send(core.setVolScalar(ETH, wad("1.2")), outsider)
    with reverts("ParameterOutOfBounds"):  # +60% > the 50% step
        dep.send(core.setVolScalar(ETH, wad("1.6")), admin)
    with reverts("ParameterOutOfBounds"):  # above the 4x bound (and the step)
        dep.send(core.setVolScalar(ETH, wad(5)), admin)
    dep.send(core.setVolScalar(ETH, wad("1.5")), admin)
    with reverts("UpdateTooSoon", marketId=ETH):
        dep.send(core.setVolScalar(ETH, wad("1.4")), admin)
    im_s, mm_s = core.volScalars(ETH).call()
    assert im_s == wad("1.5") and WAD <= mm_s < wad("1.5")
    warp(w3, 3600)
    assert tuple(core.volScalars(ETH).call()) == (wad("1.5"), wad("1.5"))
    dep.send(core.setVolScalar(ETH, wad("0.75")), admin)  # a fall: at once
    assert tuple(core.volScalars(ETH).call()) == (wad("0.75"), wad("0.75"))
    with reverts("Unauthorized", caller=outsider):
        dep.send(core.setRiskLimits((wad("0.5"), wad(4), wad("0.5"), 60, 3600)), outsider)
    with reverts("ParameterOutOfBounds"):
        dep.send(core.setRiskLimits((wad("0.5"), wad(11), wad("0.5"), 60, 3600)), admin)


def test_paused_trading_never_blocks_liquidation(dep, admin, alice, keeper):
    deposit(dep, alice, 0, 0, usdc(10_000))
    trade(dep, alice, 0, ETH, wad(45))
    dep.send(dep.core.functions.setPaused(1 | 2 | 4 | 8 | 32), admin)
    with reverts("ActionPaused", action=4):
        trade(dep, alice, 0, ETH, -wad(1))
    dep.set_price(1, 1800)
    dep.send(dep.core.functions.liquidate(alice, 0), keeper)
