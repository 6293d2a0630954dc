"""What every keeper needs to be operable: config, JSON logs, metrics, health, shutdown, shards.

- Config: a TOML file (``--config``) whose keys are the long flag names (``rpc``,
  ``deployment``, ...); flags given on the command line win.
- Logs: one JSON object per line on stderr (``ts``, ``level``, ``msg`` and the event's fields).
- Metrics and health: one HTTP server; ``/metrics`` (Prometheus text) and ``/health``
  (200 while the keeper processed a block recently, 503 otherwise).
- Shutdown: SIGTERM and SIGINT set a stop event; loops finish the step they are in.
- Shards: ``--shard i/n`` keeps the accounts whose hash mod n is i; several instances (on
  several machines) split the accounts with the chain as the only coordinator.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import threading
import time
import tomllib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from plimsoll.errors import PlimsollError


class ConfigError(PlimsollError):
    """A keeper's configuration is missing or wrong."""


def load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read config {path}: {e}") from e
    return {k.replace("-", "_"): v for k, v in data.items()}


def merge_config(args: Any, fields: Any, paths: tuple[str, ...]) -> dict[str, Any]:
    """The TOML config (``args.config``) overridden by the flags given, checked: ``rpc`` and
    ``deployment`` required, ``paths`` keys made ``Path`` s, no key outside ``fields`` (a
    dataclass's ``__dataclass_fields__``)."""
    merged: dict[str, Any] = load_config(args.config)
    for k, v in vars(args).items():
        if v is not None and k not in ("config", "log_level"):
            merged[k] = v
    for req in ("rpc", "deployment"):
        if req not in merged:
            raise ConfigError(f"--{req} is required (flag or config file)")
    for k in paths:
        if merged.get(k) is not None:
            merged[k] = Path(merged[k])
    unknown = set(merged) - set(fields)
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}")
    for k, v in list(merged.items()):
        merged[k] = check_type(k, v, str(fields[k].type))
    return merged


def check_type(key: str, value: Any, kind: str) -> Any:
    """``value`` of config key ``key`` checked against its annotation ``kind`` (a string such
    as ``"float"`` or ``"Path | None"``); a wrong type is a one-line :class:`ConfigError`."""
    flag = "--" + key.replace("_", "-")
    if value is None and "None" in kind:
        return None
    base = kind.split("|")[0].strip()
    ok: bool
    if base == "bool":
        ok = isinstance(value, bool)
    elif base == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif base in ("str", "Path"):
        ok = isinstance(value, str | Path)
        value = Path(value) if ok and base == "Path" else value
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{flag} must be {base.replace('Path', 'a path')}, got {value!r}")
    return value


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError as e:
        raise ConfigError(f"--shard must look like i/n, got {text!r}") from e
    if not 0 <= i < n:
        raise ConfigError(f"--shard {text}: need 0 <= i < n")
    return i, n


