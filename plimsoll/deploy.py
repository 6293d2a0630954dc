"""Deploy a complete Plimsoll system and describe it in a deployment file.

:func:`deploy_local` deploys, for a local chain, mock tokens (USDC 6 decimals as cash, WETH 18,
WBTC 8), Chainlink-style mock feeds, the oracle router, the core, the liquidity pool, two
collateral assets and two perpetual markets, and seeds the pool and the insurance fund.
The returned :class:`Deployment` carries web3 contract objects and writes a JSON file that the
SDK and keepers load later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from plimsoll.build import Artifact, compile_contracts
from plimsoll.chain import ErrorDecoder, send
from plimsoll.errors import DeploymentError
from plimsoll.units import WAD, token_units, wad

FEED_DECIMALS = 8
HEARTBEAT = 3600  # [s]


@dataclass(frozen=True)
class MarketSpec:
    """Risk parameters of one perpetual market (WAD where a fraction)."""

    name: str
    feed_id: int
    im_base: int = wad("0.1")  # 10x at small size
    mm_factor: int = wad("0.5")  # MM = 5% at small size
    taker_fee: int = wad("0.0005")
    size_slope: int = wad("0.00002")  # IM rate + 0.002% per whole unit of size
    max_funding_rate: int = wad("0.01")  # per day at full skew
    skew_scale: int = wad(10_000)
    max_open_interest: int = wad(100_000)

    def as_tuple(self) -> tuple[int, bool, int, int, int, int, int, int, int]:
        return (
            self.feed_id,
            True,
            self.im_base,
            self.mm_factor,
            self.taker_fee,
            self.size_slope,
            self.max_funding_rate,
            self.skew_scale,
            self.max_open_interest,
        )


@dataclass(frozen=True)
class AssetSpec:
    symbol: str
    decimals: int
    feed_id: int
    haircut: int
    cap: int  # token units


@dataclass
class Deployment:
    """A deployed system: contracts by name, assets and markets, and helpers to transact."""

    w3: Web3
    contracts: dict[str, Contract]
    assets: list[dict[str, Any]]  # index = asset id - 1
    markets: list[dict[str, Any]]  # index = market id
    admin: str
    block: int
    decoder: ErrorDecoder
    feeds: dict[int, Contract] = field(default_factory=dict)
    #: The admin of the core and the oracle router once deployed with a timelock (None: the
    #: ``admin`` account itself, as tests deploy it).
    timelock: Contract | None = None
    series: list[dict[str, Any]] = field(default_factory=list)  # listed option series

    @property
    def core(self) -> Contract:
        return self.contracts["Plimsoll"]

    @property
    def pool(self) -> Contract:
        return self.contracts["LiquidityPool"]

    @property
    def cash(self) -> Contract:
        return self.contracts["USDC"]

    @property
    def oracle(self) -> Contract:
        return self.contracts["OracleRouter"]

    def token(self, asset_id: int) -> Contract:
        """The ERC-20 of asset ``asset_id`` (0 = cash)."""
        if asset_id == 0:
            return self.cash
        return self.contracts[self.assets[asset_id - 1]["symbol"]]

    def send(self, fn: Any, sender: str, gas: int | None = None) -> TxReceipt:
        return send(fn, sender, self.decoder, gas=gas)

    def admin_send(self, fn: Any) -> TxReceipt:
        """Runs an admin call: through the timelock (scheduled, then executed; its delay must be
        0, as on local chains) when the deployment has one, else from the admin account."""
        if self.timelock is None:
            return self.send(fn, self.admin)
        from plimsoll.timelock import Timelock

        return Timelock(self.timelock, self.admin, self.decoder).call(fn)

    def set_price(
        self, feed_id: int, price_usd: float | int | str, sender: str | None = None
    ) -> TxReceipt:
        """Post a new answer (USD per token) on mock feed ``feed_id``."""
        answer = int(wad(price_usd) // 10 ** (18 - FEED_DECIMALS))
        return self.send(self.feeds[feed_id].functions.updateAnswer(answer), sender or self.admin)

    def new_round(self, sender: str | None = None) -> None:
        """Re-post every mock feed's latest answer: a new round at the same prices, in later
        blocks one second later at least (what a pool request waits for before it can be
        priced; local chains only: it moves the clock with ``evm_increaseTime``)."""
        self.w3.provider.make_request("evm_increaseTime", [1])  # type: ignore[arg-type]
        for feed in self.feeds.values():
            answer = int(feed.functions.latestAnswer().call())
            self.send(feed.functions.updateAnswer(answer), sender or self.admin)

    def lp_deposit(self, who: str, units: int, keeper: str | None = None) -> int:
        """The ERC-7540 deposit flow for tests and seeding: ``who`` requests ``units`` of cash
        (it must hold and have approved them), a keeper fulfils it (after a new price round
        when the pool's value uses a feed), ``who`` claims. Returns the shares received."""
        pool = self.pool
        self.send(pool.functions.requestDeposit(units, who, who), who)
        if not pool.functions.canFulfil(who).call()[0]:
            self.new_round()
        self.send(pool.functions.fulfilDeposit(who), keeper or who)
        claim = int(pool.functions.maxDeposit(who).call())
        before = int(pool.functions.balanceOf(who).call())
        self.send(pool.functions.deposit(claim, who, who), who)
        return int(pool.functions.balanceOf(who).call()) - before

    def lp_redeem(self, who: str, shares: int, keeper: str | None = None) -> int:
        """The ERC-7540 redemption flow: request ``shares``, fulfil (after a new round when
        needed), claim everything claimable. Returns the cash received [token units]."""
        pool = self.pool
        self.send(pool.functions.requestRedeem(shares, who, who), who)
        if not pool.functions.canFulfil(who).call()[1]:
            self.new_round()
        self.send(pool.functions.fulfilRedeem(who), keeper or who)
        claim = int(pool.functions.maxRedeem(who).call())
        before = int(self.cash.functions.balanceOf(who).call())
        self.send(pool.functions.redeem(claim, who, who), who)
        return int(self.cash.functions.balanceOf(who).call()) - before

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.w3.eth.chain_id,
            "deploy_block": self.block,
            "admin": self.admin,
            "contracts": {k: v.address for k, v in self.contracts.items()},
            "feeds": {str(k): v.address for k, v in self.feeds.items()},
            "assets": self.assets,
            "markets": self.markets,
            "timelock": self.timelock.address if self.timelock is not None else None,
            "series": self.series,
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2))


