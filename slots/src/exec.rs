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

use parevm_statedb::{BaseState, BlockDb, BlockTxs, ExecOutcome, SlotDb, TxIndex, TxResult, Unconfirmed};

use crate::{ParallelHandler, balance_use, heavy_calls};

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
    /// The block's transactions.
    pub txs: &'a BlockTxs<'a>,
    /// Block environment.
    pub block: &'a BlockEnv,
    /// Chain configuration (spec).
    pub cfg: &'a CfgEnv,
    /// Whether to time every execution (the engine's execution-time counter, a diagnostic).
    /// Off in normal running: reading the clock twice costs ~40 ns, 3% of executing an AMM swap,
    /// on every thread, the merger's included, whose work is the block's serial path on cheap
    /// transactions (docs/benchmarks-log.md, "Changes measured alone").
    pub time_executions: bool,
}

/// One worker's EVM for one block.
pub struct TxExecutor<'c, 'a, D: BlockDb> {
    ctx: &'c ExecCtx<'a, D>,
    evm: Option<SlotEvm<'a, D>>,
    /// Time spent in [`TxExecutor::execute`], when timed (`ExecCtx::time_executions`): kept
    /// here, per thread, and summed once the block is over, so that measuring costs no shared
    /// write per execution.
    busy: Duration,
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
        Self { ctx, evm: None, busy: Duration::ZERO }
    }

    /// Time spent executing so far.
    pub fn busy(&self) -> Duration {
        self.busy
    }

    /// The outcome of an execution that panicked, in it or around it (the worker's publishing).
    /// The EVM goes too, to be rebuilt on next use: its journal may hold anything.
    pub fn panicked(&mut self, panic: &(dyn Any + Send)) -> ExecOutcome {
        self.evm = None;
        ExecOutcome::Panicked(panic_message(panic))
    }

    fn build(&self) -> SlotEvm<'a, D> {
        let db = SlotDb::new(self.ctx.base, self.ctx.unconfirmed, self.ctx.merged);
        let mut evm = Context::mainnet()
            .with_block(self.ctx.block.clone())
            .with_cfg(self.ctx.cfg.clone())
            .with_db(db)
            .build_mainnet();
        balance_use::hook(evm.instruction.instruction_table_mut());
        evm
    }

    /// Executes transaction `tx` as its `incarnation`-th execution, timed if the engine's timer
    /// is on or the transaction may make a heavy call (`heavy_calls.rs`).
    pub fn execute(&mut self, tx: TxIndex, incarnation: u32) -> TxResult {
        if !self.ctx.time_executions && !heavy_calls::is_timed(self.ctx.txs.gas_limit(tx)) {
            return self.execute_untimed(tx, incarnation);
        }
        let started = Instant::now();
        let mut result = self.execute_untimed(tx, incarnation);
        let took = started.elapsed();
        if self.ctx.time_executions {
            self.busy += took;
        }
        result.took = Some(took);
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
            Err(panic) => self.panicked(panic.as_ref()),
        };
        TxResult { incarnation, outcome, reads, merged_at_start, took: None }
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
