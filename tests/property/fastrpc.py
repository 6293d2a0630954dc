"""Thin, fast JSON-RPC access to a local node for the property tests.

web3.py's contract machinery costs milliseconds per call; a stateful run makes ~6000 steps, each
reading ~90 values. Here calldata is ABI-encoded once, reads go out as one JSON-RPC batch of
``eth_call`` and results are decoded with eth_abi directly. Transactions are simulated with
``eth_call`` first (a revert comes back decoded, nothing is mined), then sent with a fixed gas
limit; with automine the receipt is available at once.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests
from eth_abi import decode as abi_decode
from web3.contract import Contract

from plimsoll.chain import ErrorDecoder, _abi_type
from plimsoll.errors import ContractRevert


class RpcError(Exception):
    pass


def _flat(types: list[str]) -> list[str] | None:
    """The static word types of an ABI type list, tuples flattened; None if any is dynamic."""
    out: list[str] = []
    for t in types:
        if t.startswith("("):
            if not t.endswith(")"):
                return None  # array of tuples
            inner = _split(t[1:-1])
            sub = _flat(inner)
            if sub is None:
                return None
            out.append("(")
            out.extend(sub)
            out.append(")")
        elif t.endswith("]") or t in ("string", "bytes"):
            return None
        else:
            out.append(t)
    return out


def _split(s: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        parts.append(cur)
    return parts


@dataclass(frozen=True)
class Call:
    """An encoded contract call and how to decode its result."""

    to: str
    data: str
    out_types: tuple[str, ...]
    label: str

    def decode(self, raw: str) -> Any:
        flat = _flat(list(self.out_types))
        if flat is None:
            values = abi_decode(list(self.out_types), bytes.fromhex(raw[2:]))
            return values[0] if len(values) == 1 else values
        # Static types only: one 32-byte word each, decoded by hand (eth_abi is ~100x slower).
        stack: list[list[Any]] = [[]]
        w = 2
        for t in flat:
            if t == "(":
                stack.append([])
                continue
            if t == ")":
                done = tuple(stack.pop())
                stack[-1].append(done)
                continue
            word = int(raw[w : w + 64], 16)
            w += 64
            if t.startswith("int"):
                bits = int(t[3:] or 256)
                if word >= 1 << 255:
                    word -= 1 << 256
                assert -(1 << (bits - 1)) <= word < 1 << (bits - 1)
                stack[-1].append(word)
            elif t == "bool":
                stack[-1].append(word != 0)
            elif t == "address":
                stack[-1].append("0x" + raw[w - 40 : w])
            else:
                stack[-1].append(word)
        values = stack[0]
        return values[0] if len(values) == 1 else tuple(values)


def _fn_abi(contract: Contract, name: str, nargs: int) -> dict[str, Any]:
    for item in contract.abi:
        if item.get("type") == "function" and item["name"] == name and len(item["inputs"]) == nargs:
            return item
    raise KeyError(name)


def call(contract: Contract, name: str, *args: Any) -> Call:
    abi = _fn_abi(contract, name, len(args))
    outs = tuple(_abi_type(o) for o in abi["outputs"])
    return Call(contract.address, contract.encode_abi(name, args=list(args)), outs, f"{name}{args}")


class FastRpc:
    def __init__(
        self, url: str, decoder: ErrorDecoder, gas: int = 8_000_000, parallel: int = 3
    ) -> None:
        self.url = url
        self.decoder = decoder
        self.gas = hex(gas)
        self.session = requests.Session()
        self._ids = itertools.count(1)
        self.parallel = parallel
        self._sessions = [requests.Session() for _ in range(parallel)]
        self._pool = ThreadPoolExecutor(parallel)

    def _post(self, k: int, body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._sessions[k].post(self.url, json=body, timeout=60).json()  # type: ignore[no-any-return]

    def close(self) -> None:
        self._pool.shutdown()
        for s in [self.session, *self._sessions]:
            s.close()

    # ------------------------------------------------------------------ raw
    def request(self, method: str, params: list[Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        resp = self.session.post(self.url, json=body, timeout=60).json()
        if "error" in resp:
            raise RpcError(resp["error"])
        return resp["result"]

    def batch(self, calls: list[Call]) -> list[Any]:
        """All ``calls`` at one block, as JSON-RPC batches sent in parallel (the node answers
        them on several threads); decoded values in order."""
        block = self.request("eth_blockNumber", [])
        base = next(self._ids) * 100_000
        body = [
            {
                "jsonrpc": "2.0",
                "id": base + i,
                "method": "eth_call",
                "params": [{"to": c.to, "data": c.data}, block],
            }
            for i, c in enumerate(calls)
        ]
        n = self.parallel
        chunk = -(-len(body) // n)
        parts = [body[k * chunk : (k + 1) * chunk] for k in range(n)]
        futures = [self._pool.submit(self._post, k, part) for k, part in enumerate(parts) if part]
        by_id = {r["id"]: r for f in futures for r in f.result()}
        out = []
        for i, c in enumerate(calls):
            r = by_id[base + i]
            if "error" in r:
                raise RpcError(f"{c.label}: {r['error']}")
            out.append(c.decode(r["result"]))
        return out

    def read(self, c: Call) -> Any:
        return self.batch([c])[0]

    # ------------------------------------------------------------------ transactions
    def transact(self, sender: str, c: Call) -> dict[str, Any]:
        """Send ``c`` from unlocked ``sender``; raise the decoded :class:`ContractRevert` if it
        would revert (simulated first, so a revert mines nothing). Returns the receipt."""
        tx = {"from": sender, "to": c.to, "data": c.data, "gas": self.gas}
        try:
            self.request("eth_call", [tx, "latest"])
        except RpcError as exc:
            err = exc.args[0]
            data = err.get("data") if isinstance(err, dict) else None
            if isinstance(data, dict):  # some nodes nest it
                data = data.get("data")
            if isinstance(data, str) and data.startswith("0x"):
                raise self.decoder.decode(data) from None
            raise
        tx_hash = self.request("eth_sendTransaction", [tx])
        receipt = self.request("eth_getTransactionReceipt", [tx_hash])
        if receipt is None:  # not automining: wait
            for _ in range(600):
                receipt = self.request("eth_getTransactionReceipt", [tx_hash])
                if receipt is not None:
                    break
        if receipt is None or int(receipt["status"], 16) != 1:
            raise ContractRevert("MinedRevert", {"tx": tx_hash, "call": c.label}, "0x")
        return receipt

    def snapshot(self) -> str:
        return str(self.request("evm_snapshot", []))

    def revert(self, snap: str) -> bool:
        return bool(self.request("evm_revert", [snap]))

    def increase_time(self, seconds: int) -> None:
        self.request("evm_increaseTime", [seconds])
        self.request("evm_mine", [])
