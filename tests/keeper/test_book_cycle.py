"""The keeper's event-sourced book against a real anvil: equal to the lens after trades, deposits
and price moves; a row that drifted (a state change the logs did not name) is found by the
reconciliation, counted and repaired; the screened liquidatable set equals the full re-read's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from plimsoll.units import token_units, wad
from tests.keeper.conftest import Setup


def _full_read(keeper, block: int):  # type: ignore[no-untyped-def]
    accounts = [(a.owner, a.subaccount) for a in keeper.indexer.accounts()]
    return keeper.reader.read(accounts, block)


def test_book_follows_trades_and_deposits_and_equals_the_lens(setup: Setup, tmp_path: Path) -> None:
    s = setup
    k = s.keeper(tmp_path, None, "book", dry_run=True, reconcile_every=0)
    k.on_block(s.w3.eth.block_number)
    book = k.cycle.book
    assert book is not None and len(book) == len(s.traders)
    # New activity: a trade, a deposit and a price move; only logs say who changed.
    core = s.dep.core
    s.dep.send(core.functions.trade(0, 0, wad(0.1), 0), s.traders[0])
    s.dep.send(core.functions.deposit(0, 0, token_units(100, 6)), s.traders[1])
    s.dep.set_price(1, 1900)
    head = s.w3.eth.block_number
    k.on_block(head)
    assert book.block == head
    assert book.diff(_full_read(k, head)) == []
    assert k.cycle.mismatches == 0


def test_reconciliation_finds_counts_and_repairs_a_drifted_row(
    setup: Setup, tmp_path: Path
) -> None:
    s = setup
    k = s.keeper(tmp_path, None, "recon", dry_run=True, reconcile_every=1, reconcile_slice=100)
    k.on_block(s.w3.eth.block_number)
    book = k.cycle.book
    assert book is not None
    # A change no log named (simulated by moving the book's row away from the chain's).
    row = book.index[(s.traders[3], 0)]
    book.cash.lo[row] += np.uint64(7)
    s.dep.set_price(2, 59_000)  # a new block
    head = s.w3.eth.block_number
    k.on_block(head)
    assert k.cycle.mismatches == 1
    assert k.metrics.reconciliation_mismatches._value.get() == 1
    assert book.diff(_full_read(k, head)) == []  # repaired from the lens


def test_screened_liquidatable_set_equals_the_full_reread_after_a_crash(
    setup: Setup, tmp_path: Path
) -> None:
    s = setup
    book_k = s.keeper(tmp_path, None, "screen", dry_run=True)
    full_k = s.keeper(tmp_path, None, "full", dry_run=True, full_reread=True)
    book_k.on_block(s.w3.eth.block_number)
    s.crash(0.85)
    head = s.w3.eth.block_number
    a = book_k.cycle.cycle(head)
    b = full_k.cycle.cycle(head)
    got = {(a.state.owners[i], int(a.state.subaccounts[i])) for i in a.order}
    want = {(b.state.owners[i], int(b.state.subaccounts[i])) for i in b.order}
    assert want, "the crash should leave liquidatable accounts"
    assert got == want
    assert book_k.summary()["cycle_ms_p99"] > 0


def test_a_log_the_node_served_late_is_found_by_the_window_rescan_and_repaired(
    setup: Setup, tmp_path: Path
) -> None:
    s = setup
    # No rotating slice: only the window re-scan (every 12 blocks, after the block's work) can
    # find the change.
    k = s.keeper(tmp_path, None, "late", dry_run=True, reconcile_every=0)
    k.on_block(s.w3.eth.block_number)
    book = k.cycle.book
    assert book is not None
    ix = k.indexer
    real = ix._get_logs

    def lagging(start: int, end: int) -> list[dict[str, Any]]:
        # A node whose log index lags its head: the newest block's logs are missing.
        return [lg for lg in real(start, end) if int(lg["blockNumber"], 16) < end]

    ix._get_logs = lagging  # type: ignore[method-assign]
    s.dep.send(s.dep.core.functions.trade(0, 0, wad(0.2), 0), s.traders[2])
    head = s.w3.eth.block_number
    k.cycle._last_rescan = head  # the re-scan is not due yet
    k.on_block(head)
    assert book.diff(_full_read(k, head)) == [(s.traders[2], 0)]  # the book missed the trade
    ix._get_logs = real
    s.w3.provider.make_request("anvil_mine", [hex(12)])  # type: ignore[arg-type]
    head = s.w3.eth.block_number
    k.on_block(head)  # the re-scan is due: the late log names the account, which is compared
    assert k.cycle.mismatches == 1
    assert k.metrics.reconciliation_mismatches._value.get() == 1
    assert book.diff(_full_read(k, head)) == []


def test_a_reorg_whose_new_blocks_touch_other_accounts_is_read_before_acting(
    setup: Setup, tmp_path: Path
) -> None:
    s = setup
    k = s.keeper(tmp_path, None, "reorg", dry_run=True, reconcile_every=0)
    k.on_block(s.w3.eth.block_number)
    book = k.cycle.book
    assert book is not None
    core = s.dep.core
    s.dep.send(core.functions.trade(0, 0, wad(0.1), 0), s.traders[0])
    k.on_block(s.w3.eth.block_number)
    # The trade's block replaced by one where another account trades instead (depth 1).
    other = s.traders[4]
    data = core.functions.trade(0, 0, wad(-0.3), 0)._encode_transaction_data()
    tx = {"from": other, "to": core.address, "data": data, "gas": 900_000}
    resp = s.w3.provider.make_request("anvil_reorg", [1, [[tx, 0]]])  # type: ignore[arg-type]
    assert "error" not in resp, resp
    head = s.w3.eth.block_number
    view = k.cycle.cycle(head)  # the cycle alone: what the liquidation steps act on
    assert view.block == head
    # Both accounts were read again before acting: the reconciliation has nothing to repair.
    assert book.diff(_full_read(k, head)) == []
    k.cycle.reconcile()
    assert k.cycle.mismatches == 0
