"""Benchmark: a full chain state sync of 10,000 accounts on anvil.

Creates the accounts as fast as anvil takes them (a few hundred funded senders, each
depositing into subaccounts 0..k-1; unlocked ``eth_sendTransaction`` in JSON-RPC batches with
explicit nonces and gas, automine off, blocks mined on demand), then times a full sync from
the deploy block: account discovery (``AccountIndexer``) and one ``MarginState`` read of every
account at the indexed head (``StateReader`` through ``PlimsollLens``). Reports wall time and
JSON-RPC requests, spot-checks the snapshot against the core's own views, and writes
``bench/results/sync.json``.

Usage::

    .venv/bin/python bench/sync_bench.py [--accounts 10000] [--senders 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plimsoll.chain import LocalNode  # noqa: E402
from plimsoll.deploy import Deployment, deploy_local  # noqa: E402
from plimsoll.sync import (  # noqa: E402
    AccountIndexer,
    RpcClient,
    StateReader,
    deploy_lens,
    sync_state,
)
from plimsoll.units import token_units, wad  # noqa: E402

GAS = {"mint": 120_000, "approve": 80_000, "deposit": 250_000, "trade": 600_000}


def _rpc(w3: Any, method: str, params: list[Any]) -> Any:
    resp = w3.provider.make_request(method, params)
    if resp.get("error"):
        raise RuntimeError(f"{method}: {resp['error']}")
    return resp.get("result")


def create_accounts(
    dep: Deployment,
    senders: list[str],
    n_accounts: int,
    trade_every: int,
    history_blocks: int,
    batch: int = 500,
) -> dict[str, Any]:
    """Open ``n_accounts`` subaccounts; every ``trade_every``-th one also opens a position.

    ``history_blocks`` empty blocks are mined between the batches, so that the accounts are
    spread over a history of that length (as on a live chain) instead of a few full blocks.
    """
    w3 = dep.w3
    core, usdc = dep.core, dep.cash
    per = -(-n_accounts // len(senders))
    amount = token_units(1_000, 6)
    data_mint = {
        s: usdc.functions.mint(s, amount * per)._encode_transaction_data() for s in senders
    }
    data_approve = usdc.functions.approve(core.address, 2**256 - 1)._encode_transaction_data()
    txs: list[dict[str, Any]] = []
    nonces = {s: int(_rpc(w3, "eth_getTransactionCount", [s, "latest"]), 16) for s in senders}

    def tx(sender: str, to: str, data: str, gas: int) -> None:
        txs.append(
            {
                "from": sender,
                "to": to,
                "data": data,
                "gas": hex(gas),
                "gasPrice": hex(10**9),
                "nonce": hex(nonces[sender]),
            }
        )
        nonces[sender] += 1

    for s in senders:
        tx(s, usdc.address, data_mint[s], GAS["mint"])
        tx(s, usdc.address, data_approve, GAS["approve"])
    made = 0
    trades = 0
    for sub in range(per):
        for s in senders:
            if made == n_accounts:
                break
            dep_data = core.functions.deposit(sub, 0, amount)._encode_transaction_data()
            tx(s, core.address, dep_data, GAS["deposit"])
            made += 1
            if trade_every and made % trade_every == 0:
                size = wad("0.01") if made % (2 * trade_every) else -wad("0.01")
                trade_data = core.functions.trade(sub, 0, size, 0)._encode_transaction_data()
                tx(s, core.address, trade_data, GAS["trade"])
                trades += 1

    t0 = time.perf_counter()
    _rpc(w3, "evm_setAutomine", [False])
    first_block = w3.eth.block_number + 1
    sent = 0
    empty_s = 0.0
    n_batches = -(-len(txs) // batch)
    gap = history_blocks // max(1, n_batches)
    for i in range(0, len(txs), batch):
        part = txs[i : i + batch]
        resps = w3.provider.make_batch_request([("eth_sendTransaction", [t]) for t in part])
        bad = [r for r in resps if r.get("error")]
        if bad:
            raise RuntimeError(f"send failed: {bad[0]['error']}")
        sent += len(part)
        _rpc(w3, "evm_mine", [])  # keep the pool short; blocks fill up to the gas limit
        if gap:
            te = time.perf_counter()
            _rpc(w3, "anvil_mine", [hex(gap)])
            empty_s += time.perf_counter() - te
    while int(_rpc(w3, "txpool_status", [])["pending"], 16):
        _rpc(w3, "evm_mine", [])
    _rpc(w3, "evm_setAutomine", [True])
    last_block = w3.eth.block_number
    seconds = time.perf_counter() - t0
    # Every transaction must have succeeded.
    failed = 0
    for b in range(first_block, last_block + 1):
        if int(_rpc(w3, "eth_getBlockTransactionCountByNumber", [hex(b)]), 16) == 0:
            continue
        for r in _rpc(w3, "eth_getBlockReceipts", [hex(b)]):
            failed += int(r["status"], 16) != 1
    if failed:
        raise RuntimeError(f"{failed} transactions reverted")
    return {
        "transactions": sent,
        "deposits": made,
        "trades": trades,
        "blocks": last_block - first_block + 1,
        "empty_blocks_interleaved": gap * n_batches,
        "seconds": round(seconds, 2),
        "empty_block_seconds": round(empty_s, 2),
        "tx_per_second_excluding_empty_blocks": round(sent / (seconds - empty_s), 1),
    }


def spot_check(dep: Deployment, state: Any, sample: int = 25) -> int:
    """Compare ``sample`` random rows with the core's per-account views at the same block."""
    core = dep.core
    at = {"block_identifier": state.block}
    rng = random.Random(7)
    rows = rng.sample(range(state.n_accounts), min(sample, state.n_accounts))
    for k in rows:
        owner, sub = state.owners[k], int(state.subaccounts[k])
        assert state.cash[k] == core.functions.getAccount(owner, sub).call(**at)[0]
        for m in range(state.n_markets):
            p = core.functions.getPosition(owner, sub, m).call(**at)
            assert (state.sizes[k, m], state.open_notional[k, m]) == (p[0], p[1])
            assert state.entry_funding_index[k, m] == p[2]
        for i in range(state.n_assets):
            assert state.balances[k, i] == core.functions.collateralBalance(owner, sub, i + 1).call(
                **at
            )
    return len(rows)


