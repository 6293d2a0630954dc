"""TxSender: single nonce writer, EIP-1559 fees, replacement of stuck transactions."""

from __future__ import annotations

import time
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


def test_outbid_transaction_is_replaced_with_at_least_12_5_percent_more(chain: Any) -> None:
    w3, acct = chain
    w3.provider.make_request("evm_setAutomine", [False])
    # Room for one transfer per block, taken by a bidder tipping 5 gwei.
    w3.provider.make_request("evm_setBlockGasLimit", [hex(30_000)])
    bidder_key: LocalAccount = Account.create()
    w3.provider.make_request("anvil_setBalance", [bidder_key.address, hex(10**21)])  # type: ignore[arg-type]
    bidder = TxSender(w3, bidder_key, FeePolicy(priority_fee=5 * GWEI))
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
    for i in range(6):
        bidder.send({"to": w3.eth.accounts[2], "value": i + 1}, gas=21_000)
        _mine(w3)
        sender.poll()
        if p.outcome is not Outcome.PENDING:
            break
    assert p.outcome is Outcome.SUCCEEDED
    assert p.replacements >= 1
    assert p.tx["maxFeePerGas"] * 1000 >= first_fee * 1125
    assert p.tx["maxPriorityFeePerGas"] * 1000 >= first_tip * 1125
    assert p.tx["maxPriorityFeePerGas"] >= 5 * GWEI  # it followed the market's tip
    assert [k for k, _ in events].count("replaced") == p.replacements
    # One nonce, one mined transaction.
    assert w3.eth.get_transaction_count(acct.address) == 1


def test_no_replacement_above_the_fee_cap_and_an_evicted_tx_frees_its_nonce(chain: Any) -> None:
    w3, acct = chain
    w3.provider.make_request("evm_setAutomine", [False])
    sender = TxSender(w3, acct, FeePolicy(priority_fee=GWEI, max_fee_cap=3 * GWEI), stuck_blocks=1)
    p = sender.send({"to": w3.eth.accounts[1], "value": 1}, gas=21_000)
    for _ in range(4):
        _mine(w3, base_fee=50 * GWEI)
        sender.poll()
    # anvil evicts a transaction whose max fee is under the base fee: it is lost, not pending
    # forever, and its nonce is the next one again (nothing waits behind a gap).
    assert p.outcome is Outcome.LOST
    assert p.replacements == 0
    assert p.tx["maxFeePerGas"] <= 3 * GWEI
    assert sender._nonce() == 0 and not sender.pending
    # Over the cap nothing is sent at all (no refusal, no nonce used).
    out = sender.send_many([(w3.eth.accounts[1], b"", "x")], gas=21_000)
    assert out == [None] and "under the next base fee" in str(sender.last_error)
    assert sender._nonce() == 0


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


def _rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    resp = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    assert "error" not in resp, resp
    return resp.get("result")


def test_reorg_that_drops_mined_txs_rewinds_the_nonce_and_reports_them_lost(chain: Any) -> None:
    w3, acct = chain
    events: list[str] = []
    sender = TxSender(w3, acct, on_event=lambda k, p: events.append(k))
    start = int(w3.eth.block_number)
    sent = [
        sender.send({"to": w3.eth.accounts[2], "value": i + 1}, f"t{i}", gas=21_000)
        for i in range(3)
    ]
    done = sender.poll()
    assert {p.outcome for p in done} == {Outcome.SUCCEEDED}
    # A reorg of every block since (3, or 2 when anvil's automine put two of them in one)
    # whose replacement blocks hold none of the sender's transactions.
    _rpc(w3, "anvil_reorg", [int(w3.eth.block_number) - start, []])
    assert w3.eth.get_transaction_count(acct.address) == 0
    lost = sender.poll()
    assert sorted(p.label for p in lost) == ["t0", "t1", "t2"]
    assert all(p.outcome is Outcome.LOST for p in sent)
    assert events.count("unmined") == 3 and events.count("lost") == 3
    assert sender.reconciliations >= 1
    # The next transaction takes nonce 0 again and is mined: nothing waits behind a gap.
    p = sender.send({"to": w3.eth.accounts[2], "value": 9}, "again", gas=21_000)
    assert p.nonce == 0
    assert sender.wait(p, timeout=30).outcome is Outcome.SUCCEEDED


