// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IPoolCore} from "./interfaces/IPoolCore.sol";
import {IPlimsoll} from "./interfaces/IPlimsoll.sol";
import {IOptions} from "./interfaces/IOptions.sol";
import {IOracleRouter} from "./interfaces/IOracleRouter.sol";

/// @title LiquidityPool
/// @notice ERC-4626 vault of the settlement stablecoin. Its cash sits in the Plimsoll core as
///         the pool account; the pool is the counterparty of every perpetual and option trade,
///         earns the fees and funding, pays traders' profits and absorbs socialized bad debt.
///         totalAssets = the pool's equity in the core (cash + unrealized PnL of its perps +
///         its options at their full mark), so shares price in the pool's open positions.
/// @dev ERC-4626 to the letter, in every state the core and the oracle can be in:
///      - the views (totalAssets, convert*, max*, preview*) never revert: when the pool cannot
///        be valued (a feed the router refuses to read: an answer out of its bounds, <= 0, an
///        unknown feed) totalAssets is 0 and every max* is 0;
///      - max* are 0 while the action is disabled: the core's pool switch paused, or a price
///        the pool's equity depends on not graded OK (the core refuses the withdrawal then,
///        PriceNotTrusted; deposits wait for OK prices too, so that nobody buys shares at a
///        wick the breaker has not confirmed). deposit/mint/withdraw/redeem revert with
///        PoolClosed (why) in those states, before the standard's ExceededMax errors.
contract LiquidityPool is ERC4626 {
    using SafeERC20 for IERC20;

    uint8 internal constant PAUSE_POOL = 32; // the core's pause flag for pool entry and exit

    /// @notice Why the pool is closed to entry and exit now.
    uint8 public constant OPEN = 0;
    uint8 public constant PAUSED = 1; // the core's pool switch is paused
    uint8 public constant UNPRICED = 2; // a price the pool's equity uses cannot be read
    uint8 public constant UNTRUSTED = 3; // a price the pool's equity uses is not graded OK
    uint8 internal constant INVALID = 4; // OracleRouter's grade of an answer that is no price

    /// @notice Deposits and withdrawals are closed: `reason` (PAUSED, UNPRICED, UNTRUSTED);
    ///         for UNTRUSTED the feed (id) and its grade. Retry when the feed is OK again.
    error PoolClosed(uint8 reason, uint256 feedId, uint8 status);

    IPoolCore public immutable core;

    constructor(IPoolCore core_, IERC20 cash_) ERC20("Plimsoll LP", "plLP") ERC4626(cash_) {
        core = core_;
        cash_.forceApprove(address(core_), type(uint256).max);
    }

    // ------------------------------------------------------------------ ERC-4626 views

    /// @inheritdoc ERC4626
    /// @dev Never reverts: 0 while the pool cannot be valued (see the contract's notes).
    function totalAssets() public view override returns (uint256) {
        (bool ok, uint256 assets) = _poolAssets();
        return ok ? assets : 0;
    }

    /// @notice 0 while closed (paused, a price not readable or not graded OK), and while the
    ///         pool's equity is gone but shares exist (a new deposit would buy into the
    ///         deficit: its shares would be worth less than it paid).
    function maxDeposit(address receiver) public view override returns (uint256) {
        return _entryOpen() ? super.maxDeposit(receiver) : 0;
    }

    function maxMint(address receiver) public view override returns (uint256) {
        return _entryOpen() ? super.maxMint(receiver) : 0;
    }

    /// @notice 0 while closed; else at most what the core lets the pool pay without breaking
    ///         its margin (its free cash).
    function maxWithdraw(address owner) public view override returns (uint256) {
        (uint8 why,,) = closedReason();
        if (why != OPEN) return 0;
        return Math.min(super.maxWithdraw(owner), _freeCash());
    }

    function maxRedeem(address owner) public view override returns (uint256) {
        (uint8 why,,) = closedReason();
        if (why != OPEN) return 0;
        return Math.min(super.maxRedeem(owner), convertToShares(_freeCash()));
    }

    /// @notice Whether LP entry and exit are open now: OPEN, or PAUSED / UNPRICED / UNTRUSTED
    ///         with, for UNTRUSTED, the first feed not graded OK and its grade. Never reverts.
    ///         The same feeds the core's pool margin grades: every perp market where the pool
    ///         has a position, and the options' spot and vol feeds of every live series with
    ///         open interest.
    function closedReason() public view returns (uint8 why, uint256 feedId, uint8 status) {
        if (core.paused() & PAUSE_POOL != 0) return (PAUSED, 0, 0);
        IOracleRouter oracle = core.oracle();
        uint256 n = core.marketCount();
        for (uint256 m; m < n; ++m) {
            IPlimsoll.MarketState memory s = core.marketState(m);
            if (s.longOI == 0 && s.shortOI == 0 && s.sumOpenNotional == 0 && s.sumSizeFunding == 0) continue;
            uint256 feed = core.marketConfig(m).feedId;
            try oracle.priceInfo(feed) returns (uint256, uint8 st) {
                // INVALID (an answer <= 0 or out of bounds): there is no price at all.
                if (st == INVALID) return (UNPRICED, feed, st);
                if (st != 0) return (UNTRUSTED, feed, st);
            } catch {
                return (UNPRICED, feed, 0);
            }
        }
        IOptions options = core.options();
        if (address(options) != address(0)) {
            try options.poolRisk() returns (int256, uint256, uint256 bad, uint8 st) {
                if (bad != 0) return (st == INVALID ? UNPRICED : UNTRUSTED, bad - 1, st);
            } catch {
                return (UNPRICED, 0, 0);
            }
        }
    }

    // ------------------------------------------------------------------ ERC-4626 actions

    /// @dev Each action says why the pool is closed (PoolClosed) before anything else, then
    ///      checks the standard's limits (OpenZeppelin's errors) with the closed state already
    ///      known (the pool's valuation is read as few times as the checks need).
    function deposit(uint256 assets, address receiver) public override returns (uint256 shares) {
        _requireOpen();
        if (_insolvent()) revert ERC4626ExceededMaxDeposit(receiver, assets, 0);
        shares = previewDeposit(assets);
        _deposit(_msgSender(), receiver, assets, shares);
    }

    function mint(uint256 shares, address receiver) public override returns (uint256 assets) {
        _requireOpen();
        if (_insolvent()) revert ERC4626ExceededMaxMint(receiver, shares, 0);
        assets = previewMint(shares);
        _deposit(_msgSender(), receiver, assets, shares);
    }

    function withdraw(uint256 assets, address receiver, address owner) public override returns (uint256 shares) {
        _requireOpen();
        // The error names the most the owner can take now (its shares, the pool's free cash).
        uint256 max = Math.min(super.maxWithdraw(owner), _freeCash());
        if (assets > max) revert ERC4626ExceededMaxWithdraw(owner, assets, max);
        shares = previewWithdraw(assets);
        _withdraw(_msgSender(), receiver, owner, assets, shares);
    }

    function redeem(uint256 shares, address receiver, address owner) public override returns (uint256 assets) {
        _requireOpen();
        uint256 max = Math.min(super.maxRedeem(owner), convertToShares(_freeCash()));
        if (shares > max) revert ERC4626ExceededMaxRedeem(owner, shares, max);
        assets = previewRedeem(shares);
        _withdraw(_msgSender(), receiver, owner, assets, shares);
    }

    // ------------------------------------------------------------------ internals

    function _requireOpen() internal view {
        (uint8 why, uint256 feed, uint8 status) = closedReason();
        if (why != OPEN) revert PoolClosed(why, feed, status);
    }

    function _entryOpen() internal view returns (bool) {
        (uint8 why,,) = closedReason();
        return why == OPEN && !_insolvent();
    }

    /// @dev Shares exist but the pool's equity is gone (or cannot be read).
    function _insolvent() internal view returns (bool) {
        return totalSupply() != 0 && totalAssets() == 0;
    }

    /// @dev The core's valuation of the pool, or (false, 0) when it cannot be read.
    function _poolAssets() internal view returns (bool, uint256) {
        try core.poolAssets() returns (uint256 a) {
            return (true, a);
        } catch {
            return (false, 0);
        }
    }

    function _freeCash() internal view returns (uint256) {
        try core.poolFreeCash() returns (uint256 a) {
            return a;
        } catch {
            return 0;
        }
    }

    /// @dev Virtual shares (1e6 per unit) blunt the first-depositor inflation attack.
    function _decimalsOffset() internal pure override returns (uint8) {
        return 6;
    }

    function _deposit(address caller, address receiver, uint256 assets, uint256 shares) internal override {
        super._deposit(caller, receiver, assets, shares);
        if (assets != 0) core.poolDeposit(assets); // deposit(0) / mint(0) move nothing
    }

    function _withdraw(address caller, address receiver, address owner, uint256 assets, uint256 shares)
        internal
        override
    {
        if (caller != owner) _spendAllowance(owner, caller, shares);
        _burn(owner, shares);
        // A redeem of fewer shares than one token unit is worth pays 0 (the shares burn).
        if (assets != 0) core.poolWithdraw(assets, receiver);
        emit Withdraw(caller, receiver, owner, assets, shares);
    }
}