class Bar:
    """A minimal progress line on stderr."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self.last < 0.2:
            return
        self.last = now
        end = "\n" if done >= total else "\r"
        print(f"  {phase:5s} {done:>8d}/{total:<8d}", end=end, file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--senders", type=int, default=200)
    ap.add_argument("--trade-every", type=int, default=10, help="0: deposits only")
    ap.add_argument("--batch-size", type=int, default=500, help="accounts per eth_call")
    ap.add_argument("--calls-per-request", type=int, default=4)
    ap.add_argument(
        "--history-blocks", type=int, default=2_000, help="empty blocks spread between batches"
    )
    ap.add_argument("--chunk-size", type=int, default=1_000, help="blocks per eth_getLogs")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sync.json")
    args = ap.parse_args()

    extra = ["--block-base-fee-per-gas", "0"]
    with LocalNode(accounts=args.senders + 1, extra=extra) as w3:
        t0 = time.perf_counter()
        dep = deploy_local(w3)
        lens = deploy_lens(w3, dep.admin)
        setup_s = time.perf_counter() - t0
        senders = list(w3.eth.accounts)[1:]
        print(f"deployed in {setup_s:.1f}s; creating {args.accounts} accounts", file=sys.stderr)
        created = create_accounts(
            dep, senders, args.accounts, args.trade_every, args.history_blocks
        )
        print(f"created: {created}", file=sys.stderr)

        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "index.sqlite"
            rpc = RpcClient(w3)
            bar = Bar()
            ix = AccountIndexer(
                w3,
                dep.core.address,
                db,
                dep.block,
                chunk_size=args.chunk_size,
                rpc=rpc,
                progress=bar,
            )
            reader = StateReader(
                w3,
                dep.core.address,
                lens.address,
                batch_size=args.batch_size,
                calls_per_request=args.calls_per_request,
                rpc=rpc,
                progress=bar,
            )
            rpc.reset()  # the indexer's constructor asked for the chain id
            t0 = time.perf_counter()
            res = sync_state(ix, reader)
            total_s = time.perf_counter() - t0
            full = {
                "seconds": round(total_s, 3),
                "index_seconds": round(res.index_seconds, 3),
                "read_seconds": round(res.read_seconds, 3),
                "rpc_requests": res.rpc_requests,
                "http_round_trips": res.http_round_trips,
                "by_method": res.by_method,
                "blocks_scanned": ix.stats.to_block - ix.stats.from_block + 1,
                "logs": ix.stats.logs,
                "accounts": res.state.n_accounts,
                "block": res.state.block,
            }
            ix.close()
            assert res.state.n_accounts == args.accounts, res.state.n_accounts

            # A restart on the same checkpoint with one new block: incremental, not a re-scan.
            _rpc(w3, "evm_mine", [])
            rpc2 = RpcClient(w3)
            ix2 = AccountIndexer(w3, dep.core.address, db, dep.block, rpc=rpc2)
            reader2 = StateReader(w3, dep.core.address, lens.address, rpc=rpc2)
            rpc2.reset()
            t0 = time.perf_counter()
            res2 = sync_state(ix2, reader2)
            inc_s = time.perf_counter() - t0
            ix2.close()
            incremental = {
                "seconds": round(inc_s, 3),
                "index_seconds": round(res2.index_seconds, 3),
                "read_seconds": round(res2.read_seconds, 3),
                "rpc_requests": res2.rpc_requests,
                "http_round_trips": res2.http_round_trips,
                "by_method": res2.by_method,
            }
        checked = spot_check(dep, res.state)

    out = {
        "benchmark": "full chain state sync (AccountIndexer + StateReader via PlimsollLens)",
        "node": "anvil 1.7.1 (npm), automine off while creating accounts",
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "params": {
            "accounts": args.accounts,
            "senders": args.senders,
            "trade_every": args.trade_every,
            "batch_size": args.batch_size,
            "calls_per_request": args.calls_per_request,
            "chunk_size": args.chunk_size,
            "history_blocks": args.history_blocks,
            "markets": res.state.n_markets,
            "assets": res.state.n_assets,
        },
        "create": created,
        "full_sync": full,
        "restart_plus_one_block": incremental,
        "spot_checked_rows": checked,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
