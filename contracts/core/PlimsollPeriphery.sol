// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {CollateralLiquidation} from "./CollateralLiquidation.sol";
import {PlimsollStorage} from "./PlimsollStorage.sol";
import {IOracleRouter} from "../interfaces/IOracleRouter.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {WadMath, SafeCastLib} from "../libraries/WadMath.sol";

/// @title PlimsollPeriphery
/// @notice The core's functions that are neither hot paths nor administration: transfers
///         between a trader's subaccounts and their mode, the insurance fund, collateral sales
///         from emptied accounts, write-offs and recovered collateral (CollateralLiquidation),
///         and the margin views. It runs only by delegatecall (core fallback -> configurator
///         fallback -> here), on the core's storage and with the caller's identity, so every
///         function is reached at the core's address. Called directly it acts on its own empty
///         storage.
/// @dev Split from the core and the configurator so that each stays under the 24 KiB code
///      limit with room to spare; one storage layout (PlimsollStorage) and one margin
///      computation (MarginEngine) serve all three.
contract PlimsollPeriphery is CollateralLiquidation {
    using WadMath for uint256;

    constructor(IERC20 cash_, IOracleRouter oracle_)
        PlimsollStorage(cash_, IERC20Metadata(address(cash_)).decimals(), oracle_, address(0), address(0))
    {}

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

    // ------------------------------------------------------------------ subaccounts

    /// @notice Moves `amount` [token units] of `assetId` between two of the caller's
    ///         subaccounts (`type(uint256).max`: all of it); the source must keep IM.
    function transfer(uint256 fromSub, uint256 toSub, uint256 assetId, uint256 amount)
        external
        nonReentrant
        whenNotPaused(PAUSE_TRANSFER)
    {
        (, amount) = _debit(msg.sender, fromSub, assetId, amount);
        Account storage to = _accounts[msg.sender][toSub];
        if (assetId == 0) {
            to.cash = SafeCastLib.toInt128(to.cash + SafeCastLib.toInt(WadMath.toWad(amount, cashDecimals)));
        } else {
            _checkRoom(to.assetMask, 1 << assetId, MAX_ACCOUNT_ASSETS);
            _balances[msg.sender][toSub][assetId] += amount;
            to.assetMask |= uint16(1 << assetId);
        }
        emit Transferred(msg.sender, fromSub, toSub, assetId, amount);
    }

    /// @notice Makes an empty subaccount cross-margin (`isolatedMarket` = 0) or isolated to
    ///         market `isolatedMarket - 1`.
    function configureSubaccount(uint256 sub, uint8 isolatedMarket) external nonReentrant {
        Account storage acct = _accounts[msg.sender][sub];
        if (acct.cash != 0 || acct.assetMask != 0 || acct.marketMask != 0 || acct.flags != 0) {
            revert SubaccountNotEmpty(msg.sender, sub);
        }
        if (isolatedMarket != 0 && isolatedMarket > marketCount) revert UnknownMarket(isolatedMarket - 1);
        acct.isolatedMarket = isolatedMarket;
        emit SubaccountConfigured(msg.sender, sub, isolatedMarket);
    }

    // ------------------------------------------------------------------ views

    /// @notice Equity, initial margin and maintenance margin of a subaccount [wad USD].
    function accountMargin(address owner, uint256 sub) external view returns (int256 equity, uint256 im, uint256 mm) {
        Snapshot memory s = _snapshot(owner, sub);
        return (s.equity, s.im, s.mm);
    }

    /// @notice Whether the subaccount can be liquidated now: equity < maintenance margin and
    ///         every price it uses graded OK (liquidations wait for a trusted price).
    function isLiquidatable(address owner, uint256 sub) external view returns (bool) {
        Snapshot memory s = _snapshot(owner, sub);
        return s.untrustedFeed == 0 && s.equity < SafeCastLib.toInt(s.mm);
    }

    /// @notice The pool's equity (cash + unrealized PnL of its counter-positions) and initial margin.
    function poolMargin() external view returns (int256 equity, uint256 im) {
        (equity, im,,) = _poolMargin();
    }

    /// @notice Collateral balance [token units]; asset 0 (cash) is reported by `getAccount`.
    function collateralBalance(address owner, uint256 sub, uint256 assetId) external view returns (uint256) {
        return _balances[owner][sub][assetId];
    }

    /// @notice Recovered collateral `assetId` the protocol holds for sale [token units].
    function recoveredBalance(uint256 assetId) external view returns (uint256) {
        return _balances[address(this)][0][assetId];
    }

    function assetConfig(uint256 assetId) external view returns (AssetConfig memory) {
        return _assets[assetId];
    }

    function marketState(uint256 marketId) external view returns (MarketState memory) {
        return _marketStates[marketId];
    }

    function liquidationConfig() external view returns (LiquidationConfig memory) {
        return _liq;
    }

    /// @notice The funding index of `marketId` now, pending accrual included [wad].
    function fundingIndex(uint256 marketId) external view returns (int256) {
        if (marketId >= marketCount) revert UnknownMarket(marketId);
        MarketConfig memory c = _marketConfigs[marketId];
        (uint256 price,) = oracle.priceInfo(c.feedId);
        return _currentIndex(c, _marketStates[marketId], price);
    }

    // ------------------------------------------------------------------ pool views
    // (the pool's ERC-4626 views; its cash moves stay in the core)

    /// @notice The pool's equity in cash token units, rounded down, floored at zero. Reverts
    ///         `PriceNotTrusted(feed, 4)` while a price it uses is INVALID (no price at all:
    ///         the pool then reports itself unvalued, 0, instead of a made-up value).
    function poolAssets() external view returns (uint256) {
        (int256 equity,, uint256 bad, uint8 status) = _poolMargin();
        if (status == 4) revert PriceNotTrusted(bad - 1, status);
        return equity > 0 ? uint256(equity).fromWadDown(cashDecimals) : 0;
    }

    /// @notice What the pool can pay out now [token units]: within its IM, its cash balance,
    ///         and the cash tokens the core actually holds (the rest is lent to accounts with
    ///         negative cash), so that ERC-4626 maxWithdraw never promises more than withdraw.
    function poolFreeCash() external view returns (uint256) {
        (int256 equity, uint256 im,,) = _poolMargin();
        int256 freeWad = equity - SafeCastLib.toInt(im);
        int256 cashWad = _accounts[pool][0].cash;
        if (cashWad < freeWad) freeWad = cashWad;
        uint256 free = freeWad > 0 ? uint256(freeWad).fromWadDown(cashDecimals) : 0;
        return Math.min(free, cash.balanceOf(address(this)));
    }
}
