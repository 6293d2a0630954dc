"""The keeper's per-block cycle end to end on anvil (used by ``bench/keeper_cycle.py``).

A real deployment (``deploy_local``: 3 perps, 2 collateral assets, options with listed series)
gets ``n`` accounts from a few hundred funded senders: every account deposits cash, 40% also
WETH and 20% WBTC, each opens perps in one to three markets at 1x-4x (10%: one market at
5x-7x), and 5% trade an option (long or short, ETH series). Then, ``blocks`` times: the three
mock feeds move by a random walk of 0.2% (new Chainlink rounds), ``touched`` random accounts
deposit or trade, the clock moves 2 s and one block is mined (the last 40 blocks also fall 0.3%
each, -11%, so that accounts cross their MM while timed; nobody liquidates them). The keeper's
:class:`keepers.book_cycle.BookCycle` (the liquidation keeper's own object, over the real
indexer, lens reader and JSON-RPC) runs on the new head and is timed as the keeper's loop runs
it: the head block fetched, logs, market and changed-account reads, screen and exact check. The
options rows and the reconciliation (slice + window re-scan), which the keeper runs after the
block's transactions are out, are timed apart.

Afterwards: the book's liquidatable set is compared with a full exact read of every account at
the same block (it must be equal: ``missed`` 0, ``extra`` 0), and today's cycle
(``full_reread``: every account read through the lens and recomputed) is timed on the same chain.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from keepers.book_cycle import BookCycle, liquidatable_order
from keepers.ops import KeeperMetrics
from plimsoll.chain import LocalNode
from plimsoll.deploy import FEED_DECIMALS, Deployment, deploy_local
from plimsoll.margin import compute_margin
from plimsoll.sync import AccountIndexer, RpcClient, StateReader
from plimsoll.units import token_units, wad

GAS = {"mint": 120_000, "approve": 80_000, "deposit": 250_000, "trade": 900_000}
MARKET_UNITS = (1.0, 0.05, 20.0)  # a typical perp size per market [units]
FEEDS = (1, 2, 3)  # ETH, BTC, SOL (the collateral assets use 1 and 2)


def _rpc(w3: Any, method: str, params: list[Any]) -> Any:
    resp = w3.provider.make_request(method, params)
    if resp.get("error"):
        raise RuntimeError(f"{method}: {resp['error']}")
    return resp.get("result")


class Sender:
    """Unlocked ``eth_sendTransaction`` in JSON-RPC batches, explicit nonces and gas."""

    def __init__(self, w3: Any, senders: list[str]) -> None:
        self.w3 = w3
        self.nonce = {
            s: int(_rpc(w3, "eth_getTransactionCount", [s, "pending"]), 16) for s in senders
        }
        self.txs: list[dict[str, Any]] = []
        self.by_nonce: dict[tuple[str, int], dict[str, Any]] = {}

    def add(self, sender: str, fn: Any, gas: int) -> None:
        to = fn.address
        self.txs.append(
            {
                "from": sender,
                "to": to,
                "data": fn._encode_transaction_data(),
                "gas": hex(gas),
                "gasPrice": hex(10**9),
                "nonce": hex(self.nonce[sender]),
            }
        )
        self.by_nonce[(sender, self.nonce[sender])] = self.txs[-1]
        self.nonce[sender] += 1

    def flush(self, batch: int = 500, mine_each: bool = True) -> int:
        """Send what was added; mines after every batch until it is in blocks when
        ``mine_each``."""
        sent = 0
        for i in range(0, len(self.txs), batch):
            part = self.txs[i : i + batch]
            resps = self.w3.provider.make_batch_request(
                [("eth_sendTransaction", [t]) for t in part]
            )
            bad = [r for r in resps if r.get("error")]
            if bad:
                raise RuntimeError(f"send failed: {bad[0]['error']}")
            sent += len(part)
            while mine_each and int(_rpc(self.w3, "txpool_status", [])["pending"], 16):
                _rpc(self.w3, "evm_mine", [])  # a short pool: anvil drops from deep ones
        self.txs = []
        return sent

    def settle(self) -> int:
        """Mine until every transaction sent is in a block. Anvil sometimes drops one from a
        deep pool (a sender with hundreds queued), which leaves the rest waiting behind the gap:
        those are sent again. Returns how many were."""
        resent = 0
        for _ in range(200):
            while int(_rpc(self.w3, "txpool_status", [])["pending"], 16):
                _rpc(self.w3, "evm_mine", [])
            gaps = []
            for who, want in self.nonce.items():
                have = int(_rpc(self.w3, "eth_getTransactionCount", [who, "latest"]), 16)
                if have < want:
                    gaps.append(self.by_nonce[(who, have)])
            if not gaps:
                self.by_nonce.clear()
                return resent
            self.w3.provider.make_batch_request([("eth_sendTransaction", [t]) for t in gaps])
            resent += len(gaps)
        raise RuntimeError("transactions still missing after 200 rounds of re-sending")


def _check_receipts(w3: Any, first: int, last: int, verbose: bool = True) -> int:
    failed = 0
    for b in range(first, last + 1):
        if int(_rpc(w3, "eth_getBlockTransactionCountByNumber", [hex(b)]), 16) == 0:
            continue
        for r in _rpc(w3, "eth_getBlockReceipts", [hex(b)]):
            if int(r["status"], 16) != 1:
                failed += 1
                if not verbose:
                    continue
                tx = _rpc(w3, "eth_getTransactionByHash", [r["transactionHash"]])
                call = {k: tx[k] for k in ("from", "to", "input")}
                err = w3.provider.make_request("eth_call", [call, hex(b - 1)]).get("error")
                print("reverted:", tx["to"], tx["input"][:10], err, file=sys.stderr)
    return failed


def populate(dep: Deployment, senders: list[str], n: int, rng: random.Random) -> dict[str, Any]:
    """Open ``n`` accounts (subaccounts 0.. of each sender) with perps, collateral, options."""
    w3, core = dep.w3, dep.core
    opts = dep.contracts["OptionsMarket"]
    weth, wbtc = dep.token(1), dep.token(2)
    per = -(-n // len(senders))
    tx = Sender(w3, senders)
    for s in senders:
        tx.add(s, dep.cash.functions.mint(s, token_units(20_000, 6) * per), GAS["mint"])
        tx.add(s, weth.functions.mint(s, token_units(1, 18) * per), GAS["mint"])
        tx.add(s, wbtc.functions.mint(s, token_units("0.05", 8) * per), GAS["mint"])
        for t in (dep.cash, weth, wbtc):
            tx.add(s, t.functions.approve(core.address, 2**256 - 1), GAS["approve"])
    prices = [2000.0, 60_000.0, 150.0]
    series = [int(r["id"]) for r in dep.series if r["market"] == "ETH-PERP"]
    made = trades = options = 0
    keys: list[tuple[str, int]] = []
    for sub in range(per):
        for s in senders:
            if made == n:
                break
            cash = rng.uniform(1_000, 10_000)
            tx.add(
                s, core.functions.deposit(sub, 0, token_units(round(cash, 2), 6)), GAS["deposit"]
            )
            coll = 0.0
            if rng.random() < 0.4:
                q = round(rng.uniform(0.05, 1.0), 4)
                tx.add(s, core.functions.deposit(sub, 1, token_units(q, 18)), GAS["deposit"])
                coll += q * prices[0] * 0.8
            if rng.random() < 0.2:
                q = round(rng.uniform(0.001, 0.05), 6)
                tx.add(s, core.functions.deposit(sub, 2, token_units(q, 8)), GAS["deposit"])
                coll += q * prices[1] * 0.75
            high = rng.random() < 0.1
            if high:  # 10% at 5x-7x in ETH or BTC (IM 10%)
                markets = [rng.randrange(2)]
                budget = (cash + coll) * rng.uniform(5.0, 7.0)
            else:  # notional 1x-4x of the deposits in one to three markets (IM 10-20%)
                markets = rng.sample(range(3), rng.choice((1, 1, 1, 2, 3)))
                budget = (cash + coll) * rng.uniform(1.0, 4.0)
            k = len(markets)
            for m in markets:
                size = budget / k / prices[m] * (1 if rng.random() < 0.5 else -1)
                tx.add(s, core.functions.trade(sub, m, wad(round(size, 6)), 0), GAS["trade"])
                trades += 1
            if series and not high and rng.random() < 0.05:
                # The option's margin on top of the perps': 2,000 USDC more.
                tx.add(s, core.functions.deposit(sub, 0, token_units(2_000, 6)), GAS["deposit"])
                q = round(rng.uniform(0.1, 1.0), 3) * (1 if rng.random() < 0.5 else -1)
                tx.add(s, opts.functions.trade(sub, rng.choice(series), wad(q), 0), GAS["trade"])
                options += 1
            keys.append((s, sub))
            made += 1
    t0 = time.perf_counter()
    _rpc(w3, "evm_setAutomine", [False])
    first = w3.eth.block_number + 1
    sent = tx.flush()
    resent = tx.settle()
    last = w3.eth.block_number
    seconds = time.perf_counter() - t0
    failed = _check_receipts(w3, first, last)
    if failed:
        raise RuntimeError(f"{failed} of {sent} set-up transactions reverted")
    return {
        "transactions": sent,
        "accounts": made,
        "perp_trades": trades,
        "option_trades": options,
        "resent_after_anvil_dropped_them": resent,
        "seconds": round(seconds, 1),
        "keys": keys,
    }


def _liquidatable(state: Any, result: Any) -> set[tuple[str, int]]:
    flags = state.flags if state.flags is not None else np.zeros(state.n_accounts)
    order = liquidatable_order(result, flags)
    return {(state.owners[i], int(state.subaccounts[i])) for i in order}


class BenchChain:
    """A populated anvil (see :func:`populated`): keepers over it and blocks of activity."""

    def __init__(
        self,
        w3: Any,
        dep: Deployment,
        senders: list[str],
        made: dict[str, Any],
        tmp: Path,
        rng: random.Random,
    ) -> None:
        self.w3, self.dep, self.senders, self.tmp, self.rng = w3, dep, senders, tmp, rng
        self.keys: list[tuple[str, int]] = made.pop("keys")
        self.made = made
        self.tx = Sender(w3, [dep.admin, *senders])
        self.px = [2000.0, 60_000.0, 150.0]
        self.feeds = [dep.feeds[f] for f in FEEDS]

    def keeper(self, db: str, full: bool = False, **kw: Any) -> tuple[BookCycle, RpcClient]:
        """A BookCycle built as keepers/liquidator.py builds it (new blocks only on the block's
        path, the window re-scan in its reconcile), over its own index file ``db``."""
        rpc = RpcClient(self.w3)
        dep = self.dep
        ix = AccountIndexer(
            self.w3,
            dep.core.address,
            self.tmp / db,
            dep.block,
            rpc=rpc,
            options=dep.contracts["OptionsMarket"].address,
            rescan_every=0,
        )
        reader = StateReader(
            self.w3, dep.core.address, dep.contracts["PlimsollLens"].address, rpc=rpc
        )
        return BookCycle(ix, reader, KeeperMetrics(), (0, 1), 1, 100, full, **kw), rpc

    def block(self, activity: int, drift: float = 0.0) -> int:
        """One block: a new round on each feed (a 0.2% random walk plus ``drift``),
        ``activity`` random accounts depositing or trading, the clock 2 s on."""
        dep, tx, rng = self.dep, self.tx, self.rng
        for j, f in enumerate(self.feeds):
            self.px[j] *= 1 + drift + rng.gauss(0, 0.002)
            tx.add(
                dep.admin, f.functions.updateAnswer(int(self.px[j] * 10**FEED_DECIMALS)), 250_000
            )
        for _ in range(activity):
            owner, sub = self.keys[rng.randrange(len(self.keys))]
            if rng.random() < 0.5:
                fn = dep.core.functions.deposit(sub, 0, token_units(10, 6))
                tx.add(owner, fn, GAS["deposit"])
            else:
                m = rng.randrange(3)
                size = MARKET_UNITS[m] * 0.05 * (1 if rng.random() < 0.5 else -1)
                tx.add(
                    owner, dep.core.functions.trade(sub, m, wad(round(size, 6)), 0), GAS["trade"]
                )
        tx.flush(mine_each=False)
        _rpc(self.w3, "evm_increaseTime", [2])
        _rpc(self.w3, "evm_mine", [])
        return int(self.w3.eth.block_number)


@contextmanager
def populated(n: int, seed: int) -> Iterator[BenchChain]:
    """anvil with a deployment and ``n`` accounts (:func:`populate`), for the block of a with."""
    rng = random.Random(seed)
    extra = ["--block-base-fee-per-gas", "0"]
    with LocalNode(accounts=201, extra=extra) as w3, tempfile.TemporaryDirectory() as tmp:
        dep = deploy_local(w3, series=True)
        senders = list(w3.eth.accounts)[1:]
        made = populate(dep, senders, n, rng)
        yield BenchChain(w3, dep, senders, made, Path(tmp), rng)


def run(n: int, blocks: int, touched: int, seed: int, baseline_blocks: int = 5) -> dict[str, Any]:
    """The end-to-end figures for ``n`` accounts (keys as ``bench/keeper_cycle.py``'s)."""
    with populated(n, seed) as bc:
        w3 = bc.w3
        cyc, rpc = bc.keeper("book.sqlite")
        t = time.perf_counter()
        cyc.cycle(w3.eth.block_number)
        sync_s = time.perf_counter() - t
        cyc.cycle_ms.clear()
        times: list[float] = []
        round_trips: list[int] = []
        requests: list[int] = []
        exact_rows: list[int] = []
        flagged_rows: list[int] = []
        liq: list[int] = []
        block = bc.block

        recon_ms: list[float] = []
        options_ms: list[float] = []
        first_timed = int(w3.eth.block_number) + 1
        for i in range(blocks):
            # The last 40 blocks fall 0.3% a block (-11%): accounts cross MM while timed.
            block(touched, -0.003 if i >= blocks - 40 else 0.0)
            rpc.reset()
            t = time.perf_counter()
            # As the keeper's loop: the head (number, hash, parent) is what wakes it.
            latest = rpc.call("eth_getBlockByNumber", ["latest", False])
            view = cyc.cycle(int(latest["number"], 16), latest)
            times.append((time.perf_counter() - t) * 1000)
            round_trips.append(rpc.round_trips)
            requests.append(rpc.requests)
            t = time.perf_counter()
            _, _, flagged = view.options()
            options_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            cyc.reconcile()
            recon_ms.append((time.perf_counter() - t) * 1000)
            exact_rows.append(view.state.n_accounts)
            flagged_rows.append(len(flagged))
            liq.append(len(view.order))
        # Nothing missed: the book's liquidatable set equals a full exact read at the same block.
        book_set = {(view.state.owners[i], int(view.state.subaccounts[i])) for i in view.order}
        full_state = cyc.reader.read(list(cyc.book.keys) if cyc.book else [], view.block)
        truth = _liquidatable(full_state, compute_margin(full_state))
        refused = _check_receipts(w3, first_timed, view.block, verbose=False)
        # Today's cycle on the same chain: every account read and recomputed each block.
        base, _ = bc.keeper("full.sqlite", True)
        base.cycle(w3.eth.block_number)
        base_ms: list[float] = []
        for _ in range(baseline_blocks):
            head = block(touched)
            t = time.perf_counter()
            base.cycle(head)
            base_ms.append((time.perf_counter() - t) * 1000)
            cyc.cycle(head)  # the book keeps up (not timed)
            cyc.reconcile()
        # Its two parts apart (the component bench scales the read to larger books).
        everyone = list(cyc.book.keys) if cyc.book else []
        t = time.perf_counter()
        state = cyc.reader.read(everyone, head)
        read_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        compute_margin(state)
        compute_ms = (time.perf_counter() - t) * 1000
    p50, p99 = float(np.percentile(times, 50)), float(np.percentile(times, 99))
    baseline = float(np.median(base_ms))
    return {
        "accounts": n,
        "mode": "end to end on anvil (real contracts, indexer, lens reads over JSON-RPC)",
        "blocks": blocks,
        "touched_per_block": touched,
        "cycle_ms_p50": round(p50, 2),
        "cycle_ms_p99": round(p99, 2),
        "cycle_ms_max": round(max(times), 2),
        "baseline_ms": round(baseline, 1),
        "baseline_read_ms": round(read_ms, 1),
        "baseline_compute_ms": round(compute_ms, 1),
        "ratio": round(baseline / p99, 1),
        "sync_s": round(sync_s, 2),
        "options_rows_ms_p99": round(float(np.percentile(options_ms, 99)), 2),
        "reconcile_ms_p50": round(float(np.percentile(recon_ms, 50)), 2),
        "reconcile_ms_p99": round(float(np.percentile(recon_ms, 99)), 2),
        "http_round_trips_per_block": round(float(np.mean(round_trips)), 2),
        "rpc_requests_per_block": round(float(np.mean(requests)), 2),
        "exact_rows_per_block_mean": round(float(np.mean(exact_rows)), 1),
        "option_rows_per_block_mean": round(float(np.mean(flagged_rows)), 1),
        "liquidatable_per_block_mean": round(float(np.mean(liq)), 1),
        "liquidatable_at_end": len(truth),
        "missed": len(truth - book_set),
        "extra": len(book_set - truth),
        "reconciliation_mismatches": cyc.mismatches,
        "reconciled": cyc.reconciled,
        "activity_txs_refused": refused,  # trades over IM in the fall (the core refuses them)
        "setup": bc.made,
    }