DEFAULT_ASSETS = [
    AssetSpec("WETH", 18, 1, wad("0.8"), token_units(1_000_000, 18)),
    AssetSpec("WBTC", 8, 2, wad("0.75"), token_units(50_000, 8)),
]
DEFAULT_MARKETS = [
    MarketSpec("ETH-PERP", 1),
    MarketSpec(
        "BTC-PERP", 2, size_slope=wad("0.0005"), skew_scale=wad(500), max_open_interest=wad(5_000)
    ),
    MarketSpec(
        "SOL-PERP",
        3,
        im_base=wad("0.2"),
        size_slope=wad("0.000001"),
        skew_scale=wad(200_000),
        max_open_interest=wad(2_000_000),
    ),
]
DEFAULT_PRICES: dict[int, float | int] = {1: 2000, 2: 60000, 3: 150}

#: Limits on volatility-scalar updates (``IPlimsoll.RiskLimits``): scalars in [0.5, 4], at most
#: +-50% per update, one update per market per minute, MM rises ramped in over an hour.
DEFAULT_RISK_LIMITS = (wad("0.5"), wad(4), wad("0.5"), 60, 3600)


#: Implied-vol feeds (oracle router ids, answers as fractions) per market id, and their levels.
IV_FEEDS: dict[int, tuple[int, float]] = {0: (11, 0.8), 1: (12, 0.7), 2: (13, 1.0)}

#: ``IOptions.OptionsConfig`` without the vol feed: enabled, spread 1% of the mark, at least
#: 0.05% of spot per unit; standard short rate max(0.25 - OTM, 0.125), MM = 0.7 x IM; long
#: options count at 80% of their mark. Standard margin sees no hedges, so it is set
#: conservatively per position; portfolio margin is the capital-efficient mode.
DEFAULT_OPTIONS = (
    True,
    wad("0.01"),
    wad("0.0005"),
    wad("0.25"),
    wad("0.125"),
    wad("0.7"),
    wad("0.8"),
)

#: ``IOptions.PortfolioConfig``: spot +-18% in 9 points; vol x (1 +- 0.3 x scale), scale =
#: min((30 d / T)^0.5, 2); vol floor 5%; contingencies 0.5% of perp notional and 1% of spot per
#: net short option; IM = 1.15 x MM.
DEFAULT_PORTFOLIO = (
    wad("0.18"),
    9,
    wad("0.3"),
    wad("0.3"),
    wad("0.5"),
    wad(2),
    wad("0.05"),
    wad("0.005"),
    wad("0.01"),
    wad("1.15"),
)


#: Option series a local deployment lists when asked (``deploy_local(series=True)``, what
#: ``plimsoll deploy`` does): per market id, strikes as fractions of the spot, calls and puts,
#: each at these expiries [days from the deploy block].
DEFAULT_SERIES_STRIKES = (0.9, 1.0, 1.1)
DEFAULT_SERIES_DAYS = (7, 30)
DEFAULT_SERIES_MARKETS = (0, 1)


