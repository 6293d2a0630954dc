// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {OptionsBase} from "./Options.t.sol";
import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";

interface IPoolErrors {
    error PoolClosed(uint8 reason, uint256 feedId, uint8 status);
    error AsyncFlow();
    error NotOperator(address controller, address caller);
    error ZeroAmount();
}

/// @dev ERC-7540's interfaces as the standard writes them, for their ERC-165 ids.
interface IERC7540Operator {
    function setOperator(address operator, bool approved) external returns (bool);
    function isOperator(address controller, address operator) external view returns (bool);
}

interface IERC7540Deposit {
    function requestDeposit(uint256 assets, address controller, address owner) external returns (uint256);
    function pendingDepositRequest(uint256 requestId, address controller) external view returns (uint256);
    function claimableDepositRequest(uint256 requestId, address controller) external view returns (uint256);
    function deposit(uint256 assets, address receiver, address controller) external returns (uint256);
    function mint(uint256 shares, address receiver, address controller) external returns (uint256);
}

interface IERC7540Redeem {
    function requestRedeem(uint256 shares, address controller, address owner) external returns (uint256);
    function pendingRedeemRequest(uint256 requestId, address controller) external view returns (uint256);
    function claimableRedeemRequest(uint256 requestId, address controller) external view returns (uint256);
}

/// @dev ERC-7575: ERC-4626 without the ERC-20 part, plus share().
interface IERC7575 {
    function asset() external view returns (address);
    function share() external view returns (address);
    function convertToShares(uint256 assets) external view returns (uint256);
    function convertToAssets(uint256 shares) external view returns (uint256);
    function totalAssets() external view returns (uint256);
    function maxDeposit(address receiver) external view returns (uint256);
    function previewDeposit(uint256 assets) external view returns (uint256);
    function deposit(uint256 assets, address receiver) external returns (uint256);
    function maxMint(address receiver) external view returns (uint256);
    function previewMint(uint256 shares) external view returns (uint256);
    function mint(uint256 shares, address receiver) external returns (uint256);
    function maxWithdraw(address owner) external view returns (uint256);
    function previewWithdraw(uint256 assets) external view returns (uint256);
    function withdraw(uint256 assets, address receiver, address owner) external returns (uint256);
    function maxRedeem(address owner) external view returns (uint256);
    function previewRedeem(uint256 shares) external view returns (uint256);
    function redeem(uint256 shares, address receiver, address owner) external returns (uint256);
}

