//! The chain rule: when a block turns out to be a chain of dependent transactions, the caller's
//! sequential executor runs the rest of it.
//!
//! Speculation pays only when most results survive validation. Where most transactions must be
//! redone (every transaction touching one hot account, one pool everybody trades on), each is
//! executed twice and still goes through the merger's bookkeeping, which on a cheap transaction
//! costs about as much as executing it: no schedule of ours beats the sequential executor there.
//! The rule cannot know this before executing (ERC-20 transfers all call one contract and are
//! independent), so it watches the merge: at the end of every window of [`WINDOW`] merged
//! transactions, if the block so far needed at least one redo for every two transactions, the
//! engine stops speculating and hands the rest of the block back, and the caller executes it
//! sequentially. The verdict is given as soon as it is certain (redos only grow), so a block that
//! is a chain from the start pays for half a window; a chain of thousands then runs at the
//! sequential executor's speed.
//!
//! The rate is the block's so far, not the last window's: real blocks have bursts (a popular
//! mint, a run of swaps on one pool) in which a window is mostly redone, and handing the whole
//! rest of such a block to the sequential executor lost more than the burst cost (mainnet, 49
//! blocks at 1 slot: 1.07-1.20x total with a per-window rule, 1.19-1.22x with the block's rate,
//! 1.20-1.22x without a rule; `parevm bench --slots 1,2 --runs 5 --warmup 1`).

//!
//! A block can also be a chain by construction: transactions from or to the beneficiary go to no
//! slot (see `dispatch.rs`) and the merger runs them one by one at their turn. When most of a
//! block is such transactions (a mining pool paying out from its coinbase: mainnet blocks
//! 5891667 and 12520364 are 379 of 380 and 650 of 660), the engine is a sequential executor
//! with bookkeeping added, and the rule hands the block back before starting (batch) or once a
//! window of transactions has been handed in (session).

use parevm_statedb::TxIndex;

/// Merged transactions per judgement.
pub const WINDOW: usize = 32;

/// The default threshold: half of a window redone.
pub const DEFAULT_REDOS: usize = WINDOW / 2;

/// Watches one block's merge.
#[derive(Debug, Clone)]
pub(crate) struct ChainRule {
    /// Redos per window's worth of merged transactions at which the rule trips; `None`: never.
    threshold: Option<usize>,
    /// Where the current window started.
    window_start: TxIndex,
}

impl ChainRule {
    /// A rule for a block starting at transaction 0 that trips once the block's redos so far
    /// reach `threshold` per [`WINDOW`] merged transactions at the end of a window, or are certain
    /// to (see [`ChainRule::tripped`]; `None`: never; 0: at the end of the first window).
    pub fn new(threshold: Option<usize>) -> Self {
        Self { threshold, window_start: 0 }
    }

    /// Called after each merge with the number of merged transactions and the block's redos so
    /// far; returns `true` when the rest of the block should run sequentially.
    ///
    /// Redos only grow, so once they reach what the end of the current window would require,
    /// that window's verdict is certain: the rule gives it at once rather than executing the rest
    /// of the window speculatively (a chain from the start is handed back after half a window).
    /// A zero threshold keeps its meaning for tests: at the end of the first window.
    pub fn tripped(&mut self, merged: TxIndex, redos: u64) -> bool {
        let Some(threshold) = self.threshold else { return false };
        let window_end = self.window_start + WINDOW;
        if threshold > 0 && redos * WINDOW as u64 >= threshold as u64 * window_end as u64 {
            return true;
        }
        if merged < window_end {
            return false;
        }
        self.window_start = merged;
        redos * WINDOW as u64 >= threshold as u64 * merged as u64
    }
}

/// The rule as first written, judged only at window ends: what [`ChainRule::tripped`] must
/// agree with, window by window.
#[cfg(test)]
fn tripped_at_window_end(threshold: usize, window_start: &mut TxIndex, merged: TxIndex, redos: u64) -> bool {
    if merged < *window_start + WINDOW {
        return false;
    }
    *window_start = merged;
    redos * WINDOW as u64 >= threshold as u64 * merged as u64
}

