"""The risk-parameter keeper: margin that follows volatility, within the contract's limits.

Every ``sample_seconds`` it samples each market's oracle price (only prices graded OK), feeds
an EWMA volatility estimator (RiskMetrics, lambda 0.94 by default; :class:`plimsoll.risk.
EwmaVol`) and, once warmed up, proposes the scalar ``vol / base_vol`` for the market (the
market's rates are calibrated at ``base_vol``). The proposal is clipped to the contract's
limits (``riskLimits``: bounds and the largest step per update) and posted with
``setVolScalar`` when it differs from the current target by more than ``threshold`` and the
minimum interval has passed. The contract ramps rises of MM in over ``rampPeriod``; IM rises at
once, which puts thinly margined accounts into margin call (the notifier tells them) before the
ramp can reach them.

It also calls ``OracleRouter.poke`` when a market feed's grade (OK / suspect / stale / invalid)
differs from the one the router last recorded, so that the change is announced as an event;
an unchanged grade costs nothing (one ``eth_call`` per feed per poll, no transaction).

Operable as the liquidator is: signs with a keystore (``--keystore`` + ``--password-file``; an
unlocked ``--from`` address on local chains), checks at start that its address may post (the
core's ``riskKeeper``, or its admin) and says so, says how long it needs before its first post
(``seed_returns`` samples of ``sample_seconds``), logs every sample and post, serves
``/metrics`` and ``/health`` on ``--port`` and reads every key from a TOML ``--config``.

    python -m keepers.risk --rpc URL --deployment deployments/local.json \
        --keystore risk.json --password-file pw.txt [--port 9102] [--config risk.toml]

Exit codes: 0 stopped (SIGTERM/SIGINT or --stop-after-seconds), 2 configuration or start-up
error (one line on stderr: a bad key, no risk role, unreachable RPC).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
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
from plimsoll.client import PlimsollClient, load_abi
from plimsoll.errors import ContractRevert, PlimsollError
from plimsoll.keys import load_keystore, read_password
from plimsoll.risk import EwmaVol
from plimsoll.units import WAD, Wad

logger = logging.getLogger("plimsoll.risk")
YEAR = 365 * 86_400  # [s]


#: Grades of ``OracleRouter.priceInfo`` (and ``lastStatus``), for the logs.
GRADES = {0: "ok", 1: "suspect", 2: "stale", 3: "sequencer_down", 4: "invalid"}


@dataclass
class RiskConfig:
    rpc: str
    deployment: Path
    sender: str | None = None  # an address the node unlocks (local chains)
    keystore: Path | None = None
    password_file: Path | None = None
    port: int | None = None
    sample_seconds: float = 60.0
    base_vol: float = 0.5  # annualized vol at which a market's scalar is 1
    lam: float = 0.94
    seed_returns: int = 20
    threshold: float = 0.05  # relative change of the target worth an update
    poke: bool = True
    poll_interval: float = 0.5
    health_max_age: float = 30.0
    stop_after_seconds: float | None = None


HELP: dict[str, str] = {
    "rpc": "JSON-RPC URL of the node (required)",
    "deployment": "deployment JSON with the contract addresses (required)",
    "sender": "unlocked address to send from (local chains; else --keystore)",
    "keystore": "keystore JSON of the risk keeper's key",
    "password_file": "file holding the keystore password",
    "port": "metrics + health port (0 = any free port)",
    "sample_seconds": "seconds of chain time between price samples of a market",
    "base_vol": "annualized volatility at which a market's scalar is 1",
    "lam": "EWMA decay factor",
    "seed_returns": "returns averaged before the first estimate (warm-up)",
    "threshold": "relative change of a scalar worth posting",
    "poke": "poke the oracle router when a feed's grade changes",
    "poll_interval": "seconds between looks at the head",
    "health_max_age": "/health fails when no step succeeded for this long [s]",
    "stop_after_seconds": "stop after this long (tests)",
}


@dataclass
class MarketRisk:
    market_id: int
    feed_id: int
    estimator: EwmaVol
    last_sample: float | None = None
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (ts, vol, scalar)


def clip_scalar(proposal: float, current: int, limits: tuple[int, int, int, int, int]) -> int:
    """The proposal [float] as a wad scalar the contract will accept from ``current`` [wad]:
    within [min, max] and within +-maxStep of the current target (rounded inward)."""
    lo, hi, step = limits[0], limits[1], limits[2]
    want = int(proposal * WAD)
    max_move = current * step // WAD
    want = max(min(want, current + max_move, hi), current - max_move, lo)
    return int(want)


class RiskKeeper:
    """Samples prices, estimates volatility per market and posts scalars."""

    def __init__(self, cfg: RiskConfig, w3: Web3, account: LocalAccount | None = None) -> None:
        self.cfg = cfg
        self.w3 = w3
        self.metrics = KeeperMetrics()
        self.client = PlimsollClient.from_file(w3, cfg.deployment, account or cfg.sender)
        router = self.client.core.functions.oracle().call()
        self.oracle = w3.eth.contract(address=router, abi=load_abi("OracleRouter"))
        per_year = YEAR / cfg.sample_seconds
        self.markets = [
            MarketRisk(
                int(m["id"]),
                int(m["feed_id"]),
                EwmaVol(cfg.lam, per_year, cfg.seed_returns),
            )
            for m in self.client.markets
        ]
        self.names = {int(m["id"]): str(m.get("name", m["id"])) for m in self.client.markets}
        self.posted: list[dict[str, Any]] = []
        self.pokes: list[dict[str, Any]] = []
        self.errors = 0
        self.last_ok = time.monotonic()
        self.last_block = -1
        # Called with (market id, scalar [wad]) right before a post (scenario measurements).
        self.before_post: Callable[[int, int], None] | None = None

    # ------------------------------------------------------------------ start-up

    def role(self) -> str:
        """Which role lets this keeper's address post scalars: ``"riskKeeper"`` or ``"admin"``
        (the contract accepts both); raises :class:`ConfigError` when it holds neither, and
        ``"none (dry run)"`` without a signer."""
        if self.client.signer is None:
            return "none (dry run)"
        me = self.client.address.lower()
        core = self.client.core.functions
        holder = str(core.riskKeeper().call())
        if holder.lower() == me:
            return "riskKeeper"
        if str(core.admin().call()).lower() == me:
            return "admin"
        raise ConfigError(
            f"{self.client.address} does not hold the risk role (the core's riskKeeper is "
            f"{holder}): the admin must call setRiskKeeper({self.client.address}) first"
        )

    def warmup_seconds(self) -> float:
        """Chain time before the first scalar can be posted: ``seed_returns`` returns, one per
        ``sample_seconds`` after the first sample."""
        return self.cfg.seed_returns * self.cfg.sample_seconds

    def limits(self) -> tuple[int, int, int, int, int]:
        lim = self.client.core.functions.riskLimits().call()
        return (int(lim[0]), int(lim[1]), int(lim[2]), int(lim[3]), int(lim[4]))

    # ------------------------------------------------------------------ grades

    def _grade(self, feed_id: int) -> int:
        try:
            return int(self.oracle.functions.priceInfo(feed_id).call()[1])
        except Exception:  # noqa: BLE001 - poke records an unreadable feed as STALE
            return 2

    def poke_changed(self) -> list[int]:
        """Pokes the router for the market feeds whose grade differs from the one it recorded
        (``lastStatus``); nothing is sent when none changed. Returns the feeds poked."""
        feeds = sorted({m.feed_id for m in self.markets})
        changed = []
        for f in feeds:
            now, recorded = self._grade(f), int(self.oracle.functions.lastStatus(f).call())
            if now != recorded:
                changed.append(f)
                log(
                    logger,
                    logging.INFO,
                    "feed grade changed: poke",
                    feed=f,
                    recorded=GRADES.get(recorded, recorded),
                    now=GRADES.get(now, now),
                )
                self.pokes.append({"feed": f, "from": recorded, "to": now})
        if changed and self.client.signer is not None:
            self.client.send(self.oracle.functions.poke(changed))
            self.metrics.pokes.inc()
        return changed

    # ------------------------------------------------------------------ loop

    def step(self) -> list[dict[str, Any]]:
        """Sample due markets at the head block's time; post the scalars that changed enough.
        Returns the updates posted."""
        head = self.w3.eth.get_block("latest")
        now = int(head["timestamp"])
        self.last_block = int(head["number"])
        self.metrics.head_block.set(self.last_block)
        posted: list[dict[str, Any]] = []
        if self.cfg.poke:
            self.poke_changed()
        limits = self.limits()
        for m in self.markets:
            if m.last_sample is not None and now - m.last_sample < self.cfg.sample_seconds:
                continue
            name = self.names.get(m.market_id, str(m.market_id))
            price, status = self.oracle.functions.priceInfo(m.feed_id).call()
            if int(status) != 0:
                log(
                    logger,
                    logging.INFO,
                    "price not OK: sample skipped",
                    market=name,
                    grade=GRADES.get(int(status), int(status)),
                )
                continue
            m.last_sample = now
            vol = m.estimator.update(int(price) / WAD)
            log(
                logger,
                logging.INFO,
                "sampled",
                market=name,
                price_usd=int(price) / WAD,
                block=self.last_block,
                vol=None if vol is None else round(vol, 6),
                warmup_left=max(0, self.cfg.seed_returns - m.estimator.n_returns),
            )
            if vol is None:
                continue
            v = self.client.core.functions.volScalar(m.market_id).call()
            current = int(v[1]) or WAD
            target = clip_scalar(vol / self.cfg.base_vol, current, limits)
            m.history.append((now, vol, target / WAD))
            if abs(target - current) <= current * self.cfg.threshold:
                continue
            last_update, interval = int(v[4]), limits[3]
            if last_update and now < last_update + interval:
                log(
                    logger,
                    logging.INFO,
                    "post waits for the minimum interval",
                    market=name,
                    scalar=target / WAD,
                    seconds_left=last_update + interval - now,
                )
                continue
            if self.client.signer is None:
                log(logger, logging.INFO, "dry-run: would post", market=name, scalar=target / WAD)
                continue
            if self.before_post is not None:
                self.before_post(m.market_id, target)
            self.client.set_vol_scalar(m.market_id, Wad(target))
            self.metrics.vol_updates.inc()
            row = {"market": m.market_id, "vol": round(vol, 6), "scalar": target / WAD, "ts": now}
            posted.append(row)
            log(
                logger,
                logging.INFO,
                "vol scalar posted",
                name=name,
                previous=current / WAD,
                **row,
            )
        self.posted += posted
        self.last_ok = time.monotonic()
        return posted

    def health(self) -> dict[str, Any]:
        age = time.monotonic() - self.last_ok
        return {
            "ok": age < self.cfg.health_max_age,
            "seconds_since_step": round(age, 3),
            "last_block": self.last_block,
            "posted": len(self.posted),
            "pokes": len(self.pokes),
            "errors": self.errors,
            "warmed_up": [
                self.names.get(m.market_id, str(m.market_id))
                for m in self.markets
                if m.estimator.ready
            ],
        }

    def run(self, stop: threading.Event) -> None:
        started = time.monotonic()
        backoff = 0.5
        while not stop.is_set():
            if (
                self.cfg.stop_after_seconds
                and time.monotonic() - started > self.cfg.stop_after_seconds
            ):
                break
            try:
                self.step()
                backoff = 0.5
                stop.wait(self.cfg.poll_interval)
            except Exception as e:  # noqa: BLE001 - a keeper logs and carries on
                self.errors += 1
                self.metrics.rpc_errors.inc()
                log(logger, logging.WARNING, "error, backing off", error=str(e)[:300])
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def build_config(argv: list[str]) -> RiskConfig:
    ap = _Parser(prog="python -m keepers.risk", description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--config", type=Path, help="TOML file with the same keys as these flags")
    defaults = RiskConfig(rpc="", deployment=Path())
    for name, text in HELP.items():
        flag = "--from" if name == "sender" else "--" + name.replace("_", "-")
        default = getattr(defaults, name) if name not in ("rpc", "deployment") else "required"
        kind = str(RiskConfig.__dataclass_fields__[name].type)
        kw: dict[str, Any] = {"dest": name, "help": f"{text} (default: {default})"}
        if kind == "bool":
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, **kw)
        elif kind.startswith("int"):
            ap.add_argument(flag, type=int, **kw)
        elif kind.startswith("float"):
            ap.add_argument(flag, type=float, **kw)
        else:
            ap.add_argument(flag, **kw)
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = ap.parse_args(argv)
    setup_logging(args.log_level)
    merged = merge_config(
        args, RiskConfig.__dataclass_fields__, ("deployment", "keystore", "password_file")
    )
    cfg = RiskConfig(**merged)
    if cfg.sample_seconds <= 0 or cfg.base_vol <= 0:
        raise ConfigError("--sample-seconds and --base-vol must be > 0")
    if cfg.keystore is not None and cfg.sender is not None:
        raise ConfigError("give --keystore or --from, not both")
    return cfg


def main(argv: list[str] | None = None) -> int:
    server: OpsServer | None = None
    try:
        cfg = build_config(sys.argv[1:] if argv is None else argv)
        w3 = Web3(Web3.HTTPProvider(cfg.rpc, request_kwargs={"timeout": 30}))
        if not w3.is_connected():
            raise PlimsollError(f"cannot reach RPC {cfg.rpc}")
        account = (
            load_keystore(cfg.keystore, read_password(cfg.password_file))
            if cfg.keystore is not None
            else None
        )
        keeper = RiskKeeper(cfg, w3, account)
        role = keeper.role()
        if cfg.port is not None:
            try:
                server = OpsServer(cfg.port, keeper.metrics, keeper.health).start()
            except OSError as e:
                raise ConfigError(f"--port {cfg.port}: {e.strerror or e}") from e
    except (PlimsollError, ContractRevert) as e:
        print(f"risk keeper: {e}", file=sys.stderr)
        return 2
    log(
        logger,
        logging.INFO,
        "risk keeper started",
        address=keeper.client.address if keeper.client.signer is not None else None,
        role=role,
        markets=[keeper.names[m.market_id] for m in keeper.markets],
        sample_seconds=cfg.sample_seconds,
        first_post_after_s=keeper.warmup_seconds(),
        port=server.port if server is not None else None,
    )
    log(
        logger,
        logging.INFO,
        f"first scalar post possible after {keeper.warmup_seconds():g} s of chain time "
        f"({cfg.seed_returns} samples {cfg.sample_seconds:g} s apart after the first)",
    )
    stop = threading.Event()
    install_signal_handlers(stop)
    keeper.run(stop)
    if server is not None:
        server.stop()
    print(
        json.dumps({"posted": keeper.posted, "pokes": keeper.pokes, "errors": keeper.errors}),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
