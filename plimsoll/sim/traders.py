"""Trader behaviour in margin call and the pool hedger, step by step (the chain engine's API;
the fast engine applies the same rules on arrays)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from plimsoll.sim.agents import NOTHING, REDUCE, TOP_UP, draw_trader_actions
from plimsoll.sim.model import FeedbackSpec, TraderSpec

F = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class TraderAction:
    """``kind`` TOP_UP: deposit ``fraction`` x (IM - equity) cash; REDUCE: cut every position
    by ``fraction``."""

    account: int
    kind: int
    fraction: float


@dataclass
class TraderModel:
    """Draws, once per margin call, what each trader does and when (``spec.delay`` seconds
    after the call); an account that leaves margin call and enters it again draws again."""

    spec: TraderSpec
    n_accounts: int
    seed: int = 0
    action: npt.NDArray[np.int8] = field(init=False)
    due: F = field(init=False)
    in_call: B = field(init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self.action = np.zeros(self.n_accounts, dtype=np.int8)
        self.due = np.full(self.n_accounts, np.inf)
        self.in_call = np.zeros(self.n_accounts, dtype=bool)

    def step(self, now: float, in_call: npt.ArrayLike) -> list[TraderAction]:
        """Given which accounts are in margin call at ``now`` [s], the actions due now."""
        call = np.asarray(in_call, dtype=bool)
        new = call & ~self.in_call
        self.action[new] = draw_trader_actions(self._rng, (int(new.sum()),), self.spec)
        self.due[new] = now + self.spec.delay
        self.due[~call] = np.inf
        self.in_call = call
        go = call & (self.due <= now) & (self.action != NOTHING)
        self.due[go] = np.inf
        out = []
        for i in np.flatnonzero(go):
            k = int(self.action[i])
            frac = self.spec.topup_fraction if k == TOP_UP else self.spec.reduce_fraction
            out.append(TraderAction(int(i), k, frac))
        return out


def hedge_trade(net_trader_size: F, hedge: F, spec: FeedbackSpec) -> F:
    """The pool hedger's trade [units] per market: the pool is short what traders are long, so
    its hedge is ``hedge_ratio x net trader size``; it trades the difference from its current
    ``hedge`` (0 when the hedger is off)."""
    if not spec.hedger:
        return np.zeros_like(np.asarray(net_trader_size, dtype=float))
    return spec.hedge_ratio * np.asarray(net_trader_size, dtype=float) - hedge


__all__ = ["NOTHING", "REDUCE", "TOP_UP", "TraderAction", "TraderModel", "hedge_trade"]
