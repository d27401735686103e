//! One block's shared state: what the slots and the merger work on, in one owned struct.
//!
//! The engine's batch path keeps a job on its stack and lends it to workers in a scope; a
//! session (the alloy-evm executor, which receives transactions over many calls) keeps it behind
//! an `Arc` that its workers hold. Either way the workers run the same loop on the same data.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crossbeam_utils::CachePadded;
use parevm_merger::{MergeDriver, MergeInput};
use parevm_slots::{ExecCtx, HeavyCalls, RedoRequest, Role, TaskSource, TaskTable, Worker, heavy_calls, panic_message};
use parevm_statedb::{BaseState, BlockDb, BlockTxs, DbError, ExecOutcome, ReadSet, TxIndex, TxResult, Unconfirmed};
use revm::context::{BlockEnv, CfgEnv};

use crate::{
    SeedAccount,
    placement::{Placement, PoolThreads},
    scheduler::Scheduler,
};

/// The parts of a block's shared state that need only the block's size, its database and its
/// seed, not its transactions: the batch path builds them on the pool's thread while the
/// caller's reads and dispatches the transactions (`Engine::run`). Each is sized for the whole
/// block up front, so building them is mostly allocating and filling memory: on ERC-20
/// transfers (870) a third of the set-up, which takes two to three times as long when the
/// block comes after a pause, as a node's blocks do (docs/benchmarks-log.md, "Changes
/// measured alone", session 16).
pub(crate) struct SharedMaps<D> {
    pub base: BaseState<D>,
    pub unconfirmed: Unconfirmed,
    pub table: TaskTable,
}

impl<D: BlockDb> SharedMaps<D> {
    /// For a block of `txs` transactions over `db`, with the changes made before them.
    pub fn build(db: D, seed: &[SeedAccount], txs: usize) -> Result<Self, DbError> {
        let mut base = BaseState::with_capacity(db, txs);
        for seed in seed {
            base.seed_account(seed.address, seed.info.clone(), seed.storage_known, seed.storage.iter().copied())?;
        }
        Ok(Self { base, unconfirmed: Unconfirmed::new(txs), table: TaskTable::new(txs) })
    }
}

/// Everything one block's workers and merger share.
#[derive(Debug)]
pub(crate) struct BlockJob<'t, D> {
    pub base: BaseState<D>,
    pub unconfirmed: Unconfirmed,
    /// Number of merged transactions, published by the merger. On a cache line of its own: the
    /// merger writes it at every merge and every slot read loads it, and the fields around it
    /// (the maps' headers, read on every slot read) must not move between the cores with it.
    pub merged: CachePadded<AtomicUsize>,
    pub scheduler: Scheduler,
    pub txs: BlockTxs<'t>,
    pub block: BlockEnv,
    pub cfg: CfgEnv,
    /// Executions run by shadow workers.
    pub shadow_executions: AtomicU64,
    /// Nanoseconds the workers spent executing, added as each leaves its loop, if timed.
    pub execution_nanos: AtomicU64,
    /// Whether executions are timed (`Engine::time_executions`).
    pub time_executions: bool,
}

