"""The liquidation keeper's configuration: every key, its default and its meaning, in one place.

A TOML file (``--config``) uses the keys below (``-`` or ``_``); flags on the command line win.
docs/keeper.md is the reference an operator reads (its table is generated from this class and
HELP).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from eth_account.signers.local import LocalAccount

from keepers.ops import ConfigError, merge_config, parse_shard, setup_logging
from plimsoll.keys import write_keystore


class _Parser(argparse.ArgumentParser):
    """Bad flags are a one-line ConfigError (exit 2 from main), not argparse's usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


@dataclass
class KeeperConfig:
    """Every key of the liquidation keeper (see docs/keeper.md)."""

    rpc: str
    deployment: Path
    db: Path = Path(".state/liquidator.sqlite")
    nonce_state: Path | None = None  # default: <db stem>-nonces.json beside the db
    keystore: Path | None = None
    password_file: Path | None = None
    dry_run: bool = False
    shard: tuple[int, int] = (0, 1)
    port: int | None = None
    poll_interval: float = 0.1
    probe_interval: float = 0.25
    max_backoff: float = 2.0
    max_per_block: int = 50
    priority_fee_gwei: float = 1.0
    max_tip_gwei: float = 100.0
    tip_percentile: float = 60.0
    tip_premium_pct: int = 0
    max_fee_gwei: float = 500.0
    bad_debt_max_fee_gwei: float = 5000.0
    stuck_blocks: int = 1
    min_profit_usd: float = 0.0
    gas_token_feed: int = 1
    eth_price_usd: float = 2000.0
    guard_move: float = 0.10
    loss_budget_usd_per_hour: float = 2000.0
    collateral_liquidation: bool = True
    recovery_purchases: bool = True
    recovery_max_usd_per_block: float = 250_000.0
    recovery_every_blocks: int = 1
    health_max_age: float = 5.0
    health_max_lag_blocks: int = 3
    kill_switch_file: Path | None = None
    breaker_failures: int = 10
    breaker_reset_seconds: float = 300.0
    private_rpc: str | None = None
    stop_after_seconds: float | None = None
    reconcile_every: int = 1
    reconcile_slice: int = 100
    full_reread: bool = False
    book_save_every: int = 100
    book_file: Path | None = None  # default: <db>.book.npz beside the db

    def nonce_state_path(self) -> Path:
        return self.nonce_state or self.db.with_name(self.db.stem + "-nonces.json")

    def book_path(self) -> Path:
        return self.book_file or self.db.with_name(self.db.name + ".book.npz")


HELP: dict[str, str] = {
    "rpc": "JSON-RPC URL of the node (required)",
    "deployment": "deployment JSON with the contract addresses (required)",
    "db": "SQLite file of the account index",
    "nonce_state": "JSON file of the transactions in flight (survives restarts)",
    "keystore": "keystore JSON of the signing key (required unless --dry-run)",
    "password_file": "file holding the keystore password",
    "dry_run": "watch and log, send nothing",
    "shard": "i/n: keep the accounts whose hash mod n is i",
    "port": "metrics + health port (0 = any free port)",
    "poll_interval": "seconds between head checks",
    "probe_interval": "first retry delay after an RPC failure [s]",
    "max_backoff": "longest retry delay while the RPC is down [s]",
    "max_per_block": "most liquidations considered per block",
    "priority_fee_gwei": "floor of the tip [gwei]",
    "max_tip_gwei": "ceiling of the tip [gwei]",
    "tip_percentile": "eth_feeHistory percentile the tip follows",
    "tip_premium_pct": "bid this much over that percentile [%] (the keeper's own txs move it)",
    "max_fee_gwei": "fee cap of ordinary liquidations [gwei]",
    "bad_debt_max_fee_gwei": "fee cap of liquidations of accounts underwater or about to be [gwei]",
    "stuck_blocks": "blocks a mineable tx may wait before it is replaced",
    "min_profit_usd": "least profit (reward - gas) of an ordinary liquidation [USD]",
    "gas_token_feed": "oracle router feed id pricing the gas token (0: use --eth-price-usd)",
    "eth_price_usd": "gas token price when no feed is set or it cannot be read [USD]",
    "guard_move": "adverse move (share of notional) the keeper guards against while waiting",
    "loss_budget_usd_per_hour": "most gas spent at a loss (gas over reward) per rolling hour [USD]",
    "collateral_liquidation": "buy collateral of accounts left with debt and no positions",
    "recovery_purchases": "buy the protocol's recovered collateral (buyRecovered) when it pays",
    "recovery_max_usd_per_block": "most cash spent on recovered collateral per block [USD]",
    "recovery_every_blocks": "blocks between reads of the recovered collateral (1: every block)",
    "health_max_age": "/health fails when the node has not answered for this long [s]",
    "health_max_lag_blocks": "/health fails when this many blocks behind the head",
    "kill_switch_file": "while this file exists nothing is sent (watching goes on)",
    "breaker_failures": "consecutive failed txs that stop sending (0: never)",
    "breaker_reset_seconds": "how long the circuit breaker stays open [s]",
    "private_rpc": "URL that receives the signed txs instead of --rpc (a private relay)",
    "stop_after_seconds": "stop after this long (tests)",
    "reconcile_every": "blocks between reconciliations of a book slice with the lens (0: never)",
    "reconcile_slice": "accounts compared with the lens per reconciliation",
    "full_reread": "read and recompute every account each block (the old cycle; benchmarks)",
    "book_save_every": "blocks between saves of the account book for a fast restart (0: never)",
    "book_file": "file of the saved account book (default: <db>.book.npz)",
}

