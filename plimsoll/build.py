"""Compile the contracts with the project's solc stand-in and cache the artifacts.

The compiler is npm's solc behind ``tools/solc.js`` (native solc cannot be downloaded on our
machines). Settings match ``brownie-config.yaml`` and ``foundry.toml``: solc 0.8.28, optimizer
200 runs, via-IR (the core needs it to stay under the 24 KiB code-size limit), EVM shanghai
(the newest hardfork ganache 7 runs). Artifacts are cached in ``build/plimsoll/`` keyed by a hash
of every source and the settings, so a second build is instant.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plimsoll.errors import BuildError

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"
CACHE_DIR = ROOT / "build" / "plimsoll"

SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "viaIR": True,
    "evmVersion": "shanghai",
    "remappings": [
        "@openzeppelin/=node_modules/@openzeppelin/",
        "@chainlink/=node_modules/@chainlink/",
        "@prb/=node_modules/@prb/",
        "solady/=node_modules/solady/src/",
    ],
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    source: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_size: int


def _sources() -> list[Path]:
    return sorted(p for p in CONTRACTS.rglob("*.sol"))


def _fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256(json.dumps(SETTINGS, sort_keys=True).encode())
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def compiled_is_fresh() -> bool:
    """True when the cached artifacts match the sources (no compile needed)."""
    files = _sources()
    return bool(files) and (CACHE_DIR / f"artifacts-{_fingerprint(files)}.json").exists()


def compile_contracts(force: bool = False) -> dict[str, Artifact]:
    """Compile every contract under ``contracts/`` (cached) and return artifacts by name."""
    files = _sources()
    if not files:
        raise BuildError(f"no Solidity sources under {CONTRACTS}")
    key = _fingerprint(files)
    cache = CACHE_DIR / f"artifacts-{key}.json"
    if cache.exists() and not force:
        return _load(json.loads(cache.read_text()))
    solc = ROOT / "tools" / "solc.js"
    if not solc.exists():
        raise BuildError(f"{solc} missing: run `make setup`")
    sources = {str(f.relative_to(ROOT)): {"content": f.read_text()} for f in files}
    std_input = {"language": "Solidity", "sources": sources, "settings": SETTINGS}
    proc = subprocess.run(
        [
            "node",
            str(solc),
            "--base-path",
            str(ROOT),
            "--include-path",
            str(ROOT / "node_modules"),
            "--standard-json",
        ],
        input=json.dumps(std_input),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ},
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise BuildError(f"solc failed ({proc.returncode}): {proc.stderr.strip()[:2000]}")
    out = json.loads(proc.stdout)
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise BuildError("\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors))
    data: dict[str, Any] = {}
    for src, contracts in out["contracts"].items():
        if not src.startswith("contracts/"):
            continue
        for name, c in contracts.items():
            data[name] = {
                "source": src,
                "abi": c["abi"],
                "bytecode": c["evm"]["bytecode"]["object"],
                "deployed_size": len(c["evm"]["deployedBytecode"]["object"]) // 2,
            }
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for old in CACHE_DIR.glob("artifacts-*.json"):
        old.unlink()
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(cache)
    return _load(data)


#: Contracts whose calls the core forwards by delegatecall (its fallback to the configurator,
#: whose fallback goes on to the periphery): their ABI entries belong to the core's address, so
#: the core's ABI is shown with them merged in.
DELEGATES = {"Plimsoll": ("PlimsollConfigurator", "PlimsollPeriphery")}


#: Contracts whose errors bubble up through another's calls (the core calls the oracle router
#: and the options market; the pool and the options market call the core): the errors of the
#: callees are merged into the caller's shipped ABI, so that every revert a call can return is
#: decodable from the ABI the SDK ships (cast and explorers take the same file).
ERRORS_FROM = {
    "Plimsoll": ("OracleRouter", "OptionsMarket"),
    "LiquidityPool": (
        "Plimsoll",
        "PlimsollConfigurator",
        "PlimsollPeriphery",
        "OracleRouter",
        "OptionsMarket",
    ),
    "OptionsMarket": ("Plimsoll", "PlimsollConfigurator", "PlimsollPeriphery", "OracleRouter"),
    "PlimsollLens": (
        "Plimsoll",
        "PlimsollConfigurator",
        "PlimsollPeriphery",
        "OracleRouter",
        "OptionsMarket",
    ),
}


def _abi_key(entry: dict[str, Any]) -> str:
    types = ",".join(str(i.get("type")) for i in entry.get("inputs", []))
    return f"{entry.get('type')}:{entry.get('name', '')}({types})"


def merged_abi(core: list[dict[str, Any]], *extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``core`` plus every entry of ``extra`` it lacks (by type, name and input types);
    constructors, fallbacks and receive functions of ``extra`` are left out."""
    seen = {_abi_key(e) for e in core}
    out = list(core)
    for abi in extra:
        for e in abi:
            if e.get("type") in ("constructor", "fallback", "receive") or _abi_key(e) in seen:
                continue
            seen.add(_abi_key(e))
            out.append(e)
    return out


def _load(data: dict[str, Any]) -> dict[str, Artifact]:
    arts = {
        name: Artifact(name, d["source"], d["abi"], d["bytecode"], d["deployed_size"])
        for name, d in data.items()
    }
    for name, delegates in DELEGATES.items():
        if name in arts and all(d in arts for d in delegates):
            a = arts[name]
            abi = merged_abi(a.abi, *(arts[d].abi for d in delegates))
            arts[name] = Artifact(a.name, a.source, abi, a.bytecode, a.deployed_size)
    for name, callees in ERRORS_FROM.items():
        if name in arts:
            a = arts[name]
            errors = [
                [e for e in arts[c].abi if e.get("type") == "error"] for c in callees if c in arts
            ]
            arts[name] = Artifact(
                a.name, a.source, merged_abi(a.abi, *errors), a.bytecode, a.deployed_size
            )
    return arts


ABI_DIR = Path(__file__).resolve().parent / "abi"
#: The ABIs shipped with the package, so that the SDK and keepers need no compiler.
SHIPPED = (
    "Plimsoll",
    "LiquidityPool",
    "OracleRouter",
    "MockERC20",
    "MockFeed",
    "PlimsollLens",
    "OptionsMarket",
)


def export_abis(arts: dict[str, Artifact]) -> list[Path]:
    """Write ``plimsoll/abi/<Name>.json`` for every shipped contract that exists."""
    ABI_DIR.mkdir(exist_ok=True)
    written = []
    for name in SHIPPED:
        if name in arts:
            path = ABI_DIR / f"{name}.json"
            path.write_text(json.dumps(arts[name].abi, indent=1, sort_keys=True) + "\n")
            written.append(path)
    return written


def main() -> None:
    import sys

    arts = compile_contracts(force="--force" in sys.argv)
    for name, a in sorted(arts.items()):
        if a.bytecode:
            print(f"{name:24s} {a.deployed_size:6d} bytes  ({a.source})")
    if "--export-abi" in sys.argv:
        for path in export_abis(arts):
            print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
