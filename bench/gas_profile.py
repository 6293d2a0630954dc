"""Gas profile of one transaction by contract, function and source line.

Replays the gas snapshot's portfolio-margin scenario on a fresh anvil (scripts/gas_snapshot.py:
accounts with 1, 4 and 16 short ETH calls, a 12% rise, a witness liquidation of each), then
traces the chosen transaction (``debug_traceTransaction``, struct logs) and attributes each
opcode's gas to the source line the compiler's source map names for it (via-IR source maps:
inlined code is attributed to where it was written). Call opcodes are charged their own cost
only (the callee's opcodes are charged to the callee).

    .venv/bin/python bench/gas_profile.py                      # witness_liquidate_16
    .venv/bin/python bench/gas_profile.py --tx witness_liquidate_4 --lines 40 --trace /tmp/t.json

Printed: gas by contract, by function (the enclosing Solidity function of each line) and the
most expensive lines. A profiling aid for contract work, not a benchmark: figures add up to
the execution gas (receipt gasUsed minus the intrinsic 21,000 and calldata).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from coverage_check import block_end  # noqa: E402
from gas_snapshot import Clock, _options_gas  # noqa: E402

from plimsoll.build import SETTINGS, _sources  # noqa: E402
from plimsoll.chain import LocalNode  # noqa: E402
from plimsoll.deploy import deploy_local  # noqa: E402
from plimsoll.units import token_units  # noqa: E402

CALLS = {"CALL", "STATICCALL", "DELEGATECALL", "CALLCODE"}


def compile_maps() -> tuple[dict[str, dict[str, Any]], dict[int, str]]:
    """Deployed bytecode and source map of every contract, and source id -> path."""
    sources = {str(f.relative_to(ROOT)): {"content": f.read_text()} for f in _sources()}
    settings = dict(SETTINGS)
    settings["outputSelection"] = {
        "*": {"*": ["evm.deployedBytecode.object", "evm.deployedBytecode.sourceMap"]}
    }
    proc = subprocess.run(
        [
            "node",
            str(ROOT / "tools" / "solc.js"),
            "--base-path",
            str(ROOT),
            "--include-path",
            str(ROOT / "node_modules"),
            "--standard-json",
        ],
        input=json.dumps({"language": "Solidity", "sources": sources, "settings": settings}),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    out = json.loads(proc.stdout)
    ids = {v["id"]: k for k, v in out["sources"].items()}
    arts: dict[str, dict[str, Any]] = {}
    for src, cs in out["contracts"].items():
        for name, c in cs.items():
            d = c["evm"]["deployedBytecode"]
            arts[name] = {"code": bytes.fromhex(d["object"]), "map": d["sourceMap"], "src": src}
    return arts, ids


def pc_table(code: bytes, smap: str) -> dict[int, tuple[int, int, str]]:
    """pc -> (source offset, source id, jump type i/o/-) from a compressed source map."""
    entries = smap.split(";")
    pcs = []
    pc = 0
    while pc < len(code):
        pcs.append(pc)
        op = code[pc]
        pc += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    out: dict[int, tuple[int, int, str]] = {}
    s, f, j = -1, -1, "-"
    for i, e in enumerate(entries):
        parts = e.split(":")
        if parts and parts[0] != "":
            s = int(parts[0])
        if len(parts) > 2 and parts[2] != "":
            f = int(parts[2])
        if len(parts) > 3 and parts[3] != "":
            j = parts[3]
        if i < len(pcs):
            out[pcs[i]] = (s, f, j)
    return out


def _source(path: str) -> str:
    """A source file named by the compiler (the project's or an npm package's); '' if absent."""
    full = ROOT / path if (ROOT / path).exists() else ROOT / "node_modules" / path
    return full.read_text() if full.exists() else ""


def functions_of(path: str) -> list[tuple[int, int, str]]:
    """(start offset, end offset, name) of every function/modifier in a Solidity file."""
    text = _source(path)
    out = []
    for m in re.finditer(r"\b(function|modifier)\s+(\w+)|\bconstructor\b", text):
        name = m.group(2) or "constructor"
        brace = text.find("{", m.end())
        semi = text.find(";", m.end())
        if brace < 0 or (0 <= semi < brace):
            continue
        out.append((m.start(), block_end(text, brace), name))
    return out


def line_of(path: str, offset: int, cache: dict[str, list[int]]) -> int:
    if path not in cache:
        cache[path] = [i for i, ch in enumerate(_source(path)) if ch == "\n"]
    nl = cache[path]
    lo, hi = 0, len(nl)
    while lo < hi:
        mid = (lo + hi) // 2
        if nl[mid] < offset:
            lo = mid + 1
        else:
            hi = mid
    return lo + 1


def run_scenario(w3: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The gas snapshot's options scenario; returns (tx hashes by key, address -> name)."""
    dep = deploy_local(w3)
    accts = [str(x) for x in w3.eth.accounts]
    keeper = accts[4]
    clock = Clock(dep)
    clock.fund(keeper, 0, token_units(1_000, 6))
    clock.send(dep.core.functions.deposit(0, 0, token_units(100, 6)), keeper)
    hashes: dict[str, Any] = {}
    sent: list[Any] = []
    orig = clock.send

    def send(fn: Any, sender: str) -> Any:
        rcpt = orig(fn, sender)
        sent.append(rcpt)
        return rcpt

    clock.send = send  # type: ignore[method-assign]
    gas = _options_gas(dep, clock, accts[5:8], keeper)
    # The last three transactions are the witness liquidations (1, 4, 16 options).
    for n, rcpt in zip((1, 4, 16), sent[-3:], strict=True):
        assert int(rcpt["gasUsed"]) == gas[f"witness_liquidate_{n}"]
        hashes[f"witness_liquidate_{n}"] = rcpt["transactionHash"].hex()
    names = {c.address.lower(): name for name, c in dep.contracts.items()}
    for fid, feed in dep.feeds.items():
        names[feed.address.lower()] = f"MockFeed#{fid}"
    return hashes, names


