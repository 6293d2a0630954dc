"""Local chains (anvil, ganache) and transaction helpers over web3.py.

:class:`LocalNode` starts a node from ``node_modules/.bin`` on a free port and stops it on exit.
:func:`send` sends a contract call as a transaction and turns a revert into a
:class:`~plimsoll.errors.ContractRevert` carrying the custom error's name and arguments.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError
from web3.types import TxReceipt

from plimsoll.errors import ChainError, ContractRevert

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "node_modules" / ".bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _exe(name: str) -> str:
    local = BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise ChainError(f"{name} not found in {BIN} or on PATH: run `make setup`")
    return found


class LocalNode:
    """An anvil (default) or ganache process on 127.0.0.1 for tests, demos and benchmarks.

    Parameters
    ----------
    kind : {"anvil", "ganache"}
    accounts : int
        Number of funded, unlocked accounts.
    block_time : float or None
        Seconds per block (interval mining); None mines one block per transaction.
    """

    def __init__(
        self,
        kind: str = "anvil",
        accounts: int = 10,
        block_time: float | None = None,
        port: int | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.kind = kind
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if kind == "anvil":
            cmd = [
                _exe("anvil"),
                "--port",
                str(self.port),
                "--accounts",
                str(accounts),
                "--balance",
                "1000000",
                "--silent",
                "--gas-limit",
                "60000000",
            ]
            if block_time is not None:
                cmd += ["--block-time", str(block_time)]
        elif kind == "ganache":
            cmd = [
                _exe("ganache"),
                "--server.port",
                str(self.port),
                "--wallet.totalAccounts",
                str(accounts),
                "--wallet.defaultBalance",
                "1000000",
                "--logging.quiet",
                "--chain.hardfork",
                "shanghai",
                "--miner.blockGasLimit",
                "60000000",
                "--chain.allowUnlimitedContractSize",
            ]
            if block_time is not None:
                cmd += ["--miner.blockTime", str(block_time)]
        else:
            raise ChainError(f"unknown node kind {kind!r}")
        self.cmd = cmd + (extra or [])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Web3:
        self.proc = subprocess.Popen(
            self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ}
        )
        w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 60}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise ChainError(f"{self.kind} exited with {self.proc.returncode}: {err[:500]}")
            try:
                if w3.is_connected():
                    return w3
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.05)
        self.stop()
        raise ChainError(f"{self.kind} did not answer on {self.url} within {timeout}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> Web3:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ErrorDecoder:
    """Maps 4-byte selectors of every custom error in a set of ABIs to names and arg types."""

    def __init__(self, abis: list[list[dict[str, Any]]]) -> None:
        self.by_selector: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = [_abi_type(i) for i in item["inputs"]]
                names = [i["name"] or f"arg{n}" for n, i in enumerate(item["inputs"])]
                sig = f"{item['name']}({','.join(types)})"
                self.by_selector[keccak(text=sig)[:4]] = (item["name"], types, names)

    def decode(self, data: str | bytes | None) -> ContractRevert:
        if data is None:
            return ContractRevert("Unknown", {}, "0x")
        raw = (
            bytes.fromhex(data[2:] if data.startswith("0x") else data)
            if isinstance(data, str)
            else data
        )
        hexdata = "0x" + raw.hex()
        sel, body = raw[:4], raw[4:]
        if sel == keccak(text="Error(string)")[:4]:
            return ContractRevert("Error", {"message": abi_decode(["string"], body)[0]}, hexdata)
        if sel == keccak(text="Panic(uint256)")[:4]:
            return ContractRevert("Panic", {"code": abi_decode(["uint256"], body)[0]}, hexdata)
        if sel in self.by_selector:
            name, types, names = self.by_selector[sel]
            values = abi_decode(types, body)
            return ContractRevert(name, dict(zip(names, values, strict=True)), hexdata)
        return ContractRevert("Unknown", {}, hexdata)


def _abi_type(inp: dict[str, Any]) -> str:
    t = str(inp["type"])
    if t.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in inp["components"])
        return f"({inner}){t[5:]}"
    return t


def revert_data(exc: Exception) -> str | None:
    """The raw revert data carried by a web3 exception, if any."""
    if isinstance(exc, ContractCustomError | ContractPanicError):
        data = exc.data if isinstance(exc.data, str) else None
        return data or (exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else None)
    if isinstance(exc, ContractLogicError):
        raw: Any = exc.data
        if isinstance(raw, dict) and isinstance(raw.get("result"), str):
            return str(raw["result"])  # ganache: {"result": "0x..."}
        return raw if isinstance(raw, str) else None
    return None


def send(
    fn: Any, sender: str, decoder: ErrorDecoder, gas: int | None = None, value: int = 0
) -> TxReceipt:
    """Send ``fn`` (a bound contract function) from an unlocked ``sender``; wait for the receipt.

    Raises :class:`ContractRevert` (decoded) if the call reverts in estimation or on chain.
    """
    tx: dict[str, Any] = {"from": sender, "value": value}
    if gas is not None:
        tx["gas"] = gas
    try:
        tx_hash = fn.transact(tx)
    except (ContractCustomError, ContractPanicError, ContractLogicError) as exc:
        raise decoder.decode(revert_data(exc)) from exc
    w3 = fn.w3
    receipt: TxReceipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    if receipt["status"] != 1:
        # Replay as a call at the failing block to recover the reason.
        try:
            fn.call({"from": sender, "value": value}, block_identifier=receipt["blockNumber"] - 1)
        except (ContractCustomError, ContractPanicError, ContractLogicError) as exc:
            raise decoder.decode(revert_data(exc)) from exc
        raise ContractRevert("Unknown", {"tx": tx_hash.hex()}, "0x")
    return receipt
