//! The engine's metrics, recorded once per block through the `metrics` crate.
//!
//! Names are prefixed `parevm_`; a node exports them with whatever recorder it installs (reth's
//! Prometheus exporter), and `parevm replay --stats` prints them.

use parevm_merger::RedoCause;

use crate::BlockStats;

/// Records one block's counters.
pub(crate) fn record_block(stats: &BlockStats) {
    metrics::counter!("parevm_blocks_total").increment(1);
    metrics::counter!("parevm_txs_total").increment(stats.txs as u64);
    metrics::counter!("parevm_executions_total").increment(stats.executions);
    metrics::counter!("parevm_steals_total").increment(stats.steals);
    metrics::counter!("parevm_shadow_takeovers_total").increment(stats.shadow_takeovers);
    // Blocks (or their rests) left to the sequential executor by any rule: chain, cheap, payout.
    metrics::counter!("parevm_handed_back_blocks_total").increment(u64::from(stats.sequential_from.is_some()));
    for cause in RedoCause::ALL {
        metrics::counter!("parevm_redos_total", "cause" => cause.label()).increment(stats.redos(cause));
    }
    metrics::counter!("parevm_rebased_credits_total").increment(stats.merge.rebased_credits);
    // A session's slots' reads answered by the caller's thread, a round trip each: thousands per
    // block without the parent state, almost none with it (`with_parent_states`).
    metrics::counter!("parevm_owner_reads_total").increment(stats.owner_reads);
    // Of a session's transactions, those the caller's thread executed first itself at their
    // turn (its own lane, and those no worker had started); `parevm_txs_total` also counts
    // blocks handed back, so the ratio of the two reads low.
    metrics::counter!("parevm_owner_turn_executions_total").increment(stats.owner_turn_executions);
    // Of those, the ones dispatch had sent to a worker, which the caller reached first: the
    // worker falling behind, where the rest of the count is the dispatch's own choice.
    metrics::counter!("parevm_owner_overtook_total").increment(stats.owner_overtook);
    metrics::histogram!("parevm_merge_wait_seconds").record(stats.merge.merge_wait.as_secs_f64());
    // Batch path only (see `BlockStats::execution_time`); divided by the executions, the mean
    // cost of one execution, to set against the sequential executor's per transaction.
    if !stats.execution_time.is_zero() {
        metrics::histogram!("parevm_execution_seconds").record(stats.execution_time.as_secs_f64());
    }
}
