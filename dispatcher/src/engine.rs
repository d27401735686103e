//! The block entry point: sets up a block's shared state, runs the slots and the merger, and
//! tears everything down before returning, whatever happened.
//!
//! The worker threads live in a rayon pool owned by the [`Engine`], created once and reused for
//! every block. Each block runs inside `ThreadPool::in_place_scope`: the merger runs on the
//! calling thread, the slot loops run on the pool, and the scope does not return until every
//! worker has left its loop, which is what lets them borrow the block's state without `unsafe`.
//! The set-up before it is split the same way, in a scope of its own: the pool's thread builds
//! the shared maps while the calling thread dispatches the transactions (`wake.rs`).

use std::{
    cell::{Cell, RefCell},
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
};

use alloy_primitives::{Address, U256};
use crossbeam_utils::CachePadded;
use parevm_merger::{BlockError, MergeStats, MergedTx, Merger, RedoCause};
use parevm_slots::{HeavyCalls, panic_message};
use parevm_statedb::{BlockDb, BlockTxs, ExecOutcome, TxIndex, TxSource, TxSummary};
use revm::{
    context::{BlockEnv, CfgEnv},
    state::AccountInfo,
};

use crate::{
    EngineConfig,
    chain_rule::{self, ChainRule},
    cheap_rule::CappedGas,
    config::ConfigError,
    dispatch::{is_beneficiary_tx, sender_predecessors, static_dispatch},
    job::{BlockJob, SharedMaps, TurnRedo},
    metrics,
    placement::{self, Placement, PoolThreads},
    scheduler::Scheduler,
    wake::{self, PoolHold, WokenAhead},
};

/// An account changed before the block's transactions (by pre-block system calls), which the
/// slots must see. `storage_known`: its storage is exactly `storage`, not the database's.
#[derive(Debug, Clone)]
pub struct SeedAccount {
    /// Address.
    pub address: Address,
    /// Info, `None` if the account does not exist.
    pub info: Option<AccountInfo>,
    /// Whether `storage` is the complete storage.
    pub storage_known: bool,
    /// Changed or known slots.
    pub storage: Vec<(U256, U256)>,
}

/// The block's first transactions, executed and committed by the caller before the engine
/// takes over (a [`ChainProbe`](crate::ChainProbe) that found no chain): the engine starts at
/// transaction `txs`, with the block's gas and logs counted from there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prefix {
    /// Transactions the caller executed: the engine starts with transaction `txs`.
    pub txs: TxIndex,
    /// Gas they used.
    pub gas_used: u64,
    /// Logs they emitted.
    pub logs: usize,
}

/// One block for the engine.
#[derive(Debug)]
pub struct ParallelBlock<'a, D> {
    /// State at block start (before pre-block system calls).
    pub db: &'a D,
    /// Changes made by pre-block system calls, and by the [`Prefix`]'s transactions.
    pub seed: Vec<SeedAccount>,
    /// Transactions the caller already executed and committed (usually none).
    pub prefix: Prefix,
    /// Block environment.
    pub block: BlockEnv,
    /// Chain configuration.
    pub cfg: CfgEnv,
    /// The transactions, lent (`BlockTxs::from_source`: a `Vec<TxEnv>` or the caller's own
    /// block type) and converted by each execution.
    pub txs: BlockTxs<'a>,
}