/// @notice ERC-7540 (asynchronous ERC-4626) conformance of LiquidityPool, clause by clause, in
///         every state the core and the oracle router can be in (open, paused, a price stale /
///         suspect / unreadable under the pool's perp or option exposure).
contract Pool4626Test is OptionsBase {
    uint8 internal constant OPEN = 0;
    uint8 internal constant PAUSED = 1;
    uint8 internal constant UNPRICED = 2;
    uint8 internal constant UNTRUSTED = 3;
    uint8 internal constant N_STATES = 11;

    address internal user = address(0x5E5);
    address internal spender = address(0x5BE);

    function setUp() public override {
        super.setUp();
        usdc.mint(user, 5_000_000e6);
        vm.prank(user);
        usdc.approve(address(pool), type(uint256).max);
        lpDeposit(user, 1_000_000e6);
        // The pool's exposure: a perp long (ETH) and option open interest (calls bought).
        depositFor(alice, 0, CASH_ID, 200_000e6);
        tradeAs(alice, 0, ETH_PERP, 10e18);
        optTrade(alice, 0, atmCall, 20e18);
    }

    /// @dev Puts the protocol in state `s`: 0 open; 1 pool paused; 2 spot stale; 3 spot
    ///      suspect (a wick); 4 spot answer below the router's bounds; 5 above them; 6 spot
    ///      answer 0; 7 negative; 8 vol stale; 9 vol suspect; 10 vol answer out of bounds.
    function enterState(uint8 s) internal returns (uint8 expected) {
        if (s == 0) return OPEN;
        if (s == 1) {
            vm.prank(guardian);
            core.setPaused(32);
            return PAUSED;
        }
        if (s == 3 || s == 9) {
            vm.startPrank(admin);
            oracle.setBreaker(s == 3 ? ETH_FEED : IV_FEED, 0.1e18, 3, 10 minutes);
            vm.stopPrank();
            vm.warp(block.timestamp + 1);
            if (s == 3) setPrice(ethFeed, 1_200e18);
            else ivFeed.updateAnswer(0.3e8);
            return UNTRUSTED;
        }
        if (s == 2 || s == 8) {
            vm.warp(block.timestamp + 1 hours + 1);
            if (s == 2) ivFeed.updateAnswer(ivFeed.latestAnswer());
            else ethFeed.updateAnswer(ethFeed.latestAnswer());
            btcFeed.updateAnswer(btcFeed.latestAnswer());
            return UNTRUSTED;
        }
        if (s == 4) ethFeed.updateAnswer(50e8); // bounds 100 .. 100,000
        if (s == 5) ethFeed.updateAnswer(200_000e8);
        if (s == 6) ethFeed.updateAnswer(0);
        if (s == 7) ethFeed.updateAnswer(-1);
        if (s == 10) ivFeed.updateAnswer(20e8); // bounds 0.01 .. 10
        return UNPRICED;
    }

    /// @dev Every view that must not revert, called: any revert fails the caller.
    function callEveryView(uint256 x) internal view returns (uint256 sum) {
        unchecked {
            sum += pool.totalAssets();
            sum += pool.convertToShares(x);
            sum += pool.convertToAssets(x);
            sum += pool.maxDeposit(user);
            sum += pool.maxMint(user);
            sum += pool.maxWithdraw(user);
            sum += pool.maxRedeem(user);
            sum += pool.pendingDepositRequest(0, user);
            sum += pool.claimableDepositRequest(0, user);
            sum += pool.pendingRedeemRequest(0, user);
            sum += pool.claimableRedeemRequest(0, user);
            (uint256 o, uint256 n) = pool.oracleTimes();
            sum += o + n;
            pool.canFulfil(user);
            sum += pool.freeCash();
        }
    }

    /// @dev The user has a claimable deposit (100,000) and a claimable redemption (50,000
    ///      worth of shares), fulfilled in the open state.
    function makeClaimable() internal {
        vm.startPrank(user);
        pool.requestDeposit(100_000e6, user, user);
        pool.requestRedeem(pool.convertToShares(50_000e6), user, user);
        vm.stopPrank();
        newRound();
        pool.fulfilDeposit(user);
        pool.fulfilRedeem(user);
    }

    /// @dev Every token and share the pool holds for requests is accounted for.
    function assertAccounted() internal {
        assertEq(usdc.balanceOf(address(pool)), pool.totalPendingDeposits() + pool.totalClaimableRedeemAssets(), "assets");
        assertEq(
            pool.balanceOf(address(pool)), pool.totalPendingRedeems() + pool.totalClaimableDepositShares(), "shares"
        );
    }

    // ------------------------------------------------------------------ views in every state

    /// ERC-4626: totalAssets, convertTo*, max* MUST NOT revert (nor the ERC-7540 request
    /// views); ERC-7540: the previews of an asynchronous flow MUST revert, in every state.
    /// Was: an answer out of the router's bounds (or <= 0) made the views revert.
    function testFuzz_views_never_revert_and_previews_always_do(uint8 s, uint256 x) public {
        s = uint8(bound(s, 0, N_STATES - 1));
        x = bound(x, 0, 1e30);
        uint8 expected = enterState(s);
        callEveryView(x);
        (uint8 why,,) = pool.closedReason();
        assertEq(uint256(why), expected, "the reason the pool reports");
        vm.expectRevert(IPoolErrors.AsyncFlow.selector);
        pool.previewDeposit(x);
        vm.expectRevert(IPoolErrors.AsyncFlow.selector);
        pool.previewMint(x);
        vm.expectRevert(IPoolErrors.AsyncFlow.selector);
        pool.previewWithdraw(x);
        vm.expectRevert(IPoolErrors.AsyncFlow.selector);
        pool.previewRedeem(x);
    }

    /// ERC-7540: max* are what the controller can claim; claims never close (they move what
    /// was priced already), so in every state max* are the claimable amounts and claiming
    /// them does not revert. Fulfilment (the pricing) waits while the pool is closed
    /// (PoolClosed, why); requests are taken in every state but PAUSED.
    function test_every_state_max_is_the_claimable_amount_and_only_pricing_closes() public {
        makeClaimable();
        for (uint8 s; s < N_STATES; ++s) {
            uint256 snap = vm.snapshot();
            uint8 expected = enterState(s);
            assertEq(pool.maxDeposit(user), pool.claimableDepositRequest(0, user), "maxDeposit");
            assertEq(pool.maxRedeem(user), pool.claimableRedeemRequest(0, user), "maxRedeem");
            assertGt(pool.maxMint(user), 0);
            assertGt(pool.maxWithdraw(user), 0);
            vm.startPrank(user);
            uint256 shares0 = pool.balanceOf(user);
            uint256 got = pool.deposit(pool.maxDeposit(user), user, user);
            assertEq(pool.balanceOf(user) - shares0, got);
            uint256 cash0 = usdc.balanceOf(user);
            uint256 paid = pool.redeem(pool.maxRedeem(user), user, user);
            assertEq(usdc.balanceOf(user) - cash0, paid);
            assertEq(pool.maxDeposit(user) + pool.maxMint(user) + pool.maxWithdraw(user) + pool.maxRedeem(user), 0);
            (uint8 why, uint256 feed, uint8 st) = pool.closedReason();
            assertEq(uint256(why), expected);
            if (why == PAUSED) {
                vm.expectRevert(abi.encodeWithSelector(IPoolErrors.PoolClosed.selector, PAUSED, 0, 0));
                pool.requestDeposit(1e6, user, user);
                vm.expectRevert(abi.encodeWithSelector(IPoolErrors.PoolClosed.selector, PAUSED, 0, 0));
                pool.requestRedeem(1e12, user, user);
                vm.stopPrank();
            } else {
                pool.requestDeposit(1e6, user, user);
                pool.requestRedeem(1e12, user, user);
                vm.stopPrank();
                if (why != OPEN) {
                    bytes memory err = abi.encodeWithSelector(IPoolErrors.PoolClosed.selector, why, feed, st);
                    vm.expectRevert(err);
                    pool.fulfilDeposit(user);
                    vm.expectRevert(err);
                    pool.fulfilRedeem(user);
                    (bool d, bool r) = pool.canFulfil(user);
                    assertFalse(d || r, "canFulfil while closed");
                }
            }
            assertAccounted();
            vm.revertTo(snap);
        }
    }

    /// The stale-price case of the issue: the spot under the pool's perp is stale; the core
    /// refuses the withdrawal (PriceNotTrusted) and the pool does not price a redemption.
    function test_stale_price_with_open_interest_redemption_waits() public {
        vm.prank(user);
        pool.requestRedeem(1e12, user, user);
        enterState(2);
        (uint8 why, uint256 feed, uint8 st) = pool.closedReason();
        assertEq(uint256(why), UNTRUSTED);
        assertEq(feed, ETH_FEED);
        assertEq(uint256(st), 2);
        vm.expectRevert(abi.encodeWithSelector(IPoolErrors.PoolClosed.selector, UNTRUSTED, uint256(ETH_FEED), uint8(2)));
        pool.fulfilRedeem(user);
        assertEq(pool.maxRedeem(user), 0);
        // The core agrees: its own check refuses the withdrawal.
        vm.prank(address(pool));
        vm.expectRevert(abi.encodeWithSelector(IPlimsoll.PriceNotTrusted.selector, uint256(ETH_FEED), 2));
        core.poolWithdraw(1e6, user);
    }

    /// Back to OK prices, the pool prices the waiting requests again (no admin).
    function test_pool_reopens_when_the_prices_are_ok_again() public {
        vm.startPrank(user);
        pool.requestDeposit(1_000e6, user, user);
        pool.requestRedeem(1e12, user, user);
        vm.stopPrank();
        enterState(4);
        assertEq(pool.totalAssets(), 0, "unvalued");
        vm.warp(block.timestamp + 1);
        setPrice(ethFeed, 2_000e18);
        ivFeed.updateAnswer(ivFeed.latestAnswer());
        (uint8 why,,) = pool.closedReason();
        assertEq(uint256(why), OPEN);
        assertGt(pool.totalAssets(), LP_SEED);
        pool.fulfilDeposit(user);
        pool.fulfilRedeem(user);
        assertGt(pool.maxDeposit(user), 0);
        assertGt(pool.maxWithdraw(user), 0);
    }

    // ------------------------------------------------------------------ ERC-165, ERC-7575

    function test_erc165_ids_are_the_standard_ones() public {
        assertEq(type(IERC7540Operator).interfaceId, bytes4(0xe3bc4e65));
        assertEq(type(IERC7540Deposit).interfaceId, bytes4(0xce3bbe50));
        assertEq(type(IERC7540Redeem).interfaceId, bytes4(0x620ee8e4));
        assertEq(type(IERC7575).interfaceId, bytes4(0x2f0a18c5));
        assertTrue(pool.supportsInterface(type(IERC7540Operator).interfaceId));
        assertTrue(pool.supportsInterface(type(IERC7540Deposit).interfaceId));
        assertTrue(pool.supportsInterface(type(IERC7540Redeem).interfaceId));
        assertTrue(pool.supportsInterface(type(IERC7575).interfaceId));
        assertTrue(pool.supportsInterface(0x01ffc9a7));
        assertFalse(pool.supportsInterface(0xffffffff));
        assertEq(pool.share(), address(pool));
    }

    // ------------------------------------------------------------------ requests

    /// requestDeposit: takes `assets` from owner (its ERC-20 approval), MUST emit DepositRequest
    /// (controller, owner, 0, sender, assets); the request is Pending, not Claimable, not in
    /// totalAssets; owner != sender needs the owner's operator approval.
    function testFuzz_request_deposit_moves_assets_to_pending(uint256 a) public {
        a = bound(a, 1, 4_000_000e6);
        uint256 ta = pool.totalAssets();
        uint256 before = usdc.balanceOf(user);
        vm.expectRevert(abi.encodeWithSelector(IPoolErrors.NotOperator.selector, user, spender));
        vm.prank(spender);
        pool.requestDeposit(a, bob, user);
        vm.prank(user);
        assertTrue(pool.setOperator(spender, true));
        vm.expectEmit(true, true, true, true, address(pool));
        emit DepositRequest(bob, user, 0, spender, a);
        vm.prank(spender);
        assertEq(pool.requestDeposit(a, bob, user), 0);
        assertEq(before - usdc.balanceOf(user), a);
        assertEq(pool.pendingDepositRequest(0, bob), a);
        assertEq(pool.claimableDepositRequest(0, bob), 0);
        assertEq(pool.maxDeposit(bob), 0, "nothing claimable yet");
        assertEq(pool.totalAssets(), ta, "pending assets are nobody's LP value");
        assertAccounted();
        vm.prank(user);
        vm.expectRevert(IPoolErrors.ZeroAmount.selector);
        pool.requestDeposit(0, user, user);
    }

    /// requestRedeem: the shares leave the owner at once; a spender with an ERC-20 allowance
    /// may request (the allowance is spent), an operator may without one; MUST emit
    /// RedeemRequest(controller, owner, 0, sender, shares).
    function testFuzz_request_redeem_takes_the_shares(uint256 s) public {
        uint256 bal = pool.balanceOf(user);
        s = bound(s, 1, bal / 2);
        vm.expectRevert(); // no allowance, no operator
        vm.prank(spender);
        pool.requestRedeem(s, spender, user);
        vm.prank(user);
        pool.approve(spender, s);
        vm.expectEmit(true, true, true, true, address(pool));
        emit RedeemRequest(carol, user, 0, spender, s);
        vm.prank(spender);
        pool.requestRedeem(s, carol, user);
        assertEq(pool.allowance(user, spender), 0, "allowance spent");
        assertEq(pool.balanceOf(user), bal - s);
        assertEq(pool.pendingRedeemRequest(0, carol), s);
        assertEq(pool.claimableRedeemRequest(0, carol), 0);
        vm.prank(user);
        pool.setOperator(bob, true);
        vm.prank(bob);
        pool.requestRedeem(s, bob, user); // operator: no allowance needed
        assertEq(pool.pendingRedeemRequest(0, bob), s);
        assertAccounted();
    }

    /// setOperator MUST return true and emit OperatorSet; isOperator reads it back.
    function test_set_operator_emits_and_returns_true() public {
        vm.expectEmit(true, true, false, true, address(pool));
        emit OperatorSet(user, bob, true);
        vm.prank(user);
        assertTrue(pool.setOperator(bob, true));
        assertTrue(pool.isOperator(user, bob));
        vm.prank(user);
        assertTrue(pool.setOperator(bob, false));
        assertFalse(pool.isOperator(user, bob));
    }

    // ------------------------------------------------------------------ claims

    /// Claims: deposit/mint of the claimable shares and withdraw/redeem of the claimable
    /// assets, by the controller or its operator only, to any receiver; pro-rata parts round
    /// against the claimer; Deposit and Withdraw events; everything accounted.
    function testFuzz_partial_claims_round_for_the_pool(uint256 part) public {
        makeClaimable();
        uint256 ca = pool.maxDeposit(user);
        uint256 cs = pool.maxMint(user);
        part = bound(part, 1, ca - 1);
        vm.expectRevert(abi.encodeWithSelector(IPoolErrors.NotOperator.selector, user, spender));
        vm.prank(spender);
        pool.deposit(part, spender, user);
        vm.prank(user);
        pool.setOperator(spender, true);
        uint256 expected = part * cs / ca;
        vm.expectEmit(true, true, false, true, address(pool));
        emit Deposit(user, carol, part, expected);
        vm.prank(spender);
        assertEq(pool.deposit(part, carol, user), expected);
        assertEq(pool.balanceOf(carol), expected);
        uint256 restShares = pool.maxMint(user);
        vm.prank(user);
        uint256 restAssets = pool.mint(restShares, user, user);
        assertEq(restAssets, ca - part, "the rest of the assets with the rest of the shares");
        // Redemption side.
        uint256 ra = pool.maxWithdraw(user);
        uint256 rs = pool.maxRedeem(user);
        uint256 w = part % ra + 1;
        if (w == ra) w = ra - 1;
        uint256 sharesUsed = (w * rs + ra - 1) / ra;
        vm.expectEmit(true, true, true, true, address(pool));
        emit Withdraw(user, carol, user, w, sharesUsed);
        vm.prank(user);
        assertEq(pool.withdraw(w, carol, user), sharesUsed, "withdraw uses the shares rounded up");
        uint256 restRs = pool.maxRedeem(user);
        vm.prank(user);
        uint256 rest = pool.redeem(restRs, user, user);
        assertEq(rest, ra - w);
        assertEq(usdc.balanceOf(carol), w);
        vm.expectRevert(); // nothing left
        vm.prank(user);
        pool.redeem(1, user, user);
        assertAccounted();
        assertEq(pool.totalClaimableDepositShares() + pool.totalClaimableRedeemAssets(), 0);
    }

    /// convertToShares / convertToAssets round down and do not depend on the caller.
    function testFuzz_convert_rounds_down(uint256 a) public {
        a = bound(a, 0, 1e15);
        uint256 sh = pool.convertToShares(a);
        assertLte(pool.convertToAssets(sh), a);
        vm.prank(bob);
        assertEq(pool.convertToShares(a), sh, "not caller-dependent");
    }

    /// asset() is the underlying ERC-20; totalAssets is what the core values the pool at.
    function test_asset_and_total_assets() public {
        assertEq(pool.asset(), address(usdc));
        assertEq(pool.totalAssets(), core.poolAssets());
    }

    /// Claims of 0 do not revert; a redemption worth less than one token unit pays 0 (its
    /// shares burn), and the fulfilment does not revert.
    function test_zero_and_dust_amounts_do_not_revert() public {
        vm.startPrank(user);
        assertEq(pool.deposit(0, user), 0);
        assertEq(pool.mint(0, user), 0);
        assertEq(pool.withdraw(0, user, user), 0);
        assertEq(pool.redeem(0, user, user), 0);
        uint256 dust = pool.convertToShares(1) / 2; // less than one unit's worth
        assertGt(dust, 0);
        pool.requestRedeem(dust, user, user);
        vm.stopPrank();
        newRound();
        assertEq(pool.fulfilRedeem(user), 0);
        assertEq(pool.maxRedeem(user), dust);
        vm.prank(user);
        assertEq(pool.redeem(dust, user, user), 0);
        assertAccounted();
    }

    /// A deposit fulfilment prices the request at the share price of that moment, less the
    /// 5 bp entry fee; a redemption's at the share price less the 5 bp exit fee.
    function test_fulfilment_prices_at_the_share_price_less_the_fee() public {
        vm.startPrank(user);
        pool.requestDeposit(100_000e6, user, user);
        pool.requestRedeem(500_000e12, user, user);
        vm.stopPrank();
        newRound();
        (uint256 ta, uint256 ts) = (pool.totalAssets(), pool.totalSupply());
        uint256 fee = 100_000e6 * 5 / 10_000;
        uint256 shares = pool.fulfilDeposit(user);
        assertEq(shares, (100_000e6 - fee) * (ts + 1e6) / (ta + 1));
        (ta, ts) = (pool.totalAssets(), pool.totalSupply());
        uint256 gross = 500_000e12 * (ta + 1) / (ts + 1e6);
        uint256 assets = pool.fulfilRedeem(user);
        assertEq(assets, gross - (gross * 5 + 9_999) / 10_000);
        assertAccounted();
    }

    event Deposit(address indexed sender, address indexed owner, uint256 assets, uint256 shares);
    event Withdraw(
        address indexed sender, address indexed receiver, address indexed owner, uint256 assets, uint256 shares
    );
    event DepositRequest(
        address indexed controller, address indexed owner, uint256 indexed requestId, address sender, uint256 assets
    );
    event RedeemRequest(
        address indexed controller, address indexed owner, uint256 indexed requestId, address sender, uint256 shares
    );
    event OperatorSet(address indexed controller, address indexed operator, bool approved);
}
