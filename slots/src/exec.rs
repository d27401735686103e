//! Executing one transaction in a slot: revm on a [`SlotDb`], panics caught, result packaged.
//!
//! A worker keeps one EVM for the whole block and points its database at the next transaction,
//! so the instruction table, precompiles and journal buffers are built once per block, not once
//! per execution. A panic inside revm (or inside our database) leaves the journal in an unknown
//! state, so after one the EVM is dropped and rebuilt.

use std::{
    any::Any,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use revm::{
    Context, ExecuteEvm, MainBuilder, MainContext,
    context::{BlockEnv, CfgEnv},
    handler::{Handler, MainnetContext, MainnetEvm},
};

use parevm_statedb::{BaseState, BlockDb, BlockTxs, ExecOutcome, ReadSetPool, SlotDb, TxIndex, TxResult, Unconfirmed};

use crate::ParallelHandler;

/// The EVM a slot runs.
pub type SlotEvm<'a, D> = MainnetEvm<MainnetContext<SlotDb<'a, D>>>;

/// Everything a block's executions share, borrowed for the block.
#[derive(Debug)]
pub struct ExecCtx<'a, D> {
    /// Merged state.
    pub base: &'a BaseState<D>,
    /// Newest results of unmerged transactions.
    pub unconfirmed: &'a Unconfirmed,
    /// Number of merged transactions.
    pub merged: &'a AtomicUsize,
    /// Read buffers.
    pub pool: ReadSetPool,
    /// The block's transactions.
    pub txs: &'a BlockTxs<'a>,
    /// Block environment.
    pub block: &'a BlockEnv,
    /// Chain configuration (spec).
    pub cfg: &'a CfgEnv,
}

/// One worker's EVM for one block.
pub struct TxExecutor<'c, 'a, D: BlockDb> {
    ctx: &'c ExecCtx<'a, D>,
    evm: Option<SlotEvm<'a, D>>,
    /// Time spent executing, sampled: kept here, per thread, and summed once the block is over,
    /// so that measuring costs no shared write per execution.
    busy: SampledTime,
}

/// One execution in this many is timed (the first always), for the engine's execution-time
/// counter. Reading the clock twice costs ~40 ns, 3% of executing an AMM swap, on every thread,
/// the merger's included, whose work is the block's serial path on cheap transactions: timing
/// every execution (and every merge's wait) cost 2% of the mainnet geomean and 5% on AMM swaps
/// (docs/benchmarks.md, "Changes measured alone").
const TIMED_EVERY: u32 = 8;

/// The time spent in a series of executions, estimated from every [`TIMED_EVERY`]th.
#[derive(Debug, Default, Clone, Copy)]
struct SampledTime {
    timed_total: Duration,
    executions: u32,
    timed: u32,
}

impl SampledTime {
    /// Counts one more execution; whether to time it.
    fn next_is_timed(&mut self) -> bool {
        self.executions = self.executions.saturating_add(1);
        self.executions % TIMED_EVERY == 1
    }

    /// Adds the time of an execution [`SampledTime::next_is_timed`] chose.
    fn record(&mut self, time: Duration) {
        self.timed_total += time;
        self.timed += 1;
    }

    /// The estimated time of all executions counted.
    fn estimate(&self) -> Duration {
        if self.timed == 0 {
            Duration::ZERO
        } else {
            self.timed_total.mul_f64(f64::from(self.executions) / f64::from(self.timed))
        }
    }
}

impl<D: BlockDb> std::fmt::Debug for TxExecutor<'_, '_, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxExecutor").field("built", &self.evm.is_some()).finish()
    }
}

impl<'c, 'a, D> TxExecutor<'c, 'a, D>
where
    D: BlockDb,
{
    /// An executor over the block's shared state; the EVM is built on first use.
    pub fn new(ctx: &'c ExecCtx<'a, D>) -> Self {
        Self { ctx, evm: None, busy: SampledTime::default() }
    }

    /// Time spent executing so far, estimated from one execution in [`TIMED_EVERY`].
    pub fn busy(&self) -> Duration {
        self.busy.estimate()
    }

    fn build(&self) -> SlotEvm<'a, D> {
        let db = SlotDb::new(self.ctx.base, self.ctx.unconfirmed, self.ctx.merged, self.ctx.pool.clone());
        Context::mainnet().with_block(self.ctx.block.clone()).with_cfg(self.ctx.cfg.clone()).with_db(db).build_mainnet()
    }

    /// Executes transaction `tx` as its `incarnation`-th execution.
    pub fn execute(&mut self, tx: TxIndex, incarnation: u32) -> TxResult {
        if !self.busy.next_is_timed() {
            return self.execute_untimed(tx, incarnation);
        }
        let started = Instant::now();
        let result = self.execute_untimed(tx, incarnation);
        self.busy.record(started.elapsed());
        result
    }

    fn execute_untimed(&mut self, tx: TxIndex, incarnation: u32) -> TxResult {
        // Acquire: see `SlotDb::first_unmerged`.
        let merged_at_start = self.ctx.merged.load(Ordering::Acquire);
        if self.evm.is_none() {
            self.evm = Some(self.build());
        }
        let evm = self.evm.as_mut().expect("built above");
        evm.ctx.journaled_state.database.begin(tx);
        evm.ctx.tx = self.ctx.txs.tx_env(tx);

        let run = catch_unwind(AssertUnwindSafe(|| {
            let mut handler = ParallelHandler::default();
            let result = handler.run(evm);
            let state = evm.finalize();
            (result, state, handler.take_deferred_reward())
        }));
        let reads = evm.ctx.journaled_state.database.finish();
        let outcome = match run {
            Ok((Ok(result), state, deferred_reward)) => ExecOutcome::Executed { result, state, deferred_reward },
            Ok((Err(error), _, _)) => ExecOutcome::Invalid(error),
            Err(panic) => {
                self.evm = None;
                ExecOutcome::Panicked(panic_message(panic.as_ref()))
            }
        };
        TxResult { incarnation, outcome, reads, merged_at_start }
    }
}

/// The message of a caught panic, for error reports.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_execution_and_every_eighth_are_timed_and_the_rest_estimated_from_them() {
        let mut time = SampledTime::default();
        assert_eq!(time.estimate(), Duration::ZERO, "nothing executed");
        let mut timed = Vec::new();
        for i in 1..=17u32 {
            if time.next_is_timed() {
                timed.push(i);
                time.record(Duration::from_micros(u64::from(i)));
            }
        }
        assert_eq!(timed, [1, 9, 17]);
        // 1 + 9 + 17 = 27 µs over 3 timed executions: 9 µs each, for 17 executions.
        assert_eq!(time.estimate(), Duration::from_micros(153));
        // A thread that executed once is timed exactly.
        let mut once = SampledTime::default();
        assert!(once.next_is_timed());
        once.record(Duration::from_micros(5));
        assert_eq!(once.estimate(), Duration::from_micros(5));
    }
}