/// Counters of one block.
#[derive(Debug, Default, Clone)]
pub struct BlockStats {
    /// Transactions in the block.
    pub txs: usize,
    /// Executions in total (first executions and redos).
    pub executions: u64,
    /// Executions run by shadow workers.
    pub shadow_takeovers: u64,
    /// Transactions stolen from another slot's queue.
    pub steals: u64,
    /// Time spent in executions, all threads together: on the slots' EVMs, the merger's, and, in
    /// the batch path, the caller's at a transaction's turn ([`Caller::execute_exact`]). Zero
    /// unless the engine's execution timer is on ([`Engine::time_executions`]);
    /// measured in the engine's batch path only: a session leaves it zero (its workers are still
    /// finishing when it reports, and its owner executes on its own EVM).
    pub execution_time: std::time::Duration,
    /// Merge-side counters: redos by cause, merge wait, most executions of one transaction.
    pub merge: MergeStats,
    /// Reads of the slots that a session's owner answered from inside its own executions (see
    /// [`Owner::execute_exact`](crate::Owner::execute_exact)); zero in the batch path, which
    /// has no owner.
    pub served_while_executing: u64,
    /// Reads of the slots that a session's owner answered (whenever it did); zero in the batch
    /// path, which has no owner. With the parent state, only what the owner changed before the
    /// session is asked.
    pub owner_reads: u64,
    /// First executions that a session's owner ran itself at the transaction's turn, on its own
    /// state: its lane's, a redone recipient's, and any a worker had not started by then; zero in
    /// the batch path. Not counted: the transactions a probe ran before the session (counted in
    /// `txs`), those after a hand-back, and, with the parent state, those the owner executed
    /// ahead of their turn from its lane. Without the parent state the owner runs most of a
    /// mainnet block this way (docs/benchmarks.md, "What eats the time", "Who runs the drop-in's
    /// transactions").
    pub owner_turn_executions: u64,
    /// Of `owner_turn_executions`, those static dispatch had sent to a worker's queue: the
    /// owner reached them at their turn before any worker started them. The rest were the
    /// owner's by dispatch (its lane, the beneficiary's, a redone recipient's). Zero in the
    /// batch path.
    pub owner_overtook: u64,
    /// Set when a rule (the chain rule, the cheap-block rule, a payout block's) handed the block
    /// back after this many transactions: the caller executes the rest sequentially (see
    /// [`Engine::execute`]).
    pub sequential_from: Option<TxIndex>,
}

impl BlockStats {
    /// Redos per transaction.
    pub fn redo_rate(&self) -> f64 {
        if self.txs == 0 { 0.0 } else { self.merge.total_redos() as f64 / self.txs as f64 }
    }

    /// Redos of one cause.
    pub fn redos(&self, cause: RedoCause) -> u64 {
        self.merge.redos[cause as usize]
    }
}

/// The caller of [`Engine::execute`], as the engine needs it: the thread that holds the block's
/// state, which the merger runs on.
///
/// A closure over [`MergedTx`] is a caller that only commits.
pub trait Caller {
    /// Commits a confirmed transaction (receipt, gas, state), in block order, as soon as it is
    /// confirmed. A panic here fails the block at `merged.index`; what the caller's state then
    /// holds of that transaction is up to the caller.
    fn commit(&mut self, merged: MergedTx);

    /// Executes transaction `tx` on the caller's own state, where every predecessor is
    /// committed, without committing it; `None` if the caller cannot, and the merger then
    /// executes it on an EVM of its own over the base state. The engine asks only at the
    /// transaction's turn, and asks again for the same transaction after a database error (one
    /// failed read never fails a block) or a stale result already in flight. Its outcome must be
    /// exactly the sequential executor's: the engine checks nothing it returns. A panic here
    /// fails the block at `tx`, as a panic on exact state does on the engine's own EVMs.
    fn execute_exact(&mut self, _tx: TxIndex) -> Option<ExecOutcome> {
        None
    }
}

impl<F: FnMut(MergedTx)> Caller for F {
    fn commit(&mut self, merged: MergedTx) {
        self(merged)
    }
}

/// How [`Engine::execute`] ended, the block being valid so far.
#[derive(Debug, Clone)]
#[must_use = "a handed-back block is not finished: the caller executes the rest"]
pub enum Executed {
    /// Every transaction was merged.
    Complete(BlockStats),
    /// A rule stopped the engine after merging transactions `0..from` (or before starting it:
    /// `from` is then the first transaction it was given); the caller executes `from..`
    /// sequentially.
    HandedBack {
        /// The first transaction the caller must execute.
        from: TxIndex,
        /// The counters of the engine's part.
        stats: BlockStats,
    },
}

/// The parallel engine: a configuration and its worker threads.
#[derive(Debug)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    /// One block at a time: every worker thread is needed for the block in progress, so a second
    /// caller waits here rather than starting a block none of whose workers could run.
    pub(crate) running: parking_lot::Mutex<()>,
    pub(crate) pool: rayon::ThreadPool,
    /// Threads that split a long read set's validation, only where the machine has cores the
    /// block leaves idle (see [`Engine::with_cores`]).
    pub(crate) validation_pool: Option<rayon::ThreadPool>,
    /// The pool's threads, which a block's caller keeps off its core as it wakes them (see
    /// `placement.rs`).
    pub(crate) threads: Arc<PoolThreads>,
    /// What keeps the pool's threads awake between a block's jobs (see `wake.rs`).
    pub(crate) hold: Arc<PoolHold>,
    /// Whether blocks time their executions (a diagnostic; off by default).
    pub(crate) time_executions: AtomicBool,
    /// The calls whose merged executions ran long, which the dispatch starts first
    /// (`parevm_slots`' `heavy_calls.rs`).
    pub(crate) heavy_calls: HeavyCalls,
}

