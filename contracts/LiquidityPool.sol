// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IPoolCore} from "./interfaces/IPoolCore.sol";
import {IPlimsoll} from "./interfaces/IPlimsoll.sol";
import {IOptions} from "./interfaces/IOptions.sol";
import {IOracleRouter} from "./interfaces/IOracleRouter.sol";

/// @notice The router's feed table (its public getter), for the feeds' latest round times.
interface IRouterFeeds {
    function feeds(uint256 feedId)
        external
        view
        returns (address aggregator, uint32, uint8, bool, uint128, uint128, uint64, uint8, uint32);
}

/// @notice The options market's book views the pool reads to know which feeds price its options.
interface IOptionsBook {
    function liveSeries() external view returns (uint256[] memory);
    function openInterest(uint256 seriesId) external view returns (int256);
    function series(uint256 seriesId) external view returns (IOptions.Series memory);
    function optionsConfig(uint256 marketId) external view returns (IOptions.OptionsConfig memory);
}

/// @notice Chainlink's round view (only the update time is read).
interface IRoundTime {
    function latestRoundData() external view returns (uint80, int256, uint256, uint256 updatedAt, uint80);
}

/// @title LiquidityPool
/// @notice ERC-7540 asynchronous vault (ERC-4626 with requests) of the settlement stablecoin.
///         Its cash sits in the Plimsoll core as the pool account; the pool is the counterparty
///         of every perpetual and option trade, earns the fees and funding, pays traders'
///         profits and absorbs socialized bad debt. totalAssets = the pool's equity in the core
///         (cash + unrealized PnL of its perps + its options at their full mark).
/// @dev ENTRY AND EXIT ARE PRICED AFTER THE REQUEST (issue 13, finding 4). A synchronous vault
///      prices shares at the latest oracle answers, so whoever sees an update coming (a
///      Chainlink round crossing its deviation threshold is public before it lands) deposits
///      just before an update that favours the pool and redeems just after (+19,999.6 USDC
///      risk-free in the test), or redeems just before one that hurts it. Here, as in GMX v2's
///      two-step deposits:
///        1. requestDeposit / requestRedeem take the assets (shares) into the pool's custody:
///           Pending. Nothing is priced.
///        2. fulfilDeposit / fulfilRedeem(controller) price the request at the share price of
///           the first moment when EVERY feed the pool's value depends on (the perp markets
///           where it has a position, the spot and vol feeds of its live options) has a round
///           newer than the request, and every one of them is graded OK: Claimable. So the
///           request is priced by rounds nobody knew when it was made.
///        3. deposit/mint (withdraw/redeem) with the controller claim the shares (assets).
///      THE FREE OPTION. Whoever fulfils chooses the moment within the rounds after the
///      request; if only the requester could, it would wait for a favourable later price.
///      So: fulfilment is permissionless (any address, the bundled keeper fulfils every
///      fulfillable request in its next cycle); it never calls back the requester (no hook to
///      grief); a request cannot be cancelled or topped up once a feed has moved since it was
///      made (a top-up restarts the clock, so it is refused once the requester has seen a
///      round); and entry and exit each pay FEE_WAD (5 bp) to the pool, which stays with the
///      LPs. What remains is the move between the first fulfillable block and the first
///      fulfilment: one block with a keeper, about 6 bp one sigma for ETH at 100% annual vol
///      over 12 s, worth ~0.4 sigma as an option and scaled by the pool's net exposure (< 1):
///      the fee covers it. The two attacks end at <= 0 after fees
///      (tests/forge/unit/PoolOptionsAttacks.t.sol, finding 4).
///      ACCOUNTING. Pending deposit assets and claimable redemption assets sit in this
///      contract (not in the core, so not in totalAssets: they are nobody's LP value);
///      pending redemption shares and claimable deposit shares sit in this contract as shares
///      (in totalSupply: a pending redemption stays exposed until priced, claimable deposit
///      shares were paid for). Every token is in exactly one of: the core (totalAssets),
///      totalPendingDeposits, totalClaimableRedeemAssets; every share with an LP, or in
///      totalPendingRedeems / totalClaimableDepositShares. Nothing is lost while the pool is
///      closed: requests wait for it to reopen, claims are open in every state.
///      ERC-4626/7540: previews revert (AsyncFlow), as ERC-7540 requires for async flows;
///      max* return what the controller can claim (never reverts, in every state); the other
///      views never revert (totalAssets 0 while the pool cannot be valued). requestId is 0:
///      one request per controller and side (the standard's aggregated form).
contract LiquidityPool is ERC4626, ReentrancyGuard {
    using SafeERC20 for IERC20;
    using Math for uint256;

    uint8 internal constant PAUSE_POOL = 32; // the core's pause flag for pool entry and exit

    /// @notice Why the pool is closed to fulfilments now.
    uint8 public constant OPEN = 0;
    uint8 public constant PAUSED = 1; // the core's pool switch is paused
    uint8 public constant UNPRICED = 2; // a price the pool's equity uses cannot be read
    uint8 public constant UNTRUSTED = 3; // a price the pool's equity uses is not graded OK
    uint8 public constant INSOLVENT = 4; // shares exist but the pool's equity is gone (deposits)
    uint8 internal constant INVALID = 4; // OracleRouter's grade of an answer that is no price

    /// @notice Entry and exit fee [wad], kept by the pool (see the contract's notes).
    uint256 public constant FEE_WAD = 0.0005e18;

    /// @notice Fulfilments are closed: `reason` (PAUSED, UNPRICED, UNTRUSTED, INSOLVENT); for
    ///         UNTRUSTED the feed (id) and its grade. Retry when the feed is OK again.
    error PoolClosed(uint8 reason, uint256 feedId, uint8 status);
    /// @notice Previews do not exist in an asynchronous vault (ERC-7540): request, then claim.
    error AsyncFlow();
    /// @notice `caller` is neither `controller` (owner) nor an operator it approved.
    error NotOperator(address controller, address caller);
    /// @notice A request of 0 assets or shares.
    error ZeroAmount();
    /// @notice `controller` has nothing pending on this side.
    error NothingPending(address controller);
    /// @notice The request of `requestTime` cannot be priced yet: some feed the pool uses has
    ///         no round after it (the oldest latest round is at `oracleTime`). Retry after the
    ///         next price round.
    error NotYetPriceable(address controller, uint256 requestTime, uint256 oracleTime);
    /// @notice `controller` already has a request of `requestTime` and a price round has come
    ///         since: it must be fulfilled (anyone may) before another is made.
    error RequestPending(address controller, uint256 requestTime);

    /// @notice ERC-7540.
    event DepositRequest(
        address indexed controller, address indexed owner, uint256 indexed requestId, address sender, uint256 assets
    );
    event RedeemRequest(
        address indexed controller, address indexed owner, uint256 indexed requestId, address sender, uint256 shares
    );
    event OperatorSet(address indexed controller, address indexed operator, bool approved);
    /// @notice A deposit request became claimable: `assets` in (of which `fee` to the pool),
    ///         `shares` to claim.
    event DepositFulfilled(address indexed controller, address indexed by, uint256 assets, uint256 shares, uint256 fee);
    /// @notice A redemption request became claimable: `shares` burnt, `assets` to claim (`fee`
    ///         left in the pool).
    event RedeemFulfilled(address indexed controller, address indexed by, uint256 shares, uint256 assets, uint256 fee);

    struct Request {
        uint128 pending; // assets (deposit) or shares (redeem) not yet priced
        uint64 time; // [s] when the pending amount was requested (the last top-up)
        uint128 claimableAssets;
        uint128 claimableShares;
    }

    IPoolCore public immutable core;

    mapping(address controller => Request) internal _depositReq;
    mapping(address controller => Request) internal _redeemReq;
    mapping(address controller => mapping(address operator => bool)) public isOperator;

    /// @notice Assets held here for pending deposits [token units].
    uint256 public totalPendingDeposits;
    /// @notice Shares held here for pending redemptions.
    uint256 public totalPendingRedeems;
    /// @notice Shares held here for claimable deposits.
    uint256 public totalClaimableDepositShares;
    /// @notice Assets held here for claimable redemptions [token units].
    uint256 public totalClaimableRedeemAssets;

    constructor(IPoolCore core_, IERC20 cash_) ERC20("Plimsoll LP", "plLP") ERC4626(cash_) {
        core = core_;
        cash_.forceApprove(address(core_), type(uint256).max);
    }

    // ------------------------------------------------------------------ ERC-165 / ERC-7575

    /// @notice ERC-165: ERC-7540 operators (0xe3bc4e65), async deposit (0xce3bbe50), async
    ///         redeem (0x620ee8e4), ERC-7575 vault (0x2f0a18c5), ERC-165 (0x01ffc9a7).
    function supportsInterface(bytes4 id) external pure returns (bool) {
        return id == 0x01ffc9a7 || id == 0xe3bc4e65 || id == 0xce3bbe50 || id == 0x620ee8e4 || id == 0x2f0a18c5;
    }

    /// @notice ERC-7575: the share token is the vault itself.
    function share() external view returns (address) {
        return address(this);
    }

    // ------------------------------------------------------------------ operators

    /// @notice ERC-7540: lets `operator` request and claim for the caller (as controller).
    function setOperator(address operator, bool approved) external returns (bool) {
        isOperator[msg.sender][operator] = approved;
        emit OperatorSet(msg.sender, operator, approved);
        return true;
    }

    function _checkOperator(address controller) internal view {
        if (msg.sender != controller && !isOperator[controller][msg.sender]) revert NotOperator(controller, msg.sender);
    }

    // ------------------------------------------------------------------ requests

    /// @notice Requests a deposit of `assets` from `owner` (msg.sender or an operator of it;
    ///         the pool pulls with owner's ERC-20 approval), claimable by `controller` once
    ///         fulfilled. Refused while the pool is paused.
    /// @return requestId 0 (one aggregated request per controller)
    function requestDeposit(uint256 assets, address controller, address owner)
        external
        nonReentrant
        returns (uint256 requestId)
    {
        _checkOperator(owner);
        if (assets == 0) revert ZeroAmount();
        if (core.paused() & PAUSE_POOL != 0) revert PoolClosed(PAUSED, 0, 0);
        _addPending(_depositReq[controller], controller, assets);
        totalPendingDeposits += assets;
        IERC20(asset()).safeTransferFrom(owner, address(this), assets);
        emit DepositRequest(controller, owner, 0, msg.sender, assets);
        return 0;
    }

    /// @notice Requests the redemption of `shares` of `owner` (msg.sender, an operator of it,
    ///         or a spender with an ERC-20 allowance), claimable by `controller` once
    ///         fulfilled. The shares move into the pool's custody at once (they stay exposed to
    ///         the pool's results until priced). Refused while the pool is paused.
    function requestRedeem(uint256 shares, address controller, address owner)
        external
        nonReentrant
        returns (uint256 requestId)
    {
        if (msg.sender != owner && !isOperator[owner][msg.sender]) _spendAllowance(owner, msg.sender, shares);
        if (shares == 0) revert ZeroAmount();
        if (core.paused() & PAUSE_POOL != 0) revert PoolClosed(PAUSED, 0, 0);
        _addPending(_redeemReq[controller], controller, shares);
        totalPendingRedeems += shares;
        _transfer(owner, address(this), shares);
        emit RedeemRequest(controller, owner, 0, msg.sender, shares);
        return 0;
    }

    /// @dev A top-up restarts the request's clock, so it is allowed only while no feed the pool
    ///      uses has a round after the pending request (the requester has seen nothing since).
    function _addPending(Request storage r, address controller, uint256 amount) internal {
        if (r.pending != 0) {
            (, uint256 newest) = _feedTimes();
            if (newest > r.time) revert RequestPending(controller, r.time);
        }
        r.pending = SafeCast.toUint128(r.pending + amount);
        r.time = uint64(block.timestamp);
    }

    /// @notice ERC-7540: assets of `controller`'s deposit request not priced yet.
    function pendingDepositRequest(uint256, address controller) external view returns (uint256) {
        return _depositReq[controller].pending;
    }

    function claimableDepositRequest(uint256, address controller) external view returns (uint256) {
        return _depositReq[controller].claimableAssets;
    }

    function pendingRedeemRequest(uint256, address controller) external view returns (uint256) {
        return _redeemReq[controller].pending;
    }

    function claimableRedeemRequest(uint256, address controller) external view returns (uint256) {
        return _redeemReq[controller].claimableShares;
    }

    /// @notice Everything about `controller`'s requests in one call (wallets, keepers).
    /// @return dep the deposit request (pending assets, time, claimable assets and shares)
    /// @return red the redemption request (pending shares, time, claimable assets and shares)
    function requests(address controller) external view returns (Request memory dep, Request memory red) {
        return (_depositReq[controller], _redeemReq[controller]);
    }

    // ------------------------------------------------------------------ fulfilment

    /// @notice Whether `controller`'s pending deposit (redemption) can be fulfilled now: the
    ///         pool open and every feed it uses with a round after the request. Never reverts.
    function canFulfil(address controller) external view returns (bool deposit_, bool redeem_) {
        Request storage d = _depositReq[controller];
        Request storage r = _redeemReq[controller];
        (uint256 oldest,) = _feedTimes();
        (uint8 why,,) = closedReason();
        bool open = why == OPEN;
        deposit_ = open && d.pending != 0 && oldest > d.time && !_insolvent();
        redeem_ = open && r.pending != 0 && oldest > r.time;
    }

    /// @notice Prices `controller`'s pending deposit at the share price now and makes its
    ///         shares claimable. Anyone may call it (see the contract's notes: the free option).
    /// @return shares the shares the controller can claim
    function fulfilDeposit(address controller) external nonReentrant returns (uint256 shares) {
        Request storage r = _depositReq[controller];
        uint256 assets = r.pending;
        _checkFulfillable(r, controller);
        if (_insolvent()) revert PoolClosed(INSOLVENT, 0, 0);
        uint256 fee = assets.mulDiv(FEE_WAD, 1e18, Math.Rounding.Ceil);
        shares = _convertToShares(assets - fee, Math.Rounding.Floor);
        r.pending = 0;
        r.claimableAssets = SafeCast.toUint128(r.claimableAssets + assets);
        r.claimableShares = SafeCast.toUint128(r.claimableShares + shares);
        totalPendingDeposits -= assets;
        totalClaimableDepositShares += shares;
        _mint(address(this), shares);
        core.poolDeposit(assets);
        emit DepositFulfilled(controller, msg.sender, assets, shares, fee);
    }

    /// @notice Prices `controller`'s pending redemption at the share price now: burns the
    ///         shares and moves their value (less the fee) out of the core into the pool's
    ///         custody, claimable. Anyone may call it. The core refuses (PoolUndercollateralized)
    ///         while the pool lacks the free cash: the request waits.
    /// @return assets the assets the controller can claim [token units]
    function fulfilRedeem(address controller) external nonReentrant returns (uint256 assets) {
        Request storage r = _redeemReq[controller];
        uint256 shares = r.pending;
        _checkFulfillable(r, controller);
        uint256 gross = _convertToAssets(shares, Math.Rounding.Floor);
        uint256 fee = gross.mulDiv(FEE_WAD, 1e18, Math.Rounding.Ceil);
        assets = gross - fee;
        r.pending = 0;
        r.claimableAssets = SafeCast.toUint128(r.claimableAssets + assets);
        r.claimableShares = SafeCast.toUint128(r.claimableShares + shares);
        totalPendingRedeems -= shares;
        totalClaimableRedeemAssets += assets;
        _burn(address(this), shares);
        // A redemption of fewer shares than one token unit is worth pays 0 (the shares burn).
        if (assets != 0) core.poolWithdraw(assets, address(this));
        emit RedeemFulfilled(controller, msg.sender, shares, assets, fee);
    }

    function _checkFulfillable(Request storage r, address controller) internal view {
        if (r.pending == 0) revert NothingPending(controller);
        (uint8 why, uint256 feed, uint8 status) = closedReason();
        if (why != OPEN) revert PoolClosed(why, feed, status);
        (uint256 oldest,) = _feedTimes();
        if (oldest <= r.time) revert NotYetPriceable(controller, r.time, oldest);
    }

    /// @notice The oldest and the newest latest-round time [s] of the feeds the pool's value
    ///         uses now (oldest = 2^256-1, newest = 0 when it uses none: no price moves it).
    ///         An unreadable feed counts as time 0. Never reverts.
    function oracleTimes() external view returns (uint256 oldest, uint256 newest) {
        return _feedTimes();
    }

    function _feedTimes() internal view returns (uint256 oldest, uint256 newest) {
        oldest = type(uint256).max;
        IRouterFeeds oracle = IRouterFeeds(address(core.oracle()));
        uint256 n = core.marketCount();
        for (uint256 m; m < n; ++m) {
            IPlimsoll.MarketState memory s = core.marketState(m);
            if (s.longOI == 0 && s.shortOI == 0 && s.sumOpenNotional == 0 && s.sumSizeFunding == 0) continue;
            (oldest, newest) = _fold(oracle, core.marketConfig(m).feedId, oldest, newest);
        }
        IOptionsBook options = IOptionsBook(address(core.options()));
        if (address(options) == address(0)) return (oldest, newest);
        try options.liveSeries() returns (uint256[] memory live) {
            for (uint256 k; k < live.length; ++k) {
                if (options.openInterest(live[k]) == 0) continue;
                uint256 m = options.series(live[k]).marketId;
                (oldest, newest) = _fold(oracle, core.marketConfig(m).feedId, oldest, newest);
                (oldest, newest) = _fold(oracle, options.optionsConfig(m).ivFeedId, oldest, newest);
            }
        } catch {
            oldest = 0;
        }
    }

    function _fold(IRouterFeeds oracle, uint256 feedId, uint256 oldest, uint256 newest)
        internal
        view
        returns (uint256, uint256)
    {
        uint256 t;
        try oracle.feeds(feedId) returns (address agg, uint32, uint8, bool, uint128, uint128, uint64, uint8, uint32) {
            if (agg.code.length != 0) {
                try IRoundTime(agg).latestRoundData() returns (uint80, int256, uint256, uint256 u, uint80) {
                    t = u;
                } catch {}
            }
        } catch {}
        return (t < oldest ? t : oldest, t > newest ? t : newest);
    }

    // ------------------------------------------------------------------ ERC-4626 views

    /// @inheritdoc ERC4626
    /// @dev Never reverts: 0 while the pool cannot be valued (see the contract's notes).
    function totalAssets() public view override returns (uint256) {
        (bool ok, uint256 assets) = _poolAssets();
        return ok ? assets : 0;
    }

    /// @notice ERC-7540: the assets `controller` can claim with deposit (in every state).
    function maxDeposit(address controller) public view override returns (uint256) {
        return _depositReq[controller].claimableAssets;
    }

    /// @notice ERC-7540: the shares `controller` can claim with mint (in every state).
    function maxMint(address controller) public view override returns (uint256) {
        return _depositReq[controller].claimableShares;
    }

    /// @notice ERC-7540: the assets `controller` can claim with withdraw (in every state).
    function maxWithdraw(address controller) public view override returns (uint256) {
        return _redeemReq[controller].claimableAssets;
    }

    /// @notice ERC-7540: the shares `controller` can claim with redeem (in every state).
    function maxRedeem(address controller) public view override returns (uint256) {
        return _redeemReq[controller].claimableShares;
    }

    /// @notice ERC-7540: previews revert in an asynchronous vault.
    function previewDeposit(uint256) public pure override returns (uint256) {
        revert AsyncFlow();
    }

    function previewMint(uint256) public pure override returns (uint256) {
        revert AsyncFlow();
    }

    function previewWithdraw(uint256) public pure override returns (uint256) {
        revert AsyncFlow();
    }

    function previewRedeem(uint256) public pure override returns (uint256) {
        revert AsyncFlow();
    }

    /// @notice Whether fulfilments are open now: OPEN, or PAUSED / UNPRICED / UNTRUSTED with,
    ///         for UNTRUSTED, the first feed not graded OK and its grade. Never reverts. The
    ///         same feeds the core's pool margin grades: every perp market where the pool has
    ///         a position, and the options' spot and vol feeds of every live series with open
    ///         interest.
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

    // ------------------------------------------------------------------ claims (ERC-7540)

    /// @notice Claims `assets` of the caller's claimable deposit as shares to `receiver`.
    function deposit(uint256 assets, address receiver) public override returns (uint256) {
        return deposit(assets, receiver, msg.sender);
    }

    /// @notice Claims `assets` of `controller`'s claimable deposit (caller: the controller or
    ///         its operator) as shares to `receiver` (pro rata, rounded down).
    function deposit(uint256 assets, address receiver, address controller) public nonReentrant returns (uint256 shares) {
        _checkOperator(controller);
        Request storage r = _depositReq[controller];
        uint256 ca = r.claimableAssets;
        if (assets > ca) revert ERC4626ExceededMaxDeposit(controller, assets, ca);
        shares = assets == ca ? r.claimableShares : assets.mulDiv(r.claimableShares, ca, Math.Rounding.Floor);
        _claimDeposit(r, controller, receiver, assets, shares);
    }

    function mint(uint256 shares, address receiver) public override returns (uint256) {
        return mint(shares, receiver, msg.sender);
    }

    /// @notice Claims `shares` of `controller`'s claimable deposit to `receiver`; the assets it
    ///         uses up are pro rata, rounded up.
    function mint(uint256 shares, address receiver, address controller) public nonReentrant returns (uint256 assets) {
        _checkOperator(controller);
        Request storage r = _depositReq[controller];
        uint256 cs = r.claimableShares;
        if (shares > cs) revert ERC4626ExceededMaxMint(controller, shares, cs);
        assets = shares == cs ? r.claimableAssets : shares.mulDiv(r.claimableAssets, cs, Math.Rounding.Ceil);
        _claimDeposit(r, controller, receiver, assets, shares);
    }

    function _claimDeposit(Request storage r, address controller, address receiver, uint256 assets, uint256 shares)
        internal
    {
        r.claimableAssets -= uint128(assets); // assets <= claimableAssets (checked or derived)
        r.claimableShares -= uint128(shares);
        totalClaimableDepositShares -= shares;
        _transfer(address(this), receiver, shares);
        emit Deposit(controller, receiver, assets, shares);
    }

    /// @notice Claims `assets` of `controller`'s claimable redemption (caller: the controller
    ///         or its operator) to `receiver`; the shares it uses up are pro rata, rounded up.
    function withdraw(uint256 assets, address receiver, address controller)
        public
        override
        nonReentrant
        returns (uint256 shares)
    {
        _checkOperator(controller);
        Request storage r = _redeemReq[controller];
        uint256 ca = r.claimableAssets;
        if (assets > ca) revert ERC4626ExceededMaxWithdraw(controller, assets, ca);
        shares = assets == ca ? r.claimableShares : assets.mulDiv(r.claimableShares, ca, Math.Rounding.Ceil);
        _claimRedeem(r, controller, receiver, assets, shares);
    }

    /// @notice Claims `shares` of `controller`'s claimable redemption to `receiver`: the assets
    ///         pro rata, rounded down.
    function redeem(uint256 shares, address receiver, address controller)
        public
        override
        nonReentrant
        returns (uint256 assets)
    {
        _checkOperator(controller);
        Request storage r = _redeemReq[controller];
        uint256 cs = r.claimableShares;
        if (shares > cs) revert ERC4626ExceededMaxRedeem(controller, shares, cs);
        assets = shares == cs ? r.claimableAssets : shares.mulDiv(r.claimableAssets, cs, Math.Rounding.Floor);
        _claimRedeem(r, controller, receiver, assets, shares);
    }

    function _claimRedeem(Request storage r, address controller, address receiver, uint256 assets, uint256 shares)
        internal
    {
        r.claimableAssets -= uint128(assets);
        r.claimableShares -= uint128(shares);
        totalClaimableRedeemAssets -= assets;
        IERC20(asset()).safeTransfer(receiver, assets);
        emit Withdraw(msg.sender, receiver, controller, assets, shares);
    }

    // ------------------------------------------------------------------ internals

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

    /// @notice What the core lets the pool pay out now [token units] (0 when unreadable): the
    ///         most a redemption fulfilment can take.
    function freeCash() external view returns (uint256) {
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
}
