// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IPlimsoll} from "../interfaces/IPlimsoll.sol";
import {IOracleRouter} from "../interfaces/IOracleRouter.sol";

/// @dev The read-only views of the Plimsoll core that the lens uses (see core/MarginEngine.sol).
interface IPlimsollViews {
    function getAccount(address owner, uint256 sub) external view returns (IPlimsoll.Account memory);
    function getPosition(address owner, uint256 sub, uint256 marketId) external view returns (IPlimsoll.Position memory);
    function collateralBalance(address owner, uint256 sub, uint256 assetId) external view returns (uint256);
    function assetConfig(uint256 assetId) external view returns (IPlimsoll.AssetConfig memory);
    function marketConfig(uint256 marketId) external view returns (IPlimsoll.MarketConfig memory);
    function marketState(uint256 marketId) external view returns (IPlimsoll.MarketState memory);
    function assetCount() external view returns (uint256);
    function marketCount() external view returns (uint256);
    function oracle() external view returns (IOracleRouter);
    function volScalars(uint256 marketId) external view returns (uint256 imScalar, uint256 mmScalar);
}

/// @title PlimsollLens
/// @notice Stateless, read-only batch reader for off-chain clients: many accounts, or every
///         market, asset and oracle price, in one `eth_call`. It holds no state and no roles and
///         is deployed separately from the core, which it reads through its public views only.
/// @dev Positions and balances are read only where the account's masks have a bit set: the
///      core keeps bit m of `marketMask` set exactly while a position in market m is open and bit
///      i of `assetMask` exactly while the balance of asset i is > 0, and its margin engine
///      itself reads nothing else. Everything outside the masks is reported as zero.
///      Gas grows linearly with the batch: ~6k per account plus ~9k per open position and ~5k
///      per collateral balance held. The caller chooses the batch size so that a call stays
///      under the node's eth_call gas cap.
contract PlimsollLens {
    /// @notice Thrown when the owner and subaccount arrays differ in length.
    error LengthMismatch(uint256 owners, uint256 subaccounts);

    /// @dev Every market, asset and oracle price at one block. Market prices come from
    ///      `OracleRouter.tryPrice`: ok is false unless the oracle grades the price OK; the
    ///      price is the latest answer when readable (also when suspect or stale) and 0 for an
    ///      out-of-bounds or missing feed, instead of reverting the whole call. Asset prices
    ///      are what the core values collateral at (`OracleRouter.collateralPrice`: 0 unless
    ///      OK or SUSPECT, the lower end while SUSPECT); ok says whether the grade is OK.
    struct Markets {
        uint256 blockNumber;
        uint256 timestamp; // [s] block.timestamp, the clock every core view uses at this block
        IPlimsoll.MarketConfig[] marketConfigs; // index = market id
        IPlimsoll.MarketState[] marketStates;
        bool[] marketPriceOk;
        uint256[] marketPrices; // [wad USD per unit]
        uint256[] imScalars; // [wad] volatility scalar of IM now
        uint256[] mmScalars; // [wad] volatility scalar of MM now (ramping)
        IPlimsoll.AssetConfig[] assetConfigs; // index = asset id - 1 (cash, id 0, is not listed)
        bool[] assetPriceOk;
        uint256[] assetPrices; // [wad USD per token]
    }

    /// @notice Every listed market (config, state, oracle price) and collateral asset.
    function readMarkets(IPlimsollViews core) external view returns (Markets memory m) {
        IOracleRouter oracle = core.oracle();
        uint256 nm = core.marketCount();
        uint256 na = core.assetCount();
        m.blockNumber = block.number;
        m.timestamp = block.timestamp;
        m.marketConfigs = new IPlimsoll.MarketConfig[](nm);
        m.marketStates = new IPlimsoll.MarketState[](nm);
        m.marketPriceOk = new bool[](nm);
        m.marketPrices = new uint256[](nm);
        m.imScalars = new uint256[](nm);
        m.mmScalars = new uint256[](nm);
        for (uint256 i; i < nm; ++i) {
            m.marketConfigs[i] = core.marketConfig(i);
            m.marketStates[i] = core.marketState(i);
            (m.imScalars[i], m.mmScalars[i]) = core.volScalars(i);
            (m.marketPriceOk[i], m.marketPrices[i]) = oracle.tryPrice(m.marketConfigs[i].feedId);
        }
        m.assetConfigs = new IPlimsoll.AssetConfig[](na);
        m.assetPriceOk = new bool[](na);
        m.assetPrices = new uint256[](na);
        for (uint256 i; i < na; ++i) {
            m.assetConfigs[i] = core.assetConfig(i + 1);
            uint8 status;
            (m.assetPrices[i], status) = oracle.collateralPrice(m.assetConfigs[i].feedId);
            m.assetPriceOk[i] = status == 0;
        }
    }

    /// @notice The raw state of accounts (owners[k], subaccounts[k]) for every listed market
    ///         and collateral asset, in flat arrays (account-major). Positions and balances
    ///         outside the account's masks read as zero (see the contract's notes).
    /// @return cash [wad USD] per account
    /// @return assetMask per account
    /// @return marketMask per account
    /// @return isolatedMarket per account (0: cross margin; m + 1: isolated to market m)
    /// @return positions per (account k, market m) three words at 3 x (k x nMarkets + m):
    ///         size [wad], openNotional [wad USD], fundingIndex [wad USD per unit]
    /// @return balances [token units] per (account k, asset id i >= 1) at k x nAssets + i - 1
    /// @return flags per account (bit 0: holds options; bit 1: portfolio margin)
    function readAccounts(IPlimsollViews core, address[] calldata owners, uint256[] calldata subaccounts)
        external
        view
        returns (
            int256[] memory cash,
            uint16[] memory assetMask,
            uint16[] memory marketMask,
            uint8[] memory isolatedMarket,
            int256[] memory positions,
            uint256[] memory balances,
            uint8[] memory flags
        )
    {
        uint256 n = owners.length;
        if (subaccounts.length != n) revert LengthMismatch(n, subaccounts.length);
        uint256 nm = core.marketCount();
        uint256 na = core.assetCount();
        cash = new int256[](n);
        assetMask = new uint16[](n);
        marketMask = new uint16[](n);
        isolatedMarket = new uint8[](n);
        positions = new int256[](n * nm * 3);
        balances = new uint256[](n * na);
        flags = new uint8[](n);
        for (uint256 k; k < n; ++k) {
            address owner = owners[k];
            uint256 sub = subaccounts[k];
            IPlimsoll.Account memory a = core.getAccount(owner, sub);
            cash[k] = a.cash;
            assetMask[k] = a.assetMask;
            marketMask[k] = a.marketMask;
            isolatedMarket[k] = a.isolatedMarket;
            flags[k] = a.flags;
            for (uint256 m; m < nm; ++m) {
                if ((uint256(a.marketMask) >> m) & 1 == 0) continue;
                IPlimsoll.Position memory p = core.getPosition(owner, sub, m);
                uint256 at = 3 * (k * nm + m);
                positions[at] = p.size;
                positions[at + 1] = p.openNotional;
                positions[at + 2] = p.fundingIndex;
            }
            for (uint256 i = 1; i <= na; ++i) {
                if ((uint256(a.assetMask) >> i) & 1 == 0) continue;
                balances[k * na + i - 1] = core.collateralBalance(owner, sub, i);
            }
        }
    }
}
