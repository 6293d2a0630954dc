"""Shared fixtures: one anvil per test session, one deployment, a snapshot per test.

Every test starts from the same freshly deployed system (``evm_snapshot`` / ``evm_revert``), on a
real anvil from npm, with contracts compiled by npm's solc.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from web3 import Web3

from plimsoll.chain import LocalNode
from plimsoll.deploy import Deployment, deploy_local
from plimsoll.units import token_units


@pytest.fixture(scope="session")
def node() -> Iterator[LocalNode]:
    n = LocalNode(accounts=20)
    n.start()
    yield n
    n.stop()


@pytest.fixture(scope="session")
def w3(node: LocalNode) -> Web3:
    return Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))


@pytest.fixture(scope="session")
def base_deployment(w3: Web3) -> Deployment:
    return deploy_local(w3)


@pytest.fixture
def dep(w3: Web3, base_deployment: Deployment) -> Iterator[Deployment]:
    """The deployment, reverted to its pristine state after the test."""
    snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    yield base_deployment
    w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]


@pytest.fixture
def accounts(w3: Web3) -> list[str]:
    return list(w3.eth.accounts)


def fund(dep: Deployment, who: str, asset_id: int, amount: int) -> None:
    """Mint ``amount`` [token units] of asset ``asset_id`` to ``who`` and approve the core."""
    tok = dep.token(asset_id)
    dep.send(tok.functions.mint(who, amount), who)
    dep.send(tok.functions.approve(dep.core.address, 2**256 - 1), who)


def deposit(dep: Deployment, who: str, sub: int, asset_id: int, amount: int) -> Any:
    fund(dep, who, asset_id, amount)
    return dep.send(dep.core.functions.deposit(sub, asset_id, amount), who)


def usdc(x: float | int) -> int:
    return token_units(x, 6)
