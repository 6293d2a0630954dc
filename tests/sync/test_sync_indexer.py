"""AccountIndexer against anvil: discovery, checkpoints, chunking, reorgs."""

from __future__ import annotations

from typing import Any

from conftest import Actor, RangeLimitedProvider, chain_accounts, populate
from web3 import Web3

from plimsoll.deploy import Deployment
from plimsoll.sync import ACCOUNT_EVENTS, TOPICS, AccountIndexer
from plimsoll.units import token_units


def test_event_signatures_match_the_core_abi(dep: Deployment) -> None:
    abi_events = {e["name"]: e for e in dep.core.abi if e.get("type") == "event"}
    for name, sig in ACCOUNT_EVENTS.items():
        ev = abi_events[name]
        types = ",".join(i["type"] for i in ev["inputs"])
        assert sig == f"{name}({types})"
    # Every core event whose first argument is an indexed owner is scanned.
    owner_events = {
        n for n, e in abi_events.items() if e["inputs"] and e["inputs"][0]["name"] == "owner"
    }
    assert owner_events == set(TOPICS)


def test_finds_every_account(
    dep: Deployment, actor: Actor, accounts: list[str], make_indexer: Any
) -> None:
    created = populate(actor, accounts)
    ix = make_indexer()
    head = ix.sync()
    assert head == dep.w3.eth.block_number
    found = set(ix.accounts())
    assert found == created
    assert found == chain_accounts(dep)
    assert ix.last_hash == dep.w3.eth.get_block(head)["hash"].to_0x_hex()
    # Discovery order is stable and has no duplicates.
    assert len(ix.accounts()) == len(found) == len(ix)


def test_checkpoint_survives_restart(
    dep: Deployment, actor: Actor, accounts: list[str], make_indexer: Any
) -> None:
    alice, bob = accounts[1:3]
    actor.usdc(alice, 0, 100)
    actor.mine(300)  # a long, empty history after the first account
    first = make_indexer(chunk_size=50)
    head1 = first.sync()
    full_scan_calls = first.stats.get_logs
    assert full_scan_calls >= 6  # the cold scan walked the whole range in chunks
    first.close()

    actor.usdc(bob, 9, 100)
    second = make_indexer(chunk_size=50)  # same SQLite file, new instance
    assert second.last_block == head1
    head2 = second.sync()
    assert second.stats.get_logs == 1  # continues from the checkpoint: no full re-scan
    assert second.stats.from_block == head1 - 12 + 1  # re-scans the last 12 blocks on start
    assert second.stats.to_block == head2
    assert set(second.accounts()) == {(alice, 0), (bob, 9)}

    # Same head, same hash: nothing to scan at all.
    second.sync()
    assert second.stats.get_logs == 0
    # A new head re-scans the last 12 blocks plus the new one, in one query.
    actor.mine(1)
    second.sync()
    assert second.stats.get_logs == 1
    assert second.stats.from_block == head2 - 11


def test_tiny_chunks(
    dep: Deployment, actor: Actor, accounts: list[str], make_indexer: Any, tmp_path: Any
) -> None:
    created = populate(actor, accounts)
    ix = make_indexer(chunk_size=1)
    head = ix.sync()
    assert ix.stats.get_logs == head - dep.block + 1  # one block per query
    assert set(ix.accounts()) == created
    ix2 = make_indexer(path=tmp_path / "three.sqlite", chunk_size=3)
    ix2.sync()
    assert set(ix2.accounts()) == created


def test_chunk_halves_on_refusal(
    dep: Deployment, actor: Actor, accounts: list[str], make_indexer: Any, node: Any
) -> None:
    created = populate(actor, accounts)
    actor.mine(200)
    limited = RangeLimitedProvider(node.url, max_range=7)
    progress: list[tuple[str, int, int]] = []
    ix = make_indexer(w3=Web3(limited), chunk_size=1000, progress=lambda *a: progress.append(a))
    head = ix.sync()
    assert limited.refused > 0
    assert ix.stats.chunk_halvings == limited.refused
    assert 1 <= ix.chunk <= 1000  # grows back after successes, never past the maximum
    assert set(ix.accounts()) == created
    total = head - dep.block + 1
    assert progress[-1] == ("index", total, total)
    assert all(p[0] == "index" and p[2] == total for p in progress)


def _reorg(w3: Web3, depth: int, txs: list[tuple[dict[str, Any], int]]) -> None:
    resp = w3.provider.make_request(  # type: ignore[arg-type]
        "anvil_reorg", [depth, [[tx, offset] for tx, offset in txs]]
    )
    assert "error" not in resp, resp