/// Whether a block whose first `txs` transactions include `beneficiary_txs` from or to the
/// beneficiary is serial by construction (judged once at least a window's worth is known).
pub(crate) fn mostly_beneficiary_txs(threshold: Option<usize>, beneficiary_txs: usize, txs: usize) -> bool {
    threshold.is_some() && txs >= WINDOW && 2 * beneficiary_txs > txs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds merges one at a time; `redone(i)` says whether transaction `i` needed a redo.
    fn trips_at(threshold: Option<usize>, txs: usize, redone: impl Fn(usize) -> bool) -> Option<TxIndex> {
        let mut rule = ChainRule::new(threshold);
        let mut redos = 0;
        for tx in 0..txs {
            redos += u64::from(redone(tx));
            if rule.tripped(tx + 1, redos) {
                return Some(tx + 1);
            }
        }
        None
    }

    #[test]
    fn a_chain_trips_as_soon_as_its_first_window_is_certain_to() {
        // 16 redos out of 16: the first window cannot end below half.
        assert_eq!(trips_at(Some(DEFAULT_REDOS), 1000, |_| true), Some(DEFAULT_REDOS));
    }

    #[test]
    fn half_of_a_window_redone_trips_and_less_does_not() {
        // Transactions 0, 2, ..., 30 redone: the 16th redo comes with the 31st merge.
        assert_eq!(trips_at(Some(DEFAULT_REDOS), 1000, |tx| tx % 2 == 0), Some(WINDOW - 1));
        assert_eq!(trips_at(Some(DEFAULT_REDOS), 1000, |tx| tx % 3 == 0), None);
    }

    #[test]
    fn a_chain_that_starts_late_trips_once_it_is_half_the_block() {
        // Independent for 100 transactions, then a chain. The window ending at 192 would need 96
        // redos (there are 92 then); the one ending at 224 needs 112, reached at 212.
        assert_eq!(trips_at(Some(DEFAULT_REDOS), 1000, |tx| tx >= 100), Some(212));
    }

    #[test]
    fn the_early_verdict_is_the_window_end_verdict() {
        // Pseudo-random redo patterns of varying density: the rule trips in exactly the window
        // whose end the original rule trips at, never in another one.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for density in [2u64, 3, 4, 6, 10] {
            for _ in 0..200 {
                let pattern: Vec<bool> = (0..400)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed.is_multiple_of(density)
                    })
                    .collect();
                let early = trips_at(Some(DEFAULT_REDOS), pattern.len(), |tx| pattern[tx]);
                let (mut start, mut redos, mut late) = (0, 0, None);
                for (tx, &redone) in pattern.iter().enumerate() {
                    redos += u64::from(redone);
                    if tripped_at_window_end(DEFAULT_REDOS, &mut start, tx + 1, redos) {
                        late = Some(tx + 1);
                        break;
                    }
                }
                match (early, late) {
                    (None, None) => {}
                    (Some(e), Some(l)) => assert!(e <= l && l - e < WINDOW, "early {e}, at window end {l}"),
                    other => panic!("verdicts differ: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_burst_in_a_long_block_does_not_trip() {
        // A window entirely redone, after 200 independent transactions.
        assert_eq!(trips_at(Some(DEFAULT_REDOS), 1000, |tx| (200..232).contains(&tx)), None);
    }

    #[test]
    fn a_steady_rate_below_half_never_trips() {
        // 15 redos in every window: below half, forever.
        assert_eq!(trips_at(Some(DEFAULT_REDOS), 10_000, |tx| tx % WINDOW < 15), None);
    }

    #[test]
    fn a_zero_threshold_trips_at_the_end_of_the_first_window() {
        assert_eq!(trips_at(Some(0), 1000, |_| false), Some(WINDOW));
    }

    #[test]
    fn a_block_of_mostly_beneficiary_transactions_is_serial() {
        assert!(mostly_beneficiary_txs(Some(DEFAULT_REDOS), 379, 380));
        assert!(!mostly_beneficiary_txs(Some(DEFAULT_REDOS), 23, 1346));
        assert!(!mostly_beneficiary_txs(Some(DEFAULT_REDOS), 10, 10), "fewer than a window");
        assert!(!mostly_beneficiary_txs(None, 379, 380), "rule off");
    }

    #[test]
    fn a_disabled_rule_never_trips() {
        assert_eq!(trips_at(None, 1000, |_| true), None);
    }
}