impl Engine {
    /// Starts the engine's threads, for a machine whose cores are all the engine's to use.
    pub fn new(config: EngineConfig) -> Result<Self, ConfigError> {
        Self::with_cores(config, std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Starts the engine's threads for a machine on which it may use `cores` cores (a node that
    /// keeps some for other work says so here; tests use it to run the engine as it runs on a
    /// larger machine). The threads beyond the slots depend on it:
    /// - shadows only with a core for each beyond the slots' (`cores >= slots + worker slots`),
    ///   whatever `config.shadows` asks: a shadow is woken for a redo its busy primary cannot
    ///   take, and at the block's end, all of them at once, and without a core of its own it
    ///   takes one from the threads it should help. At 2 slots on 2 cores shadows cost the
    ///   mainnet blocks 3% (the geomean of the 100+ transaction blocks, 1.189x with them, 1.222x
    ///   without; 6196166 0.83x and 0.95x: waking the worker and its shadow at once when the
    ///   worker ran out of work stopped the merger's thread for 40-75 µs in the middle of its
    ///   merges; ERC-20 transfers 0.78x and 0.83x, AMM swaps 0.64x and 0.65x; in pairs of builds
    ///   later, ERC-20 0.82x and 0.84x but AMM 0.67x and 0.65x; docs/benchmarks-log.md,
    ///   "Changes measured alone"). [`Engine::config`] says which way it went;
    /// - a validation pool only with cores left over by the slots and the shadows (below).
    pub fn with_cores(mut config: EngineConfig, cores: usize) -> Result<Self, ConfigError> {
        config.validate()?;
        config.shadows = config.shadows_on(cores);
        let threads = Arc::new(PoolThreads::new(config.threads().max(1)));
        let started = Arc::clone(&threads);
        let pool = rayon::ThreadPoolBuilder::new()
            // At least one: rayon reads 0 as "one per core". At 1 slot it is never given work.
            .num_threads(config.threads().max(1))
            .thread_name(|i| format!("parevm-slot-{i}"))
            .start_handler(move |i| started.started(i))
            .build()
            .expect("spawning the slot threads");
        // Parallel validation pays only with cores to spare: with every core busy executing, its
        // threads (which spin a while before sleeping, as rayon's do) take the cores from the
        // executions, and the merger waits for them. On 2 cores, no pool: A/B on the 100+
        // transaction mainnet blocks, 4 alternating pairs, geomean +3% / +6% at what are now 2 / 3 slots
        // (docs/benchmarks-log.md).
        // Every thread that executes has a core: the merger's and the pool's (primaries, and
        // shadows if started).
        let busy = config.threads() + 1;
        let validation_pool = (cores > busy).then(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(cores - busy)
                .thread_name(|i| format!("parevm-validate-{i}"))
                .build()
                .expect("spawning the validation threads")
        });
        Ok(Self {
            config,
            running: parking_lot::Mutex::new(()),
            pool,
            threads,
            hold: Arc::default(),
            validation_pool,
            time_executions: AtomicBool::new(false),
            heavy_calls: HeavyCalls::default(),
        })
    }

    /// Whether a block (its transactions `txs`, by gas limit and parties) goes back to its
    /// caller before anything is set up, by the rules judged on its transactions alone:
    /// - one slot: the merger's thread alone, nothing to run beside it (see `slots`);
    /// - little gas in all, or mostly plain transfers: nothing to gain (`cheap_rule.rs`). Judged
    ///   on the gas limits alone, the summaries not built: building them parses every input
    ///   (14396881, 1,346 transfers: 19 µs before the hand-back, 5.5 µs reading the limits);
    /// - a pool's payout, mostly transactions from or to the beneficiary, which the dispatch
    ///   gives no slot (`chain_rule::mostly_beneficiary_txs`).
    fn hands_back_at_start(
        &self,
        txs: std::ops::Range<TxIndex>,
        gas_limit: impl Fn(TxIndex) -> u64,
        parties: impl Fn(TxIndex) -> (Address, Option<Address>),
        beneficiary: Address,
    ) -> bool {
        if self.config.worker_slots() == 0 {
            return true;
        }
        let gas = CappedGas::of(txs.clone().map(gas_limit));
        if self.config.sequential_below_gas > 0 && (gas.is_small() || gas.is_cheap(self.config.sequential_below_gas)) {
            return true;
        }
        let beneficiary_txs = txs
            .clone()
            .filter(|&tx| {
                let (from, to) = parties(tx);
                is_beneficiary_tx(beneficiary, from, to)
            })
            .count();
        chain_rule::mostly_beneficiary_txs(self.config.chain_rule, beneficiary_txs, txs.len())
    }

    /// Whether the engine would hand a block of these transactions, paying `beneficiary`, back
    /// at once, by the rules judged before anything is set up (one slot, the cheap-block rule,
    /// a pool's payout). A caller that knows the block ahead asks before
    /// [`Engine::wake_ahead`]: such a block is no reason to wake the threads.
    pub fn would_hand_back(&self, txs: &(impl TxSource + ?Sized), beneficiary: Address) -> bool {
        let (gas_limit, parties) = (|tx| txs.gas_limit(tx), |tx| txs.parties(tx));
        self.hands_back_at_start(0..txs.len(), gas_limit, parties, beneficiary)
    }

    /// Wakes the pool's threads for a block this thread is about to hand the engine, so that
    /// their wake-up, which takes 100 µs and more on a virtual machine whose cores sat idle,
    /// overlaps the caller's own work before it (the pre-block system calls, a chain probe),
    /// not the block's (see `wake.rs`). They wait, awake, until the block (or a session's
    /// first transaction) starts them, for 2 ms at most, or until the returned value is
    /// dropped. Optional: a block started without it wakes them as it starts.
    pub fn wake_ahead(&self) -> WokenAhead<'_> {
        if self.config.worker_slots() == 0 {
            return WokenAhead { hold: None, generation: 0 };
        }
        self.keep_workers_off_this_core();
        let generation = self.hold.current();
        self.spawn_holds(generation);
        WokenAhead { hold: Some(&self.hold), generation }
    }