def test_anvil_reorg_replaces_accounts(
    dep: Deployment, actor: Actor, accounts: list[str], make_indexer: Any
) -> None:
    w3 = dep.w3
    alice, bob = accounts[1:3]
    actor.usdc(alice, 0, 100)  # before the fork: must survive
    actor.fund(bob, 0, token_units(1_000, 6))
    actor.fund(alice, 0, token_units(1_000, 6))
    core = dep.core
    for sub in (100, 101, 102):  # the last three blocks: reorged out
        dep.send(core.functions.deposit(sub, 0, token_units(1, 6)), alice)
    ix = make_indexer()
    ix.sync()
    assert {(alice, 100), (alice, 101), (alice, 102)} <= set(ix.accounts())
    head = w3.eth.block_number
    old_hash = ix.last_hash

    # Depth 3, with replacement transactions: bob opens sub 555; alice re-does sub 101 only.
    data_bob = core.functions.deposit(555, 0, token_units(1, 6))._encode_transaction_data()
    data_alice = core.functions.deposit(101, 0, token_units(1, 6))._encode_transaction_data()
    _reorg(
        w3,
        3,
        [
            ({"from": bob, "to": core.address, "data": data_bob, "gas": 300_000}, 0),
            ({"from": alice, "to": core.address, "data": data_alice, "gas": 300_000}, 2),
        ],
    )
    assert w3.eth.block_number == head  # same height, other blocks
    new_hash = w3.eth.get_block(head)["hash"].to_0x_hex()
    assert new_hash != old_hash

    ix.sync()
    assert ix.stats.reorgs == 1
    assert ix.stats.rolled_back_to == [head - 3]
    got = set(ix.accounts())
    assert got == chain_accounts(dep)
    assert (bob, 555) in got and (alice, 101) in got and (alice, 0) in got
    assert (alice, 100) not in got and (alice, 102) not in got
    assert ix.last_block == head and ix.last_hash == new_hash


def test_anvil_rollback(
    dep: Deployment, actor: Actor, accounts: list[str], make_indexer: Any
) -> None:
    w3 = dep.w3
    alice, bob, carol = accounts[1:4]
    actor.usdc(alice, 0, 100)
    actor.fund(bob, 0, token_units(1_000, 6))
    dep.send(dep.core.functions.deposit(1, 0, token_units(1, 6)), bob)
    dep.send(dep.core.functions.deposit(2, 0, token_units(1, 6)), bob)
    ix = make_indexer()
    head = ix.sync()
    assert (bob, 2) in set(ix.accounts())

    w3.provider.make_request("anvil_rollback", [2])  # type: ignore[arg-type]
    assert w3.eth.block_number == head - 2
    ix.sync()  # the head went backwards: roll back too
    assert ix.stats.rolled_back_to == [head - 2]
    assert set(ix.accounts()) == chain_accounts(dep) == {(alice, 0)}
    assert ix.last_block == head - 2
    assert ix.last_hash == w3.eth.get_block(head - 2)["hash"].to_0x_hex()

    # The chain grows again past the old height, with other accounts at the same heights.
    actor.usdc(carol, 8, 10)
    ix.sync()
    assert set(ix.accounts()) == chain_accounts(dep) == {(alice, 0), (carol, 8)}
    assert ix.last_hash == w3.eth.get_block("latest")["hash"].to_0x_hex()


def test_checkpoint_of_another_core_is_refused(dep: Deployment, db: Any, make_indexer: Any) -> None:
    import pytest

    from plimsoll.sync import CheckpointMismatchError

    make_indexer().sync()
    with pytest.raises(CheckpointMismatchError):
        AccountIndexer(dep.w3, dep.pool.address, db, dep.block)


class ReorgOnFirstGetLogs(Web3.HTTPProvider):
    """Reorganizes the chain (depth 2, one replacement tx) just before the first eth_getLogs
    is answered: the scan sees logs whose block hashes differ from the ones it pinned."""

    def __init__(self, url: str, replacement: dict[str, Any]) -> None:
        super().__init__(url, request_kwargs={"timeout": 60})
        self.replacement = replacement
        self.fired = False

    def make_request(self, method: Any, params: Any) -> Any:
        if method == "eth_getLogs" and not self.fired:
            self.fired = True
            super().make_request("anvil_reorg", [2, [[self.replacement, 1]]])
        return super().make_request(method, params)


def test_reorg_during_scan_restarts(
    dep: Deployment, actor: Actor, accounts: list[str], make_indexer: Any, node: Any
) -> None:
    alice, bob = accounts[1:3]
    actor.usdc(alice, 0, 10)
    make_indexer().sync()
    actor.fund(bob, 0, token_units(10, 6))
    actor.fund(alice, 0, token_units(10, 6))
    for sub in (1, 2):
        dep.send(dep.core.functions.deposit(sub, 0, 1), alice)
    data = dep.core.functions.deposit(77, 0, 1)._encode_transaction_data()
    provider = ReorgOnFirstGetLogs(node.url, {"from": bob, "to": dep.core.address, "data": data})
    ix = make_indexer(w3=Web3(provider))
    ix.sync()
    assert provider.fired and ix.stats.restarts >= 1
    assert set(ix.accounts()) == chain_accounts(dep)
    assert (bob, 77) in set(ix.accounts()) and (alice, 2) not in set(ix.accounts())
    assert ix.last_hash == dep.w3.eth.get_block("latest")["hash"].to_0x_hex()