def fetch_trace(w3: Any, tx: str) -> dict[str, Any]:
    """Struct logs (stack kept, memory and storage dropped) and the receipt's to/gasUsed."""
    trace = w3.provider.make_request(
        "debug_traceTransaction", [tx, {"disableStorage": True, "enableMemory": False}]
    )["result"]
    rcpt = w3.eth.get_transaction_receipt(tx)
    keep = ("pc", "op", "gas", "gasCost", "depth")
    logs = [{k: st[k] for k in keep} | {"stack": st["stack"][-3:]} for st in trace["structLogs"]]
    return {"to": rcpt["to"].lower(), "gasUsed": int(rcpt["gasUsed"]), "structLogs": logs}


def _enclosing(funcs: list[tuple[int, int, str]], off: int) -> str:
    fn, best = "<top>", -1
    for a, b, f in funcs:
        if a <= off <= b and a > best:
            best, fn = a, f
    return fn


def profile(
    trace: dict[str, Any],
    names: dict[str, str],
    arts: dict[str, dict[str, Any]],
    ids: dict[int, str],
) -> dict[str, Any]:
    """Gas by call frame, opcode class, function (exclusive and inclusive) and source line.

    Internal calls are followed through the source map's jump marks: a JUMP marked "i" enters
    the function whose code the destination maps to, one marked "o" returns. via-IR inlines
    most small functions, so their gas is charged to the caller they were inlined into."""
    logs = trace["structLogs"]
    frames: list[tuple[str, list[str]]] = [(trace["to"], [])]  # code address, internal stack
    tables: dict[str, dict[int, tuple[int, int, str]]] = {}
    funcs: dict[str, list[tuple[int, int, str]]] = {}
    nl: dict[str, list[int]] = {}
    by_contract: dict[str, int] = defaultdict(int)
    by_op: dict[str, int] = defaultdict(int)
    excl: dict[str, int] = defaultdict(int)
    incl: dict[str, int] = defaultdict(int)
    by_line: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    enter_next = False
    for i, st in enumerate(logs):
        depth = st["depth"]
        del frames[depth:]
        addr, fstack = frames[depth - 1]
        nxt = logs[i + 1] if i + 1 < len(logs) else None
        op = st["op"]
        if op in CALLS and nxt is not None and nxt["depth"] > depth:
            target = "0x" + st["stack"][-2][2:].rjust(40, "0")[-40:]
            # Own cost: gas before the call minus gas after it, minus what the callee used.
            j = i + 1
            while j < len(logs) and logs[j]["depth"] > depth:
                j += 1
            callee_used = nxt["gas"] - logs[j - 1]["gas"] + logs[j - 1]["gasCost"]
            cost = st["gas"] - (logs[j]["gas"] if j < len(logs) else 0) - callee_used
            frames.append((target.lower(), []))
        elif nxt is not None and nxt["depth"] == depth:
            cost = st["gas"] - nxt["gas"]
        else:
            cost = st["gasCost"]
        name = names.get(addr, addr)
        base = name.split("#")[0]
        by_contract[name] += cost
        cls = op
        if op in ("SLOAD", "SSTORE"):
            cls = f"{op} {'cold' if cost >= 2100 else 'warm'}"
        elif op not in CALLS and not op.startswith("LOG"):
            cls = "compute"
        by_op[f"{name} {cls}"] += cost
        counts[f"{name} {cls}"] += 1
        art = arts.get(base)
        if art is None:
            continue
        if base not in tables:
            tables[base] = pc_table(art["code"], art["map"])
        off, fid, jmp = tables[base].get(st["pc"], (-1, -1, "-"))
        path = ids.get(fid)
        short = path.split("/")[-1] if path else "<generated>"
        if path is not None and path not in funcs:
            funcs[path] = functions_of(path)
        here = f"{short}:{_enclosing(funcs[path], off)}" if path else "<generated>"
        if enter_next:
            fstack.append(here)
            enter_next = False
        top = fstack[-1] if fstack else f"{base}:<entry>"
        excl[f"{base} {top}"] += cost
        for f in set(fstack):
            incl[f"{base} {f}"] += cost
        if path is not None and off >= 0:
            by_line[f"{short}:{line_of(path, off, nl)}"] += cost
        if op == "JUMP" and jmp == "i":
            enter_next = True
        elif op == "JUMP" and jmp == "o" and fstack:
            fstack.pop()
    return {
        "gasUsed": trace["gasUsed"],
        "counts": dict(counts),
        "by_contract": dict(by_contract),
        "by_op": dict(by_op),
        "exclusive": dict(excl),
        "inclusive": dict(incl),
        "by_line": dict(by_line),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--tx",
        default="witness_liquidate_16",
        choices=[f"witness_liquidate_{n}" for n in (1, 4, 16)],
    )
    ap.add_argument("--lines", type=int, default=30)
    ap.add_argument("--json", help="also write the profile here")
    ap.add_argument("--trace", help="trace file: read it if it exists, else write it")
    args = ap.parse_args(argv)
    arts, ids = compile_maps()
    if args.trace and Path(args.trace).exists():
        saved = json.loads(Path(args.trace).read_text())
        trace, names = saved["trace"], saved["names"]
    else:
        node = LocalNode(accounts=10, extra=["--steps-tracing"])
        with node as w3:  # stopped on any failure too
            hashes, names = run_scenario(w3)
            trace = fetch_trace(node_w3(node), hashes[args.tx])
        if args.trace:
            Path(args.trace).write_text(json.dumps({"trace": trace, "names": names}))
    prof = profile(trace, names, arts, ids)
    print(f"{args.tx}: gasUsed {prof['gasUsed']:,}")
    tables = (
        ("contract", "by_contract", 20),
        ("op class", "by_op", 20),
        ("function, inclusive", "inclusive", args.lines),
        ("function, exclusive", "exclusive", args.lines),
        ("line", "by_line", args.lines),
    )
    for title, key, n in tables:
        print(f"\n-- by {title}")
        for k, v in sorted(prof[key].items(), key=lambda kv: -kv[1])[:n]:
            print(f"{v:>9,}  {k}")
    if args.json:
        Path(args.json).write_text(json.dumps(prof, indent=1))
    return 0


def node_w3(node: LocalNode) -> Any:
    """A client of `node` with a long timeout (tracing a large transaction takes a while)."""
    from web3 import Web3

    return Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 600}))


if __name__ == "__main__":
    sys.exit(main())
