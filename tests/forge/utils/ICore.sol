// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IPlimsoll} from "../../../contracts/interfaces/IPlimsoll.sol";

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

    // roles and registry
    function setAdmin(address next) external;
    function setGuardian(address next) external;
    function setPaused(uint8 flags) external;
    function listAsset(address token, uint64 haircutWad, uint16 feedId, uint128 cap) external returns (uint256);
    function configureAsset(uint256 assetId, uint64 haircutWad, uint16 feedId, uint128 cap, bool enabled) external;
    function listMarket(MarketConfig calldata c) external returns (uint256);
    function configureMarket(uint256 marketId, MarketConfig calldata c) external;
    function setLiquidationConfig(LiquidationConfig calldata c) external;

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
    function withdraw(uint256 sub, uint256 assetId, uint256 amount) external;
    function transfer(uint256 fromSub, uint256 toSub, uint256 assetId, uint256 amount) external;
    function configureSubaccount(uint256 sub, uint8 isolatedMarket) external;

    // trading and liquidation
    function trade(uint256 sub, uint256 marketId, int256 sizeDelta, uint256 acceptablePrice) external;
    function liquidate(address owner, uint256 sub) external returns (uint256 fraction);
    function liquidateCollateral(address owner, uint256 sub, uint256 assetId, uint256 repayAmount)
        external
        returns (uint256 seized);

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
    function maxWithdraw(address owner) external view returns (uint256);
    function maxRedeem(address owner) external view returns (uint256);
    function previewDeposit(uint256 assets) external view returns (uint256);
    function previewRedeem(uint256 shares) external view returns (uint256);
    function deposit(uint256 assets, address receiver) external returns (uint256 shares);
    function mint(uint256 shares, address receiver) external returns (uint256 assets);
    function withdraw(uint256 assets, address receiver, address owner) external returns (uint256 shares);
    function redeem(uint256 shares, address receiver, address owner) external returns (uint256 assets);
}
