"""The liquidation keeper's options pass and settlement duty.

Option and portfolio-margin accounts are not covered by the perps mirror: each block the keeper
prices all of them at once on the whole grid (:mod:`plimsoll.pm`), liquidates standard-mode
accounts with ``liquidate`` and portfolio-margin ones with ``liquidateWitness`` on their worst
scenario, and settles expired series (``settleSeries``) and the accounts holding them
(``settleAccount``).

Naming the worst scenario is also what pays: a witness liquidation opens a one-hour episode in
which later liquidations of the account earn only R(P + p) - R(P) (:func:`keepers.profit.
keeper_reward`), so a milder scenario followed by a second liquidation never earns more.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from eth_utils import keccak
from web3 import Web3

from keepers.ops import log
from plimsoll import pm
from plimsoll.client import PlimsollClient, load_abi
from plimsoll.errors import PlimsollError
from plimsoll.tx import PendingTx, TxSender
from plimsoll.units import WAD

logger = logging.getLogger("plimsoll.liquidator")

OPTIONS_LIQUIDATE_GAS = 3_000_000  # most gas of a liquidation of an option account [gas]
SETTLE_GAS = 1_500_000
#: [blocks] an account's option positions are read again at least this often, even when no log
#: named it (positions change only with OptionTraded / OptionSettled / OptionsLiquidated, which
#: name the account: this bounds the damage of a log the node never served).
POSITIONS_MAX_AGE = 64
#: [blocks] every option account is priced on the grid at least this often (time decay, funding)
OPTIONS_EVERY = 10
_SEL_WITNESS = keccak(text="liquidateWitness(address,uint256,uint256)")[:4]


def series_to_read(known: list[pm.Series], n_series: int, now: int) -> list[int]:
    """Series ids a block must read, given the series already known (by id): expired ones still
    without a settlement price (it is set once, by `settleSeries`) and those listed since."""
    waiting = [i for i, s in enumerate(known) if s.settlement_price == 0 and s.expiry <= now]
    return waiting + list(range(len(known), n_series))


def _tuple_type(o: dict[str, Any]) -> str:
    """The eth_abi type string of an ABI output that is a tuple (struct)."""
    inner = ",".join(
        _tuple_type(c) if c["type"].startswith("tuple") else c["type"] for c in o["components"]
    )
    return f"({inner})" + str(o["type"])[len("tuple") :]


class OptionsPass:
    """Mixin of :class:`keepers.liquidator.LiquidationKeeper`: the options pass."""

    w3: Web3
    client: PlimsollClient
    options: Any
    sender: TxSender | None
    inflight: dict[tuple[str, int], PendingTx]
    cooldown: dict[tuple[str, int], int]
    settling: dict[tuple[str, int], int]
    stats_witness: int
    stats_settlements: int
    _series: list[pm.Series]
    _router: Any
    _positions: dict[tuple[str, int], tuple[int, Any]]
    _opt_inputs: tuple[Any, ...] | None
    _opt_cands: set[tuple[str, int]]
    options_priced: int

    def _confirm(self, cands: list[tuple[tuple[str, int], str]], block: int) -> list[int | None]:
        raise NotImplementedError

    def _send(
        self,
        to_send: list[tuple[str, bytes | str, str]],
        gas: list[int],
        block: int,
        urgent: bool = False,
    ) -> list[PendingTx | None]:
        raise NotImplementedError

    def _calls(self, calls: list[tuple[Any, str, tuple[Any, ...]]], block: int) -> list[Any]:
        """One JSON-RPC batch of eth_calls at ``block``, decoded."""
        provider: Any = self.w3.provider
        answers = provider.make_batch_request(
            [
                (
                    "eth_call",
                    [{"to": c.address, "data": c.encode_abi(name, args=list(a))}, hex(block)],
                )
                for c, name, a in calls
            ]
        )
        if not isinstance(answers, list):
            raise PlimsollError(f"batch eth_call failed: {answers!r:.200}")
        out = []
        for (c, name, _), ans in zip(calls, answers, strict=True):
            if not isinstance(ans, dict) or "result" not in ans:
                raise PlimsollError(f"{name} failed: {ans!r:.200}")
            fn = c.get_function_by_name(name)
            types = [
                o["type"] if o["type"] != "tuple" else _tuple_type(o) for o in fn.abi["outputs"]
            ]
            vals = self.w3.codec.decode(types, bytes.fromhex(ans["result"][2:]))
            out.append(vals[0] if len(vals) == 1 else vals)
        return out

    def _options_pass(
        self,
        state: Any,
        result: Any,
        rows: np.ndarray,
        block: int,
        changed: frozenset[tuple[str, int]] | None = None,
    ) -> None:
        """Option and portfolio-margin accounts: the whole grid for all of them at once
        (plimsoll.pm), then `liquidate` (standard mode) or `liquidateWitness` on each
        account's worst scenarios (portfolio mode), confirmed and sent like the others.

        ``changed``: accounts whose book rows were re-read this block (a log named them); the
        positions of the others come from the cache unless older than ``POSITIONS_MAX_AGE``.
        None reads every account's positions.

        Priced on the grid: accounts that changed, that hold (options, perps or collateral) a
        market or asset whose spot, implied vol, volatility scalars or grade moved since the
        last pass, that were candidates in the last pass, and all of them on the first pass and
        every ``OPTIONS_EVERY`` blocks (time decay, funding)."""
        assert self.options is not None
        opts = self.options
        if self._router is None:
            oracle = self.client.core.functions.oracle().call()
            self._router = self.w3.eth.contract(address=oracle, abi=load_abi("OracleRouter"))
        router = self._router
        keys = [(state.owners[r], int(state.subaccounts[r])) for r in rows]
        n_series = int(self._calls([(opts, "seriesCount", ())], block)[0])
        if n_series < len(self._series):  # a listing was rolled back by a reorg: start over
            self._series = []
        fetch = series_to_read(self._series, n_series, int(state.timestamp))
        nm = state.n_markets
        cache = self._positions
        stale = block - POSITIONS_MAX_AGE
        need = [
            k
            for k in keys
            if changed is None or k in changed or k not in cache or cache[k][0] < stale
        ]
        head = self._calls(
            [(opts, "series", (i,)) for i in fetch]
            + [(opts, "optionsConfig", (m,)) for m in range(nm)]
            + [(opts, "portfolioConfig", ())]
            + [(opts, "positions", k) for k in need],
            block,
        )
        for i, x in zip(fetch, head[: len(fetch)], strict=True):
            s = pm.Series(int(x[0]), bool(x[1]), int(x[2]), int(x[3]), int(x[4]))
            if i < len(self._series):
                self._series[i] = s
            else:
                self._series.append(s)
        series = self._series
        cfgs = head[len(fetch) : len(fetch) + nm]
        pcfg = pm.PortfolioConfig.from_wad_tuple(head[len(fetch) + nm])
        for k, got in zip(need, head[len(fetch) + nm + 1 :], strict=True):
            cache[k] = (block, got)
        held = [cache[k][1] for k in keys]
        ivs = self._calls([(router, "priceInfo", (int(c[0]) or 1,)) for c in cfgs], block)
        iv_ok = [int(c[0]) != 0 and int(v[1]) == 0 for c, v in zip(cfgs, ivs, strict=True)]
        market = pm.MarketData(
            spot=tuple(max(1, int(p)) for p in state.market_price),
            iv=tuple(int(v[0]) for v in ivs),
            timestamp=int(state.timestamp),
            im_scalar=None if state.im_scalar is None else tuple(int(x) for x in state.im_scalar),
            mm_scalar=None if state.mm_scalar is None else tuple(int(x) for x in state.mm_scalar),
            # The core adds the perps' size term to a portfolio subaccount's grid requirement.
            size_slope=tuple(int(x) for x in np.asarray(state.size_slope).reshape(-1)),
            mm_factor=tuple(int(x) for x in np.asarray(state.mm_factor).reshape(-1)),
        )
        all_positions = [
            [(series[int(i)], int(q)) for i, q in zip(ids, qs, strict=True)] for ids, qs in held
        ]
        self._settle(series, all_positions, keys, state, block)
        due = self._options_due(state, rows, keys, all_positions, market, iv_ok, changed, block)
        rows = rows[due]
        keys = [keys[j] for j in due]
        positions = [all_positions[j] for j in due]
        self.options_priced += len(rows)
        if not len(rows):
            return
        book = pm.OptionBook.from_positions(
            positions, state.sizes[rows], np.asarray(result.equity)[rows]
        )
        pmr = pm.portfolio_margin(book, market, pcfg)
        smr = pm.standard_option_margin(book, market, pm.OptionsConfig.from_wad_tuple(cfgs[0]))
        cands: list[tuple[str, int, str, int]] = []
        for j, row in enumerate(rows):
            owner, sub = keys[j]
            used = {s.market_id for s, _ in positions[j]}
            if not result.priced[row] or not all(iv_ok[m] for m in used):
                continue  # a price not graded OK: the contract would refuse too
            if (owner, sub) in self.inflight or self.cooldown.get((owner, sub), -1) >= block:
                continue
            if int(state.flags[row]) & 2:
                if pmr.equity[j] >= pmr.mm[j]:
                    continue
                fn = self.client.core.functions.liquidateWitness(owner, sub, pmr.witness(j))
                equity = int(pmr.equity[j] * WAD)
            else:
                equity = int(result.equity[row]) + int(smr.value[j] * WAD)
                if equity >= int(result.mm[row]) + int(smr.mm[j] * WAD):
                    continue
                fn = self.client.core.functions.liquidate(owner, sub)
            cands.append((owner, sub, fn._encode_transaction_data(), equity))
        self._opt_cands = {(owner, sub) for owner, sub, _, _ in cands}
        if not cands:
            return
        gas = self._confirm([((owner, sub), data) for owner, sub, data, _ in cands], block)
        core = self.client.core.address
        for urgent in (False, True):
            picked = [
                (c, g)
                for c, g in zip(cands, gas, strict=True)
                if g is not None and (c[3] < 0) == urgent
            ]
            to_send: list[tuple[str, bytes | str, str]] = [
                (core, data, f"{owner}:{sub}") for (owner, sub, data, _), _ in picked
            ]
            if self.sender is None or not to_send:
                for _, _, label in to_send:
                    log(logger, logging.INFO, "dry-run: would liquidate (options)", account=label)
                continue
            limits = [min(OPTIONS_LIQUIDATE_GAS, g * 13 // 10 + 50_000) for _, g in picked if g]
            sent = self._send(to_send, limits, block, urgent=urgent)
            self._count_witness(to_send, sent)

    def _options_due(
        self,
        state: Any,
        rows: np.ndarray,
        keys: list[tuple[str, int]],
        positions: list[list[tuple[pm.Series, int]]],
        market: pm.MarketData,
        iv_ok: list[bool],
        changed: frozenset[tuple[str, int]] | None,
        block: int,
    ) -> np.ndarray:
        """Indexes (into ``rows``) of the accounts to price on the grid this pass."""

        def col(x: Any) -> tuple[Any, ...]:
            return () if x is None else tuple(np.asarray(x).reshape(-1).tolist())

        nm = state.n_markets
        cols = [
            col(v)
            for v in (
                market.spot,
                market.iv,
                iv_ok,
                market.im_scalar,
                market.mm_scalar,
                state.market_price_ok,
            )
        ]
        per_market = [tuple(c[m] if len(c) > m else None for c in cols) for m in range(nm)]
        per_asset = list(zip(col(state.asset_price), col(state.asset_price_ok), strict=False))
        now = (per_market, per_asset)
        prev, self._opt_inputs = self._opt_inputs, now
        everything = np.arange(len(rows), dtype=np.int64)
        if prev is None or changed is None or block % OPTIONS_EVERY == 0:
            return everything
        if len(prev[0]) != nm or len(prev[1]) != len(per_asset):
            return everything  # a listing since the last pass
        m_moved = np.array([a != b for a, b in zip(per_market, prev[0], strict=True)])
        a_moved = np.array([a != b for a, b in zip(per_asset, prev[1], strict=True)], dtype=bool)
        sizes = np.asarray(state.sizes, dtype=object)[rows] != 0
        bals = np.asarray(state.balances, dtype=object)[rows] != 0
        due = (sizes & m_moved).any(axis=1)
        if len(a_moved):
            due |= (bals & a_moved).any(axis=1)
        for j, key in enumerate(keys):
            if due[j] or key in changed or key in self._opt_cands:
                due[j] = True
            elif any(m_moved[s.market_id] for s, _ in positions[j]):
                due[j] = True
        return np.flatnonzero(due).astype(np.int64)

    def _count_witness(
        self, to_send: list[tuple[str, bytes | str, str]], sent: list[PendingTx | None]
    ) -> None:
        self.stats_witness += sum(
            1
            for (_, payload, _), p in zip(to_send, sent, strict=True)
            if p is not None and str(payload).startswith("0x" + _SEL_WITNESS.hex())
        )

    def _settle(
        self,
        series: list[pm.Series],
        positions: list[list[tuple[pm.Series, int]]],
        keys: list[tuple[str, int]],
        state: Any,
        block: int,
    ) -> None:
        """Settlement duty: fix the price of every expired series that holders still carry
        (once the spot is graded OK) and pay out accounts holding settled series."""
        assert self.options is not None
        if self.sender is None:
            return
        opts = self.options
        held_ids = {s for p in positions for s, _ in p}
        txs: list[tuple[str, bytes | str, str]] = []
        for i, s in enumerate(series):
            if (
                s in held_ids
                and s.settlement_price == 0
                and int(state.timestamp) >= s.expiry
                and self.settling.get(("series", i), -10) < block - 5
            ):
                m = s.market_id
                self.settling[("series", i)] = block
                if state.market_price_ok is None or bool(state.market_price_ok[m]):
                    # Round 0: the router finds the first round at or after expiry.
                    data = opts.functions.settleSeries(i, 0)._encode_transaction_data()
                    txs.append((opts.address, data, f"settle-series:{i}"))
        for (owner, sub), p in zip(keys, positions, strict=True):
            if (
                any(s.settlement_price != 0 for s, _ in p)
                and self.settling.get((owner, sub), -10) < block - 5
            ):
                data = opts.functions.settleAccount(owner, sub)._encode_transaction_data()
                txs.append((opts.address, data, f"settle-account:{owner}:{sub}"))
                self.settling[(owner, sub)] = block
        if txs:
            self.sender.send_many(txs, gas=SETTLE_GAS)
            self.stats_settlements += len(txs)
            log(logger, logging.INFO, "settlements sent", count=len(txs), block=block)
