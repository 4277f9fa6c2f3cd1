//! The `GET /feed/stats` document: the feed's counts and the market's, side by side.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::feed::FeedCounts;
use crate::market::{MarketCounts, OrderExecutions, WorkState};

/// The `GET /feed/stats` document: what the feed published and sent, and what the market filled
/// per order — the exchange's side of "every order's filled quantity equals the exchange's
/// count". Counters only grow (except `kept`, and `orders_by_state` as orders move on).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FeedStats {
    /// The last sequence number published; equals the reports published, duplicates included.
    pub last_sequence: u64,
    /// The oldest report still kept for resuming clients (`last_sequence + 1` when none is).
    pub oldest_kept_sequence: u64,
    pub kept: u64,
    pub capacity: u64,
    /// Reports per kind, injected duplicates not included.
    pub reports_by_kind: ReportsByKind,
    /// Reports published a second time (same execution id, their own sequence number).
    pub duplicates_published: u64,
    pub connections_opened: u64,
    /// Connections dropped by a fault (`feed_drop_rate`, `POST /feed/drop`).
    pub connections_dropped: u64,
    /// Feed messages written to connections, redeliveries included.
    pub messages_sent: u64,
    /// Messages a connection sent twice in a row (`feed_redeliver_rate`).
    pub messages_redelivered: u64,
    pub cancels_accepted: u64,
    pub cancels_refused: u64,
    /// Shares filled over all orders (the sum of `orders[*].filled_quantity`).
    pub total_filled_quantity: i64,
    pub orders_by_state: BTreeMap<WorkState, u64>,
    /// Per client order id (left out with `?orders=false`).
    pub orders: BTreeMap<String, OrderExecutions>,
}

impl FeedStats {
    pub(crate) fn new(feed: FeedCounts, market: MarketCounts) -> Self {
        Self {
            last_sequence: feed.last_sequence,
            oldest_kept_sequence: feed.oldest_kept_sequence,
            kept: feed.kept,
            capacity: feed.capacity,
            reports_by_kind: ReportsByKind::from(feed.by_kind),
            duplicates_published: feed.duplicates_published,
            connections_opened: feed.connections_opened,
            connections_dropped: feed.connections_dropped,
            messages_sent: feed.messages_sent,
            messages_redelivered: feed.messages_redelivered,
            cancels_accepted: market.cancels_accepted,
            cancels_refused: market.cancels_refused,
            total_filled_quantity: market.total_filled_quantity,
            orders_by_state: market.orders_by_state,
            orders: market.orders,
        }
    }
}

/// Reports per kind, as `GET /feed/stats` shows them (duplicates not included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportsByKind {
    pub partial_fill: u64,
    pub fill: u64,
    pub canceled: u64,
    pub expired: u64,
    pub cancel_refused: u64,
}

impl From<[u64; 5]> for ReportsByKind {
    fn from(counts: [u64; 5]) -> Self {
        Self {
            partial_fill: counts[0],
            fill: counts[1],
            canceled: counts[2],
            expired: counts[3],
            cancel_refused: counts[4],
        }
    }
}
