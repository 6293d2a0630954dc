// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IPlimsoll
/// @notice Collateral custody, perpetual futures, standard margin and liquidation.
/// @dev Units, once for all: [wad] = 1e18 fixed point. Prices are WAD USD per whole token.
///      Position sizes are WAD units of the underlying. Cash (the settlement stablecoin) is
///      booked in WAD USD and may be negative (debt). Other collateral is booked in the token's
///      own units. Asset id 0 is cash; collateral ids start at 1. An account is
///      (owner, subaccount id); every subaccount is margined on its own.
interface IPlimsoll {
    // ---------------------------------------------------------------- types
    /// @dev A collateral asset other than cash.
    struct AssetConfig {
        address token;
        uint8 decimals; // the token's own decimals (<= 18)
        uint64 haircutWad; // [wad] collateral weight, 0 < haircut <= 1
        uint16 feedId; // oracle router feed
        bool enabled; // deposits allowed (withdrawals always are)
        uint128 cap; // [token units] most the protocol accepts in total
        uint128 totalDeposited; // [token units] what all accounts hold
    }

    /// @dev Perpetual market risk parameters.
    struct MarketConfig {
        uint16 feedId; // oracle router feed of the underlying
        bool enabled; // risk-increasing trades allowed
        uint64 imBaseWad; // [wad] IM rate of a small position
        uint64 mmFactorWad; // [wad] MM rate = IM rate x mmFactor (< 1)
        uint64 takerFeeWad; // [wad] fee on traded notional, paid to the pool
        uint64 sizeSlopeWad; // [wad] extra IM rate per whole unit of |size|
        uint64 maxFundingRateWad; // [wad] funding per day at full skew, in price units
        uint128 skewScale; // [wad size] skew at which funding reaches its maximum
        uint128 maxOpenInterest; // [wad size] per side
    }

    /// @dev Perpetual market running state.
    struct MarketState {
        uint128 longOI; // [wad size]
        uint128 shortOI; // [wad size]
        int128 fundingIndex; // [wad USD per unit] cumulative funding paid by a long of size 1
        uint64 lastFundingTime; // [s]
        int128 sumOpenNotional; // [wad USD] sum of positions' open notional
        int128 sumSizeFunding; // [wad USD] sum of size x funding index at entry
    }

    /// @dev An open perpetual position, settled to the mark at every change.
    struct Position {
        int128 size; // [wad size] > 0 long, < 0 short
        int128 openNotional; // [wad USD] size x price at the last settlement
        int128 fundingIndex; // [wad USD per unit] market funding index at the last settlement
    }

    /// @dev A subaccount's header; collateral balances and positions live in their own maps.
    struct Account {
        int128 cash; // [wad USD] may be negative (debt)
        uint16 assetMask; // bit i: balance of asset i > 0
        uint16 marketMask; // bit m: position open in market m
        uint8 isolatedMarket; // 0: cross margin; m + 1: isolated to market m
        uint8 flags; // bit 0: holds options (OptionsMarket); bit 1: portfolio margin
        // The liquidation episode a witness liquidation opened (Liquidations): its start [s]
        // and the penalty booked in it so far [1e-6 USD, rounded up]. Within an episode the
        // keeper rewards add up to the reward of one liquidation of the whole.
        uint32 episodeStart;
        uint48 episodePenalty;
    }

    /// @dev Liquidation parameters.
    struct LiquidationConfig {
        uint64 penaltyWad; // [wad] of the closed notional
        uint64 keeperShareWad; // [wad] of the penalty paid to the liquidator
        uint64 bufferWad; // [wad] partial liquidation targets equity >= MM x (1 + buffer)
        uint64 collateralBonusWad; // [wad] discount a collateral buyer gets
        uint128 keeperRewardCap; // [wad USD] most a keeper earns per liquidation
        uint128 dustNotional; // [wad USD] below this, positions close fully
        uint128 keeperRewardMin; // [wad USD] least a keeper earns: a liquidation's gas, so
            // that small accounts are worth liquidating (capped by keeperRewardCap)
    }

    /// @dev A market's volatility scalar: it multiplies the market's margin rates. IM uses
    ///      `toWad` at once; MM ramps linearly from `fromWad` at `rampStart` to `toWad` at
    ///      `rampEnd` when it rises (a fall applies at once), so an update never makes an
    ///      account liquidatable in the block it lands. All zero: never set, scalar 1.
    struct VolScalar {
        uint64 fromWad; // [wad] MM scalar when the ramp started
        uint64 toWad; // [wad] target scalar (IM at once, MM at rampEnd)
        uint40 rampStart; // [s]
        uint40 rampEnd; // [s]
        uint40 lastUpdate; // [s]
    }

