"""Fixtures for tests/unit: named accounts on top of tests/conftest.py's ``dep``.

accounts[0] is the admin (and guardian) of the deployment; the others are plain users.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def admin(dep, accounts):
    assert dep.admin == accounts[0]
    return accounts[0]


@pytest.fixture
def alice(accounts):
    return accounts[1]


@pytest.fixture
def bob(accounts):
    return accounts[2]


@pytest.fixture
def carol(accounts):
    return accounts[3]


@pytest.fixture
def keeper(accounts):
    return accounts[4]


@pytest.fixture
def lp(accounts):
    return accounts[5]


@pytest.fixture
def outsider(accounts):
    return accounts[9]


# A fixed gas limit spares anvil the gas estimation (a binary search of executions), which
# dominates a transaction's cost. A revert still comes back decoded: with the gas given, the
# transaction is mined, fails, and `plimsoll.chain.send` replays it as a call to decode it.
GAS = 8_000_000


@pytest.fixture(autouse=True)
def _fixed_gas(dep, monkeypatch):
    send = dep.send

    def send_fixed_gas(fn, sender, gas=None):
        return send(fn, sender, gas=gas or GAS)

    monkeypatch.setattr(dep, "send", send_fixed_gas)
