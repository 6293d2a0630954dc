"""Cascade simulator: how much bad debt a crash leaves, with liquidation feedback.

One model, two engines
----------------------
The model is plain data plus pure, vectorized rules; both engines run the *same* rules:

* :mod:`plimsoll.sim.model` - typed, frozen parameters (:class:`SimConfig`: assets with
  market depth and oracle feed, perp markets, collateral, ``LiquidationSpec`` (the core's
  ``LiquidationConfig``), keepers, EIP-1559 gas, traders, feedback, vol-scalar policy).
  ``SimConfig()`` is today's deployment (``plimsoll.deploy`` defaults).
* :mod:`plimsoll.sim.paths` - :class:`PricePaths` of *fundamental* prices (the external market
  without the protocol's feedback): the scenario library (``scenario(name, cfg)``), Monte
  Carlo (``jump_diffusion``, ``garch``) and ``load_csv`` (``timestamp,asset,price`` rows).
* :mod:`plimsoll.sim.population` - the :class:`Book` of accounts: ``draw_population``
  (distributions in :class:`PopulationSpec`), ``book_from_state`` (a live deployment read
  through ``plimsoll.sync``), ``book_to_state`` (the contract's integers for the margin
  mirror ``plimsoll.margin``).
* :mod:`plimsoll.sim.market` - square-root impact, Chainlink's oracle rule, EIP-1559 base fee,
  keeper block space, and :class:`MarketDriver`, one path's external world advanced step by
  step.
* :mod:`plimsoll.sim.agents` - the keeper's rule (``keepers/profit.py`` vectorized: close
  fraction, reward, send or skip) and trader behaviour in margin call.
* :mod:`plimsoll.sim.engine` - the fast engine: numpy over paths x accounts (``simulate``
  returns a :class:`~plimsoll.sim.engine.SimResult`: per-step series per path, bad debt by
  cause, insurance, LP value).
* :mod:`plimsoll.sim.report` / :mod:`plimsoll.sim.calibrate` / :mod:`plimsoll.sim.cli` - the
  report directory, the calibration search, ``plimsoll simulate`` / ``plimsoll calibrate``.

Time: the engine's step is the path's grid step (``paths.times``); one step spans
``step / block_time`` blocks. ``scenario(name, cfg, n_steps=...)`` sets the resolution; one
step per block (e.g. 7200 steps for a day) is what the chain engine runs.

How a chain engine drives anvil from the model (per step; a step is one or more blocks)
-----------------------------------------------------------------------------------------
::

    cfg   = SimConfig()                                  # or cfg.with_margin(...)
    path  = scenario("black_thursday", cfg, n_steps=48)  # or load_csv(...), garch(...).path(i)
    book  = draw_population(PopulationSpec(n_accounts=20), cfg, seed=1)
    drv   = MarketDriver(cfg, path.times, path.prices[0])
    trad  = TraderModel(cfg.traders, book.n_accounts, seed=1)
    sold  = np.zeros(len(cfg.assets))                    # USD traded by keepers/hedger
    for _ in range(drv.n_steps):
        inp = drv.advance(sold)        # BlockInputs: market_price, oracle_updates {asset: USD},
                                       # base_fee [gwei], external_share, timestamp
        for a, usd in inp.oracle_updates.items():   # post on the asset's mock feed
            deployment.set_price(feed_id_of[a], usd)
        # mine blocks at inp.timestamp with block gas ~ inp.external_share (base fee follows)
        acts = trad.step(inp.timestamp, in_call=equity < cfg.traders.call_level * mm)
        #   -> list of (account, TOP_UP | REDUCE, amount) due now: deposit cash / reduce size
        # run the real keeper; then sold = -(USD value of collateral keepers seized, at
        # inp.market_price) + pool hedger trades (``hedge_trade``) for the next advance.

``MarketDriver.advance`` is the one call per step that yields the external market price,
the oracle updates and the gas market; :class:`TraderModel.step` yields the trader actions
due (same probabilities and delays as the fast engine); :func:`hedge_trade` the hedger's
trade. The fast engine calls the same functions (``sqrt_impact``, ``oracle_update``,
``next_base_fee``, ``keeper_capacity``, ``close_fraction``, ``penalty_paid``,
``keeper_sends``, ``draw_trader_actions``) on (paths, ...) arrays.
"""

from plimsoll.sim.agents import (
    NOTHING,
    REDUCE,
    TOP_UP,
    close_fraction,
    draw_trader_actions,
    keeper_reward,
    keeper_sends,
    penalty_paid,
)
from plimsoll.sim.market import (
    BlockInputs,
    MarketDriver,
    keeper_capacity,
    next_base_fee,
    oracle_update,
    sqrt_impact,
)
from plimsoll.sim.model import (
    AssetSpec,
    CollateralSpec,
    FeedbackSpec,
    GasSpec,
    KeeperSpec,
    LiquidationSpec,
    MarketSpec,
    SimConfig,
    SimInputError,
    TraderSpec,
    VolScalarPolicy,
)
from plimsoll.sim.paths import (
    SCENARIOS,
    PricePaths,
    garch,
    jump_diffusion,
    load_csv,
    scenario,
)
from plimsoll.sim.population import (
    Book,
    PopulationSpec,
    book_from_state,
    book_to_state,
    draw_population,
)
from plimsoll.sim.traders import TraderModel, hedge_trade

__all__ = [
    "NOTHING",
    "REDUCE",
    "SCENARIOS",
    "TOP_UP",
    "AssetSpec",
    "BlockInputs",
    "Book",
    "CollateralSpec",
    "FeedbackSpec",
    "GasSpec",
    "KeeperSpec",
    "LiquidationSpec",
    "MarketDriver",
    "MarketSpec",
    "PopulationSpec",
    "PricePaths",
    "SimConfig",
    "SimInputError",
    "TraderModel",
    "TraderSpec",
    "VolScalarPolicy",
    "book_from_state",
    "book_to_state",
    "close_fraction",
    "draw_population",
    "draw_trader_actions",
    "garch",
    "hedge_trade",
    "jump_diffusion",
    "keeper_capacity",
    "keeper_reward",
    "keeper_sends",
    "load_csv",
    "next_base_fee",
    "oracle_update",
    "penalty_paid",
    "scenario",
    "sqrt_impact",
]