def list_default_series(
    w3: Web3,
    opts: Contract,
    markets: list[dict[str, Any]],
    prices: dict[int, float | int],
    admin: str,
    decoder: ErrorDecoder,
) -> list[dict[str, Any]]:
    """List calls and puts around the spot on ETH and BTC (2 expiries x 3 strikes x 2 types);
    returns their rows (id, market, type, expiry, strike)."""
    now = int(w3.eth.get_block("latest")["timestamp"])
    rows: list[dict[str, Any]] = []
    next_id = int(opts.functions.seriesCount().call())
    for m_id in DEFAULT_SERIES_MARKETS:
        if m_id >= len(markets):
            continue
        spot = float(prices[markets[m_id]["feed_id"]])
        for days in DEFAULT_SERIES_DAYS:
            expiry = now + days * 86400
            for k in DEFAULT_SERIES_STRIKES:
                strike = round(spot * k)
                for is_call in (True, False):
                    send(
                        opts.functions.listSeries(m_id, is_call, expiry, wad(strike)),
                        admin,
                        decoder,
                    )
                    rows.append(
                        {
                            "id": next_id,
                            "market": markets[m_id]["name"],
                            "type": "call" if is_call else "put",
                            "expiry": expiry,
                            "strike": strike,
                        }
                    )
                    next_id += 1
    return rows


@dataclass(frozen=True)
class BreakerSpec:
    """A feed's jump breaker (``OracleRouter.setBreaker``): a round-to-round move above
    ``jump`` [wad] is suspect until ``confirm_rounds`` agreeing rounds or ``hold_seconds``."""

    jump: int = wad("0.15")
    confirm_rounds: int = 3
    hold_seconds: int = 300


def _deploy(w3: Web3, art: Artifact, sender: str, *args: Any) -> Contract:
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    tx_hash = factory.constructor(*args).transact({"from": sender})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise DeploymentError(f"deploying {art.name} failed")
    return w3.eth.contract(address=receipt["contractAddress"], abi=art.abi)


def deploy_core(
    w3: Web3,
    arts: dict[str, Artifact],
    sender: str,
    cash: str,
    oracle: str,
    admin: str,
    guardian: str,
) -> Contract:
    """Deploys the core in its three parts (periphery, configurator, core: each contract
    checks that the next one down serves the same cash token and oracle) and returns the core
    with the merged ABI of all three."""
    periphery = _deploy(w3, arts["PlimsollPeriphery"], sender, cash, oracle)
    configurator = _deploy(
        w3, arts["PlimsollConfigurator"], sender, cash, oracle, periphery.address
    )
    return _deploy(
        w3, arts["Plimsoll"], sender, cash, oracle, admin, guardian, configurator.address
    )


