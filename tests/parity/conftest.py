"""The parity suite runs on its own anvil: it creates ~1,100 accounts and warps time by days,
which would slow down (and age) the session chain every other suite shares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3 import Web3

from plimsoll.chain import LocalNode
from plimsoll.deploy import Deployment, deploy_local


@pytest.fixture(scope="module")
def node() -> Iterator[LocalNode]:
    n = LocalNode(accounts=20)
    n.start()
    yield n
    n.stop()


@pytest.fixture(scope="module")
def w3(node: LocalNode) -> Web3:
    return Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))


@pytest.fixture(scope="module")
def base_deployment(w3: Web3) -> Deployment:
    return deploy_local(w3)