impl<D: BlockDb> BlockJob<'_, D> {
    pub fn ctx(&self) -> ExecCtx<'_, D> {
        ExecCtx {
            base: &self.base,
            unconfirmed: &self.unconfirmed,
            merged: &self.merged,
            txs: &self.txs,
            block: &self.block,
            cfg: &self.cfg,
            time_executions: self.time_executions,
        }
    }

    pub fn merge_input<'a>(
        &'a self,
        validation_pool: Option<&'a rayon::ThreadPool>,
        stall_timeout: Duration,
    ) -> MergeInput<'a, D> {
        MergeInput {
            base: &self.base,
            unconfirmed: &self.unconfirmed,
            merged: &self.merged,
            txs: &self.txs,
            block: &self.block,
            cfg: &self.cfg,
            validation_pool,
            stall_timeout,
        }
    }

    /// One worker's loop, until the block is over, on one of the engine's pool `threads`.
    pub fn run_worker(&self, slot: usize, role: Role, threads: &PoolThreads) {
        self.scheduler.placement.settle(Placement::worker(slot, role == Role::Shadow));
        let ctx = self.ctx();
        // A panic here is a bug in the loop itself (executions catch their own); the merger then
        // reports the block as stalled instead of hanging, and the thread survives.
        if let Ok(stats) = catch_unwind(AssertUnwindSafe(|| {
            Worker::new(slot, role, self.scheduler.table(), &ctx).run(&self.scheduler)
        })) {
            // Relaxed: a statistic.
            self.shadow_executions.fetch_add(stats.shadow_executions, Ordering::Relaxed);
            self.add_execution_time(stats.execution_time);
        }
        threads.free();
    }

    /// Adds a thread's execution time (Relaxed: a statistic, read after the workers are joined).
    pub fn add_execution_time(&self, time: Duration) {
        self.execution_nanos.fetch_add(u64::try_from(time.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Executions so far, first ones and redos.
    pub fn executions(&self) -> u64 {
        let table = self.scheduler.table();
        (0..self.txs.len()).map(|tx| u64::from(table.executions(tx))).sum()
    }

    /// The result of an execution of `tx` at its turn on the caller's own state, where every
    /// predecessor is committed: exact, so it carries no reads to validate.
    pub fn exact_result(&self, tx: TxIndex, incarnation: u32, outcome: ExecOutcome) -> TxResult {
        TxResult { incarnation, outcome, reads: ReadSet::default(), merged_at_start: tx, took: None }
    }

    /// Teaches `calls` how long the merged execution of transaction `index` took, if it was timed
    /// (`parevm_slots`' `heavy_calls.rs`): on the thread that merges, as it merges.
    pub fn teach(&self, calls: &HeavyCalls, index: TxIndex, took: Option<Duration>) {
        // The gas first: with the engine's timer on, every execution carries its time.
        if let Some(took) = took
            && heavy_calls::is_timed(self.txs.gas_limit(index))
        {
            calls.learn(&self.txs.summary(index), took);
        }
    }

    /// Executes `tx` right here, at its turn, by `execute` (given the incarnation), unless a
    /// worker holds it: the first execution when no worker has claimed it yet (its queue entry
    /// stays and is skipped by the worker that finds it claimed), or a redo (`redo`) unless a
    /// stale execution is still running, whose worker then requeues it. A worker may also win
    /// the claim through a leftover queue entry; its execution starts with every predecessor
    /// merged, so it is exact too, and the merger waits for it (`None`). The result is the
    /// merger's, unpublished (see `MergeDriver::run_at_turn`): until it is merged, slots read
    /// the transaction's previous result, if any, as they would have while it executed.
    pub fn run_at_turn(&self, tx: TxIndex, redo: bool, execute: impl FnOnce(u32) -> TxResult) -> Option<Arc<TxResult>> {
        let table: &TaskTable = self.scheduler.table();
        if redo && table.request_redo(tx) != RedoRequest::Queue {
            return None;
        }
        let incarnation = table.try_claim(tx)?;
        // Timed like a slot's execution (`TxExecutor::execute`), unless `execute` was one.
        let started = heavy_calls::is_timed(self.txs.gas_limit(tx)).then(Instant::now);
        let mut result = execute(incarnation);
        if let Some(started) = started {
            result.took.get_or_insert(started.elapsed());
        }
        let result = Arc::new(result);
        if table.finish(tx) {
            self.scheduler.requeue(tx);
        }
        Some(result)
    }
}

/// The batch path's merge driver: runs transactions at their turn on the merger's own thread,
/// and while the next result is still being computed elsewhere, executes from its own lane of
/// the static dispatch (the last queue, half a worker's share) instead of waiting idle.
///
/// At its turn a transaction's predecessors are all merged, so the redo reads exact state and
/// is valid; and the merger can do nothing else until it has it. Handing it to a worker would
/// only add a wake-up and a hand-back to the critical path.
///
/// Helping costs merge latency (a result that arrives while the merger executes waits for it),
/// but the merger would otherwise leave its core idle: on a 2-core machine with 1 slot that
/// was about half of the block (`MergeStats::merge_wait` before this; it now includes the
/// executions the merger runs while it waits).
///
/// At its turn a transaction runs on the caller's own state when the caller can execute it
/// there ([`Caller::execute_exact`](crate::Caller::execute_exact)): that state holds every
/// predecessor, committed, in the caller's own maps on this thread, where a slot EVM would read
/// the shared base state and record reads that a release build never checks.
pub(crate) struct TurnRedo<'c, 'a, D: BlockDb, X> {
    pub job: &'a BlockJob<'a, D>,
    pub helper: Worker<'c, 'a, D>,
    /// The caller's exact execution of a transaction, if it has one (see above).
    exact: X,
}

impl<'c, 'a, D: BlockDb, X: FnMut(TxIndex) -> Option<ExecOutcome>> TurnRedo<'c, 'a, D, X> {
    pub fn new(job: &'a BlockJob<'a, D>, ctx: &'c ExecCtx<'a, D>, lane: usize, exact: X) -> Self {
        Self { job, helper: Worker::new(lane, Role::Merger, job.scheduler.table(), ctx), exact }
    }
}

impl<D: BlockDb, X: FnMut(TxIndex) -> Option<ExecOutcome>> MergeDriver for TurnRedo<'_, '_, D, X> {
    fn wait(&mut self, tx: TxIndex, seen: u32, timeout: Duration) -> Option<Arc<TxResult>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(result) = self.job.unconfirmed.newer(tx, seen) {
                return Some(result);
            }
            // The stall deadline holds while helping too (each step is one execution).
            if Instant::now() >= deadline {
                return None;
            }
            // Bounded: every step consumes a queue entry, and nothing is queued again unless a
            // redo is asked for, which takes a merge (at most a few per transaction).
            if !self.helper.step(&self.job.scheduler) {
                let left = deadline.saturating_duration_since(Instant::now());
                let unconfirmed = &self.job.unconfirmed;
                return self
                    .job
                    .scheduler
                    .placement
                    .parked(Placement::MERGER, || unconfirmed.wait_newer(tx, seen, left));
            }
        }
    }

    fn run_at_turn(&mut self, tx: TxIndex, redo: bool) -> Option<Arc<TxResult>> {
        let (job, exact, executor) = (self.job, &mut self.exact, self.helper.executor());
        job.run_at_turn(tx, redo, |incarnation| {
            let started = job.time_executions.then(Instant::now);
            // Caught like a slot's execution (`TxExecutor::execute`), so that a panic on the
            // caller's EVM fails the block the same way, through the merger, at this transaction.
            match catch_unwind(AssertUnwindSafe(|| exact(tx))) {
                Ok(Some(outcome)) => {
                    if let Some(started) = started {
                        job.add_execution_time(started.elapsed());
                    }
                    job.exact_result(tx, incarnation, outcome)
                }
                Ok(None) => executor.execute(tx, incarnation),
                Err(panic) => job.exact_result(tx, incarnation, ExecOutcome::Panicked(panic_message(panic.as_ref()))),
            }
        })
    }
}
