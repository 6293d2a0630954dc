// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {MarginEngine} from "./MarginEngine.sol";
import {PlimsollStorage} from "./PlimsollStorage.sol";
import {IOracleRouter} from "../interfaces/IOracleRouter.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";
import {IOptions} from "../interfaces/IOptions.sol";

/// @title PlimsollConfigurator
/// @notice Roles, pause switches, the asset and market registry and every risk parameter of the
///         Plimsoll core, each setter within hard bounds, and the options market's hooks. It
///         runs only by delegatecall from the core's fallback (on the core's storage, with the
///         caller's identity); the core checks at deployment that it serves the same cash token
///         and oracle. Called directly it acts on its own empty storage, where nobody holds a
///         role. What it does not implement it forwards to the periphery.
/// @dev Split from the core so that the core's runtime code stays under the 24 KiB limit.
///      Deployment order: PlimsollPeriphery, PlimsollConfigurator(periphery), Plimsoll(configurator).
contract PlimsollConfigurator is MarginEngine {
    using WadMath for uint256;

    /// @notice The periphery this configurator forwards every call it does not implement to
    ///         (by delegatecall, on the caller's storage): fixed at deployment.
    address public immutable periphery;

    /// @dev `periphery_` must serve the same cash token and oracle (checked).
    constructor(IERC20 cash_, IOracleRouter oracle_, address periphery_)
        PlimsollStorage(cash_, IERC20Metadata(address(cash_)).decimals(), oracle_, address(0), address(0))
    {
        if (PlimsollStorage(periphery_).cash() != cash_ || PlimsollStorage(periphery_).oracle() != oracle_) {
            revert Unauthorized(periphery_);
        }
        periphery = periphery_;
    }

    /// @notice Every call neither the core nor the configurator implements runs in the
    ///         periphery, by delegatecall: still on the core's storage, with the caller's
    ///         identity.
    fallback() external {
        address impl = periphery;
        assembly ("memory-safe") {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), impl, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    // Hard bounds: no admin can set a parameter outside them.
    uint256 internal constant MIN_IM_BASE = 0.005e18; // 200x leverage at most
    uint256 internal constant MIN_MM_FACTOR = 0.1e18;
    uint256 internal constant MAX_MM_FACTOR = 0.95e18; // MM < IM always
    uint256 internal constant MAX_TAKER_FEE = 0.01e18;
    uint256 internal constant MAX_FUNDING_PER_DAY = 0.1e18;
    uint256 internal constant MAX_PENALTY = 0.1e18;
    uint256 internal constant MAX_BUFFER = 1e18;
    uint256 internal constant MAX_COLLATERAL_BONUS = 0.2e18;
    uint256 internal constant MIN_VOL_SCALAR = 0.1e18;
    uint256 internal constant MAX_VOL_SCALAR = 10e18;
    uint256 internal constant MAX_RAMP = 30 days;
    uint256 internal constant MAX_UPDATE_INTERVAL = 7 days;

    // ------------------------------------------------------------------ roles

    function setAdmin(address next) external onlyAdmin {
        admin = next;
        emit RoleSet(ROLE_ADMIN, next);
    }

    function setGuardian(address next) external onlyAdmin {
        guardian = next;
        emit RoleSet(ROLE_GUARDIAN, next);
    }

    /// @notice Sets the risk keeper, the account that posts volatility scalars.
    function setRiskKeeper(address next) external onlyAdmin {
        riskKeeper = next;
        emit RoleSet(ROLE_RISK_KEEPER, next);
    }

    /// @notice Sets the pause switches (bit flags: 1 deposit, 2 withdraw, 4 trade, 8 transfer,
    ///         16 liquidate, 32 pool). Liquidation stops only when its own bit is set.
    function setPaused(uint8 flags) external {
        if (msg.sender != guardian && msg.sender != admin) revert Unauthorized(msg.sender);
        paused = flags;
        emit PausedSet(flags);
    }

    // ------------------------------------------------------------------ pool

    /// @notice Connects the liquidity pool (once).
    function setPool(address pool_) external onlyAdmin {
        if (pool != address(0) || pool_ == address(0)) revert Unauthorized(msg.sender);
        pool = pool_;
        emit PoolSet(pool_);
    }

    // ------------------------------------------------------------------ registry

    /// @notice Lists a collateral asset; returns its id.
    function listAsset(address token, uint64 haircutWad, uint16 feedId, uint128 cap) external onlyAdmin returns (uint256 id) {
        if (isListed[token]) revert UnsupportedToken(token);
        uint8 dec = IERC20Metadata(token).decimals();
        // toWad multiplies by 10**(18 - decimals): more than 18 decimals cannot be booked.
        if (dec > 18) revert UnsupportedToken(token);
        id = assetCount + 1;
        if (id >= MAX_ASSETS) revert TooMany(MAX_ASSETS - 1);
        assetCount = id;
        isListed[token] = true;
        _assets[id].token = token;
        _assets[id].decimals = dec;
        emit AssetListed(id, token, dec);
        _configureAsset(id, haircutWad, feedId, cap, true);
    }

    function configureAsset(uint256 assetId, uint64 haircutWad, uint16 feedId, uint128 cap, bool enabled) external onlyAdmin {
        _asset(assetId);
        _configureAsset(assetId, haircutWad, feedId, cap, enabled);
    }

    function _configureAsset(uint256 id, uint64 haircutWad, uint16 feedId, uint128 cap, bool enabled) internal {
        if (haircutWad == 0 || haircutWad > WAD) revert ParameterOutOfBounds("haircut", haircutWad);
        oracle.priceInfo(feedId); // the feed must exist and answer now
        AssetConfig storage a = _assets[id];
        a.haircutWad = haircutWad;
        a.feedId = feedId;
        a.cap = cap;
        a.enabled = enabled;
        emit AssetConfigured(id, haircutWad, feedId, cap, enabled);
    }

    /// @notice Lists a perpetual market; returns its id.
    function listMarket(MarketConfig calldata c) external onlyAdmin returns (uint256 id) {
        id = marketCount;
        if (id >= MAX_MARKETS) revert TooMany(MAX_MARKETS);
        marketCount = id + 1;
        _marketStates[id].lastFundingTime = uint64(block.timestamp);
        _setMarket(id, c);
    }

    /// @notice Replaces a market's parameters; funding accrues first at the old ones.
    function configureMarket(uint256 marketId, MarketConfig calldata c) external onlyAdmin {
        if (marketId >= marketCount) revert UnknownMarket(marketId);
        MarketConfig memory old = _marketConfigs[marketId];
        (uint256 price, uint8 status) = oracle.priceInfo(old.feedId);
        // Funding accrues at a trusted price only; otherwise the elapsed time carries over.
        if (status == 0) _accrue(marketId, _currentIndex(old, _marketStates[marketId], price));
        _setMarket(marketId, c);
    }

    function _setMarket(uint256 id, MarketConfig calldata c) internal {
        if (c.imBaseWad < MIN_IM_BASE || c.imBaseWad > WAD) revert ParameterOutOfBounds("imBase", c.imBaseWad);
        if (c.mmFactorWad < MIN_MM_FACTOR || c.mmFactorWad > MAX_MM_FACTOR) {
            revert ParameterOutOfBounds("mmFactor", c.mmFactorWad);
        }
        if (c.takerFeeWad > MAX_TAKER_FEE) revert ParameterOutOfBounds("takerFee", c.takerFeeWad);
        if (c.sizeSlopeWad > WAD) revert ParameterOutOfBounds("sizeSlope", c.sizeSlopeWad);
        if (c.maxFundingRateWad > MAX_FUNDING_PER_DAY) revert ParameterOutOfBounds("maxFundingRate", c.maxFundingRateWad);
        if (c.skewScale == 0) revert ParameterOutOfBounds("skewScale", 0);
        if (c.maxOpenInterest == 0) revert ParameterOutOfBounds("maxOpenInterest", 0);
        oracle.priceInfo(c.feedId); // the feed must exist and answer now
        _marketConfigs[id] = c;
        emit MarketConfigured(id, c);
    }

    function setLiquidationConfig(LiquidationConfig calldata c) external onlyAdmin {
        if (c.penaltyWad > MAX_PENALTY) revert ParameterOutOfBounds("penalty", c.penaltyWad);
        if (c.keeperShareWad > WAD) revert ParameterOutOfBounds("keeperShare", c.keeperShareWad);
        if (c.bufferWad > MAX_BUFFER) revert ParameterOutOfBounds("buffer", c.bufferWad);
        if (c.collateralBonusWad > MAX_COLLATERAL_BONUS) revert ParameterOutOfBounds("collateralBonus", c.collateralBonusWad);
        if (c.keeperRewardMin > c.keeperRewardCap) revert ParameterOutOfBounds("keeperRewardMin", c.keeperRewardMin);
        _liq = c;
        emit LiquidationConfigured(c);
    }

    /// @notice Connects the options market (once).
    function setOptions(address options_) external onlyAdmin {
        if (address(options) != address(0) || options_ == address(0)) revert Unauthorized(msg.sender);
        options = IOptions(options_);
        emit OptionsSet(options_);
    }

    // ------------------------------------------------------------------ dynamic margin

    /// @notice Sets the limits on volatility-scalar updates. Hard bounds: scalars within
    ///         [0.1, 10] with 1 inside, a step of at most 100% per update, a ramp of at most
    ///         30 days (and more than 0), an interval of at most 7 days.
    function setRiskLimits(RiskLimits calldata l) external onlyAdmin {
        if (l.minScalarWad < MIN_VOL_SCALAR || l.minScalarWad > WAD) revert ParameterOutOfBounds("minScalar", l.minScalarWad);
        if (l.maxScalarWad < WAD || l.maxScalarWad > MAX_VOL_SCALAR) revert ParameterOutOfBounds("maxScalar", l.maxScalarWad);
        if (l.maxStepWad == 0 || l.maxStepWad > WAD) revert ParameterOutOfBounds("maxStep", l.maxStepWad);
        if (l.rampPeriod == 0 || l.rampPeriod > MAX_RAMP) revert ParameterOutOfBounds("rampPeriod", l.rampPeriod);
        if (l.minInterval > MAX_UPDATE_INTERVAL) revert ParameterOutOfBounds("minInterval", l.minInterval);
        _riskLimits = l;
        emit RiskLimitsSet(l);
    }

    function riskLimits() external view returns (RiskLimits memory) {
        return _riskLimits;
    }

    /// @notice Posts market `marketId`'s volatility scalar [wad] (the risk keeper or the
    ///         admin). The target must lie within the limits, differ from the current target by
    ///         at most maxStep of it, and come at least minInterval after the last update. IM
    ///         uses the new target at once; a rise of MM ramps in linearly over rampPeriod from
    ///         MM's scalar now (so no account becomes liquidatable in this block), a fall applies
    ///         at once.
    function setVolScalar(uint256 marketId, uint64 scalarWad) external {
        if (msg.sender != riskKeeper && msg.sender != admin) revert Unauthorized(msg.sender);
        if (marketId >= marketCount) revert UnknownMarket(marketId);
        RiskLimits memory l = _riskLimits;
        if (scalarWad < l.minScalarWad || scalarWad > l.maxScalarWad) revert ParameterOutOfBounds("volScalar", scalarWad);
        VolScalar memory v = _vol[marketId];
        if (v.lastUpdate != 0 && block.timestamp < uint256(v.lastUpdate) + l.minInterval) {
            revert UpdateTooSoon(marketId, uint256(v.lastUpdate) + l.minInterval);
        }
        uint256 target = v.toWad == 0 ? WAD : v.toWad;
        uint256 step = scalarWad > target ? scalarWad - target : target - scalarWad;
        if (step > target.mulWadDown(l.maxStepWad)) revert ParameterOutOfBounds("volStep", scalarWad);
        (, uint256 mmNow) = _volScalars(marketId);
        uint40 nowTs = uint40(block.timestamp);
        // Below MM's scalar now: applies at once. Above: ramps from MM's scalar now.
        v = scalarWad > mmNow
            ? VolScalar(uint64(mmNow), scalarWad, nowTs, nowTs + l.rampPeriod, nowTs)
            : VolScalar(scalarWad, scalarWad, nowTs, nowTs, nowTs);
        _vol[marketId] = v;
        emit VolScalarSet(marketId, v.fromWad, scalarWad, v.rampEnd);
    }

    function volScalar(uint256 marketId) external view returns (VolScalar memory) {
        return _vol[marketId];
    }

    // ------------------------------------------------------------------ options market hooks

    /// @notice The options market moves `cashDelta` [wad USD] between an account and the pool
    ///         (premiums, fees, payoffs) and keeps the account's options flag in step.
    function optionsBook(address owner, uint256 sub, int256 cashDelta, bool hasOptions) external nonReentrant {
        if (msg.sender != address(options)) revert NotOptions(msg.sender);
        Account storage a = _accounts[owner][sub];
        a.cash = SafeCastLib.toInt128(a.cash + cashDelta);
        a.flags = hasOptions ? a.flags | FLAG_OPTIONS : a.flags & ~FLAG_OPTIONS;
        Account storage p = _accounts[pool][0];
        p.cash = SafeCastLib.toInt128(p.cash - cashDelta);
    }

    /// @notice Reverts unless (owner, sub) clears IM at prices graded OK (MM when `reducing`),
    ///         and, when `poolGrew`, the pool clears its IM: the options market's margin gate.
    function optionsCheck(address owner, uint256 sub, bool reducing, bool poolGrew) external view {
        Snapshot memory snap = _snapshot(owner, sub);
        if (reducing) {
            if (snap.equity < SafeCastLib.toInt(snap.mm)) revert BelowMaintenance(owner, sub, snap.equity, snap.mm);
        } else {
            _requireTrusted(snap);
            if (snap.equity < SafeCastLib.toInt(snap.im)) revert InsufficientMargin(owner, sub, snap.equity, snap.im);
        }
        if (poolGrew) {
            (int256 pe, uint256 pim,,) = _poolMargin();
            if (pe < SafeCastLib.toInt(pim)) revert PoolUndercollateralized(pe, pim);
        }
    }

    // ------------------------------------------------------------------ portfolio margin

    /// @notice Switches a cross subaccount to portfolio margin (a scenario stress of the whole
    ///         subaccount, see IOptions) or back to standard margin; the subaccount must clear
    ///         initial margin in its new mode.
    function setPortfolioMargin(uint256 sub, bool enabled) external nonReentrant {
        Account storage acct = _accounts[msg.sender][sub];
        if (address(options) == address(0) || acct.isolatedMarket != 0) revert NotPortfolio(msg.sender, sub);
        acct.flags = enabled ? acct.flags | FLAG_PORTFOLIO : acct.flags & ~FLAG_PORTFOLIO;
        emit PortfolioMarginSet(msg.sender, sub, enabled);
        if (acct.marketMask != 0 || acct.cash < 0 || acct.flags & FLAG_OPTIONS != 0) _requireInitialMargin(msg.sender, sub);
    }
}