    /// Keeps the pool's threads awake, after the job queued last, until the next release, and
    /// releases those held now (to that job).
    fn hold_pool_for_next_job(&self) {
        self.spawn_holds(self.hold.current() + 1);
        self.hold.release(true);
    }

    fn spawn_holds(&self, generation: u64) {
        for _ in 0..self.config.threads() {
            let (hold, threads) = (Arc::clone(&self.hold), Arc::clone(&self.threads));
            // rayon aborts the process on a panic in a spawned job (see `free_on_pool`).
            let hold = move || hold.hold(generation, &threads);
            self.pool.spawn(move || drop(catch_unwind(AssertUnwindSafe(hold))));
        }
    }

    /// Called on the caller's thread before a block's workers are woken (see `placement.rs`).
    pub(crate) fn keep_workers_off_this_core(&self) {
        if self.config.worker_slots() > 0
            && let Some(core) = placement::current_core()
        {
            self.threads.keep_off(core);
        }
    }

    /// The configuration in force: as given, but without shadows on a machine with no core for
    /// each of them beyond the slots' (see [`Engine::with_cores`]).
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The calls the engine has seen run long, which its dispatch starts first whatever their
    /// gas limits (`parevm_slots`' `heavy_calls.rs`).
    pub fn heavy_calls(&self) -> &HeavyCalls {
        &self.heavy_calls
    }

    /// Turns the execution timer on or off for the blocks that start from now on: with it on,
    /// every execution is timed and [`BlockStats::execution_time`] reports the total. A
    /// diagnostic, off by default: two clock reads per execution slow cheap transactions by a
    /// few percent (`parevm bench` turns it on for one extra run of each block).
    pub fn time_executions(&self, on: bool) {
        // Relaxed: read when a block starts; a block already running keeps its setting.
        self.time_executions.store(on, Ordering::Relaxed);
    }

    /// Executes a block. Each transaction's result and write set is handed to `caller`
    /// ([`Caller::commit`]), in block order, as soon as it is confirmed, while later transactions
    /// are still executing; the caller commits it (receipt, state). A transaction that runs at
    /// its turn runs on the caller's own state if the caller can ([`Caller::execute_exact`]).
    /// Returns the block's counters, or the error the sequential executor would have hit first
    /// (after the caller has committed exactly the transactions before the failing one, as a
    /// sequential executor would have).
    ///
    /// The engine may leave a block to the caller: before starting, when the block has little gas
    /// or is mostly plain transfers (`EngineConfig::sequential_below_gas`) or a pool's payout, and
    /// with the chain rule on (`EngineConfig::chain_rule`), early, when the block turns out to be
    /// a chain of dependent transactions. Then the outcome is [`Executed::HandedBack`], the
    /// caller has committed transactions `0..from`, and must execute the rest, `from..`, itself,
    /// in order. The outcome is an enum so that no caller can take a partial block for a whole
    /// one by accident.
    pub fn execute<D: BlockDb, C: Caller + ?Sized>(
        &self,
        block: ParallelBlock<'_, D>,
        caller: &mut C,
    ) -> Result<Executed, BlockError> {
        let (result, stats) = self.run(block, caller);
        metrics::record_block(&stats);
        result.map(|()| match stats.sequential_from {
            Some(from) => Executed::HandedBack { from, stats },
            None => Executed::Complete(stats),
        })
    }

