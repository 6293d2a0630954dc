// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IPlimsoll} from "../interfaces/IPlimsoll.sol";
import {IOracleRouter} from "../interfaces/IOracleRouter.sol";
import {IOptions} from "../interfaces/IOptions.sol";

/// @title PlimsollStorage
/// @notice Every piece of Plimsoll core state, the roles and the pause switches. Modules inherit
///         it and hold no state of their own; the configurator (PlimsollConfigurator, reached
///         by delegatecall from the core's fallback) inherits it too, so both see one layout.
abstract contract PlimsollStorage is IPlimsoll, ReentrancyGuard {
    uint256 internal constant WAD = 1e18;
    /// @dev Registries are bounded by the admin, never by users: loops over an account's assets
    ///      and markets run at most MAX_ASSETS / MAX_MARKETS times.
    uint256 internal constant MAX_ASSETS = 16; // ids 1..15 (0 is cash)
    uint256 internal constant MAX_MARKETS = 16; // ids 0..15
    /// @dev What one subaccount may hold at once: it bounds the gas of the account's health
    ///      check and of its liquidation (every held asset and market is priced, every
    ///      position closed; see `liquidate_max_account` in gas-snapshot.json). More exposure
    ///      goes in another subaccount.
    uint256 internal constant MAX_ACCOUNT_ASSETS = 8; // collateral assets besides cash
    uint256 internal constant MAX_ACCOUNT_MARKETS = 8; // open perp positions

    // Pause switches, one per action. Liquidation has its own and no other switch stops it.
    uint8 internal constant PAUSE_DEPOSIT = 1;
    uint8 internal constant PAUSE_WITHDRAW = 2;
    uint8 internal constant PAUSE_TRADE = 4;
    uint8 internal constant PAUSE_TRANSFER = 8;
    uint8 internal constant PAUSE_LIQUIDATE = 16;
    uint8 internal constant PAUSE_POOL = 32;

    bytes32 internal constant ROLE_ADMIN = "admin";
    bytes32 internal constant ROLE_GUARDIAN = "guardian";
    bytes32 internal constant ROLE_RISK_KEEPER = "riskKeeper";

    IERC20 public immutable cash;
    uint8 public immutable cashDecimals;
    IOracleRouter public immutable oracle;

    address public admin;
    address public guardian;
    address public pool;
    uint8 public paused;
    int128 public insuranceFund; // [wad USD]
    int128 public cashBooked; // [wad USD] cash deposited minus withdrawn: sum of all cash balances

    uint256 public assetCount; // ids 1..assetCount are listed
    uint256 public marketCount; // ids 0..marketCount-1 are listed
    mapping(uint256 assetId => AssetConfig) internal _assets;
    mapping(uint256 marketId => MarketConfig) internal _marketConfigs;
    mapping(uint256 marketId => MarketState) internal _marketStates;
    LiquidationConfig internal _liq;

    mapping(address owner => mapping(uint256 subaccount => Account)) internal _accounts;
    mapping(address owner => mapping(uint256 subaccount => mapping(uint256 assetId => uint256))) internal _balances;
    mapping(address owner => mapping(uint256 subaccount => mapping(uint256 marketId => Position))) internal _positions;

    mapping(address token => bool) public isListed;
    address public riskKeeper; // posts volatility scalars within `_riskLimits`
    RiskLimits internal _riskLimits;
    mapping(uint256 marketId => VolScalar) internal _vol;
    IOptions public options; // the options market (0: none)

    uint8 internal constant FLAG_OPTIONS = 1;
    uint8 internal constant FLAG_PORTFOLIO = 2;
    uint256 internal constant FULL_GRID = type(uint256).max; // `witness` meaning: every scenario

    constructor(IERC20 cash_, uint8 cashDecimals_, IOracleRouter oracle_, address admin_, address guardian_) {
        if (cashDecimals_ > 18) revert UnsupportedToken(address(cash_));
        cash = cash_;
        cashDecimals = cashDecimals_;
        oracle = oracle_;
        admin = admin_;
        guardian = guardian_;
        emit RoleSet(ROLE_ADMIN, admin_);
        emit RoleSet(ROLE_GUARDIAN, guardian_);
    }

    modifier onlyAdmin() {
        if (msg.sender != admin) revert Unauthorized(msg.sender);
        _;
    }

    modifier whenNotPaused(uint8 action) {
        if (paused & action != 0) revert ActionPaused(action);
        _;
    }
}
