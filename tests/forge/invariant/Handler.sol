// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Vm} from "@prb/test/src/Vm.sol";
import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";
import {MockERC20} from "../../../contracts/mocks/MockERC20.sol";
import {MockFeed} from "../../../contracts/mocks/MockFeed.sol";
import {ICore, IPool} from "../utils/ICore.sol";

/// @notice Drives the protocol for the invariant suite: three traders, each with a cross-margin
///         subaccount 0 and a subaccount 1 isolated to one market, two LPs, an outside keeper and
///         a collateral buyer. Inputs are bounded so that most calls do something; every call
///         catches its own revert and counts successes per action.
/// @dev Ghost state checked by the invariants:
///      - `imViolations`: a successful risk-increasing action (opening/increasing/flipping trade,
///        withdrawal, transfer out) left its subaccount below IM;
///      - `healthyToLiquidatable`: an action other than a price move or a time warp turned a
///        healthy subaccount liquidatable;
///      - `liquidatedHealthy` / `liquidationLeftBelowMM`: a liquidation succeeded on a healthy
///        account, or left positions open below MM;
///      - `expectedFingerprint`: the raw state (cash, collateral, positions) of every trader's
///        subaccount 0, updated only by actions that legitimately touch it. Anything else that
///        changes it (an isolated subaccount's loss, somebody else's bad debt) breaks (e).
contract Handler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant N_ACTORS = 3;
    uint256 internal constant N_ACCOUNTS = 6; // actor k / 2, subaccount k % 2

    // Action ids for the counters.
    uint256 internal constant DEPOSIT = 0;
    uint256 internal constant WITHDRAW = 1;
    uint256 internal constant TRADE = 2;
    uint256 internal constant TRANSFER = 3;
    uint256 internal constant LIQUIDATE = 4;
    uint256 internal constant LIQUIDATE_COLLATERAL = 5;
    uint256 internal constant POOL_DEPOSIT = 6;
    uint256 internal constant POOL_WITHDRAW = 7;
    uint256 internal constant MOVE_PRICE = 8;
    uint256 internal constant WARP = 9;
    uint256 internal constant DUST_TRADE = 10;
    uint256 internal constant BREAK_FEED = 11;
    uint256 internal constant WRITE_OFF = 12;
    uint256 internal constant N_ACTIONS = 13;

    ICore public immutable core;
    IPool public immutable pool;
    MockERC20 public immutable usdc;
    MockERC20 public immutable weth;
    MockERC20 public immutable wbtc;
    MockFeed public immutable ethFeed;
    MockFeed public immutable btcFeed;

    address[N_ACTORS] public actors;
    address[2] public lps;
    address public immutable outsideKeeper = address(0x4EE9E4);
    address public immutable buyer = address(0xB0E4);

    uint256[N_ACTIONS] public calls;
    uint256[N_ACTIONS] public successes;
    uint256 public isolatedTrades; // successful trades in isolated subaccounts
    uint256 public isolatedLiquidations;
    uint256 public partialLiquidations;
    uint256 public liquidatableSeen; // account-steps spent liquidatable
    uint256 public openPositionSteps; // account-steps with a position open

    uint256 public imViolations;
    uint256 public healthyToLiquidatable;
    uint256 public liquidatedHealthy;
    uint256 public liquidationLeftBelowMM;
    uint256 public badDebtFromSolvent; // a liquidation booked bad debt on an account with equity >= 0
    uint256 public selfLiquidationGains; // an owner's total equity rose by liquidating itself
    uint256 public hiddenDeficits; // a settlement whose parts do not add up or left debt behind
    uint256 public selfLiquidations; // successful liquidations by the account's own owner
    uint256 public deficitsBooked; // [wad] sum of BadDebtSettled.deficit
    string public lastViolation;

    bool[N_ACCOUNTS] internal liquidatable;
    bytes32[N_ACTORS] public expectedFingerprint;

    constructor(ICore core_, IPool pool_, MockERC20 usdc_, MockERC20 weth_, MockERC20 wbtc_, MockFeed ethFeed_, MockFeed btcFeed_, address lp0) {
        core = core_;
        pool = pool_;
        usdc = usdc_;
        weth = weth_;
        wbtc = wbtc_;
        ethFeed = ethFeed_;
        btcFeed = btcFeed_;
        for (uint256 i; i < N_ACTORS; ++i) {
            address a = address(uint160(0xAC7000 + i));
            actors[i] = a;
            vm.startPrank(a);
            usdc_.approve(address(core_), type(uint256).max);
            weth_.approve(address(core_), type(uint256).max);
            wbtc_.approve(address(core_), type(uint256).max);
            // Subaccount 1 is isolated: actors 0, 2 to ETH-PERP (market 0), actor 1 to BTC-PERP.
            core_.configureSubaccount(1, uint8(i % 2 + 1));
            vm.stopPrank();
            expectedFingerprint[i] = fingerprint(i);
        }
        lps[0] = lp0;
        lps[1] = address(0x1B2);
        vm.prank(lps[1]);
        usdc_.approve(address(pool_), type(uint256).max);
        vm.prank(buyer);
        usdc_.approve(address(core_), type(uint256).max);
    }

    // ================================================================== actions

    function deposit(uint256 who, uint256 assetSeed, uint256 amount) external {
        calls[DEPOSIT]++;
        (address a, uint256 sub, uint256 k) = _account(who);
        uint256 assetId = assetSeed % 3;
        MockERC20 token = _token(assetId);
        if (assetId == 0) amount = _bound(amount, 100e6, 20_000e6);
        else if (assetId == 1) amount = _bound(amount, 0.05e18, 10e18);
        else amount = _bound(amount, 0.001e8, 0.3e8);
        token.mint(a, amount);
        vm.prank(a);
        try core.deposit(sub, assetId, amount) {
            successes[DEPOSIT]++;
        } catch {}
        _touched(k);
        _after(false);
    }

    function withdraw(uint256 who, uint256 assetSeed, uint256 pct) external {
        calls[WITHDRAW]++;
        (address a, uint256 sub, uint256 k) = _account(who);
        uint256 assetId = assetSeed % 3;
        uint256 amount = _portion(_withdrawable(a, sub, assetId), pct);
        if (amount == 0) return _after(false);
        vm.prank(a);
        try core.withdraw(sub, assetId, amount) {
            successes[WITHDRAW]++;
            _checkIM(a, sub, "withdraw");
        } catch {}
        _touched(k);
        _after(false);
    }

    function transfer(uint256 who, uint256 assetSeed, uint256 pct) external {
        calls[TRANSFER]++;
        (address a, uint256 from, uint256 k) = _account(who);
        uint256 to = 1 - from;
        uint256 assetId = assetSeed % 3;
        uint256 amount = _portion(_withdrawable(a, from, assetId), pct);
        if (amount == 0) return _after(false);
        vm.prank(a);
        try core.transfer(from, to, assetId, amount) {
            successes[TRANSFER]++;
            _checkIM(a, from, "transfer");
        } catch {}
        _touched(k);
        _touched(k ^ 1);
        _after(false);
    }

    /// @param mode 0: close, 1: reduce, 2-5: open/increase/flip sized from the free margin
    /// @param lev  leverage on the free margin, 6..11x (the IM base allows 10x: some fail on
    ///             purpose, most leave the account close enough to MM for price moves to matter)
    function trade(uint256 who, uint256 marketSeed, uint256 mode, uint256 lev, bool short_) external {
        calls[TRADE]++;
        (address a, uint256 sub, uint256 k) = _account(who);
        uint256 m = sub == 1 ? (k / 2) % 2 : marketSeed % 2;
        int256 size = core.getPosition(a, sub, m).size;
        int256 delta;
        mode %= 6;
        if (mode == 0 && size != 0) {
            delta = -size;
        } else if (mode == 1 && size != 0) {
            delta = -size * int256(_bound(lev, 1, 99)) / 100;
        } else {
            (int256 equity, uint256 im,) = core.accountMargin(a, sub);
            int256 free = equity - int256(im);
            uint256 notional = free > 0 ? uint256(free) * _bound(lev, 6, 11) : 100e18;
            uint256 abs_ = notional * 1e18 / _price(m);
            if (abs_ == 0) abs_ = 1e12;
            delta = short_ ? -int256(abs_) : int256(abs_);
        }
        if (delta == 0) return _after(false);
        int256 newSize = size + delta;
        bool reducing = size != 0 && _abs(newSize) < _abs(size) && (newSize == 0 || (newSize > 0) == (size > 0));

        vm.prank(a);
        try core.trade(sub, m, delta, 0) {
            successes[TRADE]++;
            if (sub == 1) isolatedTrades++;
            if (!reducing) _checkIM(a, sub, "trade");
        } catch {}
        _touched(k);
        _after(false);
    }

    function liquidate(uint256 targetSeed, uint256 keeperSeed) external {
        _liquidate(targetSeed, keeperSeed);
    }

    function _liquidate(uint256 targetSeed, uint256 keeperSeed) internal {
        calls[LIQUIDATE]++;
        // Prefer a liquidatable subaccount with positions, so that most calls do something.
        uint256 k = targetSeed % N_ACCOUNTS;
        for (uint256 j; j < N_ACCOUNTS; ++j) {
            uint256 c = (targetSeed % N_ACCOUNTS + j) % N_ACCOUNTS;
            (address ca, uint256 cs) = _owner(c);
            if (core.getAccount(ca, cs).marketMask != 0 && core.isLiquidatable(ca, cs)) {
                k = c;
                break;
            }
        }
        (address a, uint256 sub) = _owner(k);
        // Keepers: the traders (often the owner itself: self-liquidation) and an outsider.
        uint256 ki = keeperSeed % (N_ACTORS + 2);
        if (ki == N_ACTORS + 1) ki = k / 2;
        address keeper = ki == N_ACTORS ? outsideKeeper : actors[ki];
        bool wasLiquidatable = core.isLiquidatable(a, sub);
        (int256 equityBefore,,) = core.accountMargin(a, sub);
        // What the owner had before, its liquidated account counted at no less than zero: a
        // deficit goes through the waterfall whoever liquidates, so it is no owner's gain.
        int256 ownerBefore = _ownerEquity(keeper) - (equityBefore < 0 ? equityBefore : int256(0));

        vm.recordLogs();
        vm.prank(keeper);
        try core.liquidate(a, sub) returns (uint256 fraction) {
            successes[LIQUIDATE]++;
            uint256 deficit = _settlements();
            if (equityBefore >= 0 && deficit != 0) {
                _violation(badDebtFromSolvent++, "liquidate: bad debt from an account with equity >= 0");
            }
            if (keeper == a) {
                selfLiquidations++;
                if (_ownerEquity(keeper) > ownerBefore) _violation(selfLiquidationGains++, "self-liquidation gained");
            }
            if (sub == 1) isolatedLiquidations++;
            if (fraction < 1e18) partialLiquidations++;
            if (!wasLiquidatable) _violation(liquidatedHealthy++, "liquidate: healthy account");
            if (core.getAccount(a, sub).marketMask != 0) {
                (int256 equity,, uint256 mm) = core.accountMargin(a, sub);
                if (equity < int256(mm)) _violation(liquidationLeftBelowMM++, "liquidate: left below MM");
            }
        } catch {}
        _touched(k);
        if (ki < N_ACTORS) _touched(ki * 2); // the reward lands in the keeper's subaccount 0
        _after(false);
    }

    function liquidateCollateral(uint256 targetSeed, uint256 pct) external {
        calls[LIQUIDATE_COLLATERAL]++;
        uint256 k = targetSeed % N_ACCOUNTS;
        for (uint256 j; j < N_ACCOUNTS; ++j) {
            uint256 c = (targetSeed % N_ACCOUNTS + j) % N_ACCOUNTS;
            (address ca, uint256 cs) = _owner(c);
            IPlimsoll.Account memory acct = core.getAccount(ca, cs);
            if (acct.marketMask == 0 && acct.cash < 0 && acct.assetMask != 0 && core.isLiquidatable(ca, cs)) {
                k = c;
                break;
            }
        }
        (address a, uint256 sub) = _owner(k);
        IPlimsoll.Account memory t = core.getAccount(a, sub);
        uint256 assetId = (t.assetMask & 2) != 0 ? 1 : 2;
        uint256 debt = t.cash < 0 ? uint256(int256(-t.cash)) / 1e12 + 1 : 1;
        uint256 repay = debt * _bound(pct, 10, 120) / 100;
        if (repay == 0) repay = 1;
        bool wasLiquidatable = core.isLiquidatable(a, sub);
        usdc.mint(buyer, repay);

        vm.recordLogs();
        vm.prank(buyer);
        try core.liquidateCollateral(a, sub, assetId, repay) {
            successes[LIQUIDATE_COLLATERAL]++;
            _settlements();
            if (!wasLiquidatable) _violation(liquidatedHealthy++, "liquidateCollateral: healthy account");
        } catch {}
        _touched(k);
        _after(false);
    }

    /// An ERC-7540 deposit: request, and (once a price round has come since, as a keeper
    /// would) fulfil and claim whatever the LP has pending or claimable.
    function poolDeposit(uint256 who, uint256 amount) external {
        calls[POOL_DEPOSIT]++;
        address l = lps[who % 2];
        amount = _bound(amount, 1_000e6, 1_000_000e6);
        usdc.mint(l, amount);
        vm.prank(l);
        try pool.requestDeposit(amount, l, l) {} catch {}
        if (_settleLp(l)) successes[POOL_DEPOSIT]++;
        _after(false);
    }

    function poolWithdraw(uint256 who, uint256 pct) external {
        calls[POOL_WITHDRAW]++;
        address l = lps[who % 2];
        uint256 shares = _portion(pool.balanceOf(l), pct);
        if (shares != 0) {
            vm.prank(l);
            try pool.requestRedeem(shares, l, l) {} catch {}
        }
        if (_settleLp(l)) successes[POOL_WITHDRAW]++;
        _after(false);
    }

    /// @dev Fulfils `l`'s pending requests where the pool allows it and claims everything.
    function _settleLp(address l) internal returns (bool moved) {
        (bool d, bool r) = pool.canFulfil(l);
        if (d) {
            try pool.fulfilDeposit(l) { moved = true; } catch {}
        }
        if (r) {
            try pool.fulfilRedeem(l) { moved = true; } catch {}
        }
        vm.startPrank(l);
        if (pool.maxDeposit(l) != 0) pool.deposit(pool.maxDeposit(l), l, l);
        if (pool.maxRedeem(l) != 0) pool.redeem(pool.maxRedeem(l), l, l);
        vm.stopPrank();
    }

    /// @param bps price change in basis points, -20% .. +20%, kept inside a plausible band
    function movePrice(bool btc, uint256 bps) external {
        calls[MOVE_PRICE]++;
        MockFeed feed = btc ? btcFeed : ethFeed;
        int256 p = feed.latestAnswer();
        int256 change = int256(_bound(bps, 0, 4_000)) - 2_000;
        int256 next = p * (10_000 + change) / 10_000;
        (int256 lo, int256 hi) = btc ? (int256(15_000e8), int256(240_000e8)) : (int256(500e8), int256(8_000e8));
        if (next < lo) next = lo;
        if (next > hi) next = hi;
        feed.updateAnswer(next);
        successes[MOVE_PRICE]++;
        _after(true);
    }

    /// @dev Time passes (funding accrues); both feeds post a fresh round at the same answer.
    function warp(uint256 dt) external {
        calls[WARP]++;
        vm.warp(block.timestamp + _bound(dt, 5 minutes, 12 hours));
        ethFeed.updateAnswer(ethFeed.latestAnswer());
        btcFeed.updateAnswer(btcFeed.latestAnswer());
        successes[WARP]++;
        _after(true);
    }

    /// @notice A tiny position (dust) in a subaccount: dust accounts must not farm rewards.
    function dustTrade(uint256 who, bool short_) external {
        calls[DUST_TRADE]++;
        (address a, uint256 sub, uint256 k) = _account(who);
        uint256 m = sub == 1 ? (k / 2) % 2 : (who >> 8) % 2;
        int256 delta = short_ ? -int256(0.001e18) : int256(0.001e18);
        vm.prank(a);
        try core.trade(sub, m, delta, 0) {
            successes[DUST_TRADE]++;
        } catch {}
        _touched(k);
        _after(false);
    }

    /// @notice A collateral (and market) feed that cannot be trusted for one liquidation:
    ///         stale (time passes, only the other feed answers again) or answering outside its
    ///         bounds. A liquidation is tried while it is broken (those that do not need its
    ///         price must go on), then the feed answers its old price again.
    function breakFeed(bool btc, bool stale, uint256 targetSeed, uint256 keeperSeed) external {
        calls[BREAK_FEED]++;
        MockFeed feed = btc ? btcFeed : ethFeed;
        MockFeed other = btc ? ethFeed : btcFeed;
        int256 answer = feed.latestAnswer();
        if (stale) {
            vm.warp(block.timestamp + 2 hours);
            other.updateAnswer(other.latestAnswer());
        } else {
            feed.updateAnswer(1); // below the feed's minimum
        }
        successes[BREAK_FEED]++;
        _after(true);
        _liquidate(targetSeed, keeperSeed);
        feed.updateAnswer(answer);
        _after(true);
    }

    /// @notice Books a known deficit, or one whose collateral cannot be sold (anyone may).
    function writeOff(uint256 targetSeed) external {
        calls[WRITE_OFF]++;
        uint256 k = targetSeed % N_ACCOUNTS;
        for (uint256 j; j < N_ACCOUNTS; ++j) {
            uint256 c = (targetSeed % N_ACCOUNTS + j) % N_ACCOUNTS;
            (address ca, uint256 cs) = _owner(c);
            IPlimsoll.Account memory acct = core.getAccount(ca, cs);
            if (acct.marketMask == 0 && acct.cash < 0) {
                k = c;
                break;
            }
        }
        (address a, uint256 sub) = _owner(k);
        vm.recordLogs();
        try core.writeOff(a, sub) {
            successes[WRITE_OFF]++;
            _settlements();
        } catch {}
        _touched(k);
        _after(false);
    }

    // ================================================================== views for the invariants

    function successCount(uint256 action) external view returns (uint256) {
        return successes[action];
    }

    function callCount(uint256 action) external view returns (uint256) {
        return calls[action];
    }

    function totalSuccesses() external view returns (uint256 n) {
        for (uint256 i; i < N_ACTIONS; ++i) n += successes[i];
    }

    function totalCalls() external view returns (uint256 n) {
        for (uint256 i; i < N_ACTIONS; ++i) n += calls[i];
    }

    /// @notice Raw state of actor `i`'s subaccount 0: cash, masks, collateral, positions.
    function fingerprint(uint256 i) public view returns (bytes32) {
        address a = actors[i];
        IPlimsoll.Account memory acct = core.getAccount(a, 0);
        IPlimsoll.Position memory p0 = core.getPosition(a, 0, 0);
        IPlimsoll.Position memory p1 = core.getPosition(a, 0, 1);
        return keccak256(
            abi.encode(
                acct.cash,
                acct.assetMask,
                acct.marketMask,
                core.collateralBalance(a, 0, 1),
                core.collateralBalance(a, 0, 2),
                p0.size,
                p0.openNotional,
                p0.fundingIndex,
                p1.size,
                p1.openNotional,
                p1.fundingIndex
            )
        );
    }

    /// @notice Whether every trader's subaccount 0 is as the handler last left it.
    function fingerprintsIntact() external view returns (bool) {
        for (uint256 i; i < N_ACTORS; ++i) {
            if (fingerprint(i) != expectedFingerprint[i]) return false;
        }
        return true;
    }

    /// @notice Sum of every cash balance the handler's actors can hold [wad] (traders, keepers,
    ///         pool account, insurance fund) and of every collateral balance [token units].
    function bookedSums() external view returns (int256 cashSum, uint256 wethSum, uint256 wbtcSum) {
        cashSum = core.insuranceFund() + core.getAccount(address(pool), 0).cash + core.getAccount(outsideKeeper, 0).cash;
        // Collateral forfeited by written-off accounts is booked to the recovery account.
        wethSum = core.recoveredBalance(1);
        wbtcSum = core.recoveredBalance(2);
        for (uint256 k; k < N_ACCOUNTS; ++k) {
            (address a, uint256 sub) = _owner(k);
            cashSum += core.getAccount(a, sub).cash;
            wethSum += core.collateralBalance(a, sub, 1);
            wbtcSum += core.collateralBalance(a, sub, 2);
        }
    }

    /// @notice Sum over all positions in market `m` of size and of open notional [wad].
    function positionSums(uint256 m) external view returns (int256 net, int256 openNotional) {
        for (uint256 k; k < N_ACCOUNTS; ++k) {
            (address a, uint256 sub) = _owner(k);
            IPlimsoll.Position memory p = core.getPosition(a, sub, m);
            net += p.size;
            openNotional += p.openNotional;
        }
    }

    function violations() external view returns (uint256) {
        return imViolations + healthyToLiquidatable + liquidatedHealthy + liquidationLeftBelowMM + badDebtFromSolvent
            + selfLiquidationGains + hiddenDeficits;
    }

    // ================================================================== internals

    /// @dev Sum of the equity of `who`'s two subaccounts (0 for the outside keeper's second).
    function _ownerEquity(address who) internal view returns (int256 total) {
        (int256 e0,,) = core.accountMargin(who, 0);
        (int256 e1,,) = core.accountMargin(who, 1);
        return e0 + e1;
    }

    /// @dev Checks every BadDebtSettled in the recorded logs: the deficit is exactly what the
    ///      insurance fund and the LPs paid, and the account is left with no debt. Returns the
    ///      deficits' sum.
    function _settlements() internal returns (uint256 total) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bytes32 topic = keccak256("BadDebtSettled(address,uint256,uint256,uint256,uint256)");
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics.length == 0 || logs[i].topics[0] != topic) continue;
            (uint256 deficit, uint256 fromInsurance, uint256 socialized) =
                abi.decode(logs[i].data, (uint256, uint256, uint256));
            address owner = address(uint160(uint256(logs[i].topics[1])));
            uint256 sub = uint256(logs[i].topics[2]);
            if (deficit != fromInsurance + socialized || core.getAccount(owner, sub).cash != 0) {
                _violation(hiddenDeficits++, "a settlement's parts do not add up, or debt was left");
            }
            total += deficit;
        }
        deficitsBooked += total;
    }

    function _account(uint256 seed) internal view returns (address a, uint256 sub, uint256 k) {
        k = seed % N_ACCOUNTS;
        (a, sub) = _owner(k);
    }

    function _owner(uint256 k) internal view returns (address, uint256) {
        return (actors[k / 2], k % 2);
    }

    /// @dev Records a legitimate change to actor k/2's subaccount 0.
    function _touched(uint256 k) internal {
        if (k % 2 == 0) expectedFingerprint[k / 2] = fingerprint(k / 2);
    }

    /// @dev Refreshes the liquidatable flags; outside price moves and warps, none may turn on.
    function _after(bool marketMoved) internal {
        for (uint256 k; k < N_ACCOUNTS; ++k) {
            (address a, uint256 sub) = _owner(k);
            IPlimsoll.Account memory acct = core.getAccount(a, sub);
            // No positions and no debt: equity >= 0 = MM, healthy without asking.
            bool now_ = (acct.marketMask != 0 || acct.cash < 0) && core.isLiquidatable(a, sub);
            if (!marketMoved && now_ && !liquidatable[k]) {
                _violation(healthyToLiquidatable++, "healthy account made liquidatable without a market move");
            }
            liquidatable[k] = now_;
            if (now_) liquidatableSeen++;
            if (acct.marketMask != 0) openPositionSteps++;
        }
    }

    function _checkIM(address a, uint256 sub, string memory what) internal {
        (int256 equity, uint256 im,) = core.accountMargin(a, sub);
        if (equity < int256(im)) _violation(imViolations++, what);
    }

    function _violation(uint256, string memory what) internal {
        lastViolation = what;
    }

    function _withdrawable(address a, uint256 sub, uint256 assetId) internal view returns (uint256) {
        if (assetId != 0) return core.collateralBalance(a, sub, assetId);
        int256 c = core.getAccount(a, sub).cash;
        return c > 0 ? uint256(c) / 1e12 : 0;
    }

    /// @dev 1%..100% of `x`, with 100% twice as likely as any other share.
    function _portion(uint256 x, uint256 pct) internal pure returns (uint256) {
        pct = pct % 101;
        if (pct == 0) pct = 100;
        return x * pct / 100;
    }

    function _price(uint256 m) internal view returns (uint256) {
        return uint256(m == 0 ? ethFeed.latestAnswer() : btcFeed.latestAnswer()) * 1e10;
    }

    function _token(uint256 assetId) internal view returns (MockERC20) {
        return assetId == 0 ? usdc : assetId == 1 ? weth : wbtc;
    }

    function _abs(int256 x) internal pure returns (uint256) {
        return x >= 0 ? uint256(x) : uint256(-x);
    }

    function _bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }
}