    /// Like [`Engine::execute`], and returns the counters even when the block fails.
    fn run<D: BlockDb, C: Caller + ?Sized>(
        &self,
        block: ParallelBlock<'_, D>,
        caller: &mut C,
    ) -> (Result<(), BlockError>, BlockStats) {
        let _one_block_at_a_time = self.running.lock();
        let n = block.txs.len();
        let start = block.prefix.txs.min(n);
        let mut stats = BlockStats { txs: n, ..BlockStats::default() };
        let (gas_limit, parties) = (|tx| block.txs.gas_limit(tx), |tx| block.txs.parties(tx));
        if self.hands_back_at_start(start..n, gas_limit, parties, block.block.beneficiary) {
            // Threads woken ahead for nothing: back to sleep now, not at their deadline.
            self.hold.release(false);
            stats.sequential_from = Some(start);
            return (Ok(()), stats);
        }
        if n == start {
            // Nothing left (the rules off): the caller merged everything itself.
            self.hold.release(false);
            return (Ok(()), stats);
        }
        // The set-up in two halves at once: the pool's thread builds the block's shared maps
        // while this one reads and dispatches the transactions, and then stays awake for the
        // block's workers (`wake.rs`).
        self.hold.step_off_holders();
        self.keep_workers_off_this_core();
        let mut maps = None;
        let built = AtomicBool::new(false);
        let (summaries, plan) = self.pool.in_place_scope(|scope| {
            let (maps, seed, built) = (&mut maps, &block.seed, &built);
            scope.spawn(move |_| {
                // A panic (the database's, seeding code) fails the block like a slot's would,
                // rather than resurfacing as a panic at the scope's end.
                let outcome = catch_unwind(AssertUnwindSafe(|| SharedMaps::build(block.db, seed, n)));
                *maps = Some(match outcome {
                    Ok(maps) => maps.map_err(|error| BlockError::Database { tx: 0, error }),
                    Err(panic) => Err(BlockError::Panicked { tx: start, message: panic_message(panic.as_ref()) }),
                });
                // Release: pairs with the Acquire below (the scope's end orders it anyway).
                built.store(true, Ordering::Release);
            });
            self.hold_pool_for_next_job();
            let summaries: Vec<TxSummary> = (start..n).map(|tx| block.txs.summary(tx)).collect();
            let plan = static_dispatch(
                &summaries,
                start,
                self.config.worker_slots(),
                block.block.beneficiary,
                true,
                &self.heavy_calls,
            );
            // Awake, not asleep in the scope's end: woken by the pool's thread, this thread
            // would be put on its core (see `PoolHold::step_off_holders`).
            wake::yield_until(|| built.load(Ordering::Acquire), wake::HOLD_FOR);
            (summaries, plan)
        });
        self.hold.step_off_holders();
        let SharedMaps { base, unconfirmed, table } = match maps.expect("the scope ran the set-up job") {
            Ok(maps) => maps,
            Err(error) => {
                self.hold.release(false);
                return (Err(error), stats);
            }
        };
        let job = BlockJob {
            base,
            unconfirmed,
            // The prefix is merged: slots read it from the base state, where the seed put it.
            merged: CachePadded::new(AtomicUsize::new(start)),
            scheduler: Scheduler::with_plan(
                table,
                &plan,
                sender_predecessors(&summaries, start),
                self.config.steal,
                self.config.shadows,
            ),
            txs: block.txs,
            block: block.block,
            cfg: block.cfg,
            shadow_executions: AtomicU64::new(0),
            execution_nanos: AtomicU64::new(0),
            // Relaxed: a switch the caller sets between blocks.
            time_executions: self.time_executions.load(Ordering::Relaxed),
        };

        // Again: a thread that gave up waiting gave its core back.
        self.keep_workers_off_this_core();
        let (result, merge_stats) = self.pool.in_place_scope(|scope| {
            for slot in 0..self.config.worker_slots() {
                for &role in self.config.roles() {
                    let (job, threads) = (&job, &*self.threads);
                    scope.spawn(move |_| job.run_worker(slot, role, threads));
                }
            }
            self.hold.release(true);
            job.scheduler.placement.settle(Placement::MERGER);
            let ctx = job.ctx();
            // The merger commits through the caller and, at a transaction's turn, has it execute
            // there (`TurnRedo`): never both at once, each inside the merge loop on this thread.
            let caller = RefCell::new(caller);
            let exact = |tx| caller.borrow_mut().execute_exact(tx);
            // The transaction whose commit is running: a panic in the caller's commit fails the
            // block at it, not at the next one (the merged count already counts it).
            let committing = Cell::new(None);
            let mut on_merged = |merged: MergedTx| {
                let (index, took) = (merged.index, merged.took);
                committing.set(Some(index));
                caller.borrow_mut().commit(merged);
                committing.set(None);
                job.teach(&self.heavy_calls, index, took);
            };
            let mut driver = TurnRedo::new(&job, &ctx, self.config.worker_slots(), exact);
            let input = job.merge_input(self.validation_pool.as_ref(), self.config.stall_timeout);
            let mut rule = ChainRule::starting_at(self.config.chain_rule, start);
            let workers = self.config.threads();
            let mut released = false;
            let stop = |merged, stats: &MergeStats| {
                // Every worker asleep: each found nothing to take, and what is left of the block
                // is merging, and redos, which the merger's thread runs at their turn. Let them
                // leave now, so that their wake-up and exit overlap the rest of the merge rather
                // than follow it (two wake-ups in a row at every block's end otherwise: the
                // workers', then the scope's owner's).
                if !released && job.scheduler.all_asleep(workers) {
                    job.scheduler.finish();
                    released = true;
                }
                // A transaction a lane skipped, its sender's previous one running on the merger's
                // thread, runs at its turn like a redo: a block of them is a chain.
                // Relaxed: see `Scheduler::skipped`.
                rule.tripped(merged, stats.total_redos() + job.scheduler.skipped.load(Ordering::Relaxed))
            };
            let prefix = block.prefix;
            let merger = Merger::starting_at(start, prefix.gas_used, prefix.logs);
            let outcome = catch_unwind(AssertUnwindSafe(|| merger.run(&input, &mut driver, &mut on_merged, stop)));
            // Whatever happened, release the workers, or the scope would never end.
            job.scheduler.finish();
            job.add_execution_time(driver.helper.stats().execution_time);
            outcome.unwrap_or_else(|panic| {
                // Acquire: on this thread anyway (the merger's); just the index for the report.
                let tx = committing.get().unwrap_or_else(|| job.merged.load(Ordering::Acquire));
                (Err(BlockError::Panicked { tx, message: panic_message(panic.as_ref()) }), MergeStats::default())
            })
        });
        stats.executions = job.executions();
        // Relaxed: every worker has been joined by the scope.
        stats.shadow_takeovers = job.shadow_executions.load(Ordering::Relaxed);
        stats.execution_time = std::time::Duration::from_nanos(job.execution_nanos.load(Ordering::Relaxed));
        stats.steals = job.scheduler.steals.load(Ordering::Relaxed);
        stats.merge = merge_stats;
        self.free_on_pool(job);
        match result {
            Ok(merged) => {
                stats.sequential_from = (merged < n).then_some(merged);
                (Ok(()), stats)
            }
            Err(e) => (Err(e), stats),
        }
    }

    /// Frees a finished block's shared state on the worker pool, which the block no longer
    /// needs, instead of on the caller's thread, which still has the block's post-block steps
    /// and bundle to build: a block of cheap transactions leaves thousands of cached accounts,
    /// queue entries and transactions, 40-140 µs of freeing on the transfers workload, 1-4% of
    /// the block (a temporary timer, `examples/profile 2 transfers`).
    fn free_on_pool<D: BlockDb>(&self, job: BlockJob<'_, D>) {
        let BlockJob { base, unconfirmed, scheduler, txs, .. } = job;
        let garbage = (base.into_cache(), unconfirmed, scheduler, txs.into_owned());
        // rayon aborts the process on a panic in a spawned job; a panic while dropping plain
        // data would be a bug, but it must not take the node down.
        self.pool.spawn(move || drop(catch_unwind(AssertUnwindSafe(move || drop(garbage)))));
    }
}
