"""The keeper's book survives a restart: saved every N blocks (atomically), loaded on start when
its block is still the chain's, caught up from the logs of the blocks it missed and reconciled
in full; a reorg while down, a damaged or foreign file fall back to the full lens read."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plimsoll.book import AccountBook, BookFileError
from plimsoll.units import token_units, wad
from tests.keeper.conftest import Setup, rpc

CORE = "0x" + "ab" * 20


def _full_read(keeper, block: int):  # type: ignore[no-untyped-def]
    accounts = [(a.owner, a.subaccount) for a in keeper.indexer.accounts()]
    return keeper.reader.read(accounts, block)


def _liquidatable(view: Any) -> set[tuple[str, int]]:
    return {(view.state.owners[i], int(view.state.subaccounts[i])) for i in view.order}


def _start(s: Setup, tmp: Path, name: str, **cfg: Any):  # type: ignore[no-untyped-def]
    k = s.keeper(tmp, None, name, dry_run=True, **cfg)
    k.on_block(s.w3.eth.block_number)
    return k


def test_restart_after_activity_while_down_loads_the_file_and_equals_a_full_read(
    setup: Setup, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = setup
    core = s.dep.core
    k1 = _start(s, tmp_path, "k", book_save_every=1)
    saved = k1.cycle.book.block  # type: ignore[union-attr]
    assert k1.cycle.saved and k1.cycle.saved[-1][0] == saved
    assert k1.cfg.book_path().exists()
    # The keeper goes on without saving: the index's checkpoint moves past the saved book's
    # block by more than its re-scan window, so the restart must fetch the gap's logs itself.
    k1.cycle.save_every = 0
    s.dep.send(core.functions.trade(0, 0, wad(0.1), 0), s.traders[0])
    rpc(s.w3, "anvil_mine", [hex(20)])
    k1.on_block(s.w3.eth.block_number)
    assert k1.indexer.last_block is not None and k1.indexer.last_block > saved + 12
    k1.indexer.close()
    # Down: trades, a deposit, a new account, prices crash.
    s.dep.send(core.functions.trade(0, 0, wad(-0.05), 0), s.traders[1])
    s.dep.send(core.functions.deposit(0, 0, token_units(100, 6)), s.traders[2])
    s.dep.send(core.functions.deposit(1, 0, token_units(50, 6)), s.traders[3])
    s.crash(0.85)
    head = s.w3.eth.block_number
    caplog.set_level(logging.INFO, logger="plimsoll.liquidator")
    k2 = s.keeper(tmp_path, None, "k", dry_run=True, book_save_every=1)
    view = k2.cycle.cycle(head)
    assert k2.cycle.start_path == "file"
    assert any("book loaded from file" in r.getMessage() for r in caplog.records)
    book = k2.cycle.book
    assert book is not None and book.block == head
    lens = _full_read(k2, head)
    assert lens.n_accounts == len(s.traders) + 1
    assert book.diff(lens) == []  # before any reconciliation
    full = s.keeper(tmp_path, None, "full", dry_run=True, full_reread=True)
    want = _liquidatable(full.cycle.cycle(head))
    assert want, "the crash should leave liquidatable accounts"
    assert _liquidatable(view) == want
    # The whole shard is reconciled after the load (small: at once), and nothing differed.
    assert k2.cycle.reconcile() == lens.n_accounts
    assert k2.cycle.mismatches == 0
    assert k2.metrics.book_load_seconds._value.get() > 0


def test_a_reorg_below_the_saved_block_while_down_takes_the_full_read(
    setup: Setup, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = setup
    snap = rpc(s.w3, "evm_snapshot", [])["result"]
    s.dep.send(s.dep.core.functions.trade(0, 0, wad(0.1), 0), s.traders[0])
    k1 = _start(s, tmp_path, "k", book_save_every=1)
    saved = k1.cycle.book.block  # type: ignore[union-attr]
    assert k1.cycle.saved[-1][0] == saved
    k1.indexer.close()
    assert rpc(s.w3, "evm_revert", [snap])["result"] is True
    # Another history: a different trade in the saved block's place, and more blocks.
    s.dep.send(s.dep.core.functions.trade(0, 0, wad(-0.2), 0), s.traders[4])
    rpc(s.w3, "anvil_mine", [hex(3)])
    head = s.w3.eth.block_number
    assert head > saved
    caplog.set_level(logging.INFO, logger="plimsoll.liquidator")
    k2 = s.keeper(tmp_path, None, "k", dry_run=True, book_save_every=1)
    k2.cycle.cycle(head)
    assert k2.cycle.start_path == "full read"
    assert any("a reorg while down" in r.getMessage() for r in caplog.records)
    book = k2.cycle.book
    assert book is not None and book.diff(_full_read(k2, head)) == []


@pytest.mark.parametrize("kind", ["garbage", "truncated", "foreign chain", "other shard"])
def test_a_damaged_or_foreign_book_file_is_refused_with_one_log_line_and_the_full_read(
    setup: Setup, tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    s = setup
    k1 = _start(s, tmp_path, "k", book_save_every=1)
    path = k1.cfg.book_path()
    book = k1.cycle.book
    assert book is not None
    h = k1.indexer._stored_hash(book.block)
    assert h is not None
    k1.indexer.close()
    if kind == "garbage":
        path.write_bytes(b"not a book\n" * 10)
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:-500])
    elif kind == "foreign chain":
        book.save(path, block_hash=h, chain_id=1, core=k1.cycle.core)
    else:
        book.save(path, block_hash=h, chain_id=k1.cycle.chain_id, core=k1.cycle.core, shard=(1, 2))
    s.dep.set_price(1, 1900)
    head = s.w3.eth.block_number
    caplog.set_level(logging.INFO, logger="plimsoll.liquidator")
    k2 = s.keeper(tmp_path, None, "k", dry_run=True, book_save_every=1)
    k2.cycle.cycle(head)
    assert k2.cycle.start_path == "full read"
    refused = [r for r in caplog.records if "saved book not used" in r.getMessage()]
    assert len(refused) == 1
    assert k2.cycle.book is not None and k2.cycle.book.diff(_full_read(k2, head)) == []


def test_a_save_that_fails_midway_leaves_the_good_file(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = setup
    k = _start(s, tmp_path, "k", book_save_every=1)
    path = k.cfg.book_path()
    good = path.read_bytes()
    book = k.cycle.book
    assert book is not None

    def dies(f: Any, **arrays: Any) -> None:
        f.write(b"PK\x03\x04 half a zip")  # the disk filled up, the process was killed, ...
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", dies)
    with pytest.raises(OSError):
        book.save(path, block_hash="0x00", chain_id=k.cycle.chain_id, core=k.cycle.core)
    assert path.read_bytes() == good
    assert not Path(f"{path}.tmp").exists()
    # The keeper logs the failed save and carries on.
    s.dep.set_price(1, 1950)
    k.on_block(s.w3.eth.block_number)
    monkeypatch.undo()
    loaded, _ = AccountBook.load(path, chain_id=k.cycle.chain_id, core=k.cycle.core)
    assert loaded.keys == book.keys


# ---------------------------------------------------------------------------------- unit

I256 = st.integers(min_value=-(2**127), max_value=2**127 - 1)
SUB = st.one_of(st.integers(0, 10), st.integers(0, 2**256 - 1))


@st.composite
def books(draw: st.DrawFn) -> AccountBook:
    nm, na = draw(st.integers(0, 4)), draw(st.integers(0, 3))
    n = draw(st.integers(0, 12))
    book = AccountBook(nm, na)
    owners = [f"0x{i:040X}" for i in range(n)]
    subs = draw(st.lists(SUB, min_size=n, max_size=n))
    book.rows_of(list(zip(owners, subs, strict=True)))
    rows = np.arange(n, dtype=np.int64)
    for col, width in (
        (book.cash, None),
        (book.bal, na),
        (book.size, nm),
        (book.on, nm),
        (book.entry, nm),
    ):
        count = n if width is None else n * width
        vals = draw(st.lists(I256, min_size=count, max_size=count))
        arr = np.array(vals + [0], dtype=object)[:-1]
        col.set(rows, arr if width is None else arr.reshape(n, width))
    book.flags[:n] = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    x = draw(
        st.lists(
            st.floats(allow_nan=False, allow_infinity=False),
            min_size=n * book._width(),
            max_size=n * book._width(),
        )
    )
    book.X[:n] = np.array(x, dtype=np.float64).reshape(n, book._width())
    book.block = draw(st.integers(0, 2**40))
    return book


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=books())
def test_save_load_round_trip_keeps_every_column_exactly(
    tmp_path_factory: pytest.TempPathFactory, book: AccountBook
) -> None:
    path = tmp_path_factory.mktemp("book") / "b.npz"
    block_hash = "0x" + "12" * 32
    size = book.save(path, block_hash=block_hash, chain_id=31337, core=CORE, shard=(1, 3))
    assert size == path.stat().st_size
    got, h = AccountBook.load(path, chain_id=31337, core=CORE, shard=(1, 3))
    assert h == block_hash
    assert got.block == book.block and len(got) == len(book)
    assert (got.nm, got.na) == (book.nm, book.na)
    assert got.keys == book.keys
    assert all(got.index[k] == i for i, k in enumerate(book.keys))
    rows = np.arange(len(book), dtype=np.int64)
    for name in ("cash", "bal", "size", "on", "entry"):
        a, b = getattr(got, name).get(rows), getattr(book, name).get(rows)
        assert np.array_equal(a, b), name
    assert np.array_equal(got.flags[: len(book)], book.flags[: len(book)])
    assert np.array_equal(got.X[: len(book)], book.X[: len(book)])
    with pytest.raises(BookFileError, match="chain_id"):
        AccountBook.load(path, chain_id=1, core=CORE, shard=(1, 3))
    with pytest.raises(BookFileError, match="shard"):
        AccountBook.load(path, chain_id=31337, core=CORE)
