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
