"""Make sure brownie's network-config.yaml has the local networks Plimsoll uses.

Usage: python tools/brownie_networks.py [PATH]   (default: ~/.brownie/network-config.yaml)

- `development` (brownie's default network): anvil on port 8545 with base fee 0. Brownie 1.22's
  built-in file already says so; an older file that launches ganache there is corrected.
- `ganache-local`: ganache 7 (node_modules/.bin/ganache) on port 8546, shanghai hardfork, for
  cross-checking on a second chain: `brownie test --network ganache-local`.

`cmd` must be a bare name found on PATH (an absolute path makes brownie mistake anvil for
ganache), so PATH must include node_modules/.bin (the Makefile exports it).
Idempotent: the file is rewritten only if something changed.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

DEVELOPMENT: dict[str, Any] = {
    "name": "Anvil",
    "id": "development",
    "cmd": "anvil",
    "host": "http://127.0.0.1",
    "cmd_settings": {"port": 8545, "gas_limit": 30000000, "accounts": 10, "base_fee": 0},
}
GANACHE: dict[str, Any] = {
    "name": "Ganache 7 (local, shanghai)",
    "id": "ganache-local",
    "cmd": "ganache",
    "host": "http://127.0.0.1",
    "cmd_settings": {
        "port": 8546,
        "gas_limit": 30000000,
        "accounts": 10,
        "evm_version": "shanghai",
        "mnemonic": "brownie",
        "chain_id": 1337,
    },
}


def default_config() -> Path:
    spec = importlib.util.find_spec("brownie")
    if spec is None or spec.origin is None:
        raise SystemExit("brownie is not installed in this interpreter")
    return Path(spec.origin).parent / "data" / "network-config.yaml"


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else Path.home() / ".brownie" / "network-config.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(default_config(), path)
    text = path.read_text()
    data = yaml.safe_load(text) or {}
    dev_list: list[dict[str, Any]] = data.setdefault("development", [])
    changed = False

    by_id = {n.get("id"): n for n in dev_list}
    dev = by_id.get("development")
    if dev is None:
        dev_list.insert(0, dict(DEVELOPMENT))
        changed = True
    elif dev.get("cmd") != "anvil":
        dev.clear()
        dev.update(DEVELOPMENT)
        changed = True
    elif (dev.get("cmd_settings") or {}).get("base_fee") != 0:
        dev.setdefault("cmd_settings", {})["base_fee"] = 0
        changed = True

    if by_id.get("ganache-local") != GANACHE:
        dev_list[:] = [n for n in dev_list if n.get("id") != "ganache-local"] + [dict(GANACHE)]
        changed = True

    if changed:
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        print(f"[setup] updated {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