def test_dropped_tx_is_reported_lost_and_its_nonce_is_reused(chain: Any) -> None:
    w3, acct = chain
    w3.provider.make_request("evm_setAutomine", [False])
    sender = TxSender(w3, acct)
    a, b = sender.send_many(
        [(w3.eth.accounts[2], b"", "a"), (w3.eth.accounts[2], b"", "b")], gas=21_000
    )
    assert a is not None and b is not None
    # anvil drops the transaction and the ones queued behind it from its pool.
    _rpc(w3, "anvil_dropTransaction", ["0x" + bytes(a.hashes[0]).hex()])
    assert sender.poll() == []  # just sent: not judged on one look
    _mine(w3)
    done = sender.poll()
    assert {p.label for p in done} == {"a", "b"}
    assert a.outcome is Outcome.LOST and b.outcome is Outcome.LOST
    assert sender._nonce() == 0 and sender.free == [] and sender.lost == 2
    (c,) = sender.send_many([(w3.eth.accounts[2], b"", "c")], gas=21_000)
    assert c is not None and c.nonce == 0
    _mine(w3)
    sender.poll()
    assert c.outcome is Outcome.SUCCEEDED


def test_bad_debt_cap_lets_a_tx_through_a_spike_the_ordinary_cap_refuses(chain: Any) -> None:
    w3, acct = chain
    w3.provider.make_request("evm_setAutomine", [False])
    sender = TxSender(w3, acct, FeePolicy(priority_fee=GWEI, max_fee_cap=30 * GWEI))
    _mine(w3, base_fee=100 * GWEI)
    _mine(w3, base_fee=100 * GWEI)
    (ordinary,) = sender.send_many([(w3.eth.accounts[2], b"", "ordinary")], gas=21_000)
    (urgent,) = sender.send_many(
        [(w3.eth.accounts[2], b"", "urgent")], gas=21_000, max_fee_cap=1_000 * GWEI
    )
    assert ordinary is None and "under the next base fee" in str(sender.last_error)
    assert urgent is not None and urgent.nonce == 0
    assert urgent.tx["maxFeePerGas"] > 100 * GWEI
    _mine(w3, base_fee=100 * GWEI)
    sender.poll()
    assert urgent.outcome is Outcome.SUCCEEDED


def test_tip_follows_the_fee_history(chain: Any) -> None:
    w3, acct = chain
    other: LocalAccount = Account.create()
    _rpc(w3, "anvil_setBalance", [other.address, hex(10**21)])
    bidder = TxSender(w3, other, FeePolicy(priority_fee=7 * GWEI))
    for i in range(3):
        bidder.wait(bidder.send({"to": w3.eth.accounts[2], "value": i + 1}, gas=21_000))
    sender = TxSender(w3, acct, FeePolicy(priority_fee=GWEI, tip_percentile=50))
    m = sender.market(refresh=True)
    assert m.tip == 7 * GWEI
    assert sender.fees.initial(m.next_base_fee, m.tip)[1] == 7 * GWEI


def test_pending_state_survives_a_restart_without_double_sending(chain: Any, tmp_path: Any) -> None:
    w3, acct = chain
    w3.provider.make_request("evm_setAutomine", [False])
    state = tmp_path / "nonces.json"
    first = TxSender(w3, acct, state_path=state)
    first.send_many(
        [(w3.eth.accounts[2], b"", "acct:1"), (w3.eth.accounts[2], b"", "acct:2")], 21_000
    )
    second = TxSender(w3, acct, state_path=state)  # the restarted keeper
    assert sorted(p.label for p in second.pending.values()) == ["acct:1", "acct:2"]
    assert second._nonce() == 2
    _mine(w3)
    done = second.poll()
    assert sorted(p.label for p in done) == ["acct:1", "acct:2"]
    assert all(p.outcome is Outcome.SUCCEEDED for p in done)
    assert w3.eth.get_transaction_count(acct.address) == 2


