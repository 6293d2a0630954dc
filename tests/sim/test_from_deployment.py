"""A book read from a live deployment (anvil, real contracts) through plimsoll.sync: the fast
engine's margin on it is the contract's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from plimsoll.deploy import Deployment
from plimsoll.margin import compute_margin
from plimsoll.sim import SimConfig, book_from_state
from plimsoll.sim.engine import margin
from plimsoll.sync import AccountIndexer, RpcClient, StateReader, sync_state
from tests.sync.conftest import Actor, populate

WAD = 10**18


def test_book_from_a_deployment_margins_like_the_contract(
    dep: Deployment, accounts: list[str], tmp_path: Path
) -> None:
    created = populate(Actor(dep), accounts)
    rpc = RpcClient(dep.w3)
    ix = AccountIndexer(dep.w3, dep.core.address, tmp_path / "i.sqlite", dep.block, rpc=rpc)
    reader = StateReader(dep.w3, dep.core.address, dep.contracts["PlimsollLens"].address,
                         rpc=rpc)
    try:
        state = sync_state(ix, reader).state
    finally:
        ix.close()
    assert {(o, int(s)) for o, s in zip(state.owners, state.subaccounts, strict=True)} == created
    cfg = SimConfig()
    book = book_from_state(state, cfg)
    exact = compute_margin(state)
    prices = np.array([a.price for a in cfg.assets])
    for m, spec in enumerate(cfg.markets):
        prices[spec.asset] = int(state.market_price[m]) / WAD
    cp = np.array([prices[c.asset] for c in cfg.collateral])
    for a in range(state.n_assets):
        cp[a] = int(state.asset_price[a]) / WAD
    mp = np.array([prices[m.asset] for m in cfg.markets])
    one = np.ones(len(cfg.markets))
    got = margin(cfg, book.cash, book.balances.T, book.sizes.T, book.open_notional.T,
                 book.portfolio, mp, cp, one, one)
    np.testing.assert_allclose(got.equity, np.array(exact.equity, dtype=float) / WAD,
                               rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(got.mm, np.array(exact.mm, dtype=float) / WAD, rtol=1e-9,
                               atol=1e-9)
    assert book.sizes.any()  # bob's BTC position came through


def test_recommended_admin_calls_execute_on_the_real_core(dep: Deployment) -> None:
    """The calibration's calldata, sent by the admin, sets exactly the recommended rates."""
    from plimsoll.sim.calibrate import Params, admin_calls, liquidation_tuple, market_tuples

    cfg = SimConfig()
    p = Params(im_scale=1.75, mm_factor=0.65, buffer=0.5, penalty=0.02)
    for call in admin_calls(cfg, p, dep.core.address):
        tx = dep.w3.eth.send_transaction({"from": dep.admin, "to": call["target"],
                                          "data": call["calldata"]})
        assert dep.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1, call["function"]
    for i, t in market_tuples(cfg, p):
        got = dep.core.functions.marketConfig(i).call()
        assert int(got[2]) == t[2] and int(got[3]) == t[3] and int(got[5]) == t[5]
    assert int(dep.core.functions.marketConfig(0).call()[2]) == 175 * 10**15  # 0.175, exact
    assert tuple(int(x) for x in dep.core.functions.liquidationConfig().call()[:7]) == (
        liquidation_tuple(cfg, p))


def test_simulate_cli_runs_the_book_of_a_live_deployment(
    dep: Deployment, accounts: list[str], tmp_path: Path, capsys: object
) -> None:
    import json

    from plimsoll.cli import main

    populate(Actor(dep), accounts)
    dep_file = tmp_path / "local.json"
    dep.save(dep_file)
    url = dep.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    rc = main(["simulate", "--from-deployment", "--rpc", url, "--deployment", str(dep_file),
               "--scenario", "wick", "--steps", "24", "--out", str(tmp_path / "r"),
               "--no-progress"])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert rc == 0, out
    assert "8 accounts" in out  # the eight accounts populate() creates
    head = json.loads(out.strip().splitlines()[-1])
    # bob's 0.5 BTC long on 5,000 USD cannot take the wick's -17.5% on BTC
    assert head["feedback all"]["liquidations"] >= 1
