"""Fixtures for the on-chain Black-Scholes tests: the harness on its own anvil.

``contracts/mocks/BlackScholesHarness.sol`` (the library's functions as external views) is
compiled with the rest of the tree by :func:`plimsoll.build.compile_contracts` (cached in
build/plimsoll) and deployed once per session on a private anvil, so these read-only tests do
not shift nonces or addresses on the shared chain of tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3.contract import Contract

from plimsoll.build import compile_contracts
from plimsoll.chain import ErrorDecoder, LocalNode

BATCH = 500  # options per eth_call (~2M gas): well inside anvil's call gas cap


@pytest.fixture(scope="session")
def bs_harness() -> Iterator[Contract]:
    art = compile_contracts()["BlackScholesHarness"]
    with LocalNode(accounts=1) as w3:
        factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        tx = factory.constructor().transact({"from": w3.eth.accounts[0]})
        address = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
        yield w3.eth.contract(address=address, abi=art.abi)


@pytest.fixture(scope="session")
def bs_decoder(bs_harness: Contract) -> ErrorDecoder:
    return ErrorDecoder([bs_harness.abi])
