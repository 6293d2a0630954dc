"""The keeper liquidates option accounts: standard mode with `liquidate`, portfolio margin with
`liquidateWitness` on the worst scenario its numpy grid finds; hedged accounts are left alone."""

from __future__ import annotations

import time
from pathlib import Path

from plimsoll.units import token_units, wad
from tests.keeper.conftest import Running, Setup, rpc

DAY = 86_400


def _options_book(s: Setup) -> dict[str, tuple[str, int]]:
    """Four option accounts (sub 5 of traders 0-3): naked short calls in portfolio and in
    standard mode, a covered call in portfolio mode, a long call (never liquidatable)."""
    dep, w3 = s.dep, s.w3
    opts, core = dep.contracts["OptionsMarket"], dep.core
    now = int(w3.eth.get_block("latest")["timestamp"])
    dep.send(opts.functions.listSeries(0, True, now + 30 * DAY, wad(2000)), dep.admin)
    who = {
        "pm_naked": (s.traders[0], 5),
        "std_naked": (s.traders[1], 5),
        "pm_covered": (s.traders[2], 5),
        "long": (s.traders[3], 5),
    }
    for name, (t, sub) in who.items():
        dep.send(dep.cash.functions.mint(t, token_units(100_000, 6)), t)
        cash = {"pm_naked": 2_400, "std_naked": 1_600, "pm_covered": 3_000, "long": 1_000}[name]
        dep.send(core.functions.deposit(sub, 0, token_units(cash, 6)), t)
        if name.startswith("pm"):
            dep.send(core.functions.setPortfolioMargin(sub, True), t)
        if name == "pm_covered":
            dep.send(core.functions.trade(sub, 0, wad(4), 0), t)
        size = wad(1) if name == "long" else -wad(4 if name != "std_naked" else 3)
        dep.send(opts.functions.trade(sub, 0, size, 0), t)
    return who


def test_keeper_witness_liquidates_portfolio_accounts(setup: Setup, tmp_path: Path) -> None:
    s = setup
    who = _options_book(s)
    core = s.dep.core
    s.dep.set_price(1, 2_300)  # +15%: short calls lose, the covered call is hedged
    liq = {n: core.functions.isLiquidatable(*a).call() for n, a in who.items()}
    assert liq == {"pm_naked": True, "std_naked": True, "pm_covered": False, "long": False}
    keeper = s.keeper(tmp_path, s.keeper_key(), "opts")
    with Running(keeper):
        deadline = s.w3.eth.block_number + 40
        while s.w3.eth.block_number < deadline:
            if not any(
                core.functions.isLiquidatable(*who[n]).call() for n in ("pm_naked", "std_naked")
            ):
                break
            s.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

            time.sleep(0.2)
    assert not core.functions.isLiquidatable(*who["pm_naked"]).call()
    assert not core.functions.isLiquidatable(*who["std_naked"]).call()
    witness = core.events.WitnessLiquidation().get_logs(from_block=0)
    assert [(e["args"]["owner"], e["args"]["subaccount"]) for e in witness] == [who["pm_naked"]]
    liquidated = {
        (e["args"]["owner"], e["args"]["subaccount"])
        for e in core.events.Liquidated().get_logs(from_block=0)
    }
    assert who["std_naked"] in liquidated and who["pm_covered"] not in liquidated
    assert keeper.stats_witness >= 1


def test_keeper_settles_expired_series_and_pays_holders(setup: Setup, tmp_path: Path) -> None:
    s = setup
    who = _options_book(s)
    opts, core = s.dep.contracts["OptionsMarket"], s.dep.core
    rpc(s.w3, "evm_increaseTime", [31 * DAY])
    for feed_id, p in ((1, 2_100), (2, 60_000), (3, 150), (11, 0.8), (12, 0.7), (13, 1.0)):
        s.dep.set_price(feed_id, p)
    cash_before = {n: core.functions.getAccount(*a).call()[0] for n, a in who.items()}
    keeper = s.keeper(tmp_path, s.keeper_key(), "settle")
    with Running(keeper):
        for _ in range(40):
            if all(not opts.functions.positions(*a).call()[0] for a in who.values()):
                break
            rpc(s.w3, "evm_mine", [])
            time.sleep(0.2)
    assert int(opts.functions.series(0).call()[4]) == 2_100 * 10**18
    for acct in who.values():
        assert opts.functions.positions(*acct).call()[0] == []
    # The long call received its payoff (2,100 - 2,000 per unit); the shorts paid theirs.
    paid = core.functions.getAccount(*who["long"]).call()[0] - cash_before["long"]
    assert paid == 100 * 10**18
    assert core.functions.getAccount(*who["std_naked"]).call()[0] < cash_before["std_naked"]
    assert keeper.stats_settlements >= 5


