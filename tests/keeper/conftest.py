"""A chain with traders ready to be liquidated, and keepers to run against it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from keepers.liquidator import KeeperConfig, LiquidationKeeper
from plimsoll.chain import LocalNode
from plimsoll.deploy import Deployment, deploy_local
from plimsoll.units import token_units, wad


def rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    return w3.provider.make_request(method, params)  # type: ignore[arg-type]


@dataclass
class Setup:
    node: LocalNode
    w3: Web3
    dep: Deployment
    deployment_file: Path
    traders: list[str]

    def keeper_key(self) -> LocalAccount:
        key: LocalAccount = Account.create()
        rpc(self.w3, "anvil_setBalance", [key.address, hex(10**20)])
        self.dep.send(
            self.dep.cash.functions.mint(key.address, token_units(1_000_000, 6)), self.dep.admin
        )
        return key

    def keeper(
        self, tmp: Path, key: LocalAccount | None, name: str, url: str | None = None, **cfg: Any
    ) -> LiquidationKeeper:
        conf = KeeperConfig(
            rpc=url or self.node.url,
            deployment=self.deployment_file,
            db=tmp / f"{name}.sqlite",
            poll_interval=0.05,
            **cfg,
        )
        return LiquidationKeeper(conf, Web3(Web3.HTTPProvider(conf.rpc)), key)

    def crash(self, factor: float = 0.85) -> None:
        for feed_id, p in ((1, 2000), (2, 60000), (3, 150)):
            self.dep.set_price(feed_id, p * factor)


def open_positions(dep: Deployment, traders: list[str], leverage: float = 7.0) -> None:
    core = dep.core
    for i, t in enumerate(traders):
        dep.send(dep.cash.functions.mint(t, token_units(10_000, 6)), t)
        dep.send(dep.cash.functions.approve(core.address, 2**256 - 1), t)
        dep.send(core.functions.deposit(0, 0, token_units(2_000 + 100 * i, 6)), t)
        size = (2_000 + 100 * i) * leverage / 2000
        dep.send(core.functions.trade(0, 0, wad(round(size, 4)), 0), t)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    node = LocalNode(accounts=12)
    w3 = node.start()
    try:
        dep = deploy_local(w3)
        traders = [str(a) for a in w3.eth.accounts[2:10]]
        open_positions(dep, traders)
        path = tmp_path / "deployment.json"
        dep.save(path)
        yield Setup(node, w3, dep, path, traders)
    finally:
        node.stop()


class Running:
    """A keeper in a thread, stopped (like SIGTERM does) on exit."""

    def __init__(self, keeper: LiquidationKeeper) -> None:
        self.keeper = keeper
        self.stop = threading.Event()
        self.thread = threading.Thread(target=keeper.run, args=(self.stop,), daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> LiquidationKeeper:
        self.thread.start()
        return self.keeper

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "keeper did not stop"