def deploy_local(
    w3: Web3,
    admin: str | None = None,
    guardian: str | None = None,
    pool_liquidity: int = token_units(10_000_000, 6),
    insurance: int = token_units(100_000, 6),
    assets: list[AssetSpec] | None = None,
    markets: list[MarketSpec] | None = None,
    prices: dict[int, float | int] | None = None,
    breaker: BreakerSpec | None = None,
    risk_limits: tuple[int, int, int, int, int] | None = DEFAULT_RISK_LIMITS,
    risk_keeper: str | None = None,
    options: bool = True,
    timelock_delay: int | None = None,
    series: bool = False,
) -> Deployment:
    """Deploy mocks and the whole protocol on a local chain; ``admin`` must be unlocked.

    ``breaker`` turns on every feed's jump breaker (off by default: tests move prices in
    big steps); ``risk_limits`` / ``risk_keeper`` (default: the admin) enable volatility
    scalars; ``options`` deploys the options market (implied-vol feeds, options on every
    market, portfolio margin); ``series`` also lists option series around the spot
    (:func:`list_default_series`; off by default: tests list their own). ``timelock_delay``
    (seconds) hands the admin role of the core (and with it the options market) and of the
    oracle router to a new ``PlimsollTimelock`` with that minimum delay, proposed and executed
    by ``admin``, as the last step; None keeps ``admin`` as the direct admin (tests that change
    parameters often).
    """
    arts = compile_contracts()
    admin = admin or w3.eth.accounts[0]
    guardian = guardian or admin
    assets = DEFAULT_ASSETS if assets is None else assets
    markets = DEFAULT_MARKETS if markets is None else markets
    prices = dict(DEFAULT_PRICES) if prices is None else prices
    decoder = ErrorDecoder([a.abi for a in arts.values()])
    block = w3.eth.block_number

    contracts: dict[str, Contract] = {}
    contracts["USDC"] = _deploy(w3, arts["MockERC20"], admin, "USD Coin", "USDC", 6)
    for a in assets:
        contracts[a.symbol] = _deploy(w3, arts["MockERC20"], admin, a.symbol, a.symbol, a.decimals)
    router = _deploy(w3, arts["OracleRouter"], admin, admin)
    contracts["OracleRouter"] = router
    feeds: dict[int, Contract] = {}
    for feed_id, price in prices.items():
        answer = int(wad(price) // 10 ** (18 - FEED_DECIMALS))
        feeds[feed_id] = _deploy(w3, arts["MockFeed"], admin, FEED_DECIMALS, answer)
        send(
            router.functions.setFeed(
                feed_id, feeds[feed_id].address, HEARTBEAT, WAD // 10**6, 10**9 * WAD
            ),
            admin,
            decoder,
        )
        if breaker is not None:
            send(
                router.functions.setBreaker(
                    feed_id, breaker.jump, breaker.confirm_rounds, breaker.hold_seconds
                ),
                admin,
                decoder,
            )
    core = deploy_core(w3, arts, admin, contracts["USDC"].address, router.address, admin, guardian)
    contracts["Plimsoll"] = core
    pool = _deploy(w3, arts["LiquidityPool"], admin, core.address, contracts["USDC"].address)
    contracts["LiquidityPool"] = pool
    # Stateless batch reader for keepers and tools (plimsoll.sync.StateReader).
    contracts["PlimsollLens"] = _deploy(w3, arts["PlimsollLens"], admin)
    send(core.functions.setPool(pool.address), admin, decoder)
    if risk_limits is not None:
        send(core.functions.setRiskLimits(risk_limits), admin, decoder)
        send(core.functions.setRiskKeeper(risk_keeper or admin), admin, decoder)

    asset_rows = []
    for i, a in enumerate(assets, start=1):
        send(
            core.functions.listAsset(contracts[a.symbol].address, a.haircut, a.feed_id, a.cap),
            admin,
            decoder,
        )
        asset_rows.append(
            {
                "id": i,
                "symbol": a.symbol,
                "decimals": a.decimals,
                "feed_id": a.feed_id,
                "address": contracts[a.symbol].address,
            }
        )
    market_rows = []
    for m_id, m in enumerate(markets):
        send(core.functions.listMarket(m.as_tuple()), admin, decoder)
        market_rows.append({"id": m_id, "name": m.name, "feed_id": m.feed_id})

    if options:
        opts = _deploy(w3, arts["OptionsMarket"], admin, core.address)
        contracts["OptionsMarket"] = opts
        send(core.functions.setOptions(opts.address), admin, decoder)
        for m_id in range(len(markets)):
            if m_id not in IV_FEEDS:
                continue
            iv_feed, iv = IV_FEEDS[m_id]
            feeds[iv_feed] = _deploy(w3, arts["MockFeed"], admin, FEED_DECIMALS, int(iv * 10**8))
            send(
                router.functions.setFeed(
                    iv_feed, feeds[iv_feed].address, HEARTBEAT, WAD // 100, 10 * WAD
                ),
                admin,
                decoder,
            )
            send(opts.functions.configure(m_id, (iv_feed, *DEFAULT_OPTIONS)), admin, decoder)
        send(opts.functions.configurePortfolio(DEFAULT_PORTFOLIO), admin, decoder)
    series_rows: list[dict[str, Any]] = []
    if options and series:
        series_rows = list_default_series(
            w3, contracts["OptionsMarket"], market_rows, prices, admin, decoder
        )

    usdc = contracts["USDC"]
    if pool_liquidity:
        send(usdc.functions.mint(admin, pool_liquidity), admin, decoder)
        send(usdc.functions.approve(pool.address, pool_liquidity), admin, decoder)
        # ERC-7540: request, fulfil (the pool has no position yet: no price round to wait
        # for), claim.
        send(pool.functions.requestDeposit(pool_liquidity, admin, admin), admin, decoder)
        send(pool.functions.fulfilDeposit(admin), admin, decoder)
        claim = int(pool.functions.maxDeposit(admin).call())
        send(pool.functions.deposit(claim, admin, admin), admin, decoder)
    if insurance:
        send(usdc.functions.mint(admin, insurance), admin, decoder)
        send(usdc.functions.approve(core.address, insurance), admin, decoder)
        send(core.functions.fundInsurance(insurance), admin, decoder)

    timelock = None
    if timelock_delay is not None:
        timelock = _deploy(w3, arts["PlimsollTimelock"], admin, timelock_delay, [admin], [admin])
        contracts["PlimsollTimelock"] = timelock
        send(core.functions.setAdmin(timelock.address), admin, decoder)
        send(router.functions.setAdmin(timelock.address), admin, decoder)

    return Deployment(
        w3=w3,
        contracts=contracts,
        assets=asset_rows,
        markets=market_rows,
        admin=admin,
        block=block,
        decoder=decoder,
        feeds=feeds,
        timelock=timelock,
        series=series_rows,
    )
