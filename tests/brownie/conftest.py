"""brownie fixtures: the contracts deployed with brownie's own containers on its anvil.

Run with `brownie test tests/brownie` (the Makefile's test-brownie); plain pytest never
collects this directory.
"""

import brownie
import pytest

from plimsoll.build import merged_abi

WAD = 10**18


@pytest.fixture(scope="session")
def accounts():
    """brownie's accounts (overrides the web3 `accounts` fixture of tests/conftest.py)."""
    return brownie.accounts


@pytest.fixture(scope="module")
def system(
    accounts,
    MockERC20,
    MockFeed,
    OracleRouter,
    Plimsoll,
    PlimsollConfigurator,
    PlimsollPeriphery,
    LiquidityPool,
):
    admin = accounts[0]
    usdc = MockERC20.deploy("USD Coin", "USDC", 6, {"from": admin})
    weth = MockERC20.deploy("Wrapped Ether", "WETH", 18, {"from": admin})
    feed = MockFeed.deploy(8, 2000 * 10**8, {"from": admin})
    router = OracleRouter.deploy(admin, {"from": admin})
    router.setFeed(1, feed, 3600, WAD // 10**6, 10**9 * WAD, {"from": admin})
    periphery = PlimsollPeriphery.deploy(usdc, router, {"from": admin})
    configurator = PlimsollConfigurator.deploy(usdc, router, periphery, {"from": admin})
    deployed = Plimsoll.deploy(usdc, router, admin, admin, configurator, {"from": admin})
    # The core forwards its setters to the configurator and the rest to the periphery
    # (delegatecalls from their fallbacks): one contract object with the three ABIs, as the
    # SDK's shipped ABI has them.
    core = brownie.Contract.from_abi(
        "Plimsoll",
        deployed.address,
        merged_abi(Plimsoll.abi, PlimsollConfigurator.abi, PlimsollPeriphery.abi),
    )
    pool = LiquidityPool.deploy(core, usdc, {"from": admin})
    core.setPool(pool, {"from": admin})
    core.listAsset(weth, int(0.8 * WAD), 1, 10**6 * WAD, {"from": admin})
    market = (
        1,
        True,
        WAD // 10,
        WAD // 2,
        WAD // 2000,
        2 * 10**13,
        WAD // 100,
        10_000 * WAD,
        100_000 * WAD,
    )
    core.listMarket(market, {"from": admin})
    usdc.mint(admin, 1_000_000 * 10**6, {"from": admin})
    usdc.approve(pool, 2**256 - 1, {"from": admin})
    # ERC-7540: request, fulfil (no position yet: no price round to wait for), claim.
    pool.requestDeposit(1_000_000 * 10**6, admin, admin, {"from": admin})
    pool.fulfilDeposit(admin, {"from": admin})
    pool.deposit(1_000_000 * 10**6, admin, admin, {"from": admin})
    return {"usdc": usdc, "weth": weth, "feed": feed, "router": router, "core": core, "pool": pool}


@pytest.fixture(autouse=True)
def isolate(fn_isolation):
    pass