def in_shard(owner: str, sub: int, shard: tuple[int, int]) -> bool:
    """Whether account (owner, sub) belongs to shard (i, n); stable across machines."""
    i, n = shard
    if n == 1:
        return True
    digest = hashlib.sha256(f"{owner.lower()}:{sub}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n == i


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def log(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    logger.log(level, msg, extra={"fields": fields})


class KeeperMetrics:
    """The keepers' Prometheus metrics, in their own registry (each keeper sets its own)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.head_block = Gauge("plimsoll_head_block", "Chain head seen", registry=r)
        self.processed_block = Gauge("plimsoll_processed_block", "Last block processed", registry=r)
        self.head_lag = Gauge("plimsoll_head_lag_blocks", "Head minus processed block", registry=r)
        self.accounts = Gauge("plimsoll_accounts_tracked", "Accounts in this shard", registry=r)
        self.liquidatable = Gauge("plimsoll_accounts_liquidatable", "Liquidatable now", registry=r)
        self.sent = Counter("plimsoll_liquidations_sent", "Liquidation txs sent", registry=r)
        self.succeeded = Counter("plimsoll_liquidations_succeeded", "Mined, success", registry=r)
        self.reverted = Counter("plimsoll_liquidations_reverted", "Mined, reverted", registry=r)
        self.replaced = Counter("plimsoll_tx_replaced", "Fee-bumped replacements", registry=r)
        self.race_lost = Counter("plimsoll_race_lost", "Skipped: already liquidated", registry=r)
        self.unprofitable = Counter(
            "plimsoll_unprofitable_skipped", "Skipped: gas > reward", registry=r
        )
        self.gas_spent = Counter("plimsoll_gas_spent_wei", "Fees paid by the keeper", registry=r)
        self.balance = Gauge("plimsoll_keeper_balance_wei", "Keeper's native balance", registry=r)
        self.rpc_errors = Counter("plimsoll_rpc_errors", "RPC failures", registry=r)
        self.margin_calls = Gauge("plimsoll_accounts_margin_call", "MM <= equity < IM", registry=r)
        self.notices = Counter("plimsoll_margin_call_notices", "Notices emitted", registry=r)
        self.webhook_failures = Counter(
            "plimsoll_webhook_failures", "Failed webhook POSTs (retried)", registry=r
        )
        self.outbox_pending = Gauge(
            "plimsoll_outbox_pending", "Notices not yet delivered to the webhook", registry=r
        )
        self.vol_updates = Counter("plimsoll_vol_scalar_updates", "Scalars posted", registry=r)
        self.pokes = Counter("plimsoll_oracle_pokes", "Pokes sent: a grade changed", registry=r)
        self.on_chain = Gauge(
            "plimsoll_liquidations_on_chain", "This keeper's liquidations on chain now", registry=r
        )
        self.unmined = Counter(
            "plimsoll_liquidations_unmined", "Mined txs a reorg took back", registry=r
        )
        self.lost = Counter("plimsoll_tx_lost", "Txs neither mined nor pending", registry=r)
        self.nonce_reconciliations = Gauge(
            "plimsoll_nonce_reconciliations", "Nonce corrections from the chain", registry=r
        )
        self.breaker_open = Gauge("plimsoll_breaker_open", "1 while sending is stopped", registry=r)
        self.loss_budget_used = Gauge(
            "plimsoll_loss_budget_used_usd", "Gas spent at a loss in the last hour", registry=r
        )
        self.recovery_purchases = Counter(
            "plimsoll_recovery_purchases", "Recovered collateral purchases mined", registry=r
        )
        self.recovery_paid_usd = Counter(
            "plimsoll_recovery_paid_usd",
            "Cash paid for recovered collateral (to the insurance fund) [USD]",
            registry=r,
        )
        self.reconciliation_mismatches = Counter(
            "plimsoll_reconciliation_mismatches",
            "Book rows that differed from the lens (repaired)",
            registry=r,
        )
        self.reconciled = Counter(
            "plimsoll_reconciled_accounts", "Book rows compared with the lens", registry=r
        )
        self.book_load_seconds = Gauge(
            "plimsoll_book_load_seconds",
            "Start: seconds to load the saved book and check its block (0: full read)",
            registry=r,
        )
        self.cycle_seconds = Histogram(
            "plimsoll_cycle_seconds",
            "Logs applied + market read + screen + exact check per block",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
            registry=r,
        )
        self.block_seconds = Histogram(
            "plimsoll_block_processing_seconds", "Sync + margin + send per block", registry=r
        )
        self.last_progress = time.monotonic()

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


class OpsServer:
    """``/metrics`` and ``/health`` on one port, in a daemon thread."""

    def __init__(
        self,
        port: int,
        metrics: KeeperMetrics,
        health: Callable[[], dict[str, Any]],
        host: str = "127.0.0.1",
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.startswith("/metrics"):
                    body, code, ctype = outer.metrics.render(), 200, "text/plain; version=0.0.4"
                elif self.path.startswith("/health"):
                    h = outer.health()
                    body = json.dumps(h).encode()
                    code = 200 if h.get("ok") else 503
                    ctype = "application/json"
                else:
                    body, code, ctype = b"not found\n", 404, "text/plain"
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.metrics = metrics
        self.health = health
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> OpsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
