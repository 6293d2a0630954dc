// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Vm} from "@prb/test/src/Vm.sol";
import {MockERC20} from "../../../contracts/mocks/MockERC20.sol";
import {MockFeed} from "../../../contracts/mocks/MockFeed.sol";
import {ICore, IPool, IOptionsMarketT} from "../utils/ICore.sol";

/// @notice Drives the options market and the liquidity pool for the pool/options invariants:
///         three actors who trade options against the pool, enter and leave the pool as LPs
///         (ERC-7540 requests, a keeper's fulfilments, claims),
///         and get liquidated; time passes, prices move, series expire and are settled, and
///         the oracle goes through its bad states (stale, suspect, unreadable). Every call
///         catches its own revert. Prices and time move only in `movePrice`, `warp`,
///         `settle` and `oracleState`: between two of those, an epoch, nothing may raise the
///         actors' combined value or lower the honest LP's.
/// @dev Ghost counters read by the invariants:
///      - `valueLeaks`: within an epoch the actors' combined value (wallet USDC + trading cash
///        + options at their full mark + LP shares at convertToAssets) rose by more than
///        rounding, or the honest LP's share value fell;
///      - `settlementLeaks`: settling every position of a settled series moved totalAssets by
///        more than rounding, or the cash the accounts received != what the pool paid.
contract PoolOptionsHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant N_ACTORS = 3;
    uint256 internal constant N_SERIES = 4;
    uint256 internal constant WAD = 1e18;
    /// @dev Rounding allowance [USDC units] of a combined value: each actor's floor of its
    ///      share value and of its options' value (< 1 unit each).
    int256 internal constant TOL = int256(2 * N_ACTORS + 2);

    ICore public immutable core;
    IPool public immutable pool;
    IOptionsMarketT public immutable opt;
    MockERC20 public immutable usdc;
    MockFeed public immutable ethFeed;
    MockFeed public immutable ivFeed;
    address public immutable honestLp;
    address public immutable keeper = address(0x4EE9E5);

    address[N_ACTORS] public actors;
    uint256[N_SERIES] public seriesIds;

    uint256 public calls;
    uint256 public successes;
    uint256 public tradesDone;
    uint256 public lpMoves;
    uint256 public fulfilments;
    uint256 public claims;
    uint256 public settlements;
    uint256 public badOracleSteps;

    uint256 public valueLeaks;
    uint256 public settlementLeaks;
    uint256 public viewLeaks; // an ERC-4626 view reverted, or max* > 0, in a bad oracle state
    int256 public worstLeak; // [USDC units] largest rise of the actors' combined value seen
    string public lastLeak;

    int256 internal baseActors;
    uint256 internal baseLp;

    constructor(ICore core_, IPool pool_, IOptionsMarketT opt_, MockERC20 usdc_, MockFeed ethFeed_, MockFeed ivFeed_, address lp_, uint256[N_SERIES] memory ids) {
        (core, pool, opt, usdc, ethFeed, ivFeed, honestLp) = (core_, pool_, opt_, usdc_, ethFeed_, ivFeed_, lp_);
        seriesIds = ids;
        for (uint256 i; i < N_ACTORS; ++i) {
            address a = address(uint160(0xAC7100 + i));
            actors[i] = a;
            usdc_.mint(a, 3_000_000e6);
            vm.startPrank(a);
            usdc_.approve(address(core_), type(uint256).max);
            usdc_.approve(address(pool_), type(uint256).max);
            core_.deposit(0, 0, 1_000_000e6);
            vm.stopPrank();
        }
        _newEpoch();
    }

    // ------------------------------------------------------------------ actions (one epoch)

    function optTrade(uint256 who, uint256 seriesSeed, uint256 size, bool buy) external {
        address a = actors[who % N_ACTORS];
        uint256 id = seriesIds[seriesSeed % N_SERIES];
        int256 q = int256(_bound(size, 0.01e18, 300e18));
        vm.prank(a);
        try opt.trade(0, id, buy ? q : -q, 0) {
            ++tradesDone;
            _doneIn(true);
        } catch {
            _doneIn(false);
        }
    }

    /// Closes the actor's whole position in a series (the reducing trade).
    function optClose(uint256 who, uint256 seriesSeed) external {
        address a = actors[who % N_ACTORS];
        uint256 id = seriesIds[seriesSeed % N_SERIES];
        int256 q = _size(a, id);
        if (q == 0) return _doneIn(false);
        vm.prank(a);
        try opt.trade(0, id, -q, 0) {
            ++tradesDone;
            _doneIn(true);
        } catch {
            _doneIn(false);
        }
    }

    /// An ERC-7540 deposit request (priced at a later round: never within this epoch).
    function lpDeposit(uint256 who, uint256 amount) external {
        address a = actors[who % N_ACTORS];
        uint256 x = _bound(amount, 1, 2_000_000e6);
        vm.prank(a);
        try pool.requestDeposit(x, a, a) {
            ++lpMoves;
            _doneIn(true);
        } catch {
            _doneIn(false);
        }
    }

    /// An ERC-7540 redemption request of part of the actor's shares.
    function lpRedeem(uint256 who, uint256 pct) external {
        address a = actors[who % N_ACTORS];
        uint256 s = pool.balanceOf(a) * _bound(pct, 1, 100) / 100;
        if (s == 0) return _doneIn(false);
        vm.prank(a);
        try pool.requestRedeem(s, a, a) {
            ++lpMoves;
            _doneIn(true);
        } catch {
            _doneIn(false);
        }
    }

    /// A keeper fulfils an actor's pending requests (both sides) at the share price now.
    function lpFulfil(uint256 who) external {
        address a = actors[who % N_ACTORS];
        bool ok;
        vm.startPrank(keeper);
        if (pool.pendingDepositRequest(0, a) != 0) {
            try pool.fulfilDeposit(a) {
                ok = true;
                ++fulfilments;
            } catch {}
        }
        if (pool.pendingRedeemRequest(0, a) != 0) {
            try pool.fulfilRedeem(a) {
                ok = true;
                ++fulfilments;
            } catch {}
        }
        vm.stopPrank();
        _doneIn(ok);
    }

    /// The actor claims everything claimable (shares and assets).
    function lpClaim(uint256 who) external {
        address a = actors[who % N_ACTORS];
        (uint256 d, uint256 r) = (pool.maxDeposit(a), pool.maxRedeem(a));
        if (d == 0 && r == 0) return _doneIn(false);
        vm.startPrank(a);
        if (d != 0) pool.deposit(d, a, a);
        if (r != 0) pool.redeem(r, a, a);
        vm.stopPrank();
        ++claims;
        _doneIn(true);
    }

    function liquidate(uint256 who) external {
        vm.prank(keeper);
        try core.liquidate(actors[who % N_ACTORS], 0) {
            _doneIn(true);
        } catch {
            _doneIn(false);
        }
    }

    // ------------------------------------------------------------------ actions (new epoch)

    /// Spot and vol move by up to +-15% / +-30%, feeds fresh.
    function movePrice(uint256 bps, uint256 volBps) external {
        int256 p = ethFeed.latestAnswer();
        int256 d = int256(_bound(bps, 0, 3_000)) - 1_500;
        int256 np = p + p * d / 10_000;
        if (np < 500e8) np = 500e8;
        if (np > 8_000e8) np = 8_000e8;
        int256 v = ivFeed.latestAnswer();
        int256 nv = v + v * (int256(_bound(volBps, 0, 6_000)) - 3_000) / 10_000;
        if (nv < 0.2e8) nv = 0.2e8;
        if (nv > 3e8) nv = 3e8;
        vm.warp(block.timestamp + 1);
        ethFeed.updateAnswer(np);
        ivFeed.updateAnswer(nv);
        _done(true);
        _newEpoch();
    }

    function warp(uint256 dt) external {
        vm.warp(block.timestamp + _bound(dt, 1 hours, 10 days));
        _refresh();
        _done(true);
        _newEpoch();
    }

    /// Settles the first expired series (if any) and then every actor's positions in it,
    /// checking that the pool's value does not move and the cash is conserved.
    function settle(uint256 seriesSeed) external {
        uint256 id = seriesIds[seriesSeed % N_SERIES];
        if (block.timestamp < opt.series(id).expiry) return _done(false);
        if (opt.series(id).settlementPrice == 0) {
            try opt.settleSeries(id, 0) {} catch {
                // Further back than the walk: name the first round at or after expiry.
                try opt.settleSeries(id, _firstRoundAfter(opt.series(id).expiry)) {} catch {
                    return _done(false);
                }
            }
        }
        uint256 ta0 = pool.totalAssets();
        int256 poolCash0 = core.getAccount(address(pool), 0).cash;
        int256 paid;
        for (uint256 i; i < N_ACTORS; ++i) {
            int256 c0 = core.getAccount(actors[i], 0).cash;
            opt.settleAccount(actors[i], 0);
            paid += core.getAccount(actors[i], 0).cash - c0;
        }
        uint256 ta1 = pool.totalAssets();
        int256 poolPaid = poolCash0 - core.getAccount(address(pool), 0).cash;
        // Each account's payoff is rounded (longs down, shorts up) once: < 1 wad unit each,
        // far below one USDC unit; totalAssets floors to USDC units.
        if (_abs(int256(ta1) - int256(ta0)) > 1) _settlementLeak("settlement moved totalAssets");
        if (paid != poolPaid) _settlementLeak("accounts' payoffs != the pool's payment");
        if (opt.holders(id) != 0) _settlementLeak("positions left after settling every account");
        ++settlements;
        _done(true);
        _newEpoch();
    }

    /// Puts a feed in a bad state (0 stale spot, 1 stale vol, 2 spot out of the router's
    /// bounds, 3 vol out of bounds, 4 spot 0, 5 spot negative, 6 spot wick the breaker holds),
    /// calls every ERC-4626 view (none may revert; every max* must be 0) and tries an LP
    /// deposit and redemption (both must fail), then restores fresh prices at the old level.
    function oracleState(uint256 s, uint256 who) external {
        s = s % 7;
        int256 spot = ethFeed.latestAnswer();
        int256 vol = ivFeed.latestAnswer();
        if (s <= 1) {
            vm.warp(block.timestamp + 1 hours + 1);
            if (s == 0) ivFeed.updateAnswer(vol);
            else ethFeed.updateAnswer(spot);
        }
        if (s == 2) ethFeed.updateAnswer(50e8);
        if (s == 3) ivFeed.updateAnswer(20e8);
        if (s == 4) ethFeed.updateAnswer(0);
        if (s == 5) ethFeed.updateAnswer(-1);
        if (s == 6) {
            vm.warp(block.timestamp + 1);
            ethFeed.updateAnswer(spot * 6 / 10);
        }
        _viewsInBadState(actors[who % N_ACTORS]);
        // Fresh prices at the old level: three agreeing rounds, so that the spot breaker
        // (2 confirming rounds) grades the feed OK again after the wick of state 6.
        vm.warp(block.timestamp + 1);
        for (uint256 i; i < 3; ++i) ethFeed.updateAnswer(spot);
        ivFeed.updateAnswer(vol);
        ++badOracleSteps;
        _done(true);
        _newEpoch();
    }

    function _viewsInBadState(address a) internal {
        (uint8 why,,) = pool.closedReason();
        bool exposed = _exposed();
        if (exposed && why == 0) _viewLeak("pool open in a bad oracle state with open interest");
        try pool.totalAssets() returns (uint256) {} catch { _viewLeak("totalAssets reverted"); }
        try pool.convertToShares(1e6) returns (uint256) {} catch { _viewLeak("convertToShares reverted"); }
        try pool.convertToAssets(1e12) returns (uint256) {} catch { _viewLeak("convertToAssets reverted"); }
        // ERC-7540: the previews revert (AsyncFlow) in every state; max* are the claimable
        // amounts in every state (claims never close) and never revert.
        try pool.previewDeposit(1e6) returns (uint256) { _viewLeak("previewDeposit returned"); } catch {}
        uint256[4] memory m;
        try pool.maxDeposit(a) returns (uint256 x) { m[0] = x; } catch { _viewLeak("maxDeposit reverted"); }
        try pool.maxMint(a) returns (uint256 x) { m[1] = x; } catch { _viewLeak("maxMint reverted"); }
        try pool.maxWithdraw(a) returns (uint256 x) { m[2] = x; } catch { _viewLeak("maxWithdraw reverted"); }
        try pool.maxRedeem(a) returns (uint256 x) { m[3] = x; } catch { _viewLeak("maxRedeem reverted"); }
        if (m[0] != pool.claimableDepositRequest(0, a) || m[3] != pool.claimableRedeemRequest(0, a)) {
            _viewLeak("max* != the claimable amounts");
        }
        try pool.canFulfil(a) returns (bool, bool) {} catch { _viewLeak("canFulfil reverted"); }
        try pool.oracleTimes() returns (uint256, uint256) {} catch { _viewLeak("oracleTimes reverted"); }
        if (why != 0) {
            // Nothing is priced while the pool is closed: a request waits.
            vm.startPrank(a);
            try pool.requestDeposit(1e6, a, a) {} catch {}
            vm.stopPrank();
            vm.startPrank(keeper);
            try pool.fulfilDeposit(a) { _viewLeak("deposit fulfilled while closed"); } catch {}
            if (pool.pendingRedeemRequest(0, a) != 0) {
                try pool.fulfilRedeem(a) { _viewLeak("redemption fulfilled while closed"); } catch {}
            }
            vm.stopPrank();
        }
    }

    /// @dev Whether the pool has a position whose price the bad state touches.
    function _exposed() internal view returns (bool) {
        uint256[] memory live = opt.liveSeries();
        for (uint256 k; k < live.length; ++k) if (opt.openInterest(live[k]) != 0) return true;
        return false;
    }

    // ------------------------------------------------------------------ ghost values

    /// @notice The actors' combined value [USDC units]: wallets, trading cash, options at
    ///         their full mark (longs floor, shorts ceil: the pool's own rounding), LP shares
    ///         at convertToAssets (computed here from one totalAssets read: OpenZeppelin's
    ///         floor(shares x (totalAssets + 1) / (totalSupply + 1e6))). One mark per series.
    function actorsValue() public view returns (int256 v) {
        (uint256 ta1, uint256 ts1) = (pool.totalAssets() + 1, pool.totalSupply() + 1e6);
        uint256[N_SERIES] memory marks;
        for (uint256 k; k < N_SERIES; ++k) (marks[k],,) = opt.mark(seriesIds[k]);
        for (uint256 i; i < N_ACTORS; ++i) {
            address a = actors[i];
            v += int256(usdc.balanceOf(a)) + int256(core.getAccount(a, 0).cash) / 1e12;
            // LP value: shares held, shares pending redemption or claimable (at the share
            // price), assets pending deposit or claimable (at face).
            (uint256 pa, uint256 ps, uint256 ca, uint256 cs) = (
                pool.pendingDepositRequest(0, a),
                pool.pendingRedeemRequest(0, a),
                pool.maxWithdraw(a),
                pool.maxMint(a)
            );
            v += int256((pool.balanceOf(a) + ps + cs) * ta1 / ts1 + pa + ca);
            (uint256[] memory ids, int256[] memory sizes) = opt.positions(a, 0);
            int256 optWad;
            for (uint256 k; k < ids.length; ++k) {
                uint256 m = marks[_slot(ids[k])];
                int256 q = sizes[k];
                optWad += q > 0 ? int256(uint256(q) * m / WAD) : -int256((uint256(-q) * m + WAD - 1) / WAD);
            }
            v += optWad >= 0 ? optWad / 1e12 : (optWad - 1e12 + 1) / 1e12;
        }
    }

    function honestLpValue() public view returns (uint256) {
        return pool.convertToAssets(pool.balanceOf(honestLp));
    }

    function _slot(uint256 id) internal view returns (uint256 k) {
        while (seriesIds[k] != id) ++k;
    }

    function _check() internal {
        int256 rise = actorsValue() - baseActors;
        if (rise > worstLeak) worstLeak = rise;
        if (rise > TOL) _valueLeak("the actors' combined value rose at unchanged prices and time");
        if (honestLpValue() + 1 < baseLp) _valueLeak("the honest LP's value fell at unchanged prices and time");
    }

    // ------------------------------------------------------------------ internals

    function _newEpoch() internal {
        baseActors = actorsValue();
        baseLp = honestLpValue();
    }

    function _firstRoundAfter(uint256 t) internal view returns (uint80 r) {
        (r,,,,) = ethFeed.latestRoundData();
        while (r > 1) {
            (,,, uint256 tp,) = ethFeed.getRoundData(r - 1);
            if (tp < t) break;
            --r;
        }
    }

    function _refresh() internal {
        ethFeed.updateAnswer(ethFeed.latestAnswer());
        ivFeed.updateAnswer(ivFeed.latestAnswer());
    }

    function _size(address a, uint256 id) internal view returns (int256) {
        (uint256[] memory ids, int256[] memory sizes) = opt.positions(a, 0);
        for (uint256 k; k < ids.length; ++k) if (ids[k] == id) return sizes[k];
        return 0;
    }

    function _done(bool ok) internal {
        ++calls;
        if (ok) ++successes;
    }

    /// @dev An action inside an epoch: done, then the epoch's values checked.
    function _doneIn(bool ok) internal {
        _done(ok);
        _check();
    }

    function _valueLeak(string memory what) internal {
        ++valueLeaks;
        lastLeak = what;
    }

    function _viewLeak(string memory what) internal {
        ++viewLeaks;
        lastLeak = what;
    }

    function _settlementLeak(string memory what) internal {
        ++settlementLeaks;
        lastLeak = what;
    }

    function _abs(int256 x) internal pure returns (uint256) {
        return uint256(x >= 0 ? x : -x);
    }

    function _bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }
}
