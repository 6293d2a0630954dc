"""Fast chain access for the margin parity test: batched transactions, a pinned-block reader.

Thousands of accounts are created with JSON-RPC batches of ``eth_sendTransaction`` (explicit
nonces and gas, no estimation: anvil automines each one; a reverting transaction is mined
with status 0 and simply has no effect). The :class:`MarginState` is read with batched
``eth_call`` at one pinned block from the core's own views (``getAccount``, ``getPosition``,
``collateralBalance``, ``assetConfig``, ``marketConfig``, ``marketState``) and
``OracleRouter.price`` - independently of ``plimsoll.sync``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import requests
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak
from web3.contract import Contract

from plimsoll.chain import _abi_type
from plimsoll.deploy import Deployment
from plimsoll.state import MarginState

WAD = 10**18
FEED_DECIMALS = 8
GAS = hex(3_000_000)


class Rpc:
    """Raw JSON-RPC to a local node, with batches."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self._id = 0

    def call(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        resp = self.session.post(
            self.url,
            json={"jsonrpc": "2.0", "id": self._id, "method": method, "params": params},
            timeout=120,
        ).json()
        if "error" in resp:
            raise RuntimeError(f"{method}: {resp['error']}")
        return resp["result"]

    def batch(self, calls: list[tuple[str, list[Any]]], size: int = 400) -> list[Any]:
        """Results in order; a failed call gives its error object (a dict with ``error``)."""
        out: list[Any] = []
        for i in range(0, len(calls), size):
            part = calls[i : i + size]
            base = self._id + 1
            self._id += len(part)
            body = [
                {"jsonrpc": "2.0", "id": base + k, "method": m, "params": p}
                for k, (m, p) in enumerate(part)
            ]
            got = {r["id"]: r for r in self.session.post(self.url, json=body, timeout=600).json()}
            for k in range(len(part)):
                r = got[base + k]
                out.append(r["result"] if "result" in r else {"error": r.get("error")})
        return out


@dataclass
class Tx:
    sender: str
    to: str
    data: str


class Sender:
    """Sends many transactions in batches with locally tracked nonces; waits until mined.

    anvil occasionally loses one transaction of a burst sent out of nonce order (the ones
    after it then sit in the queue): :meth:`wait` re-sends the first missing nonce of every
    sender whose queue does not move.
    """

    def __init__(self, rpc: Rpc) -> None:
        self.rpc = rpc
        self.nonces: dict[str, int] = {}
        self.sent: dict[tuple[str, int], dict[str, Any]] = {}

    def send(self, txs: list[Tx]) -> dict[str, int]:
        for s in {t.sender for t in txs} - set(self.nonces):
            self.nonces[s] = int(self.rpc.call("eth_getTransactionCount", [s, "pending"]), 16)
        # Rounds with at most one transaction per sender, in each sender's order: a burst
        # of one sender's nonces in a single batch makes anvil stall or lose transactions.
        rounds: list[list[tuple[str, list[Any]]]] = []
        depth: dict[str, int] = {}
        for t in txs:
            n = self.nonces[t.sender]
            self.nonces[t.sender] = n + 1
            tx = {"from": t.sender, "to": t.to, "data": t.data, "gas": GAS, "nonce": hex(n)}
            self.sent[(t.sender, n)] = tx
            k = depth.get(t.sender, 0)
            depth[t.sender] = k + 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(("eth_sendTransaction", [tx]))
        for calls in rounds:
            results = self.rpc.batch(calls)
            refused = [r for r in results if isinstance(r, dict)]
            if refused:
                raise RuntimeError(f"{len(refused)} transactions refused: {refused[0]}")
        self.wait()
        return {"sent": len(txs)}

    def wait(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            senders = list(self.nonces)
            got = self.rpc.batch([("eth_getTransactionCount", [s, "latest"]) for s in senders])
            lag = {
                s: int(g, 16)
                for s, g in zip(senders, got, strict=True)
                if int(g, 16) < self.nonces[s]
            }
            if not lag:
                return
            status = self.rpc.call("txpool_status", [])
            if time.monotonic() > deadline:
                raise TimeoutError(f"transactions not mined: {lag} {status}")
            if int(status["pending"], 16) == 0:
                # Nothing ready to mine: a nonce is missing. Re-send it (errors ignored: it
                # may have arrived meanwhile).
                self.rpc.batch(
                    [("eth_sendTransaction", [self.sent[(s, n)]]) for s, n in lag.items()]
                )
            # Automine mines one block per arrival, at most gas limit / GAS transactions each:
            # what is left of a burst waits for the next block.
            self.rpc.call("evm_mine", [])


_ABI_CACHE: dict[tuple[str, str], tuple[bytes, list[str], list[str]]] = {}


def _fn(contract: Contract, name: str) -> tuple[bytes, list[str], list[str]]:
    """Selector, input and output types of ``name`` (cached; web3's encoder is slow)."""
    key = (contract.address, name)
    if key not in _ABI_CACHE:
        for item in contract.abi:
            if item.get("type") == "function" and item["name"] == name:
                ins = [_abi_type(i) for i in item["inputs"]]
                outs = [_abi_type(o) for o in item["outputs"]]
                sel = keccak(text=f"{name}({','.join(ins)})")[:4]
                _ABI_CACHE[key] = (sel, ins, outs)
                break
        else:
            raise KeyError(name)
    return _ABI_CACHE[key]


def encode(contract: Contract, name: str, *args: Any) -> str:
    sel, ins, _ = _fn(contract, name)
    return "0x" + (sel + abi_encode(ins, list(args))).hex()


def _outputs(contract: Contract, name: str) -> list[str]:
    return _fn(contract, name)[2]


class Reader:
    """Batched ``eth_call`` of contract views at one block, decoded with eth_abi."""

    def __init__(self, rpc: Rpc, block: int) -> None:
        self.rpc = rpc
        self.block = hex(block)
        self._types: dict[tuple[str, str], list[str]] = {}

    def read(self, calls: list[tuple[Contract, str, tuple[Any, ...]]]) -> list[Any]:
        raw = self.rpc.batch(
            [
                ("eth_call", [{"to": c.address, "data": encode(c, name, *args)}, self.block])
                for c, name, args in calls
            ]
        )
        out = []
        for (c, name, args), r in zip(calls, raw, strict=True):
            if isinstance(r, dict):
                raise RuntimeError(f"{name}{args} failed: {r}")
            key = (c.address, name)
            if key not in self._types:
                self._types[key] = _outputs(c, name)
            vals = abi_decode(self._types[key], bytes.fromhex(r[2:]))
            out.append(vals[0] if len(vals) == 1 else vals)
        return out


def _obj(values: list[int], shape: tuple[int, ...]) -> Any:
    arr = np.empty(len(values), dtype=object)
    arr[:] = [int(v) for v in values]
    return arr.reshape(shape)


def read_state(
    dep: Deployment, rpc: Rpc, accounts: list[tuple[str, int]], block: int
) -> MarginState:
    """Every account's margin inputs at ``block``, from the core's views and the router."""
    core, oracle = dep.core, dep.oracle
    r = Reader(rpc, block)
    ts = int(rpc.call("eth_getBlockByNumber", [hex(block), False])["timestamp"], 16)
    nm = int(r.read([(core, "marketCount", ())])[0])
    na = int(r.read([(core, "assetCount", ())])[0])
    mcfg = r.read([(core, "marketConfig", (m,)) for m in range(nm)])
    mst = r.read([(core, "marketState", (m,)) for m in range(nm)])
    acfg = r.read([(core, "assetConfig", (a,)) for a in range(1, na + 1)])
    mprice = r.read([(oracle, "price", (c[0],)) for c in mcfg])
    aprice = r.read([(oracle, "price", (c[3],)) for c in acfg])
    scalars = r.read([(core, "volScalars", (m,)) for m in range(nm)])

    calls: list[tuple[Contract, str, tuple[Any, ...]]] = []
    for o, s in accounts:
        calls.append((core, "getAccount", (o, s)))
        calls += [(core, "getPosition", (o, s, m)) for m in range(nm)]
        calls += [(core, "collateralBalance", (o, s, a)) for a in range(1, na + 1)]
    got = r.read(calls)
    per = 1 + nm + na
    n = len(accounts)
    cash, sizes, on, entry, bal = [], [], [], [], []
    for i in range(n):
        row = got[i * per : (i + 1) * per]
        cash.append(row[0][0])
        for p in row[1 : 1 + nm]:
            sizes.append(p[0])
            on.append(p[1])
            entry.append(p[2])
        bal += list(row[1 + nm :])
    return MarginState(
        block=block,
        timestamp=ts,
        owners=[o for o, _ in accounts],
        subaccounts=np.array([s for _, s in accounts], dtype=np.int64),
        cash=_obj(cash, (n,)),
        balances=_obj(bal, (n, na)),
        sizes=_obj(sizes, (n, nm)),
        open_notional=_obj(on, (n, nm)),
        entry_funding_index=_obj(entry, (n, nm)),
        asset_decimals=np.array([c[1] for c in acfg], dtype=np.int64),
        asset_haircut=_obj([c[2] for c in acfg], (na,)),
        asset_price=_obj(aprice, (na,)),
        market_price=_obj(mprice, (nm,)),
        im_base=_obj([c[2] for c in mcfg], (nm,)),
        mm_factor=_obj([c[3] for c in mcfg], (nm,)),
        size_slope=_obj([c[5] for c in mcfg], (nm,)),
        max_funding_rate=_obj([c[6] for c in mcfg], (nm,)),
        skew_scale=_obj([c[7] for c in mcfg], (nm,)),
        long_oi=_obj([s[0] for s in mst], (nm,)),
        short_oi=_obj([s[1] for s in mst], (nm,)),
        funding_index=_obj([s[2] for s in mst], (nm,)),
        last_funding_time=_obj([s[3] for s in mst], (nm,)),
        im_scalar=_obj([v[0] for v in scalars], (nm,)),
        mm_scalar=_obj([v[1] for v in scalars], (nm,)),
    )


def read_contract_margins(
    dep: Deployment, rpc: Rpc, accounts: list[tuple[str, int]], block: int
) -> tuple[list[tuple[int, int, int]], list[bool]]:
    """``accountMargin`` and ``isLiquidatable`` of every account at ``block``."""
    r = Reader(rpc, block)
    core = dep.core
    margins = r.read([(core, "accountMargin", (o, s)) for o, s in accounts])
    liq = r.read([(core, "isLiquidatable", (o, s)) for o, s in accounts])
    return [tuple(int(v) for v in m) for m in margins], [bool(x) for x in liq]  # type: ignore[misc]


# ------------------------------------------------------------------------- populating


def warp(rpc: Rpc, seconds: int) -> None:
    rpc.call("evm_increaseTime", [seconds])
    rpc.call("evm_mine", [])


def post_prices(dep: Deployment, sender: Sender, answers: dict[int, int]) -> None:
    """Post raw feed answers (8 decimals); also makes every feed fresh after a warp."""
    sender.send(
        [
            Tx(dep.admin, dep.feeds[f].address, encode(dep.feeds[f], "updateAnswer", a))
            for f, a in answers.items()
        ]
    )


def configure_markets(dep: Deployment, sender: Sender, changes: dict[int, dict[str, int]]) -> None:
    """Replace market parameters (keys as ``IPlimsoll.MarketConfig``) through the admin."""
    keys = [
        "feedId",
        "enabled",
        "imBaseWad",
        "mmFactorWad",
        "takerFeeWad",
        "sizeSlopeWad",
        "maxFundingRateWad",
        "skewScale",
        "maxOpenInterest",
    ]
    txs = []
    for m, ch in changes.items():
        cfg = dict(zip(keys, dep.core.functions.marketConfig(m).call(), strict=True))
        cfg.update(ch)
        txs.append(
            Tx(
                dep.admin,
                dep.core.address,
                encode(dep.core, "configureMarket", m, tuple(cfg[k] for k in keys)),
            )
        )
    sender.send(txs)


def fund_owners(dep: Deployment, sender: Sender, owners: list[str]) -> None:
    """Mint plenty of every token to every owner and approve the core."""
    txs = []
    for o in owners:
        for asset_id in range(len(dep.assets) + 1):
            tok = dep.token(asset_id)
            txs.append(Tx(o, tok.address, encode(tok, "mint", o, 10**36)))
            txs.append(Tx(o, tok.address, encode(tok, "approve", dep.core.address, 2**256 - 1)))
    sender.send(txs)


def random_deposits(
    dep: Deployment, rng: random.Random, accounts: list[tuple[str, int]], dense: bool = False
) -> tuple[list[Tx], dict[tuple[str, int], float]]:
    """A random collateral mix per account (cash, WETH, WBTC; at least one; non-round amounts)
    and each account's rough collateral value [USD] for sizing trades."""
    core = dep.core
    txs = []
    budget: dict[tuple[str, int], float] = {}
    for o, s in accounts:
        use = [True] * 3 if dense else [rng.random() < p for p in (0.7, 0.5, 0.4)]
        if not any(use):
            use[rng.randrange(3)] = True
        value = 0.0
        if use[0]:
            amt = rng.randint(200, 60_000) * 10**6 + rng.randint(0, 10**6)
            txs.append(Tx(o, core.address, encode(core, "deposit", s, 0, amt)))
            value += amt / 1e6
        if use[1]:
            amt = rng.randint(5 * 10**16, 25 * 10**18)
            txs.append(Tx(o, core.address, encode(core, "deposit", s, 1, amt)))
            value += amt / 1e18 * 2000 * 0.8
        if use[2]:
            amt = rng.randint(2 * 10**5, 10**8)
            txs.append(Tx(o, core.address, encode(core, "deposit", s, 2, amt)))
            value += amt / 1e8 * 60000 * 0.75
        budget[(o, s)] = value
    return txs, budget


def random_trades(
    dep: Deployment,
    rng: random.Random,
    accounts: list[tuple[str, int]],
    prices: dict[int, float],
    budget: dict[tuple[str, int], float],
    dense: bool = False,
) -> list[Tx]:
    """Open random long/short positions worth up to a few times each account's collateral."""
    core = dep.core
    txs = []
    for o, s in accounts:
        markets = [m for m in range(3) if dense or rng.random() < 0.6] or [rng.randrange(3)]
        lev = rng.uniform(0.2, 6.0) / len(markets)
        for m in markets:
            notional = budget[(o, s)] * lev * rng.uniform(0.3, 1.0) * (0.4 if m == 2 else 1.0)
            size = int(notional / prices[m] * WAD) + rng.randint(0, 10**15)
            if rng.random() < 0.5:
                size = -size
            if size != 0:
                txs.append(Tx(o, core.address, encode(core, "trade", s, m, size, 0)))
    return txs


def answer(price: float, rng: random.Random) -> int:
    """A non-round 8-decimal feed answer near ``price``."""
    return int(price * 10**FEED_DECIMALS) + rng.randint(0, 10**FEED_DECIMALS - 1)
