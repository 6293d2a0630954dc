"""Traders for the SDK and CLI tests: a keystore-signed key funded with gas, a client for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from plimsoll.client import PlimsollClient
from plimsoll.deploy import DEFAULT_PRICES, Deployment, list_default_series
from plimsoll.keys import write_keystore


@pytest.fixture
def key(w3: Web3, dep: Deployment) -> LocalAccount:
    """A fresh local key with 100 ETH for gas (no tokens)."""
    acct: LocalAccount = Account.create()
    w3.provider.make_request("anvil_setBalance", [acct.address, hex(100 * 10**18)])  # type: ignore[arg-type]
    return acct


@pytest.fixture
def client(w3: Web3, dep: Deployment, key: LocalAccount) -> PlimsollClient:
    """A client signing with ``key`` (EIP-1559, TxSender), as a keystore user's would."""
    return PlimsollClient(w3, dep.to_json(), key)


@pytest.fixture
def with_series(dep: Deployment) -> list[dict[str, object]]:
    """The default option series listed on the test deployment (reverted after the test)."""
    rows = list_default_series(
        dep.w3, dep.contracts["OptionsMarket"], dep.markets, DEFAULT_PRICES, dep.admin, dep.decoder
    )
    dep.series = rows
    return rows


@pytest.fixture
def keystore(tmp_path: Path, key: LocalAccount) -> tuple[Path, Path]:
    """``key`` as an encrypted keystore and a password file (what the CLI takes)."""
    pw = tmp_path / "pw"
    pw.write_text("test-password\n")
    return write_keystore(key, tmp_path / "key.json", "test-password", 2**4), pw


@pytest.fixture
def deployment_file(dep: Deployment, tmp_path: Path) -> Path:
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(dep.to_json()))
    return path
