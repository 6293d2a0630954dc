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

It also calls ``OracleRouter.poke`` for every market's feed each block, so that changes of a
price's grade (OK / suspect / stale / sequencer) are announced as events.

    python -m keepers.risk --rpc URL --deployment deployments/local.json --from ADDRESS
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

from web3 import Web3

from keepers.ops import ConfigError, KeeperMetrics, install_signal_handlers, log, setup_logging
from plimsoll.client import PlimsollClient, load_abi
from plimsoll.errors import PlimsollError
from plimsoll.risk import EwmaVol
from plimsoll.units import WAD, Wad

logger = logging.getLogger("plimsoll.risk")
YEAR = 365 * 86_400  # [s]


@dataclass
class RiskConfig:
    rpc: str
    deployment: Path
    sender: str | None = None  # an address the node unlocks (local chains)
    sample_seconds: float = 60.0
    base_vol: float = 0.5  # annualized vol at which a market's scalar is 1
    lam: float = 0.94
    seed_returns: int = 20
    threshold: float = 0.05  # relative change of the target worth an update
    poke: bool = True
    poll_interval: float = 0.5
    stop_after_seconds: float | None = None


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

    def __init__(self, cfg: RiskConfig, w3: Web3) -> None:
        self.cfg = cfg
        self.w3 = w3
        self.metrics = KeeperMetrics()
        self.client = PlimsollClient.from_file(w3, cfg.deployment, cfg.sender)
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
        self.posted: list[dict[str, Any]] = []
        self.errors = 0
        # Called with (market id, scalar [wad]) right before a post (scenario measurements).
        self.before_post: Callable[[int, int], None] | None = None

    def limits(self) -> tuple[int, int, int, int, int]:
        lim = self.client.core.functions.riskLimits().call()
        return (int(lim[0]), int(lim[1]), int(lim[2]), int(lim[3]), int(lim[4]))

    def step(self) -> list[dict[str, Any]]:
        """Sample due markets at the head block's time; post the scalars that changed enough.
        Returns the updates posted."""
        head = self.w3.eth.get_block("latest")
        now = int(head["timestamp"])
        posted: list[dict[str, Any]] = []
        if self.cfg.poke and self.client.signer is not None:
            feeds = sorted({m.feed_id for m in self.markets})
            self.client.send(self.oracle.functions.poke(feeds))
        limits = self.limits()
        for m in self.markets:
            if m.last_sample is not None and now - m.last_sample < self.cfg.sample_seconds:
                continue
            price, status = self.oracle.functions.priceInfo(m.feed_id).call()
            if int(status) != 0:
                log(logger, logging.INFO, "price not OK: sample skipped", market=m.market_id)
                continue
            m.last_sample = now
            vol = m.estimator.update(int(price) / WAD)
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
                continue
            if self.client.signer is None:
                log(logger, logging.INFO, "dry-run: would post", market=m.market_id, scalar=target)
                continue
            if self.before_post is not None:
                self.before_post(m.market_id, target)
            self.client.set_vol_scalar(m.market_id, Wad(target))
            self.metrics.vol_updates.inc()
            row = {"market": m.market_id, "vol": round(vol, 6), "scalar": target / WAD, "ts": now}
            posted.append(row)
            log(logger, logging.INFO, "vol scalar posted", **row)
        self.posted += posted
        return posted

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m keepers.risk", description=__doc__.splitlines()[0])
    ap.add_argument("--rpc", required=True)
    ap.add_argument("--deployment", type=Path, required=True)
    ap.add_argument("--from", dest="sender", help="unlocked risk-keeper address (local chains)")
    ap.add_argument("--sample-seconds", type=float, default=60.0)
    ap.add_argument("--base-vol", type=float, default=0.5)
    ap.add_argument("--stop-after-seconds", type=float)
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.log_level)
    try:
        cfg = RiskConfig(
            rpc=args.rpc,
            deployment=args.deployment,
            sender=args.sender,
            sample_seconds=args.sample_seconds,
            base_vol=args.base_vol,
            stop_after_seconds=args.stop_after_seconds,
        )
        if cfg.sample_seconds <= 0 or cfg.base_vol <= 0:
            raise ConfigError("--sample-seconds and --base-vol must be > 0")
        w3 = Web3(Web3.HTTPProvider(cfg.rpc, request_kwargs={"timeout": 30}))
        if not w3.is_connected():
            raise PlimsollError(f"cannot reach RPC {cfg.rpc}")
        keeper = RiskKeeper(cfg, w3)
        stop = threading.Event()
        install_signal_handlers(stop)
        keeper.run(stop)
        print(json.dumps({"posted": keeper.posted, "errors": keeper.errors}), flush=True)
        return 0
    except PlimsollError as e:
        print(f"risk keeper: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
