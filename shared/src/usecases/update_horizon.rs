//! How far the live-update stream may go: audit events in id order, never past one that may
//! still commit.
//!
//! Event ids come from a sequence, so they are handed out in order but committed in any order: a
//! reader that has seen id 7 may later see id 6 commit. A stream that sent 7 and moved its resume
//! point past 6 would lose 6 for good. So the stream stops at the first missing id (a gap) until
//! it knows the gap's transaction has ended: either the event appears, or every transaction that
//! had started when the gap was first seen has finished (a later snapshot's `xmin` has passed that
//! read's gap bound, a transaction id above all of them — see `UpdatePoll::gap_bound`; not the
//! snapshot's `xmax`, which a running transaction may exceed) and the id is still missing — it
//! was rolled back, and the stream skips it.
//!
//! This relies on one property of the writers: a transaction writes (or locks) its order's row
//! before it inserts the event, so it has a transaction id before it draws the event id. Every
//! writer does (the transitions, the insert of a new order, the ingester's batch).

use std::collections::BTreeMap;

/// The stream's position: the last event id sent, and the gaps it waits on.
#[derive(Debug, Clone)]
pub struct UpdateHorizon {
    delivered: i64,
    /// Missing ids, with the gap bound of the read that first saw each.
    gaps: BTreeMap<i64, u64>,
}

impl UpdateHorizon {
    /// A stream that has sent everything up to `delivered`.
    pub fn starting_after(delivered: i64) -> Self {
        Self {
            delivered,
            gaps: BTreeMap::new(),
        }
    }

    /// The last event id sent: every event up to it has been sent or was rolled back.
    pub fn delivered(&self) -> i64 {
        self.delivered
    }

    /// Takes a read of the ids after [`delivered`](Self::delivered), in increasing order, made
    /// in a snapshot with `xmin`, with the read's `gap_bound`; returns how many of them, from the
    /// first, may be sent now, and moves past them.
    pub fn advance(&mut self, ids: &[i64], xmin: u64, gap_bound: u64) -> usize {
        let mut expected = self.delivered + 1;
        for (i, &id) in ids.iter().enumerate() {
            debug_assert!(id >= expected, "ids after the horizon, increasing");
            while expected < id {
                let first_seen = *self.gaps.entry(expected).or_insert(gap_bound);
                if xmin < first_seen {
                    // A transaction that may hold `expected` can still commit: wait for it. (A gap
                    // seen for the first time always waits: its bound is above the read's xmin.)
                    return i;
                }
                // Everything that was running when the gap appeared has ended: rolled back.
                self.gaps.remove(&expected);
                expected += 1;
            }
            self.delivered = id;
            expected = id + 1;
        }
        self.gaps.retain(|&gap, _| gap > self.delivered);
        ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_ids_are_sent_at_once() {
        let mut horizon = UpdateHorizon::starting_after(10);
        assert_eq!(horizon.advance(&[11, 12, 13], 100, 105), 3);
        assert_eq!(horizon.delivered(), 13);
        assert_eq!(horizon.advance(&[], 100, 105), 0);
        assert_eq!(horizon.delivered(), 13);
    }

    #[test]
    fn a_gap_holds_the_stream_until_its_event_commits() {
        let mut horizon = UpdateHorizon::starting_after(10);
        // 12 is visible, 11 not yet: its transaction (xid ≥ 100) may still commit.
        assert_eq!(horizon.advance(&[12, 13], 100, 110), 0);
        assert_eq!(horizon.delivered(), 10);
        // Still running.
        assert_eq!(horizon.advance(&[12, 13], 105, 112), 0);
        // 11 committed: all three go, in order.
        assert_eq!(horizon.advance(&[11, 12, 13], 111, 115), 3);
        assert_eq!(horizon.delivered(), 13);
    }

    #[test]
    fn a_rolled_back_event_is_skipped_once_every_transaction_of_its_time_has_ended() {
        let mut horizon = UpdateHorizon::starting_after(10);
        assert_eq!(horizon.advance(&[11, 13], 100, 110), 1);
        assert_eq!(horizon.delivered(), 11);
        // Transactions that were running at the first sight (below xmax 110) may still end.
        assert_eq!(horizon.advance(&[13], 109, 120), 0);
        // All of them have ended and 12 is still missing: it was rolled back.
        assert_eq!(horizon.advance(&[13, 14], 110, 121), 2);
        assert_eq!(horizon.delivered(), 14);
    }

    #[test]
    fn a_later_gap_waits_while_the_events_before_it_go() {
        let mut horizon = UpdateHorizon::starting_after(0);
        assert_eq!(horizon.advance(&[1, 2, 4], 50, 60), 2);
        assert_eq!(horizon.delivered(), 2);
        assert_eq!(horizon.advance(&[3, 4], 55, 61), 2);
        assert_eq!(horizon.delivered(), 4);
    }
}
