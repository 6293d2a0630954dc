// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {PRBTest} from "@prb/test/src/PRBTest.sol";
import {OracleRouter} from "../../contracts/oracle/OracleRouter.sol";
import {IPlimsoll} from "../../contracts/interfaces/IPlimsoll.sol";
import {ICore, IPool} from "./utils/ICore.sol";
import {MockERC20} from "../../contracts/mocks/MockERC20.sol";
import {MockFeed} from "../../contracts/mocks/MockFeed.sol";

/// @notice Deployment fixture shared by every forge suite: the full protocol as it would be
///         deployed, with two collateral assets, two perpetual markets, a funded LP pool and a
///         funded insurance fund. Amounts are in token units unless the name says [wad].
abstract contract Base is PRBTest {
    uint256 internal constant WAD = 1e18;
    uint256 internal constant START = 1_700_000_000; // a realistic timestamp for the feeds

    // Market and asset ids, as listed in setUp.
    uint256 internal constant ETH_PERP = 0;
    uint256 internal constant BTC_PERP = 1;
    uint256 internal constant CASH_ID = 0;
    uint256 internal constant WETH_ID = 1;
    uint256 internal constant WBTC_ID = 2;
    uint16 internal constant ETH_FEED = 1;
    uint16 internal constant BTC_FEED = 2;

    // Seed liquidity [cash token units, 6 decimals].
    uint256 internal constant LP_SEED = 10_000_000e6;
    uint256 internal constant INSURANCE_SEED = 100_000e6;

    address internal admin = address(0xA11CE);
    address internal guardian = address(0x6A4D);
    address internal lp = address(0x1111);
    address internal alice = address(0xA1);
    address internal bob = address(0xB0B);
    address internal keeper = address(0x4EE9);

    MockERC20 internal usdc; // cash, 6 decimals
    MockERC20 internal weth; // 18 decimals
    MockERC20 internal wbtc; // 8 decimals
    MockFeed internal ethFeed; // 8 decimals
    MockFeed internal btcFeed; // 8 decimals
    OracleRouter internal oracle;
    ICore internal core; // Plimsoll, deployed from its artifact
    IPool internal pool; // LiquidityPool

    function setUp() public virtual {
        vm.warp(START);

        usdc = new MockERC20("USD Coin", "USDC", 6);
        weth = new MockERC20("Wrapped Ether", "WETH", 18);
        wbtc = new MockERC20("Wrapped Bitcoin", "WBTC", 8);
        ethFeed = new MockFeed(8, 2_000e8);
        btcFeed = new MockFeed(8, 60_000e8);

        oracle = OracleRouter(deploy("OracleRouter.sol:OracleRouter", abi.encode(admin)));
        vm.startPrank(admin);
        oracle.setFeed(ETH_FEED, address(ethFeed), 1 hours, 100e18, 100_000e18);
        oracle.setFeed(BTC_FEED, address(btcFeed), 1 hours, 1_000e18, 2_000_000e18);
        vm.stopPrank();

        core = deployCore(address(usdc), address(oracle), admin, guardian);
        pool = IPool(deploy("LiquidityPool.sol:LiquidityPool", abi.encode(address(core), address(usdc))));

        vm.startPrank(admin);
        core.setPool(address(pool));
        core.listAsset(address(weth), 0.8e18, ETH_FEED, 100_000e18);
        core.listAsset(address(wbtc), 0.75e18, BTC_FEED, 5_000e8);
        core.listMarket(ethMarket());
        core.listMarket(btcMarket());
        vm.stopPrank();

        // LP liquidity and the insurance fund.
        usdc.mint(lp, LP_SEED);
        vm.startPrank(lp);
        usdc.approve(address(pool), type(uint256).max);
        vm.stopPrank();
        lpDeposit(lp, LP_SEED);
        usdc.mint(address(this), INSURANCE_SEED);
        usdc.approve(address(core), type(uint256).max);
        core.fundInsurance(INSURANCE_SEED);

        vm.label(address(core), "Plimsoll");
        vm.label(address(pool), "LiquidityPool");
        vm.label(address(oracle), "OracleRouter");
        vm.label(address(usdc), "USDC");
        vm.label(address(weth), "WETH");
        vm.label(address(wbtc), "WBTC");
    }

    function ethMarket() internal pure returns (IPlimsoll.MarketConfig memory) {
        return IPlimsoll.MarketConfig({
            feedId: ETH_FEED,
            enabled: true,
            imBaseWad: 0.1e18,
            mmFactorWad: 0.5e18,
            takerFeeWad: 0.0005e18,
            sizeSlopeWad: 0.0001e18, // +1% IM per 100 ETH
            maxFundingRateWad: 0.01e18,
            skewScale: 1_000e18,
            maxOpenInterest: 50_000e18
        });
    }

    function btcMarket() internal pure returns (IPlimsoll.MarketConfig memory) {
        return IPlimsoll.MarketConfig({
            feedId: BTC_FEED,
            enabled: true,
            imBaseWad: 0.1e18,
            mmFactorWad: 0.5e18,
            takerFeeWad: 0.0005e18,
            sizeSlopeWad: 0.003e18, // +1% IM per 3.3 BTC
            maxFundingRateWad: 0.01e18,
            skewScale: 30e18,
            maxOpenInterest: 1_500e18
        });
    }

    // ------------------------------------------------------------------ helpers

    /// @dev Deploys a compiled artifact. The core is deployed from its artifact rather than with
    ///      `new` so that test files do not make solc regenerate the core's bytecode (via-IR
    ///      through solcjs takes minutes): editing a test recompiles only the test.
    function deploy(string memory artifact, bytes memory args) internal returns (address addr) {
        bytes memory code = abi.encodePacked(vm.getCode(artifact), args);
        assembly {
            addr := create(0, add(code, 0x20), mload(code))
        }
        require(addr != address(0), artifact);
    }

    /// @dev The core in its three parts: periphery, configurator, core.
    function deployCore(address cash, address oracle_, address admin_, address guardian_) internal returns (ICore) {
        address periphery = deploy("PlimsollPeriphery.sol:PlimsollPeriphery", abi.encode(cash, oracle_));
        address configurator =
            deploy("PlimsollConfigurator.sol:PlimsollConfigurator", abi.encode(cash, oracle_, periphery));
        return ICore(deploy("Plimsoll.sol:Plimsoll", abi.encode(cash, oracle_, admin_, guardian_, configurator)));
    }

    /// @dev x mapped into [lo, hi] (inclusive), uniform enough for fuzzing.
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        require(lo <= hi, "bound: lo > hi");
        if (x >= lo && x <= hi) return x;
        uint256 span = hi - lo;
        if (span == type(uint256).max) return x;
        return lo + x % (span + 1);
    }

    /// @dev Mints `amount` of `token` to `who` and deposits it into subaccount `sub`.
    function depositFor(address who, uint256 sub, uint256 assetId, uint256 amount) internal {
        MockERC20 token = assetId == CASH_ID ? usdc : assetId == WETH_ID ? weth : wbtc;
        token.mint(who, amount);
        vm.startPrank(who);
        token.approve(address(core), type(uint256).max);
        core.deposit(sub, assetId, amount);
        vm.stopPrank();
    }

    function tradeAs(address who, uint256 sub, uint256 marketId, int256 sizeDelta) internal {
        vm.prank(who);
        core.trade(sub, marketId, sizeDelta, 0);
    }

    /// @dev Sets a feed's answer from a wad price (8-decimal feeds).
    function setPrice(MockFeed feed, uint256 priceWad) internal {
        feed.updateAnswer(int256(priceWad / 1e10));
    }

    /// @dev Moves time forward and refreshes both feeds (same answers) so they stay fresh.
    function skip(uint256 dt) internal {
        vm.warp(block.timestamp + dt);
        ethFeed.updateAnswer(ethFeed.latestAnswer());
        btcFeed.updateAnswer(btcFeed.latestAnswer());
    }

    /// @dev A new round on every feed (same answers) one second later: what an LP request
    ///      waits for before it can be priced.
    function newRound() internal virtual {
        vm.warp(block.timestamp + 1);
        ethFeed.updateAnswer(ethFeed.latestAnswer());
        btcFeed.updateAnswer(btcFeed.latestAnswer());
    }

    /// @dev The ERC-7540 deposit flow: `who` requests (its wallet must hold and have approved
    ///      `assets`), a keeper fulfils (after a new round when the pool's value uses a feed),
    ///      `who` claims the shares.
    function lpDeposit(address who, uint256 assets) internal returns (uint256 shares) {
        vm.prank(who);
        pool.requestDeposit(assets, who, who);
        (bool ok,) = pool.canFulfil(who);
        if (!ok) newRound();
        pool.fulfilDeposit(who);
        vm.prank(who);
        shares = pool.deposit(assets, who, who);
    }

    /// @dev The ERC-7540 redemption flow: request, fulfil (after a new round when needed), claim.
    function lpRedeem(address who, uint256 shares) internal returns (uint256 assets) {
        vm.prank(who);
        pool.requestRedeem(shares, who, who);
        (, bool ok) = pool.canFulfil(who);
        if (!ok) newRound();
        pool.fulfilRedeem(who);
        uint256 claim = pool.maxRedeem(who);
        vm.prank(who);
        assets = pool.redeem(claim, who, who);
    }

    function cashOf(address who, uint256 sub) internal view returns (int256) {
        return core.getAccount(who, sub).cash;
    }

    function poolCash() internal view returns (int256) {
        return core.getAccount(address(pool), 0).cash;
    }

    function equityOf(address who, uint256 sub) internal view returns (int256 equity) {
        (equity,,) = core.accountMargin(who, sub);
    }

    function sizeOf(address who, uint256 sub, uint256 marketId) internal view returns (int256) {
        return core.getPosition(who, sub, marketId).size;
    }

    function toInt(uint256 x) internal pure returns (int256) {
        require(x <= uint256(type(int256).max), "toInt");
        return int256(x);
    }

    function ceilDiv(uint256 a, uint256 b) internal pure returns (uint256) {
        return a == 0 ? 0 : (a - 1) / b + 1;
    }

    /// @dev ceil(a * b / WAD) for the hand-written expectations.
    function mulUp(uint256 a, uint256 b) internal pure returns (uint256) {
        return ceilDiv(a * b, WAD);
    }
}
