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
import random
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

from keeper_anvil import FEEDS, GAS, MARKET_UNITS, Sender, populate  # noqa: E402
from keeper_cycle import NA, NM, PRICES, accounts, market  # noqa: E402

from keepers.book_cycle import BookCycle  # noqa: E402
from keepers.ops import KeeperMetrics  # noqa: E402
from plimsoll.book import AccountBook  # noqa: E402
from plimsoll.chain import LocalNode  # noqa: E402
from plimsoll.deploy import FEED_DECIMALS, deploy_local  # noqa: E402
from plimsoll.sync import AccountIndexer, RpcClient, StateReader  # noqa: E402
from plimsoll.units import token_units, wad  # noqa: E402

CORE = "0x" + "11" * 20


def synthetic(rows: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    m = market(1, list(PRICES), 1_000_000)
    book = AccountBook(NM, NA)
    t = time.perf_counter()
    for lo in range(0, rows, 50_000):
        book.write(accounts(rng, lo, min(rows, lo + 50_000), m))
    book.set_markets(m)
    book.applied(1)
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
    rng = random.Random(seed)
    n_senders = 200
    extra = ["--block-base-fee-per-gas", "0"]
    with LocalNode(accounts=n_senders + 1, extra=extra) as w3, tempfile.TemporaryDirectory() as tmp:
        dep = deploy_local(w3, series=True)
        senders = list(w3.eth.accounts)[1:]
        made = populate(dep, senders, n, rng)
        keys = made.pop("keys")
        lens = dep.contracts["PlimsollLens"].address
        core = dep.core.address
        chain = int(w3.eth.chain_id)
        book_file = Path(tmp) / "keeper.sqlite.book.npz"

        def keeper() -> BookCycle:
            rpc = RpcClient(w3)
            ix = AccountIndexer(
                w3,
                core,
                Path(tmp) / "keeper.sqlite",
                dep.block,
                rpc=rpc,
                options=dep.contracts["OptionsMarket"].address,
                rescan_every=0,
            )
            reader = StateReader(w3, core, lens, rpc=rpc)
            return BookCycle(
                ix, reader, KeeperMetrics(), (0, 1), 1, 100, False, book_file, 1, chain, core
            )

        first = keeper()
        t = time.perf_counter()
        first.cycle(w3.eth.block_number)
        sync_s = time.perf_counter() - t
        first.reconcile()  # saves (save_every 1)
        _, save_s, size = first.saved[-1]
        first.indexer.close()
        # Down for ``down`` blocks: prices move, ``touched`` accounts trade or deposit a block.
        feeds = [dep.feeds[f] for f in FEEDS]
        tx = Sender(w3, [dep.admin, *senders])
        px = [2000.0, 60_000.0, 150.0]
        for _ in range(down):
            for j, f in enumerate(feeds):
                px[j] *= 1 + rng.gauss(0, 0.002)
                tx.add(dep.admin, f.functions.updateAnswer(int(px[j] * 10**FEED_DECIMALS)), 250_000)
            for _ in range(touched):
                owner, sub = keys[rng.randrange(len(keys))]
                if rng.random() < 0.5:
                    fn = dep.core.functions.deposit(sub, 0, token_units(10, 6))
                    tx.add(owner, fn, GAS["deposit"])
                else:
                    m = rng.randrange(3)
                    size_ = MARKET_UNITS[m] * 0.05 * (1 if rng.random() < 0.5 else -1)
                    fn = dep.core.functions.trade(sub, m, wad(round(size_, 6)), 0)
                    tx.add(owner, fn, GAS["trade"])
            tx.flush(mine_each=False)
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
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
