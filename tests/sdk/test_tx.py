"""TxSender: single nonce writer, EIP-1559 fees, replacement of stuck transactions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from plimsoll.chain import LocalNode
from plimsoll.tx import GWEI, FeePolicy, Outcome, PendingTx, TxSender


@pytest.fixture
def chain() -> Iterator[tuple[Web3, LocalAccount]]:
    with LocalNode() as w3:
        acct: LocalAccount = Account.create()
        w3.provider.make_request("anvil_setBalance", [acct.address, hex(10**21)])  # type: ignore[arg-type]
        yield w3, acct


def _mine(w3: Web3, base_fee: int | None = None) -> None:
    if base_fee is not None:
        w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(base_fee)])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def test_stuck_transaction_is_replaced_with_at_least_12_5_percent_more(chain: Any) -> None:
    w3, acct = chain
    w3.provider.make_request("evm_setAutomine", [False])
    events: list[tuple[str, int]] = []
    sender = TxSender(
        w3,
        acct,
        FeePolicy(priority_fee=GWEI, max_fee_cap=200 * GWEI),
        stuck_blocks=1,
        on_event=lambda k, p: events.append((k, p.tx["maxFeePerGas"])),
    )
    p = sender.send({"to": w3.eth.accounts[1], "value": 1}, gas=21_000)
    first_fee, first_tip = p.tx["maxFeePerGas"], p.tx["maxPriorityFeePerGas"]
    for _ in range(10):
        _mine(w3, base_fee=20 * GWEI)  # the market moved above the first bid
        sender.poll()
        if p.outcome is not Outcome.PENDING:
            break
    assert p.outcome is Outcome.SUCCEEDED
    assert p.replacements >= 1
    assert p.tx["maxFeePerGas"] * 1000 >= first_fee * 1125
    assert p.tx["maxPriorityFeePerGas"] * 1000 >= first_tip * 1125
    assert [k for k, _ in events].count("replaced") == p.replacements
    # One nonce, one mined transaction.
    assert w3.eth.get_transaction_count(acct.address) == 1


def test_no_replacement_above_the_fee_cap(chain: Any) -> None:
    w3, acct = chain
    w3.provider.make_request("evm_setAutomine", [False])
    sender = TxSender(w3, acct, FeePolicy(priority_fee=GWEI, max_fee_cap=3 * GWEI), stuck_blocks=1)
    p = sender.send({"to": w3.eth.accounts[1], "value": 1}, gas=21_000)
    for _ in range(4):
        _mine(w3, base_fee=50 * GWEI)
        sender.poll()
    assert p.outcome is Outcome.PENDING
    assert p.replacements == 0
    assert p.tx["maxFeePerGas"] <= 3 * GWEI


def test_nonces_are_consecutive_from_one_writer(chain: Any) -> None:
    w3, acct = chain
    sender = TxSender(w3, acct)
    sent: list[PendingTx] = [
        sender.send({"to": w3.eth.accounts[2], "value": i + 1}, gas=21_000) for i in range(5)
    ]
    assert [p.nonce for p in sent] == [0, 1, 2, 3, 4]
    for p in sent:
        assert sender.wait(p, timeout=30).outcome is Outcome.SUCCEEDED
    assert sender.pending == {}


def test_fee_policy_refuses_a_bump_below_12_5_percent() -> None:
    with pytest.raises(ValueError, match="12.5%"):
        FeePolicy(bump_num=110, bump_den=100)
    assert FeePolicy().bump(100 * GWEI, 2 * GWEI) == (112_500_000_000, 2_250_000_000)