def test_reorg_deeper_than_the_window_rescans_everything(
    dep: Deployment, actor: Actor, accounts: list[str], make_indexer: Any
) -> None:
    alice, bob = accounts[1:3]
    actor.fund(alice, 0, token_units(10, 6))
    actor.fund(bob, 0, token_units(10, 6))
    for sub in range(6):
        dep.send(dep.core.functions.deposit(sub, 0, 1), alice)
    ix = make_indexer(rescan_depth=1, hash_window=3)
    ix.sync()
    data = dep.core.functions.deposit(9, 0, 1)._encode_transaction_data()
    _reorg(dep.w3, 5, [({"from": bob, "to": dep.core.address, "data": data, "gas": 300_000}, 0)])
    ix.sync()
    assert ix.stats.rolled_back_to == [dep.block - 1]  # no stored hash left on the chain
    assert ix.stats.from_block == dep.block
    assert set(ix.accounts()) == chain_accounts(dep) == {(alice, 0), (bob, 9)}


def test_new_heads_scan_only_new_blocks_and_the_window_rescan_finds_late_logs(
    dep: Deployment, actor: Actor, accounts: list[str], make_indexer: Any
) -> None:
    alice, bob = accounts[1:3]
    actor.usdc(alice, 0, 100)
    ix = make_indexer(rescan_every=0)
    head = ix.sync()
    assert ix.stats.from_block == dep.block
    actor.usdc(bob, 3, 100)  # mint, approve, deposit: the deposit's log is in the last block
    real = ix._get_logs

    def lagging(start: int, end: int) -> list[dict[str, Any]]:
        # A node whose log index lags its head: the newest block's logs are missing.
        return [lg for lg in real(start, end) if int(lg["blockNumber"], 16) < end]

    ix._get_logs = lagging
    head2 = ix.sync()
    assert (ix.stats.from_block, ix.stats.to_block) == (head + 1, head2)  # new blocks only
    assert (bob, 3) not in set(ix.accounts())
    ix._get_logs = real
    late = ix.rescan()  # the last 12 blocks again
    assert (bob, 3) in late
    assert set(ix.accounts()) == {(alice, 0), (bob, 3)} == chain_accounts(dep)
    # The next head scans one block: the window is not re-read on every head.
    actor.mine(1)
    ix.sync()
    assert (ix.stats.from_block, ix.stats.to_block) == (head2 + 1, head2 + 1)


def test_rescan_every_n_heads_rereads_the_window_then_only_new_blocks(
    dep: Deployment, actor: Actor, accounts: list[str], make_indexer: Any
) -> None:
    actor.usdc(accounts[1], 0, 100)
    actor.mine(20)
    ix = make_indexer(rescan_every=3)
    head = ix.sync()
    spans = []
    for _ in range(4):
        actor.mine(1)
        ix.sync()
        spans.append(ix.stats.to_block - ix.stats.from_block + 1)
    assert ix.last_block == head + 4
    assert spans == [1, 1, 13, 1]  # the window (12) + the new block every third head


def test_a_head_block_from_the_caller_saves_requests_and_a_reorg_is_still_seen(
    dep: Deployment, actor: Actor, accounts: list[str], make_indexer: Any
) -> None:
    w3 = dep.w3
    alice = accounts[1]
    actor.usdc(alice, 0, 100)
    actor.fund(alice, 0, token_units(5, 6))
    ix = make_indexer(rescan_every=0)
    ix.sync()
    actor.mine(1)
    blk = w3.eth.get_block("latest")
    ix.rpc.reset()
    assert ix.sync(blk["number"], head_block=dict(blk)) == blk["number"]
    assert ix.rpc.by_method == {"eth_getLogs": 1}  # no block or hash request
    assert ix.stats.reorgs == 0
    # The checkpoint block replaced (by one holding a new account), then one more block: the
    # new head's parent is not the checkpoint.
    data = dep.core.functions.deposit(7, 0, token_units(5, 6))._encode_transaction_data()
    _reorg(w3, 1, [({"from": alice, "to": dep.core.address, "data": data, "gas": 300_000}, 0)])
    actor.mine(1)
    blk = w3.eth.get_block("latest")
    ix.sync(blk["number"], head_block=dict(blk))
    assert ix.stats.reorgs == 1
    assert set(ix.accounts()) == chain_accounts(dep) == {(alice, 0), (alice, 7)}
