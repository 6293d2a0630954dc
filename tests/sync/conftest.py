"""Fixtures for tests/sync: the lens, an actor that creates accounts, an independent account
scan, and a provider that refuses wide ``eth_getLogs`` ranges like a public node.

Built on tests/conftest.py (one anvil per session, a fresh deployment per test via
``evm_snapshot``/``evm_revert``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract

from plimsoll.deploy import FEED_DECIMALS, Deployment
from plimsoll.sync import AccountIndexer, RpcClient, StateReader
from plimsoll.units import token_units, wad

MAX_UINT = 2**256 - 1
ACCOUNT_EVENTS = (
    "Deposited",
    "Withdrawn",
    "SubaccountConfigured",
    "Traded",
    "Liquidated",
    "CollateralLiquidated",
    "BadDebtSettled",
)


@pytest.fixture(scope="session")
def lens(w3: Web3, base_deployment: Deployment) -> Contract:
    """PlimsollLens, deployed by ``deploy_local`` with the rest of the system (so that no
    test's snapshot/revert can remove it)."""
    return base_deployment.contracts["PlimsollLens"]


class Actor:
    """Creates accounts with real transactions (each waits for its receipt)."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.w3 = dep.w3

    def fund(self, who: str, asset_id: int, amount: int) -> None:
        tok = self.dep.token(asset_id)
        self.dep.send(tok.functions.mint(who, amount), who)
        self.dep.send(tok.functions.approve(self.dep.core.address, MAX_UINT), who)

    def deposit(self, who: str, sub: int, asset_id: int, amount: int, fund: bool = True) -> Any:
        if fund:
            self.fund(who, asset_id, amount)
        return self.dep.send(self.dep.core.functions.deposit(sub, asset_id, amount), who)

    def usdc(self, who: str, sub: int, dollars: int) -> Any:
        return self.deposit(who, sub, 0, token_units(dollars, 6))

    def trade(self, who: str, sub: int, market: int, size: float | int | str) -> Any:
        return self.dep.send(self.dep.core.functions.trade(sub, market, wad(size), 0), who)

    def transfer(self, who: str, src: int, dst: int, asset_id: int, amount: int) -> Any:
        return self.dep.send(self.dep.core.functions.transfer(src, dst, asset_id, amount), who)

    def isolate(self, who: str, sub: int, market: int) -> Any:
        return self.dep.send(self.dep.core.functions.configureSubaccount(sub, market + 1), who)

    def set_price(self, feed_id: int, price: float | int | str) -> None:
        self.dep.set_price(feed_id, price)

    def answer(self, price: float | int | str) -> int:
        return int(wad(price) // 10 ** (18 - FEED_DECIMALS))

    def mine(self, n: int = 1) -> None:
        self.w3.provider.make_request("anvil_mine", [hex(n)])  # type: ignore[arg-type]


def populate(actor: Actor, accounts: list[str]) -> set[tuple[str, int]]:
    """Every way an account comes to exist; returns the accounts created."""
    alice, bob, carol, dave, keeper = accounts[1:6]
    actor.usdc(alice, 0, 10_000)  # cash deposit
    actor.deposit(alice, 1, 1, token_units(2, 18))  # WETH collateral, another subaccount
    actor.transfer(alice, 0, 42, 0, token_units(100, 6))  # transfer into a brand-new sub
    actor.isolate(bob, 7, 1)  # isolated to BTC-PERP before any deposit
    actor.usdc(bob, 7, 5_000)
    actor.trade(bob, 7, 1, "0.5")
    actor.isolate(carol, 3, 0)  # configured, never funded: an (empty) account all the same
    actor.deposit(dave, 2**200, 2, token_units(1, 8))  # a huge subaccount id (uint256)
    # dave's sub 5: 9x long ETH, then a 9% fall makes it liquidatable with equity left; the
    # keeper earns a reward (paid out of that equity) credited to its subaccount 0, which it
    # never used before.
    actor.usdc(dave, 5, 1_000)
    actor.trade(dave, 5, 0, "4.5")
    actor.set_price(1, 1820)
    actor.dep.send(actor.dep.core.functions.liquidate(dave, 5), keeper)
    return {
        (alice, 0),
        (alice, 1),
        (alice, 42),
        (bob, 7),
        (carol, 3),
        (dave, 2**200),
        (dave, 5),
        (keeper, 0),
    }


@pytest.fixture
def actor(dep: Deployment) -> Actor:
    return Actor(dep)


def chain_accounts(dep: Deployment, from_block: int | None = None) -> set[tuple[str, int]]:
    """Every account the chain's logs name, decoded by web3's own event machinery."""
    core = dep.core
    lo = dep.block if from_block is None else from_block
    hi = dep.w3.eth.block_number
    out: set[tuple[str, int]] = set()
    for name in ACCOUNT_EVENTS:
        for ev in getattr(core.events, name).get_logs(from_block=lo, to_block=hi):
            a = ev["args"]
            out.add((a["owner"], int(a["subaccount"])))
            if name == "Liquidated" and a["keeperReward"] > 0:
                out.add((a["liquidator"], 0))
    for ev in core.events.Transferred.get_logs(from_block=lo, to_block=hi):
        a = ev["args"]
        out.add((a["owner"], int(a["fromSubaccount"])))
        out.add((a["owner"], int(a["toSubaccount"])))
    return out


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "index.sqlite"


@pytest.fixture
def make_indexer(dep: Deployment, db: Path) -> Any:
    """``make_indexer(**kw)``: an AccountIndexer for the test's deployment on the test's file."""
    made: list[AccountIndexer] = []

    def make(w3: Web3 | None = None, path: Path | None = None, **kw: Any) -> AccountIndexer:
        ix = AccountIndexer(w3 or dep.w3, dep.core.address, path or db, dep.block, **kw)
        made.append(ix)
        return ix

    yield make
    for ix in made:
        ix.close()


@pytest.fixture
def reader(dep: Deployment, lens: Contract) -> StateReader:
    return StateReader(dep.w3, dep.core.address, lens.address, rpc=RpcClient(dep.w3))


class RangeLimitedProvider(Web3.HTTPProvider):
    """An HTTP provider that refuses ``eth_getLogs`` over more than ``max_range`` blocks, the
    way hosted nodes refuse queries with too many results."""

    def __init__(self, url: str, max_range: int) -> None:
        super().__init__(url, request_kwargs={"timeout": 60})
        self.max_range = max_range
        self.refused = 0

    def make_request(self, method: Any, params: Any) -> Any:
        if method == "eth_getLogs":
            f = params[0]
            if int(f["toBlock"], 16) - int(f["fromBlock"], 16) + 1 > self.max_range:
                self.refused += 1
                return {
                    "jsonrpc": "2.0",
                    "id": 0,
                    "error": {"code": -32005, "message": "query returned more than 10000 results"},
                }
        return super().make_request(method, params)
