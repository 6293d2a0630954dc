"""The margin-call notifier: tells owners their account is in margin call before liquidation.

Each new block it indexes accounts, reads them all at that block through the lens, computes
margin with the exact mirror and finds the accounts with MM <= equity < IM (prices graded OK).
An account entering that zone gets one notice per episode: a JSON line (stdout or ``--out``
file, appended) and, with ``--webhook``, an HTTP POST of the same JSON. The episode ends when
the account leaves the zone (back above IM, liquidatable, or closed); entering again starts a
new one. Open episodes are saved (``--episodes``) so that a restart does not notify twice.
Notices name markets by symbol (``liquidation_prices: {"ETH-PERP": ...}``) and carry an ``id``
(owner:sub:block).

A notice is never lost: it enters a durable outbox (SQLite, ``--outbox``) before its episode is
saved, and leaves it only when the webhook answers 2xx. A failed POST (refused, timed out, any
non-2xx answer) is retried from a delivery thread after ``retry_base`` x 2^(attempts - 1)
seconds, at most ``retry_max`` apart, for as long as it takes, across restarts (delivery is at
least once: receivers drop repeats by ``id``). Block processing never waits for the webhook.

    python -m keepers.notifier --rpc URL --deployment deployments/local.json [--out FILE]
        [--webhook URL] [--port 9101]
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import requests
from web3 import Web3

from keepers.ops import (
    ConfigError,
    KeeperMetrics,
    OpsServer,
    install_signal_handlers,
    log,
    merge_config,
    setup_logging,
)
from plimsoll.client import PlimsollClient
from plimsoll.errors import PlimsollError
from plimsoll.margin import compute_margin
from plimsoll.margin_call import (
    MarginCallNotice,
    in_margin_call,
    margin_calls,
    with_contract_margins,
)
from plimsoll.sync import AccountIndexer, RpcClient, StateReader

logger = logging.getLogger("plimsoll.notifier")


@dataclass
class NotifierConfig:
    rpc: str
    deployment: Path
    db: Path = Path(".state/notifier.sqlite")
    episodes: Path = Path(".state/notifier-episodes.json")
    out: Path | None = None  # None: stdout
    webhook: str | None = None
    webhook_timeout: float = 5.0
    outbox: Path = Path(".state/notifier-outbox.sqlite")
    retry_base: float = 1.0  # [s] first retry delay of a failed webhook
    retry_max: float = 300.0  # [s] longest retry delay
    port: int | None = None
    poll_interval: float = 0.2
    health_max_age: float = 30.0
    max_catch_up: int = 32  # [blocks] most blocks processed per loop when behind
    stop_after_seconds: float | None = None


class Outbox:
    """Notices waiting for the webhook, durable in SQLite (safe from two threads)."""

    def __init__(self, path: Path, base: float, max_delay: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.base, self.max_delay = base, max_delay
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, body TEXT NOT NULL, "
                "attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, last_error TEXT, "
                "created REAL NOT NULL)"
            )
            self._db.commit()
        except sqlite3.Error as e:
            raise ConfigError(f"cannot open outbox {path}: {e}") from e

    def add(self, nid: str, body: str, now: float) -> None:
        """Queues a notice (committed before this returns); one already queued stays once."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO outbox (id, body, next_at, created) VALUES (?, ?, ?, ?)",
                (nid, body, now, now),
            )
            self._db.commit()

    def due(self, now: float) -> list[tuple[str, str, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, body, attempts FROM outbox WHERE next_at <= ? ORDER BY created",
                (now,),
            ).fetchall()
        return [(str(a), str(b), int(c)) for a, b, c in rows]

    def delivered(self, nid: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (nid,))
            self._db.commit()

    def failed(self, nid: str, attempts: int, error: str, now: float) -> float:
        """Records a failed attempt (``attempts`` so far, this one included); returns the delay
        before the next one."""
        delay = float(min(self.base * 2 ** (attempts - 1), self.max_delay))
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?",
                (attempts, now + delay, error[:300], nid),
            )
            self._db.commit()
        return delay

    def pending(self) -> tuple[int, float | None]:
        """(notices waiting, time the oldest was queued)."""
        with self._lock:
            n, oldest = self._db.execute("SELECT COUNT(*), MIN(created) FROM outbox").fetchone()
        return int(n), None if oldest is None else float(oldest)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class MarginCallNotifier:
    """Watches every account and emits one notice per margin-call episode."""

    def __init__(self, cfg: NotifierConfig, w3: Web3, out: IO[str] | None = None) -> None:
        self.cfg = cfg
        self.w3 = w3
        self.metrics = KeeperMetrics()
        client = PlimsollClient.from_file(w3, cfg.deployment)
        self.core = client.core
        self.symbols = {int(m["id"]): str(m["name"]) for m in client.markets}
        dep = client.deployment
        lens = dep["contracts"].get("PlimsollLens")
        if not lens:
            raise ConfigError(f"{cfg.deployment} has no PlimsollLens address")
        self.rpc = RpcClient(w3)
        cfg.db.parent.mkdir(parents=True, exist_ok=True)
        core = dep["contracts"]["Plimsoll"]
        self.indexer = AccountIndexer(
            w3, core, cfg.db, int(dep.get("deploy_block", 0)), rpc=self.rpc
        )
        self.reader = StateReader(w3, core, lens, rpc=self.rpc)
        self.out = out
        self.open: set[tuple[str, int]] = self._load_episodes()
        self.notices: list[MarginCallNotice] = []
        self.outbox = Outbox(cfg.outbox, cfg.retry_base, cfg.retry_max) if cfg.webhook else None
        self.webhook_failures = 0
        self.webhook_delivered = 0
        self.clock = time.time  # wall clock: retry times survive a restart
        self.rpc_errors = 0
        self.last_block = -1
        self.last_progress = time.monotonic()

    # ------------------------------------------------------------------ episodes

    def _load_episodes(self) -> set[tuple[str, int]]:
        try:
            rows = json.loads(self.cfg.episodes.read_text())
            return {(str(o), int(s)) for o, s in rows}
        except FileNotFoundError:
            return set()
        except (OSError, ValueError, TypeError) as e:
            raise ConfigError(f"cannot read episodes file {self.cfg.episodes}: {e}") from e

    def _save_episodes(self) -> None:
        self.cfg.episodes.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cfg.episodes.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(self.open)))
        tmp.replace(self.cfg.episodes)

    # ------------------------------------------------------------------ loop

    def health(self) -> dict[str, Any]:
        age = time.monotonic() - self.last_progress
        waiting, oldest = self.outbox.pending() if self.outbox else (0, None)
        return {
            "ok": age < self.cfg.health_max_age,
            "last_block": self.last_block,
            "open_episodes": len(self.open),
            "notices": len(self.notices),
            "outbox_pending": waiting,
            "outbox_oldest_age_s": None if oldest is None else round(self.clock() - oldest, 1),
        }

    # ------------------------------------------------------------------ webhook delivery

    def deliver_due(self) -> int:
        """POSTs every outbox notice whose retry time has come; returns how many were
        delivered. A failure is logged and rescheduled with back-off, never dropped."""
        if self.outbox is None or not self.cfg.webhook:
            return 0
        done = 0
        for nid, body, attempts in self.outbox.due(self.clock()):
            try:
                r = requests.post(
                    self.cfg.webhook,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=self.cfg.webhook_timeout,
                )
                r.raise_for_status()
            except requests.RequestException as e:
                self.webhook_failures += 1
                self.metrics.webhook_failures.inc()
                delay = self.outbox.failed(nid, attempts + 1, str(e), self.clock())
                log(
                    logger,
                    logging.WARNING,
                    "webhook failed, will retry",
                    id=nid,
                    attempts=attempts + 1,
                    retry_in_s=delay,
                    error=str(e)[:300],
                )
                continue
            self.outbox.delivered(nid)
            self.webhook_delivered += 1
            done += 1
            log(logger, logging.INFO, "webhook delivered", id=nid, attempts=attempts + 1)
        self.metrics.outbox_pending.set(self.outbox.pending()[0])
        return done

    def _delivery_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.deliver_due()
            except Exception as e:  # noqa: BLE001 - the outbox keeps the notice; carry on
                log(logger, logging.WARNING, "webhook delivery error", error=str(e)[:300])
            stop.wait(0.2)

    def run(self, stop: threading.Event) -> None:
        backoff = 0.5
        started = time.monotonic()
        delivery_stop = threading.Event()
        delivery = threading.Thread(target=self._delivery_loop, args=(delivery_stop,), daemon=True)
        delivery.start()
        try:
            self._loop(stop, started, backoff)
        finally:
            delivery_stop.set()
            delivery.join(timeout=self.cfg.webhook_timeout + 5)

    def _loop(self, stop: threading.Event, started: float, backoff: float) -> None:
        while not stop.is_set():
            if (
                self.cfg.stop_after_seconds
                and time.monotonic() - started > self.cfg.stop_after_seconds
            ):
                break
            try:
                head = self.w3.eth.block_number
                self.metrics.head_block.set(head)
                # Every block, none skipped when the loop falls behind (up to max_catch_up):
                # an account may pass through the zone in a single block.
                first = (
                    head
                    if self.last_block < 0
                    else max(self.last_block + 1, head - self.cfg.max_catch_up)
                )
                for b in range(first, head + 1):
                    self.on_block(b)
                backoff = 0.5
                stop.wait(self.cfg.poll_interval)
            except Exception as e:  # noqa: BLE001 - a keeper logs and carries on
                self.rpc_errors += 1
                self.metrics.rpc_errors.inc()
                log(
                    logger,
                    logging.WARNING,
                    "error, backing off",
                    error=str(e)[:300],
                    backoff_s=backoff,
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def on_block(self, head: int) -> list[MarginCallNotice]:
        """Process one block: returns the notices emitted for it."""
        block = self.indexer.sync(head)
        accounts = [(a.owner, a.subaccount) for a in self.indexer.accounts()]
        self.metrics.accounts.set(len(accounts))
        emitted: list[MarginCallNotice] = []
        if accounts:
            state = self.reader.read(accounts, block)
            result = compute_margin(state)
            if state.flags is not None and (np.asarray(state.flags) != 0).any():
                result = self._contract_margins(state, result, block)
            zone = in_margin_call(result)
            now_in = {(state.owners[i], int(state.subaccounts[i])) for i in zone.nonzero()[0]}
            self.metrics.margin_calls.set(len(now_in))
            fresh = now_in - self.open
            if fresh:
                emitted = [
                    n
                    for n in margin_calls(state, result, self.symbols)
                    if (n.owner, n.subaccount) in fresh
                ]
                for n in emitted:
                    self._emit(n)
            # Accounts that left the zone close their episode; unpriced accounts (a price not
            # graded OK) keep theirs open: their state is unknown, not resolved.
            unknown = {
                (state.owners[i], int(state.subaccounts[i])) for i in (~result.priced).nonzero()[0]
            }
            changed = fresh or (self.open - now_in - unknown)
            self.open = (self.open & (now_in | unknown)) | now_in
            if changed:
                self._save_episodes()
        self.last_block = block
        self.last_progress = time.monotonic()
        self.metrics.processed_block.set(block)
        return emitted

    def _contract_margins(self, state: Any, result: Any, block: int) -> Any:
        """Accounts with options or in portfolio margin: the contract's own numbers (one
        batch of ``accountMargin`` calls at the block)."""
        rows = np.flatnonzero(np.asarray(state.flags) != 0).astype(np.int64)
        fn = self.core.functions.accountMargin
        calls = [
            (
                "eth_call",
                [
                    {
                        "to": self.core.address,
                        "data": fn(
                            state.owners[r], int(state.subaccounts[r])
                        )._encode_transaction_data(),
                    },
                    hex(block),
                ],
            )
            for r in rows
        ]
        got = self.rpc.batch(calls)
        margins = [
            tuple(self.w3.codec.decode(["int256", "uint256", "uint256"], bytes.fromhex(g[2:])))
            for g in got
        ]
        return with_contract_margins(result, rows, margins)

    def _emit(self, n: MarginCallNotice) -> None:
        line = json.dumps(n.to_json())
        if self.out is not None:
            self.out.write(line + "\n")
            self.out.flush()
        else:
            print(line, flush=True)
        self.notices.append(n)
        self.metrics.notices.inc()
        if self.outbox is not None:  # committed before the episode is saved
            self.outbox.add(n.id, line, self.clock())
            self.metrics.outbox_pending.set(self.outbox.pending()[0])

    def summary(self) -> dict[str, Any]:
        return {
            "last_block": self.last_block,
            "notices": len(self.notices),
            "open_episodes": len(self.open),
            "webhook_failures": self.webhook_failures,
            "webhook_delivered": self.webhook_delivered,
            "outbox_pending": self.outbox.pending()[0] if self.outbox else 0,
            "rpc_errors": self.rpc_errors,
        }


def build_config(argv: list[str]) -> NotifierConfig:
    ap = argparse.ArgumentParser(
        prog="python -m keepers.notifier", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--config", type=Path, help="TOML file with the same keys as these flags")
    ap.add_argument("--rpc")
    ap.add_argument("--deployment", type=Path)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--episodes", type=Path)
    ap.add_argument("--out", type=Path, help="append notices (JSON lines) here; default stdout")
    ap.add_argument("--webhook", help="POST every notice as JSON to this URL")
    ap.add_argument("--outbox", type=Path, help="SQLite outbox of notices not yet delivered")
    ap.add_argument("--retry-base", type=float, help="first retry delay of a failed webhook [s]")
    ap.add_argument("--retry-max", type=float, help="longest retry delay [s]")
    ap.add_argument("--port", type=int, help="metrics + health port (0 = any free port)")
    ap.add_argument("--poll-interval", type=float)
    ap.add_argument("--stop-after-seconds", type=float)
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    setup_logging(args.log_level)
    merged = merge_config(
        args,
        NotifierConfig.__dataclass_fields__,
        ("deployment", "db", "episodes", "out", "outbox"),
    )
    return NotifierConfig(**merged)


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = build_config(sys.argv[1:] if argv is None else argv)
        w3 = Web3(Web3.HTTPProvider(cfg.rpc, request_kwargs={"timeout": 30}))
        if not w3.is_connected():
            raise PlimsollError(f"cannot reach RPC {cfg.rpc}")
        out = open(cfg.out, "a", encoding="utf-8") if cfg.out is not None else None  # noqa: SIM115
        notifier = MarginCallNotifier(cfg, w3, out)
        stop = threading.Event()
        install_signal_handlers(stop)
        server = (
            OpsServer(cfg.port, notifier.metrics, notifier.health).start()
            if cfg.port is not None
            else None
        )
        log(logger, logging.INFO, "notifier started", open_episodes=len(notifier.open))
        notifier.run(stop)
        if server is not None:
            server.stop()
        if out is not None:
            out.close()
        print(json.dumps(notifier.summary()), file=sys.stderr, flush=True)
        return 0
    except PlimsollError as e:
        print(f"notifier: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
