"""The keeper's restart from its saved book (keepers/book_cycle.py, plimsoll/book.py).

Two parts:

* ``synthetic``: a book of ``--rows`` accounts (default 1,000,000; the synthetic accounts of
  bench/keeper_cycle.py: 3 markets, 2 assets) saved to and loaded from an ``.npz`` file: file
  size, save and load seconds.
* ``anvil``: ``--accounts`` accounts (default 10,000; populated as bench/keeper_anvil.py does)
  on a real anvil with the real indexer and lens. The first start reads the shard in full
  (``sync_s``, today's path); the book is saved; ``--down`` blocks of activity happen while the
  keeper is down; the restart loads the file, fetches the missed blocks' logs and reads the
  accounts they name plus the market table (``restart_s``: the first cycle of the new process).
  The restarted book is compared with a full lens read at the head (``differ`` must be 0) and
  then reconciled in full (``mismatches`` must be 0).

Usage: ``.venv/bin/python bench/book_persist.py [--rows 1000000] [--accounts 10000]
[--skip-anvil] [--skip-synthetic]``; results in bench/results/book_persist.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from keeper_anvil import populated  # noqa: E402
from keeper_cycle import PRICES, market, synthetic_book  # noqa: E402

from keepers.book_cycle import BookCycle  # noqa: E402
from plimsoll.book import AccountBook  # noqa: E402

CORE = "0x" + "11" * 20


def synthetic(rows: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    m = market(1, list(PRICES), 1_000_000)
    t = time.perf_counter()
    book = synthetic_book(rng, rows, m)
    build_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
        path = Path(tmp) / "book.npz"
        t = time.perf_counter()
        size = book.save(path, block_hash="0x" + "00" * 32, chain_id=1, core=CORE)
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        got, _ = AccountBook.load(path, chain_id=1, core=CORE)
        load_s = time.perf_counter() - t
    got.set_markets(m)
    same = got.keys == book.keys and np.array_equal(got.X[:rows], book.X[:rows])
    sc_a, sc_b = book.screen(), got.screen()
    return {
        "rows": rows,
        "build_from_state_s": round(build_s, 2),
        "file_mb": round(size / 2**20, 1),
        "bytes_per_row": round(size / max(rows, 1), 1),
        "save_s": round(save_s, 2),
        "load_s": round(load_s, 2),
        "equal": bool(same and np.array_equal(sc_a.gap, sc_b.gap)),
    }


def anvil(n: int, down: int, touched: int, seed: int) -> dict[str, Any]:
    with populated(n, seed) as bc:
        w3 = bc.w3
        core = bc.dep.core.address
        book_file = bc.tmp / "keeper.sqlite.book.npz"

        def keeper() -> BookCycle:
            kw = {"book_file": book_file, "save_every": 1, "chain_id": int(w3.eth.chain_id)}
            return bc.keeper("keeper.sqlite", core=core, **kw)[0]

        first = keeper()
        t = time.perf_counter()
        first.cycle(w3.eth.block_number)
        sync_s = time.perf_counter() - t
        first.reconcile()  # saves (save_every 1)
        _, save_s, size = first.saved[-1]
        first.indexer.close()
        # Down for ``down`` blocks: prices move, ``touched`` accounts trade or deposit a block.
        for _ in range(down):
            bc.block(touched)
        head = int(w3.eth.block_number)
        again = keeper()
        t = time.perf_counter()
        view = again.cycle(head)
        restart_s = time.perf_counter() - t
        assert again.book is not None
        lens_state = again.reader.read(list(again.book.keys), head)
        differ = len(again.book.diff(lens_state))
        t = time.perf_counter()
        while True:
            again.reconcile()
            if again._recon_queue is None:
                break
        reconcile_s = time.perf_counter() - t
    return {
        "accounts": n,
        "down_blocks": down,
        "touched_per_block": touched,
        "sync_s": round(sync_s, 2),
        "restart_path": again.start_path,
        "restart_s": round(restart_s, 3),
        "load_s": round(again.load_s, 3),
        "restart_read_accounts": len(view.changed or ()),
        "book_file_mb": round(size / 2**20, 2),
        "save_s": round(save_s, 3),
        "differ": differ,
        "full_reconcile_s": round(reconcile_s, 2),
        "mismatches": again.mismatches,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--down", type=int, default=20)
    ap.add_argument("--touched", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-anvil", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "book_persist.json")
    a = ap.parse_args()
    out: dict[str, Any] = {"load_average": os.getloadavg()}
    if not a.skip_synthetic:
        out["synthetic"] = synthetic(a.rows, a.seed)
        print(json.dumps(out["synthetic"]), flush=True)
    if not a.skip_anvil:
        out["anvil"] = anvil(a.accounts, a.down, a.touched, a.seed)
        print(json.dumps(out["anvil"]), flush=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
