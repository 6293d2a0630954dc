// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Liquidations} from "./core/Liquidations.sol";
import {PlimsollStorage} from "./core/PlimsollStorage.sol";
import {IOracleRouter} from "./interfaces/IOracleRouter.sol";
import {WadMath, SafeCastLib} from "./libraries/WadMath.sol";

/// @title Plimsoll
/// @notice The margin core: custody, perpetuals, standard margin, liquidation. This file holds
///         the roles, the parameter setters (each within hard bounds), the insurance fund and
///         the liquidity pool's entry points.
contract Plimsoll is Liquidations {
    using SafeERC20 for IERC20;
    using WadMath for uint256;

    // Hard bounds: no admin can set a parameter outside them.
    uint256 internal constant MIN_IM_BASE = 0.005e18; // 200x leverage at most
    uint256 internal constant MIN_MM_FACTOR = 0.1e18;
    uint256 internal constant MAX_MM_FACTOR = 0.95e18; // MM < IM always
    uint256 internal constant MAX_TAKER_FEE = 0.01e18;
    uint256 internal constant MAX_FUNDING_PER_DAY = 0.1e18;
    uint256 internal constant MAX_PENALTY = 0.1e18;
    uint256 internal constant MAX_BUFFER = 1e18;
    uint256 internal constant MAX_COLLATERAL_BONUS = 0.2e18;

    mapping(address token => bool) public isListed;

    constructor(IERC20 cash_, IOracleRouter oracle_, address admin_, address guardian_)
        PlimsollStorage(cash_, IERC20Metadata(address(cash_)).decimals(), oracle_, admin_, guardian_)
    {
        isListed[address(cash_)] = true;
        _liq = LiquidationConfig({
            penaltyWad: 0.01e18,
            keeperShareWad: 0.5e18,
            bufferWad: 0.25e18,
            collateralBonusWad: 0.05e18,
            keeperRewardCap: 100e18,
            dustNotional: 1_000e18,
            keeperRewardMin: 5e18
        });
        emit LiquidationConfigured(_liq);
    }

    // ------------------------------------------------------------------ roles

    function setAdmin(address next) external onlyAdmin {
        admin = next;
        emit RoleSet(ROLE_ADMIN, next);
    }

    function setGuardian(address next) external onlyAdmin {
        guardian = next;
        emit RoleSet(ROLE_GUARDIAN, next);
    }

    /// @notice Sets the pause switches (bit flags: 1 deposit, 2 withdraw, 4 trade, 8 transfer,
    ///         16 liquidate, 32 pool). Liquidation stops only when its own bit is set.
    function setPaused(uint8 flags) external {
        if (msg.sender != guardian && msg.sender != admin) revert Unauthorized(msg.sender);
        paused = flags;
        emit PausedSet(flags);
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
        oracle.price(feedId); // the feed must exist and answer now
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
        _accrue(marketId, _currentIndex(old, _marketStates[marketId], oracle.price(old.feedId)));
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
        oracle.price(c.feedId);
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

    // ------------------------------------------------------------------ insurance fund

    /// @notice Anyone may add cash [token units] to the insurance fund.
    function fundInsurance(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        uint256 received = _pull(cash, msg.sender, amount);
        int256 wad = SafeCastLib.toInt(WadMath.toWad(received, cashDecimals));
        insuranceFund = SafeCastLib.toInt128(insuranceFund + wad);
        cashBooked = SafeCastLib.toInt128(cashBooked + wad);
        emit InsuranceFunded(msg.sender, received);
    }

    // ------------------------------------------------------------------ liquidity pool hooks

    /// @notice Connects the liquidity pool (once).
    function setPool(address pool_) external onlyAdmin {
        if (pool != address(0) || pool_ == address(0)) revert Unauthorized(msg.sender);
        pool = pool_;
        emit PoolSet(pool_);
    }

    /// @notice The pool moves LP cash [token units] in.
    function poolDeposit(uint256 amount) external nonReentrant whenNotPaused(PAUSE_POOL) {
        if (msg.sender != pool) revert NotPool(msg.sender);
        if (amount == 0) revert ZeroAmount();
        uint256 received = _pull(cash, msg.sender, amount);
        int256 wad = SafeCastLib.toInt(WadMath.toWad(received, cashDecimals));
        Account storage p = _accounts[msg.sender][0];
        p.cash = SafeCastLib.toInt128(p.cash + wad);
        cashBooked = SafeCastLib.toInt128(cashBooked + wad);
        emit PoolCashMoved(wad);
    }

    /// @notice The pool pays an LP `amount` [token units]; the pool must keep its IM.
    function poolWithdraw(uint256 amount, address receiver) external nonReentrant whenNotPaused(PAUSE_POOL) {
        if (msg.sender != pool) revert NotPool(msg.sender);
        if (amount == 0) revert ZeroAmount();
        int256 wad = SafeCastLib.toInt(WadMath.toWad(amount, cashDecimals));
        Account storage p = _accounts[msg.sender][0];
        p.cash = SafeCastLib.toInt128(p.cash - wad);
        cashBooked = SafeCastLib.toInt128(cashBooked - wad);
        // The pool, like any account, keeps equity >= IM after a withdrawal.
        (int256 equity, uint256 im) = _poolMargin();
        if (equity < SafeCastLib.toInt(im)) revert PoolUndercollateralized(equity, im);
        uint256 held = cash.balanceOf(address(this));
        if (held < amount) revert InsufficientLiquidity(held, amount);
        emit PoolCashMoved(-wad);
        cash.safeTransfer(receiver, amount);
    }

    /// @notice The pool's equity in cash token units, rounded down, floored at zero.
    function poolAssets() external view returns (uint256) {
        (int256 equity,) = _poolMargin();
        return equity > 0 ? uint256(equity).fromWadDown(cashDecimals) : 0;
    }

    /// @notice What the pool can pay out now [token units]: within its IM, its cash balance,
    ///         and the cash tokens the core actually holds (the rest is lent to accounts with
    ///         negative cash), so that ERC-4626 maxWithdraw never promises more than withdraw.
    function poolFreeCash() external view returns (uint256) {
        (int256 equity, uint256 im) = _poolMargin();
        int256 freeWad = equity - SafeCastLib.toInt(im);
        int256 cashWad = _accounts[pool][0].cash;
        if (cashWad < freeWad) freeWad = cashWad;
        uint256 free = freeWad > 0 ? uint256(freeWad).fromWadDown(cashDecimals) : 0;
        return Math.min(free, cash.balanceOf(address(this)));
    }
}
