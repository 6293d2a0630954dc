// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {MockERC20} from "./MockERC20.sol";

/// @notice Takes a fee (in basis points) on every transfer: the receiver gets less than sent.
contract FeeOnTransferToken is MockERC20 {
    uint256 public immutable feeBps;

    constructor(uint256 feeBps_) MockERC20("Fee Token", "FEE", 18) {
        feeBps = feeBps_;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) return super._update(from, to, value);
        uint256 fee = value * feeBps / 10_000;
        super._update(from, address(0xdead), fee);
        super._update(from, to, value - fee);
    }
}

/// @notice Returns false instead of reverting when a transfer cannot happen.
contract ReturnsFalseToken is MockERC20 {
    constructor() MockERC20("False Token", "FALSE", 18) {}

    function transfer(address to, uint256 value) public override returns (bool) {
        if (balanceOf(msg.sender) < value) return false;
        return super.transfer(to, value);
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        if (balanceOf(from) < value || allowance(from, msg.sender) < value) return false;
        return super.transferFrom(from, to, value);
    }
}

/// @notice Transfers return nothing (USDT style); reverts on failure.
contract MissingReturnToken {
    string public constant name = "Missing Return";
    string public constant symbol = "MISS";
    uint8 public constant decimals = 6;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    function mint(address to, uint256 amount) external {
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function approve(address spender, uint256 amount) external {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
    }

    function transfer(address to, uint256 amount) external {
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount;
        emit Transfer(msg.sender, to, amount);
    }

    function transferFrom(address from, address to, uint256 amount) external {
        allowance[from][msg.sender] -= amount;
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }
}

/// @notice Calls back into a target during transfers (ERC-777-style hook) to try re-entrancy.
contract ReentrantToken is MockERC20 {
    address public target;
    bytes public payload;
    bool public reentered;
    bytes public lastRevert;

    constructor() MockERC20("Reentrant Token", "REENT", 18) {}

    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (target != address(0) && from != address(0) && to != address(0)) {
            address t = target;
            target = address(0); // one shot
            (bool ok, bytes memory ret) = t.call(payload);
            reentered = ok;
            lastRevert = ret;
            if (!ok) {
                // Bubble the guard's revert so the outer call fails loudly.
                assembly {
                    revert(add(ret, 32), mload(ret))
                }
            }
        }
    }
}

/// @notice A token with more decimals than Plimsoll can book.
contract HighDecimalsToken is ERC20 {
    constructor() ERC20("High Decimals", "HIGH") {}

    function decimals() public pure override returns (uint8) {
        return 24;
    }
}

/// @notice A token whose holders' balances change without transfers (a rebase, simulated on one
///         holder): Plimsoll does not list such tokens, and must still never let one depositor
///         take another's tokens if one is listed.
contract RebasingToken is MockERC20 {
    constructor() MockERC20("Rebasing Token", "REBASE", 18) {}

    /// @notice Sets `who`'s balance to `newBalance` (a negative or positive rebase of it).
    function rebase(address who, uint256 newBalance) external {
        uint256 bal = balanceOf(who);
        if (newBalance < bal) _burn(who, bal - newBalance);
        else _mint(who, newBalance - bal);
    }
}

/// @notice A token with a blocklist (USDC/USDT style): transfers from or to a blocked address
///         revert with the token's own error.
contract BlocklistToken is MockERC20 {
    error Blocked(address account);

    mapping(address => bool) public blocked;

    constructor() MockERC20("Blocklist Token", "BLOCK", 18) {}

    function setBlocked(address who, bool isBlocked) external {
        blocked[who] = isBlocked;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (blocked[from]) revert Blocked(from);
        if (blocked[to]) revert Blocked(to);
        super._update(from, to, value);
    }
}