    /// @dev Limits on volatility-scalar updates (set by the admin within hard bounds).
    struct RiskLimits {
        uint64 minScalarWad; // [wad] lowest scalar
        uint64 maxScalarWad; // [wad] highest scalar
        uint64 maxStepWad; // [wad] largest relative change of the target per update
        uint32 minInterval; // [s] between two updates of one market
        uint32 rampPeriod; // [s] over which a rise of MM phases in
    }

    // ---------------------------------------------------------------- errors
    /// @notice Thrown when an amount or size is zero.
    error ZeroAmount();
    /// @notice Thrown when an asset id is not listed.
    error UnknownAsset(uint256 assetId);
    /// @notice Thrown when a market id is not listed.
    error UnknownMarket(uint256 marketId);
    /// @notice Thrown when deposits of an asset or risk-increasing trades of a market are disabled.
    error Disabled(uint256 id);
    /// @notice Thrown when a deposit would take an asset past its cap.
    error CapExceeded(uint256 assetId, uint256 totalAfter, uint256 cap);
    /// @notice Thrown when a withdrawal, transfer or sale asks for more than the balance; both
    ///         amounts in the asset's token units (cash: whole token units of the balance).
    error InsufficientBalance(uint256 assetId, uint256 balance, uint256 requested);
    /// @notice Thrown when a token call fails: the token reverted (its own revert data in
    ///         `reason`), returned false, or is not a contract. `operation` is the selector
    ///         of the ERC-20 call (transfer 0xa9059cbb, transferFrom 0x23b872dd).
    error TokenCallFailed(address token, bytes4 operation, bytes reason);
    /// @notice Thrown when the protocol holds fewer cash tokens than a withdrawal asks for
    ///         (the rest is lent to accounts with a negative cash balance).
    error InsufficientLiquidity(uint256 available, uint256 requested);
    /// @notice Thrown when a risk-increasing action would leave equity below initial margin.
    error InsufficientMargin(address owner, uint256 subaccount, int256 equity, uint256 initialMargin);
    /// @notice Thrown when a risk-reducing trade would still leave the account liquidatable.
    error BelowMaintenance(address owner, uint256 subaccount, int256 equity, uint256 maintenanceMargin);
    /// @notice Thrown when a trade would take open interest past the market's limit.
    error OpenInterestExceeded(uint256 marketId, uint256 openInterest, uint256 limit);
    /// @notice Thrown when the pool's equity would fall below its initial margin.
    error PoolUndercollateralized(int256 equity, uint256 initialMargin);
    /// @notice Thrown when the fill price is worse than the trader accepted.
    error SlippageExceeded(uint256 price, uint256 acceptablePrice);
    /// @notice Thrown when an isolated subaccount trades outside its market.
    error IsolatedMarketMismatch(uint256 subaccount, uint256 isolatedMarket, uint256 marketId);
    /// @notice Thrown when a subaccount's mode changes while it holds balances or positions.
    error SubaccountNotEmpty(address owner, uint256 subaccount);
    /// @notice Thrown when an action is paused by the guardian.
    error ActionPaused(uint8 action);
    /// @notice Thrown when a liquidation targets an account at or above maintenance margin.
    error AccountHealthy(address owner, uint256 subaccount, int256 equity, uint256 maintenanceMargin);
    /// @notice Thrown when `liquidate` targets an account with no open positions.
    error NoPositions(address owner, uint256 subaccount);
    /// @notice Thrown when collateral is bought from an account that still has open positions
    ///         or no cash debt.
    error CollateralNotSeizable(address owner, uint256 subaccount);
    /// @notice Thrown when the deposited token does not arrive (a fee took all of it).
    error NothingReceived(address token);
    /// @notice Thrown when a token has more than 18 decimals or is listed twice.
    error UnsupportedToken(address token);
    /// @notice Thrown when a parameter is outside its hard bounds.
    error ParameterOutOfBounds(bytes32 name, uint256 value);
    /// @notice Thrown when the caller lacks the role an action needs.
    error Unauthorized(address caller);
    /// @notice Thrown when trading starts before the liquidity pool is connected.
    error PoolNotSet();
    /// @notice Thrown when the caller is not the liquidity pool.
    error NotPool(address caller);
    /// @notice Thrown when a registry is full (assets or markets), or a subaccount already
    ///         holds the most collateral assets or perp positions one subaccount may hold.
    error TooMany(uint256 limit);
    /// @notice Thrown when an action needs a price (liquidation, a risk-increasing action)
    ///         while the oracle grades it below OK (1 suspect, 2 stale, 3 sequencer,
    ///         4 invalid).
    error PriceNotTrusted(uint256 feedId, uint8 status);
    /// @notice Thrown when a trade would increase a position in a market whose price is not
    ///         OK: the market is reduce-only until it is.
    error MarketReduceOnly(uint256 marketId, uint8 status);
    /// @notice Thrown when an options hook is called by anyone but the options market.
    error NotOptions(address caller);
    /// @notice Thrown when a witness liquidation targets an account not in portfolio margin,
    ///         or portfolio margin is asked of an isolated subaccount or of a deployment without
    ///         an options market. (A subaccount need not hold options to use portfolio margin:
    ///         perps hedge each other in its grid, and the size-dependent part of every perp's
    ///         rate is added to the grid's requirement, so size never gets cheaper by switching.)
    error NotPortfolio(address owner, uint256 subaccount);
    /// @notice Thrown when a market's volatility scalar is updated before the minimum interval.
    error UpdateTooSoon(uint256 marketId, uint256 nextAllowed);