def test_fill_gaps_cancels_a_lost_nonce_that_holds_back_a_later_tx(chain: Any) -> None:
    """A reorg takes nonce 0 off the chain (anvil does not put it back) while nonce 1 waits in
    the pool: nothing of this key mines until nonce 0 is used. fill_gaps sends a zero
    self-transfer there, once; it mines. (anvil then evicts the old nonce-1 transaction from
    its pool instead of mining it: the sender reports it lost and the next send takes nonce 1,
    so nothing stalls either way.)"""
    w3, acct = chain
    _rpc(w3, "evm_setAutomine", [False])
    sender = TxSender(w3, acct)
    (a,) = sender.send_many([(w3.eth.accounts[2], b"", "a")], gas=21_000)
    _mine(w3)
    assert [p.label for p in sender.poll()] == ["a"]
    (b,) = sender.send_many([(w3.eth.accounts[2], b"", "b")], gas=21_000)
    assert a is not None and b is not None and b.nonce == 1
    _rpc(w3, "anvil_reorg", [1, []])
    assert [p.label for p in sender.poll()] == ["a"] and a.outcome is Outcome.LOST
    assert sender.free == [0] and 1 in sender.pending and b.outcome is Outcome.PENDING
    (filler,) = sender.fill_gaps()
    assert filler.nonce == 0 and filler.label == "gap-filler"
    assert filler.tx["to"] == sender.address and filler.tx["value"] == 0
    assert sender.free == [] and sender.fill_gaps() == []  # one filler per free nonce
    _mine(w3)
    done = sender.poll()
    assert {p.label for p in done} == {"gap-filler", "b"}
    assert filler.outcome is Outcome.SUCCEEDED and w3.eth.get_transaction_count(acct.address) == 1
    assert b.outcome is Outcome.LOST and sender.free == [] and sender._nonce() == 1
    (c,) = sender.send_many([(w3.eth.accounts[2], b"", "c")], gas=21_000)
    assert c is not None and c.nonce == 1
    _mine(w3)
    sender.poll()
    assert c.outcome is Outcome.SUCCEEDED and w3.eth.get_transaction_count(acct.address) == 2


def test_fill_gaps_leaves_a_free_nonce_alone_when_nothing_waits_behind_it(chain: Any) -> None:
    w3, acct = chain
    _rpc(w3, "evm_setAutomine", [False])
    sender = TxSender(w3, acct)
    (a,) = sender.send_many([(w3.eth.accounts[2], b"", "a")], gas=21_000)
    _mine(w3)
    sender.poll()
    _rpc(w3, "anvil_reorg", [1, []])
    sender.poll()
    assert a is not None and a.outcome is Outcome.LOST
    # Nonce 0 is simply the next one: no filler, the next transaction takes it.
    assert sender.fill_gaps() == [] and sender._nonce() == 0


class LaggingNode:
    """JSON-RPC proxy in front of anvil that, while ``lag`` is set, serves the new head but not
    yet the receipts nor the transactions (as a node under load can)."""

    def __init__(self, target: str) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import requests

        outer = self
        self.lag = False

        def answer(req: dict[str, Any]) -> dict[str, Any]:
            hidden = ("eth_getTransactionReceipt", "eth_getTransactionByHash")
            if outer.lag and req.get("method") in hidden:
                return {"jsonrpc": "2.0", "id": req.get("id"), "result": None}
            return dict(requests.post(target, json=req, timeout=30).json())

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                out = [answer(b) for b in body] if isinstance(body, list) else answer(body)
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_mined_tx_whose_receipt_lags_the_head_is_not_reported_lost(chain: Any) -> None:
    """make demo's keeper died at start on this: its approval mined (the chain's nonce counted
    it) but the node served neither its receipt nor the transaction yet; poll called it lost
    and wait raised. Now it waits: lost only after two blocks without either."""
    w3, acct = chain
    node = LaggingNode(w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    try:
        lw3 = Web3(Web3.HTTPProvider(node.url))
        sender = TxSender(lw3, acct)
        p = sender.send({"to": w3.eth.accounts[2], "value": 1}, "approve", gas=21_000)
        for _ in range(100):  # anvil's automine mines just after the send returns
            if w3.eth.get_transaction_count(acct.address) == 1:
                break
            time.sleep(0.02)
        assert w3.eth.get_transaction_count(acct.address) == 1
        node.lag = True
        assert sender.poll() == [] and p.outcome is Outcome.PENDING
        node.lag = False
        assert [q.label for q in sender.poll()] == ["approve"]
        assert p.outcome is Outcome.SUCCEEDED and sender.lost == 0
    finally:
        node.close()
