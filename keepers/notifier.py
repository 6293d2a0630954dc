"""The margin-call notifier: tells owners their account is in margin call before liquidation.

Each new block it indexes accounts, reads them all at that block through the lens, computes
margin with the exact mirror and finds the accounts with MM <= equity < IM (prices graded OK).
An account entering that zone gets one notice per episode: a JSON line (stdout or ``--out``
file, appended) and, with ``--webhook``, an HTTP POST of the same JSON. The episode ends when
the account leaves the zone (back above IM, liquidatable, or closed); entering again starts a
new one. Open episodes are saved (``--episodes``) so that a restart does not notify twice.

    python -m keepers.notifier --rpc URL --deployment deployments/local.json [--out FILE]
        [--webhook URL] [--port 9101]
"""

from __future__ import annotations

import argparse
import json
import logging
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
    port: int | None = None
    poll_interval: float = 0.2
    health_max_age: float = 30.0
    max_catch_up: int = 32  # [blocks] most blocks processed per loop when behind
    stop_after_seconds: float | None = None


class MarginCallNotifier:
    """Watches every account and emits one notice per margin-call episode."""

    def __init__(self, cfg: NotifierConfig, w3: Web3, out: IO[str] | None = None) -> None:
        self.cfg = cfg
        self.w3 = w3
        self.metrics = KeeperMetrics()
        client = PlimsollClient.from_file(w3, cfg.deployment)
        self.core = client.core
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
        self.webhook_failures = 0
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
        return {
            "ok": age < self.cfg.health_max_age,
            "last_block": self.last_block,
            "open_episodes": len(self.open),
            "notices": len(self.notices),
        }

    def run(self, stop: threading.Event) -> None:
        backoff = 0.5
        started = time.monotonic()
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
                    n for n in margin_calls(state, result) if (n.owner, n.subaccount) in fresh
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
        if self.cfg.webhook:
            threading.Thread(target=self._post, args=(n.to_json(),), daemon=True).start()

    def _post(self, body: dict[str, Any]) -> None:
        try:
            r = requests.post(self.cfg.webhook or "", json=body, timeout=self.cfg.webhook_timeout)
            r.raise_for_status()
        except requests.RequestException as e:
            self.webhook_failures += 1
            log(logger, logging.WARNING, "webhook failed", error=str(e)[:300])

    def summary(self) -> dict[str, Any]:
        return {
            "last_block": self.last_block,
            "notices": len(self.notices),
            "open_episodes": len(self.open),
            "webhook_failures": self.webhook_failures,
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
    ap.add_argument("--port", type=int, help="metrics + health port (0 = any free port)")
    ap.add_argument("--poll-interval", type=float)
    ap.add_argument("--stop-after-seconds", type=float)
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    setup_logging(args.log_level)
    merged = merge_config(
        args, NotifierConfig.__dataclass_fields__, ("deployment", "db", "episodes", "out")
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