_PATHS = (
    "deployment",
    "db",
    "keystore",
    "password_file",
    "nonce_state",
    "kill_switch_file",
    "book_file",
)


def defaults() -> dict[str, object]:
    return {f.name: f.default for f in fields(KeeperConfig) if f.default is not MISSING}


def build_config(argv: list[str]) -> KeeperConfig:
    ap = _Parser(
        prog="python -m keepers.liquidator",
        description="The liquidation keeper (every key also in a TOML --config; docs/keeper.md).",
    )
    ap.add_argument("--config", type=Path, help="TOML file with the same keys as these flags")
    defs = defaults()
    for f in fields(KeeperConfig):
        flag = "--" + f.name.replace("_", "-")
        shown = defs.get(f.name, "required")
        text = f"{HELP[f.name]} (default: {shown})"
        kind = str(f.type)
        if kind == "bool":
            ap.add_argument(flag, action="store_true", default=None, help=text)
        elif "int" in kind and "tuple" not in kind:
            ap.add_argument(flag, type=int, help=text)
        elif "float" in kind:
            ap.add_argument(flag, type=float, help=text)
        else:
            ap.add_argument(flag, help=text)
    ap.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: info)",
    )
    args = ap.parse_args(argv)
    setup_logging(args.log_level)
    merged = merge_config(args, KeeperConfig.__dataclass_fields__, _PATHS)
    if "shard" in merged:
        merged["shard"] = parse_shard(str(merged["shard"]))
    return KeeperConfig(**merged)


def keeper_command(
    key: LocalAccount,
    workdir: Path,
    name: str,
    rpc: str,
    deployment: Path,
    port: int,
    password: str = "keeper-password",
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of a liquidation keeper process (``python -m keepers.liquidator``)
    signing with ``key``: writes its keystore ``<workdir>/<name>.json`` and password file
    ``<workdir>/<name>.pw`` (mode 0600), its index goes to ``<workdir>/<name>.sqlite`` and its
    metrics + health to ``port``; ``extra`` flags follow (a later flag wins). The one place
    scripts/demo.py, the fault suite and the chain simulator build it."""
    pw = workdir / f"{name}.pw"
    pw.write_text(password + "\n")
    os.chmod(pw, 0o600)
    ks = write_keystore(key, workdir / f"{name}.json", password)
    return [
        sys.executable,
        "-m",
        "keepers.liquidator",
        "--rpc",
        rpc,
        "--deployment",
        str(deployment),
        "--db",
        str(workdir / f"{name}.sqlite"),
        "--keystore",
        str(ks),
        "--password-file",
        str(pw),
        "--port",
        str(port),
        *extra,
    ]