    // ---------------------------------------------------------------- events
    event Deposited(address indexed owner, uint256 indexed subaccount, uint256 indexed assetId, uint256 amount);
    event Withdrawn(address indexed owner, uint256 indexed subaccount, uint256 indexed assetId, uint256 amount);
    event Transferred(address indexed owner, uint256 fromSubaccount, uint256 toSubaccount, uint256 indexed assetId, uint256 amount);
    event SubaccountConfigured(address indexed owner, uint256 indexed subaccount, uint8 isolatedMarket);
    /// @param price [wad] fill price (the oracle mark)   @param fee [wad USD]   @param realizedPnl [wad USD]
    event Traded(
        address indexed owner, uint256 indexed subaccount, uint256 indexed marketId,
        int256 sizeDelta, uint256 price, uint256 fee, int256 realizedPnl
    );
    event FundingAccrued(uint256 indexed marketId, int256 fundingIndex, int256 ratePerDayWad);
    /// @param fraction [wad] share of every position closed   @param badDebt [wad USD] left uncovered
    event Liquidated(
        address indexed owner, uint256 indexed subaccount, address indexed liquidator,
        uint256 fraction, uint256 closedNotional, uint256 penalty, uint256 keeperReward, uint256 badDebt
    );
    event CollateralLiquidated(
        address indexed owner, uint256 indexed subaccount, address indexed liquidator,
        uint256 assetId, uint256 repaidWad, uint256 seized
    );
    /// @notice The bad debt waterfall: account equity is gone (the collateral left, at its
    ///         haircut, cannot cover the debt), the insurance fund pays what it can, pool LPs
    ///         absorb the rest.
    event BadDebtSettled(
        address indexed owner, uint256 indexed subaccount, uint256 deficit, uint256 fromInsurance, uint256 socialized
    );
    /// @notice Collateral moved to the protocol's recovery account: forfeited by an account
    ///         whose debt was written off, or a skimmed surplus (owner = the core itself).
    event CollateralForfeited(address indexed owner, uint256 indexed subaccount, uint256 indexed assetId, uint256 amount);
    /// @param amount [token units] recovered collateral sold   @param paid [cash token units] to the insurance fund
    event RecoveredSold(address indexed buyer, uint256 indexed assetId, uint256 amount, uint256 paid);
    event InsuranceFunded(address indexed from, uint256 amount);
    event PoolCashMoved(int256 amountWad);
    event AssetListed(uint256 indexed assetId, address token, uint8 decimals);
    event AssetConfigured(uint256 indexed assetId, uint64 haircutWad, uint16 feedId, uint128 cap, bool enabled);
    event MarketConfigured(uint256 indexed marketId, MarketConfig config);
    event LiquidationConfigured(LiquidationConfig config);
    event PausedSet(uint8 flags);
    /// @param fromWad MM scalar now (the ramp's start)   @param toWad target   @param rampEnd [s]
    event VolScalarSet(uint256 indexed marketId, uint64 fromWad, uint64 toWad, uint40 rampEnd);
    event RiskLimitsSet(RiskLimits limits);
    event OptionsSet(address options);
    event PortfolioMarginSet(address indexed owner, uint256 indexed subaccount, bool enabled);
    /// @param witness the scenarios (8 bits per market) that showed equity below their loss
    event WitnessLiquidation(address indexed owner, uint256 indexed subaccount, uint256 witness, uint256 lossBound);
    event RoleSet(bytes32 indexed role, address indexed account);
    event PoolSet(address pool);
}
