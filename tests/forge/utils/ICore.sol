// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";
import {IOptions} from "../../../contracts/interfaces/IOptions.sol";

/// @notice The external surface of `Plimsoll` (and its modules) as the tests call it.
/// @dev Tests talk to the core through this interface and deploy it from its artifact: importing
///      `Plimsoll.sol` into a test makes forge ask solc for the core's bytecode again, which with
///      via-IR through solcjs costs about a minute per edited test file. Keep it in step with the
///      contracts; a mismatch fails loudly (unknown selector).
interface ICore is IPlimsoll {
    // storage getters
    function cash() external view returns (address);
    function cashDecimals() external view returns (uint8);
    function oracle() external view returns (address);
    function admin() external view returns (address);
    function guardian() external view returns (address);
    function pool() external view returns (address);
    function paused() external view returns (uint8);
    function insuranceFund() external view returns (int128);
    function cashBooked() external view returns (int128);
    function assetCount() external view returns (uint256);
    function marketCount() external view returns (uint256);
    function isListed(address token) external view returns (bool);
    function configurator() external view returns (address);
    function riskKeeper() external view returns (address);
    function options() external view returns (address);

    // roles and registry
    function setAdmin(address next) external;
    function setGuardian(address next) external;
    function setPaused(uint8 flags) external;
    function listAsset(address token, uint64 haircutWad, uint16 feedId, uint128 cap) external returns (uint256);
    function configureAsset(uint256 assetId, uint64 haircutWad, uint16 feedId, uint128 cap, bool enabled) external;
    function listMarket(MarketConfig calldata c) external returns (uint256);
    function configureMarket(uint256 marketId, MarketConfig calldata c) external;
    function setLiquidationConfig(LiquidationConfig calldata c) external;
    function setOptions(address options_) external;

    // dynamic margin
    function setRiskKeeper(address next) external;
    function setRiskLimits(RiskLimits calldata l) external;
    function riskLimits() external view returns (RiskLimits memory);
    function setVolScalar(uint256 marketId, uint64 scalarWad) external;
    function volScalar(uint256 marketId) external view returns (VolScalar memory);
    function volScalars(uint256 marketId) external view returns (uint256 imScalar, uint256 mmScalar);

    // insurance and pool
    function fundInsurance(uint256 amount) external;
    function setPool(address pool_) external;
    function poolDeposit(uint256 amount) external;
    function poolWithdraw(uint256 amount, address receiver) external;
    function poolAssets() external view returns (uint256);
    function poolFreeCash() external view returns (uint256);

    // custody
    function deposit(uint256 sub, uint256 assetId, uint256 amount) external;
    function withdraw(uint256 sub, uint256 assetId, uint256 amount) external returns (uint256 sent);
    function transfer(uint256 fromSub, uint256 toSub, uint256 assetId, uint256 amount) external;
    function configureSubaccount(uint256 sub, uint8 isolatedMarket) external;

    // trading and liquidation
    function trade(uint256 sub, uint256 marketId, int256 sizeDelta, uint256 acceptablePrice) external;
    function liquidate(address owner, uint256 sub) external returns (uint256 fraction);
    function writeOff(address owner, uint256 sub) external returns (uint256 deficit);
    function buyRecovered(uint256 assetId, uint256 amount) external returns (uint256 paid);
    function skim(uint256 assetId) external returns (uint256 surplus);
    function recoveredBalance(uint256 assetId) external view returns (uint256);
    function liquidateWitness(address owner, uint256 sub, uint256 witness) external returns (uint256 fraction);
    function liquidateCollateral(address owner, uint256 sub, uint256 assetId, uint256 repayAmount)
        external
        returns (uint256 seized);

    // options market hooks and portfolio margin
    function optionsBook(address owner, uint256 sub, int256 cashDelta, bool hasOptions) external;
    function optionsCheck(address owner, uint256 sub, bool reducing, bool poolGrew) external view;
    function setPortfolioMargin(uint256 sub, bool enabled) external;

    // views
    function accountMargin(address owner, uint256 sub) external view returns (int256 equity, uint256 im, uint256 mm);
    function isLiquidatable(address owner, uint256 sub) external view returns (bool);
    function poolMargin() external view returns (int256 equity, uint256 im);
    function fundingIndex(uint256 marketId) external view returns (int256);
    function getAccount(address owner, uint256 sub) external view returns (Account memory);
    function getPosition(address owner, uint256 sub, uint256 marketId) external view returns (Position memory);
    function collateralBalance(address owner, uint256 sub, uint256 assetId) external view returns (uint256);
    function assetConfig(uint256 assetId) external view returns (AssetConfig memory);
    function marketConfig(uint256 marketId) external view returns (MarketConfig memory);
    function marketState(uint256 marketId) external view returns (MarketState memory);
    function liquidationConfig() external view returns (LiquidationConfig memory);
}