def test_series_reads_are_incremental() -> None:
    """A block reads only series listed since the last one and expired series still waiting
    for their settlement price; settled and live series come from the keeper's memory."""
    from keepers.liquidator import series_to_read
    from plimsoll import pm

    now = 1_000_000
    known = [
        pm.Series(0, True, now + 86_400, wad(2_000), 0),  # live
        pm.Series(0, False, now - 10, wad(2_000), 0),  # expired, not settled yet
        pm.Series(0, True, now - 10, wad(1_900), wad(2_050)),  # settled
        pm.Series(1, True, now, wad(60_000), 0),  # expires this very second
    ]
    assert series_to_read(known, 6, now) == [1, 3, 4, 5]
    assert series_to_read(known, 4, now - 100) == []
    assert series_to_read([], 3, now) == [0, 1, 2]


def test_option_positions_are_read_again_only_when_a_log_names_the_account(
    setup: Setup, tmp_path: Path
) -> None:
    from keepers.options_pass import POSITIONS_MAX_AGE

    s = setup
    who = _options_book(s)
    opts = s.dep.contracts["OptionsMarket"]
    k = s.keeper(tmp_path, None, "positions", dry_run=True)
    k.on_block(s.w3.eth.block_number)
    first = dict(k._positions)
    assert set(who.values()) <= set(first)
    s.dep.set_price(1, 2_010)  # a price move: every option account is priced again...
    k.on_block(s.w3.eth.block_number)
    assert k._positions == first  # ...from the positions it holds (no log named them)
    t, sub = who["long"]
    s.dep.send(opts.functions.trade(sub, 0, wad(2), 0), t)  # OptionTraded names the account
    head = s.w3.eth.block_number
    k.on_block(head)
    block, (ids, sizes) = k._positions[(t, sub)]
    assert block == head and list(sizes) == [wad(3)]
    assert all(k._positions[a] == first[a] for a in who.values() if a != (t, sub))
    # Unchanged accounts are read again once their positions are POSITIONS_MAX_AGE blocks old
    # (at the next pass: a price move).
    rpc(s.w3, "anvil_mine", [hex(POSITIONS_MAX_AGE + 1)])
    s.dep.set_price(1, 2_020)
    head = s.w3.eth.block_number
    k.on_block(head)
    assert all(k._positions[a][0] == head for a in who.values())


def test_options_pass_prices_accounts_whose_inputs_moved_an_iv_spike_alone_included(
    setup: Setup, tmp_path: Path
) -> None:
    s = setup
    who = _options_book(s)  # ETH options and cash only
    core = s.dep.core
    k = s.keeper(tmp_path, None, "due", dry_run=True)

    def step(action) -> int:  # type: ignore[no-untyped-def]
        """Accounts priced on the grid in the block ``action`` makes (never a tick block)."""
        if (s.w3.eth.block_number + 1) % 10 == 0:
            rpc(s.w3, "anvil_mine", ["0x1"])
            k.on_block(s.w3.eth.block_number)
        before = k.options_priced
        action()
        k.on_block(s.w3.eth.block_number)
        return k.options_priced - before

    assert step(lambda: rpc(s.w3, "anvil_mine", ["0x1"])) == len(who)  # the first pass: all
    assert step(lambda: s.dep.set_price(2, 61_000)) == 0  # BTC: none of them holds it
    assert step(lambda: s.dep.set_price(1, 2_001)) == len(who)  # ETH spot: all of them
    assert step(lambda: rpc(s.w3, "anvil_mine", ["0x1"])) == 0  # nothing moved
    # Implied vol alone (ETH 80% -> 300%): every ETH option account is priced in that block,
    # and the keeper's candidates are exactly the accounts the contract finds liquidatable.
    assert step(lambda: s.dep.set_price(11, 3)) == len(who)
    want = {a for a in who.values() if core.functions.isLiquidatable(*a).call()}
    assert want and k._opt_cands == want
