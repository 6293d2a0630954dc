// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";
import {IOracleRouter} from "../interfaces/IOracleRouter.sol";

/// @title OracleRouter
/// @notice One place where Chainlink answers become Plimsoll prices: decimals normalized to WAD,
///         answers <= 0 or outside the feed's bounds refused, and every readable answer graded
///         OK / SUSPECT / STALE / SEQUENCER (see IOracleRouter) so that the core can make a
///         market reduce-only and hold liquidations while a price cannot be trusted.
/// @dev The jump breaker is a pure view over the feed's round history, so it needs no keeper
///      to stay correct: the latest answer is SUSPECT while any of the last `confirmRounds`
///      round-to-round moves exceeds `jumpWad` and happened less than `holdSeconds` ago. A
///      wick that lasts fewer than `confirmRounds` rounds is therefore never OK, and a move
///      that persists becomes OK after `confirmRounds` agreeing rounds or `holdSeconds`,
///      whichever is first. Round ids are walked down by one (Chainlink ids are consecutive
///      within an aggregator phase); a round that cannot be read ends the walk.
///      `poke` records grades and announces changes (`FeedStatusChanged`) for off-chain
///      watchers; the grades themselves never depend on it.
contract OracleRouter is IOracleRouter {
    uint8 public constant OK = 0;
    uint8 public constant SUSPECT = 1;
    uint8 public constant STALE = 2;
    uint8 public constant SEQUENCER = 3;
    uint8 public constant INVALID = 4;
    uint8 internal constant MAX_CONFIRM_ROUNDS = 8;
    /// @notice Rounds `priceAt` walks back from the latest to find the first after a time.
    uint256 public constant PRICE_AT_WALK = 24;

    struct Feed {
        AggregatorV3Interface aggregator;
        uint32 heartbeat; // [s] the oldest answer still accepted
        uint8 decimals; // the feed's own decimals (<= 18)
        bool breaker; // jumpWad != 0, kept in the first slot: a read of a feed without a
        // breaker loads two slots, not three
        uint128 minWad; // [wad] lowest plausible price
        uint128 maxWad; // [wad] highest plausible price
        uint64 jumpWad; // [wad] largest round-to-round move taken at face value; 0: breaker off
        uint8 confirmRounds; // agreeing rounds that confirm a jump (1..8)
        uint32 holdSeconds; // [s] a jump older than this is accepted
    }

    address public admin;
    AggregatorV3Interface public sequencerFeed; // L2 sequencer uptime feed (0: none)
    uint32 public sequencerGrace; // [s] held after the sequencer comes back
    mapping(uint256 feedId => Feed) public feeds;
    mapping(uint256 feedId => uint8) public lastStatus; // as recorded by `poke`

    constructor(address admin_) {
        admin = admin_;
        emit AdminChanged(address(0), admin_);
    }

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        _;
    }

    function setAdmin(address next) external onlyAdmin {
        emit AdminChanged(admin, next);
        admin = next;
    }

    /// @notice Adds or replaces feed `feedId` (the jump breaker starts off).
    function setFeed(uint256 feedId, address aggregator, uint32 heartbeat, uint128 minWad, uint128 maxWad)
        external
        onlyAdmin
    {
        if (aggregator == address(0) || heartbeat == 0 || minWad == 0 || minWad >= maxWad) {
            revert InvalidFeedConfig(feedId);
        }
        uint8 dec = AggregatorV3Interface(aggregator).decimals();
        // Normalizing multiplies by 10**(18 - decimals): a feed above 18 decimals is refused.
        if (dec > 18) revert InvalidFeedConfig(feedId);
        feeds[feedId] = Feed(AggregatorV3Interface(aggregator), heartbeat, dec, false, minWad, maxWad, 0, 0, 0);
        emit FeedSet(feedId, aggregator, dec, heartbeat, minWad, maxWad);
    }

    /// @notice Configures the jump breaker of `feedId`: a round-to-round move above `jumpWad`
    ///         (e.g. 0.1e18 = 10%) is SUSPECT until `confirmRounds` agreeing rounds follow it or
    ///         `holdSeconds` pass. `jumpWad` 0 turns the breaker off.
    function setBreaker(uint256 feedId, uint64 jumpWad, uint8 confirmRounds, uint32 holdSeconds) external onlyAdmin {
        Feed storage f = feeds[feedId];
        if (address(f.aggregator) == address(0)) revert UnknownFeed(feedId);
        if (jumpWad != 0 && (confirmRounds == 0 || confirmRounds > MAX_CONFIRM_ROUNDS || holdSeconds == 0)) {
            revert InvalidFeedConfig(feedId);
        }
        f.jumpWad = jumpWad;
        f.breaker = jumpWad != 0;
        f.confirmRounds = confirmRounds;
        f.holdSeconds = holdSeconds;
        emit BreakerSet(feedId, jumpWad, confirmRounds, holdSeconds);
    }

    /// @notice Sets the L2 sequencer uptime feed (answer 0 = up, 1 = down; `startedAt` = when
    ///         the status last changed) and the grace period after it comes back.
    function setSequencer(address feed, uint32 gracePeriod) external onlyAdmin {
        sequencerFeed = AggregatorV3Interface(feed);
        sequencerGrace = gracePeriod;
        emit SequencerSet(feed, gracePeriod);
    }

    /// @inheritdoc IOracleRouter
    function priceInfo(uint256 feedId) public view returns (uint256 priceWad, uint8 status) {
        (priceWad, status,) = _read(feedId);
    }

    /// @inheritdoc IOracleRouter
    function fillBounds(uint256 feedId) external view returns (uint256 lo, uint256 hi, uint8 status) {
        uint256 p;
        uint256 ref;
        (p, status, ref) = _read(feedId);
        // Nothing fills at an answer that is not a price.
        if (status == INVALID) _revertInvalid(feedId, p);
        (lo, hi) = p < ref ? (p, ref) : (ref, p);
    }

    /// @inheritdoc IOracleRouter
    function collateralPrice(uint256 feedId) external view returns (uint256 priceWad, uint8 status) {
        uint256 ref;
        (priceWad, status, ref) = _read(feedId);
        if (status == SUSPECT) {
            if (ref < priceWad) priceWad = ref;
        } else if (status != OK) {
            priceWad = 0;
        }
    }

    /// @dev The graded latest answer, and a reference: the last price before a pending jump
    ///      (SUSPECT), else the answer itself. Never reverts for a configured feed: an answer
    ///      <= 0 (price 0), outside the feed's bounds, or a feed that cannot be read (price 0)
    ///      is graded INVALID, so that views and liquidations that do not need this price are
    ///      never blocked by it.
    function _read(uint256 feedId) internal view returns (uint256 priceWad, uint8 status, uint256 ref) {
        // Field by field: the breaker's slot is read only when the breaker is on.
        Feed storage fs = feeds[feedId];
        AggregatorV3Interface aggregator = fs.aggregator;
        if (address(aggregator) == address(0)) revert UnknownFeed(feedId);
        uint80 roundId;
        int256 answer;
        uint256 updatedAt;
        try aggregator.latestRoundData() returns (uint80 r, int256 a, uint256, uint256 t, uint80) {
            (roundId, answer, updatedAt) = (r, a, t);
        } catch {
            return (0, INVALID, 0);
        }
        if (answer <= 0) return (0, INVALID, 0);
        priceWad = uint256(answer) * 10 ** (18 - fs.decimals);
        ref = priceWad;
        if (priceWad < fs.minWad || priceWad > fs.maxWad) return (priceWad, INVALID, ref);
        if (!_sequencerUp()) return (priceWad, SEQUENCER, ref);
        if (updatedAt + fs.heartbeat < block.timestamp) return (priceWad, STALE, ref);
        if (fs.breaker) {
            bool pending;
            (pending, ref) = _jumpPending(feeds[feedId], roundId, priceWad, updatedAt);
            if (pending) return (priceWad, SUSPECT, ref);
        }
        return (priceWad, OK, priceWad);
    }

    /// @dev Reverts with the error that says why an INVALID answer cannot be used.
    function _revertInvalid(uint256 feedId, uint256 priceWad) internal view {
        Feed storage fs = feeds[feedId];
        if (priceWad == 0) {
            int256 answer;
            try fs.aggregator.latestRoundData() returns (uint80, int256 a, uint256, uint256, uint80) {
                answer = a;
            } catch {}
            revert NonPositivePrice(feedId, answer);
        }
        revert PriceOutOfBounds(feedId, priceWad, fs.minWad, fs.maxWad);
    }

    /// @inheritdoc IOracleRouter
    /// @dev Round ids are consecutive within an aggregator phase; the first round of a new
    ///      phase has no readable predecessor and is refused (NotFirstRoundAfter): the
    ///      walk and the caller both need a round with a predecessor before `time`.
    function priceAt(uint256 feedId, uint256 time, uint80 roundId) external view returns (uint256, uint80) {
        Feed storage fs = feeds[feedId];
        AggregatorV3Interface aggregator = fs.aggregator;
        if (address(aggregator) == address(0)) revert UnknownFeed(feedId);
        if (roundId == 0) {
            (roundId,,,,) = aggregator.latestRoundData();
            for (uint256 i; i < PRICE_AT_WALK && roundId > 1 && _roundTime(aggregator, roundId - 1) >= time; ++i) {
                --roundId;
            }
        }
        (, int256 answer,, uint256 t,) = aggregator.getRoundData(roundId);
        if (roundId <= 1 || t < time || _roundTime(aggregator, roundId - 1) >= time) {
            revert NotFirstRoundAfter(feedId, roundId, time);
        }
        if (answer <= 0) revert NonPositivePrice(feedId, answer);
        uint256 p = uint256(answer) * 10 ** (18 - fs.decimals);
        if (p < fs.minWad || p > fs.maxWad) revert PriceOutOfBounds(feedId, p, fs.minWad, fs.maxWad);
        return (p, roundId);
    }

    function _roundTime(AggregatorV3Interface aggregator, uint80 roundId) internal view returns (uint256 t) {
        (,,, t,) = aggregator.getRoundData(roundId);
    }

    /// @inheritdoc IOracleRouter
    function price(uint256 feedId) external view returns (uint256 priceWad) {
        uint8 status;
        (priceWad, status) = priceInfo(feedId);
        if (status == INVALID) _revertInvalid(feedId, priceWad);
        if (status == STALE) {
            (,,, uint256 updatedAt,) = feeds[feedId].aggregator.latestRoundData();
            revert StalePrice(feedId, updatedAt, feeds[feedId].heartbeat);
        }
        if (status != OK) revert PriceNotTrusted(feedId, status);
    }

    /// @inheritdoc IOracleRouter
    function tryPrice(uint256 feedId) external view returns (bool ok, uint256 priceWad) {
        try this.priceInfo(feedId) returns (uint256 p, uint8 status) {
            return (status == OK, p);
        } catch {
            return (false, 0);
        }
    }

    /// @notice Records the grade of each feed and emits `FeedStatusChanged` where it changed.
    ///         Anyone may call it (keepers do, every block); grades never depend on it. A feed
    ///         that cannot be read is recorded as STALE.
    function poke(uint256[] calldata feedIds) external {
        for (uint256 i; i < feedIds.length; ++i) {
            uint256 id = feedIds[i];
            uint256 p;
            uint8 status;
            try this.priceInfo(id) returns (uint256 p_, uint8 s_) {
                (p, status) = (p_, s_);
            } catch {
                status = STALE;
            }
            uint8 previous = lastStatus[id];
            if (previous != status) {
                lastStatus[id] = status;
                emit FeedStatusChanged(id, previous, status, p);
            }
        }
    }

    /// @dev Whether one of the last `confirmRounds` moves ending at the latest round exceeds the
    ///      jump bound and is younger than `holdSeconds`, and the price just before that move.
    ///      Walks rounds newest first, at most MAX_CONFIRM_ROUNDS reads; an accepted (old) jump
    ///      ends the walk.
    function _jumpPending(Feed memory f, uint80 roundId, uint256 cur, uint256 curTime)
        internal
        view
        returns (bool, uint256)
    {
        uint256 latest = cur;
        for (uint256 i; i < f.confirmRounds; ++i) {
            if (roundId <= 1) return (false, latest);
            --roundId;
            int256 prevAnswer;
            uint256 prevTime;
            try f.aggregator.getRoundData(roundId) returns (uint80, int256 a, uint256, uint256 t, uint80) {
                (prevAnswer, prevTime) = (a, t);
            } catch {
                return (false, latest);
            }
            if (prevAnswer <= 0 || prevTime == 0) return (false, latest);
            uint256 prev = uint256(prevAnswer) * 10 ** (18 - f.decimals);
            uint256 move = cur > prev ? cur - prev : prev - cur;
            // move / prev > jump, without division: move x WAD > jump x prev.
            if (move * 1e18 > uint256(f.jumpWad) * prev) return (block.timestamp < curTime + f.holdSeconds, prev);
            (cur, curTime) = (prev, prevTime);
        }
        return (false, latest);
    }

    function _sequencerUp() internal view returns (bool) {
        AggregatorV3Interface s = sequencerFeed;
        if (address(s) == address(0)) return true;
        (, int256 answer, uint256 startedAt,,) = s.latestRoundData();
        // 0 = up; a feed that has never been set (startedAt 0) counts as down.
        return answer == 0 && startedAt != 0 && block.timestamp >= startedAt + sequencerGrace;
    }
}