/// @notice The ERC-4626 surface of `LiquidityPool` the tests use.
interface IPool {
    function core() external view returns (address);
    function asset() external view returns (address);
    function totalAssets() external view returns (uint256);
    function totalSupply() external view returns (uint256);
    function balanceOf(address who) external view returns (uint256);
    function convertToAssets(uint256 shares) external view returns (uint256);
    function convertToShares(uint256 assets) external view returns (uint256);
    function maxDeposit(address receiver) external view returns (uint256);
    function maxMint(address receiver) external view returns (uint256);
    function previewMint(uint256 shares) external view returns (uint256);
    function previewWithdraw(uint256 assets) external view returns (uint256);
    function closedReason() external view returns (uint8 why, uint256 feedId, uint8 status);
    function allowance(address owner, address spender) external view returns (uint256);
    function approve(address spender, uint256 amount) external returns (bool);
    function maxWithdraw(address owner) external view returns (uint256);
    function maxRedeem(address owner) external view returns (uint256);
    function previewDeposit(uint256 assets) external view returns (uint256);
    function previewRedeem(uint256 shares) external view returns (uint256);
    function deposit(uint256 assets, address receiver) external returns (uint256 shares);
    function mint(uint256 shares, address receiver) external returns (uint256 assets);
    function withdraw(uint256 assets, address receiver, address owner) external returns (uint256 shares);
    function redeem(uint256 shares, address receiver, address owner) external returns (uint256 assets);
    // ERC-7540
    function deposit(uint256 assets, address receiver, address controller) external returns (uint256 shares);
    function mint(uint256 shares, address receiver, address controller) external returns (uint256 assets);
    function requestDeposit(uint256 assets, address controller, address owner) external returns (uint256);
    function requestRedeem(uint256 shares, address controller, address owner) external returns (uint256);
    function pendingDepositRequest(uint256 requestId, address controller) external view returns (uint256);
    function claimableDepositRequest(uint256 requestId, address controller) external view returns (uint256);
    function pendingRedeemRequest(uint256 requestId, address controller) external view returns (uint256);
    function claimableRedeemRequest(uint256 requestId, address controller) external view returns (uint256);
    function setOperator(address operator, bool approved) external returns (bool);
    function isOperator(address controller, address operator) external view returns (bool);
    function supportsInterface(bytes4 id) external view returns (bool);
    function share() external view returns (address);
    function fulfilDeposit(address controller) external returns (uint256 shares);
    function fulfilRedeem(address controller) external returns (uint256 assets);
    function canFulfil(address controller) external view returns (bool deposit, bool redeem);
    function oracleTimes() external view returns (uint256 oldest, uint256 newest);
    function freeCash() external view returns (uint256);
    function totalPendingDeposits() external view returns (uint256);
    function totalPendingRedeems() external view returns (uint256);
    function totalClaimableDepositShares() external view returns (uint256);
    function totalClaimableRedeemAssets() external view returns (uint256);
    function FEE_WAD() external view returns (uint256);
    function transfer(address to, uint256 amount) external returns (bool);
}

/// @notice The surface of `OptionsMarket` the tests use (deployed from its artifact, like the
///         core), with its errors and events so that tests can name them.
interface IOptionsMarketT is IOptions {
    error NotCore(address caller);
    error NotAdmin(address caller);
    error UnknownSeries(uint256 seriesId);
    error SeriesExpired(uint256 seriesId, uint256 expiry);
    error NotExpired(uint256 seriesId, uint256 expiry);
    error AlreadySettled(uint256 seriesId);
    error TooManySeries(uint256 limit);
    error OptionsDisabled(uint256 marketId);
    error OptionReduceOnly(uint256 seriesId, uint8 status);
    error OptionPriceNotTrusted(uint256 feedId, uint8 status);
    error OptionSlippage(uint256 unitPrice, uint256 limitPrice);
    error InvalidOptionsConfig(bytes32 what);
    error ZeroSize();
    error TradingPaused();
    error SizeOutOfRange(int256 size);
    error LegPricesMismatch(uint256 legs, uint256 given);

    event SeriesListed(uint256 indexed seriesId, uint256 indexed marketId, bool isCall, uint256 expiry, uint256 strike);
    event OptionTraded(
        address indexed owner, uint256 indexed subaccount, uint256 indexed seriesId,
        int256 sizeDelta, uint256 mark, int256 premium, uint256 fee
    );
    event SeriesSettled(uint256 indexed seriesId, uint256 settlementPrice);
    event OptionSettled(address indexed owner, uint256 indexed subaccount, uint256 indexed seriesId, int256 size, int256 payoff);
    event OptionsLiquidated(address indexed owner, uint256 indexed subaccount, uint256 fraction, int256 realized, uint256 notional);

    function MAX_ACCOUNT_SERIES() external view returns (uint256);
    function MAX_LIVE_SERIES() external view returns (uint256);
    function core() external view returns (address);
    function oracle() external view returns (address);

    function configure(uint256 marketId, OptionsConfig calldata c) external;
    function configurePortfolio(PortfolioConfig calldata p) external;
    function listSeries(uint256 marketId, bool isCall, uint40 expiry, uint128 strike) external returns (uint256 id);

    function trade(uint256 sub, uint256 seriesId, int256 sizeDelta, uint256 limitPrice) external;
    function settleSeries(uint256 seriesId, uint80 roundId) external;
    function settleAccount(address owner, uint256 sub) external;

    function openInterest(uint256 seriesId) external view returns (int256);
    function holders(uint256 seriesId) external view returns (uint256);
    function seriesCount() external view returns (uint256);
    function series(uint256 seriesId) external view returns (Series memory);
    function liveSeries() external view returns (uint256[] memory);
    function optionsConfig(uint256 marketId) external view returns (OptionsConfig memory);
    function portfolioConfig() external view returns (PortfolioConfig memory);
    function positions(address owner, uint256 sub) external view returns (uint256[] memory ids, int256[] memory sizes);
    function mark(uint256 seriesId) external view returns (uint256 value, uint256 spot, uint256 vol);
}
