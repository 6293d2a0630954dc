"""The two engines agree: one crash path, the fast engine (numpy) and the chain engine (anvil,
the real contracts, Chainlink-style feeds, the real keeper process).

The path: the Black-Thursday shape (``scenario("black_thursday")``, -40% in a day with -15%
in one hour) in 30 steps of 48 minutes, 4 blocks per step; 30 accounts drawn at a median
leverage of 8 (cash, WETH, WBTC and USDS collateral, cross and isolated); every feedback on:
keepers sell the collateral they buy, the pool hedger trades the pool's net delta, and traders
in margin call act half a step after the call: 30% top up 30% of their shortfall, 30% halve
their positions, the rest do nothing. The chain engine draws the fast engine's random stream
for one path (``default_rng([seed, 0])``, in the same order), so the same traders act.

What must agree, and how closely:

* the accounts liquidated and the step of each one's first liquidation and first collateral
  purchase: identical; accounts liquidatable and liquidated per step: identical; the keeper's
  wait per step [blocks]: identical;
* bad debt: per account within 0.01 USD + 1e-6 relative, in total and by cause within
  0.1 USD + 1e-6 relative; the insurance fund and the market value of the collateral
  forfeited with the deficits and the cash the keeper paid for it (``buyRecovered``, its
  recovery pass, in the step of the deficit), and the fund's lowest point within each step
  (after the deficits, before the purchases), per step, within 0.1 USD + 1e-6 relative; the
  LPs' value, as its change from the start, within 1 USD; prices with and without feedback
  and the oracle's, relative 1e-6.

What differs, and why it does not matter here:

* **Rounding.** The chain is integers (feed answers with 8 decimals, wad, token units, every
  rounding in the protocol's favour), the fast engine float64: per account some 1e-4 USD. A
  liquidation that closes everything takes the equity left as penalty, so the account ends at
  exactly 0 on chain and at +-1e-12 in floats; the fast engine books a deficit below -1e-6 USD
  only (``engine.EPS_USD``).
* **Intra-block ordering.** Anvil orders a block by fee cap. The engine's own transactions
  (feed updates, traders' actions) carry no tip and a fee cap of exactly the block's base fee,
  so they come after every keeper transaction: keepers first, then traders, as the fast
  engine orders a step. (With a high fee cap they came first, a top-up landed before the
  liquidation it raced and the keeper's transaction reverted: 8 reverts, 3 accounts
  liquidated a step later.)
* **Keeper latency.** The real keeper acts one block after it sees an account liquidatable;
  the engine waits until its /health reports the block before mining the next one, so the
  machine's load adds no jitter. With ``latency_blocks = 1`` below the 4 blocks of a step the
  fast engine liquidates in the step the account became liquidatable, at that step's oracle
  price, and so does the chain: the oracle does not move within a step. The chain mines a
  step's blocks 1 s apart at the step's time (nothing in the model moves within a step; the
  contract's MM ramp then moves as the fast engine has it) and only the blocks in which
  something happens; waits are counted in the model's blocks.
* **Gas.** The keeper prices a liquidation with ``eth_estimateGas`` (one position: ~140k gas)
  and the fee market; the model uses ``gas_per_liquidation`` (250k). At a 2 gwei base fee a
  liquidation costs ~1.5 USD, under the 5 USD minimum reward, so the profit rule sends every
  one in both engines (at 20 gwei an account 0.01 USD under MM was worth it to the real keeper
  and not to the model's: ``tests/sim/test_rules.py`` checks the rule itself against
  ``keepers/profit.py``). The base fee after a step follows each engine's own keeper gas, and
  the keeper's profit is each engine's own: neither is compared.
* **Traders' actions** are transactions on chain: a reduction pays the taker fee (the model's
  ``MarketSpec.taker_fee``, charged by the fast engine too) and cuts what the keeper's round
  left of the position.
* **Collateral purchases.** The real keeper buys the most valuable asset of an account in one
  transaction (``keepers/candidates.collateral_args``); after it the account is either solvent
  or its deficit is booked at once, so one purchase per step, as in the fast engine.
* **Volatility scalars** (the second test): the risk keeper's ``setVolScalar`` is sent with
  the step's feed updates; MM ramps in from the block of the update, and the keeper's
  transactions land 1-3 s later, when the ramp has moved by that much.
* **Set-up.** Funding is off on chain (``maxFundingRate = 0``: the model leaves funding out);
  the taker fee of opening the book is deposited on top of each account's cash, so the pool
  starts richer by those fees (LP value compared as a change).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from plimsoll.sim import PopulationSpec, SimConfig, draw_population, scenario
from plimsoll.sim.chain import ChainRun, comparable_config, run_chain
from plimsoll.sim.engine import CAUSES, SimResult, simulate

N_ACCOUNTS = 30
N_STEPS = 30
BLOCKS_PER_STEP = 4


def _world(
    vol_response: float = 0.0, p_topup: float = 0.3, p_reduce: float = 0.3
) -> tuple[SimConfig, object, object]:
    cfg = SimConfig()
    path = scenario("black_thursday", cfg, n_steps=N_STEPS)
    dt = float(path.times[1] - path.times[0])
    cfg = comparable_config(cfg, path, BLOCKS_PER_STEP)
    cfg = replace(
        cfg,
        traders=replace(
            cfg.traders, p_topup=p_topup, p_reduce=p_reduce, topup_fraction=0.3, delay=dt / 2
        ),
        vol_policy=replace(cfg.vol_policy, response=vol_response),
    )
    spec = PopulationSpec(
        n_accounts=N_ACCOUNTS, p_options=0.0, p_portfolio=0.0, leverage_median=8.0
    )
    book = draw_population(spec, cfg, seed=3)
    return cfg, path, book


@pytest.fixture(scope="module")
def runs() -> tuple[SimResult, ChainRun]:
    cfg, path, book = _world()
    fast = simulate(cfg, path, book, seed=1, workers=1)  # type: ignore[arg-type]
    chain = run_chain(cfg, path, book, seed=1)  # type: ignore[arg-type]
    print(
        f"AGREEMENT chain engine: {chain.blocks} blocks, set-up {chain.seconds_setup:.1f} s,"
        f" run {chain.seconds_run:.1f} s; keeper {chain.keeper}"
    )
    return fast, chain


def test_the_path_exercises_every_mechanism(runs: tuple[SimResult, ChainRun]) -> None:
    """Not a trivial agreement: liquidations, partial ones, collateral purchases sold into the
    market, bad debt, trader top-ups and the hedger all happen on this path."""
    fast, chain = runs
    assert len(chain.liquidated_accounts) >= 15
    assert chain.series["liquidation_events"].sum() > len(chain.liquidated_accounts)  # partials
    assert (chain.collateral_step >= 0).sum() >= 1
    assert chain.bad_debt.sum() > 10_000
    assert chain.result.recovered[0, -1] > 0  # collateral forfeited with deficits
    assert chain.result.recovered_sold[0, -1] > 0  # and bought back into the insurance fund
    assert chain.keeper["recovery_purchases"] >= 1
    assert chain.trader_actions >= 8 and chain.trader_reverts == 0
    assert chain.keeper["reverted"] == 0 and chain.keeper["succeeded"] > 0
    feedback = np.abs(np.log(fast.market[0] / fast.fundamental[0])).max()
    assert feedback > 1e-3  # sales and hedges moved the market


def test_same_accounts_liquidated_at_the_same_steps(runs: tuple[SimResult, ChainRun]) -> None:
    fast, chain = runs
    assert fast.liquidated_step is not None and fast.collateral_step is not None
    assert set(np.flatnonzero(fast.liquidated_step[0] >= 0)) == chain.liquidated_accounts
    np.testing.assert_array_equal(fast.liquidated_step[0], chain.liquidated_step)
    np.testing.assert_array_equal(fast.collateral_step[0], chain.collateral_step)


def test_same_counts_and_keeper_waits_per_step(runs: tuple[SimResult, ChainRun]) -> None:
    fast, chain = runs
    c = chain.result
    np.testing.assert_array_equal(fast.liquidatable[0], c.liquidatable[0])
    np.testing.assert_array_equal(fast.liquidated[0], c.liquidated[0])
    np.testing.assert_array_equal(fast.collateral_liquidated[0], c.collateral_liquidated[0])
    np.testing.assert_array_equal(fast.keeper_wait[0], c.keeper_wait[0])  # nan where none


def test_bad_debt_and_insurance_agree(runs: tuple[SimResult, ChainRun]) -> None:
    fast, chain = runs
    c = chain.result
    assert fast.account_bad_debt is not None
    np.testing.assert_allclose(chain.bad_debt, fast.account_bad_debt[0], rtol=1e-6, atol=0.01)
    for i, cause in enumerate(CAUSES):
        np.testing.assert_allclose(
            c.bad_debt[0, :, i], fast.bad_debt[0, :, i], rtol=1e-6, atol=0.1, err_msg=cause
        )
    assert c.bad_accounts[0] == fast.bad_accounts[0]
    assert c.gap_accounts[0] == fast.gap_accounts[0]
    np.testing.assert_allclose(c.insurance[0], fast.insurance[0], rtol=1e-6, atol=0.1)
    np.testing.assert_allclose(c.insurance_low[0], fast.insurance_low[0], rtol=1e-6, atol=0.1)
    np.testing.assert_allclose(c.recovered[0], fast.recovered[0], rtol=1e-6, atol=0.1)
    np.testing.assert_allclose(
        c.recovered_sold[0], fast.recovered_sold[0], rtol=1e-6, atol=0.1
    )
    np.testing.assert_allclose(
        c.lp_value[0] - c.lp_value[0, 0], fast.lp_value[0] - fast.lp_value[0, 0], atol=1.0
    )


def test_prices_with_and_without_feedback_agree(runs: tuple[SimResult, ChainRun]) -> None:
    fast, chain = runs
    c = chain.result
    np.testing.assert_allclose(c.fundamental[0], fast.fundamental[0], rtol=1e-12)
    np.testing.assert_allclose(c.market[0], fast.market[0], rtol=1e-6)
    np.testing.assert_allclose(c.oracle[0], fast.oracle[0], rtol=1e-6)


def test_engines_agree_with_the_risk_keepers_vol_scalars() -> None:
    """The same path with the risk keeper's volatility scalars (response 1: sIm = sMm = EWMA
    vol / 50%): the chain engine sends ``setVolScalar`` each step; IM applies at once and MM
    ramps in over an hour from the block of the update, in the contract and in the fast
    engine alike. The keeper's transactions land a second or three after the step's first
    block, when the ramp has moved by that much: the close fractions differ in the 4th
    digit, so bad debt is compared within 0.1% + 5 USD per account (measured: 2 USD at most,
    3 USD in total over 31,770 USD); the accounts and steps must be the same. Every trader
    in call tops up here: a ramp's second can move an account across the call level, and a
    random action would then be drawn in one engine only."""
    cfg, path, book = _world(vol_response=1.0, p_topup=1.0, p_reduce=0.0)
    fast = simulate(cfg, path, book, seed=1, workers=1)  # type: ignore[arg-type]
    chain = run_chain(cfg, path, book, seed=1)  # type: ignore[arg-type]
    assert fast.liquidated_step is not None and fast.account_bad_debt is not None
    assert len(chain.liquidated_accounts) >= 15
    np.testing.assert_array_equal(fast.liquidated_step[0], chain.liquidated_step)
    np.testing.assert_array_equal(fast.collateral_step[0], chain.collateral_step)
    np.testing.assert_array_equal(fast.liquidatable[0], chain.result.liquidatable[0])
    np.testing.assert_allclose(chain.bad_debt, fast.account_bad_debt[0], rtol=1e-3, atol=5.0)
    total_fast, total_chain = fast.bad_debt_total[0], chain.result.bad_debt_total[0]
    assert total_chain == pytest.approx(total_fast, rel=1e-3)
    # the scalars did something: the first liquidations come earlier than without them
    base_cfg, _, _ = _world(p_topup=1.0, p_reduce=0.0)
    base = simulate(base_cfg, path, book, seed=1, workers=1)  # type: ignore[arg-type]
    assert base.liquidated_step is not None
    first = lambda s: int(s[s >= 0].min())  # noqa: E731
    assert first(fast.liquidated_step[0]) < first(base.liquidated_step[0])
