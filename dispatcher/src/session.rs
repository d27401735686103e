//! A block handed in one transaction at a time, by the thread that owns the block's database.
//!
//! This is how the alloy-evm executor (and so reth) drives the engine. The caller owns the
//! database (`&mut State`, neither `Sync` nor `Send`) and calls in once per transaction, then
//! once to finish. So a [`Session`]:
//! - keeps the block's [`BlockJob`] behind an `Arc`, and its workers run on the engine's pool
//!   holding a clone, executing each transaction as soon as it is pushed, while the caller is
//!   still preparing the next;
//! - reads the database only on the owner's thread: the slots' misses are queued
//!   ([`parevm_statedb::RemoteDb`]) and answered whenever the owner is inside the session,
//!   during its own executions too once slots have been found waiting on them;
//!   sender, recipient and beneficiary are loaded by the owner up front, so most transactions
//!   never have to ask (with the parent state, below, only the beneficiary);
//! - merges on the owner's thread, committing each confirmed transaction through the
//!   [`Owner`] (the caller's own executor) as soon as it is confirmed;
//! - re-executes a transaction found stale at its turn on the owner's own EVM: every
//!   predecessor is committed there, so that execution is exact, needs no read set, and needs no
//!   thread hop;
//! - gives the owner's thread a lane of the dispatch ([`Dispatcher::with_merger_lane`]): the
//!   transactions of that lane it executes itself, the same way, when their turn comes, and so
//!   too those a worker reaches only at the owner's next turns, which the worker leaves to it
//!   ([`Scheduler::for_session`]), and any other that nobody holds when its turn comes;
//! - with the block's parent state ([`ParentState`]), which the slots then read themselves
//!   instead of asking the owner ([`RemoteDb::reading_parent`]), makes that lane a queue, as the
//!   batch path's merger lane is ([`Dispatcher::with_merger_queue`]): while it waits for a
//!   result, the owner executes from it speculatively on the slots' state, its own misses
//!   answered from its own database ([`answering_own_reads`]). Without the parent state that
//!   would leave the slots' questions unanswered for a whole execution (measured: drop-in
//!   mainnet 126–133 -> 141–154 ms a pass); with it the drop-in runs the 100+ transaction
//!   mainnet blocks at 1.24x instead of 0.96x (docs/benchmarks-log.md). The owner's lane then runs
//!   when the owner waits: in `finish`, or past the look-ahead, not while transactions are
//!   handed in (`merge_ready` stops at it), so most commits come in a burst at the end. Running
//!   its lane at each turn as it is handed in instead was slower: mainnet 1.17–1.21x against
//!   1.24–1.26x, AMM swaps 0.51x against 0.78–0.80x;
//! - once a transaction is redone at its turn, makes its recipient the owner's: the later
//!   transactions to it that no slot has started are left to the owner's turns too
//!   ([`Scheduler::leave`]).
//!
//! Dropping a session ends its workers; the caller's state holds exactly the merged transactions.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alloy_primitives::{Address, map::AddressSet};
use parevm_merger::{BlockError, MergeDriver, MergeStats, MergedTx, Merger};
use parevm_slots::{ExecCtx, Role, TaskTable, TxStatus, Worker};
use parevm_statedb::{
    BaseState, BlockTxs, ExecOutcome, OwnerChanges, ParentState, RemoteDb, Requests, ServingDb, TxIndex, TxResult,
    TxSummary, Unconfirmed, Wakeup, answering_own_reads,
};
use revm::{
    Database,
    context::{BlockEnv, CfgEnv, TxEnv},
    primitives::KECCAK_EMPTY,
};

use crate::{
    BlockStats, Engine, Prefix,
    chain_rule::{self, ChainRule},
    cheap_rule::{self, CappedGas},
    dispatch::{Dispatcher, HeavyArrivals},
    job::BlockJob,
    metrics,
    placement::Placement,
    scheduler::Scheduler,
};

/// The most transactions handed in but not merged before `push` waits for merges: several
/// chain-rule windows, and far more than a few slots can run ahead usefully.
pub const MAX_AHEAD: usize = 4 * chain_rule::WINDOW;

/// Whether `push` must merge before returning, with `ahead` transactions handed in but not
/// merged: a bounded look-ahead once the block has needed a redo. A caller that hands in
/// transactions faster than they merge would otherwise have a chain speculated on to its end
/// before the chain rule could judge it, with nothing left to hand back; without redos the bound
/// only made the caller wait (drop-in ERC-20 transfers 0.71x -> 0.44-0.51x).
fn must_wait(chain: bool, redos: u64, ahead: usize) -> bool {
    !chain && redos > 0 && ahead > MAX_AHEAD
}

/// The thread that owns the block's database, as the session needs it.
pub trait Owner {
    /// The database.
    type Db: Database;
    /// The database, to answer the slots' reads.
    fn db(&mut self) -> &mut Self::Db;
    /// Executes transaction `tx` (`env`) on the owner's own state, where every predecessor is
    /// committed, without committing it. With `serve`, answering the slots' requests as it
    /// reads (its database wrapped in a [`ServingDb`](parevm_statedb::ServingDb)): the session
    /// asks for that when slots have been waiting on the owner's executions.
    fn execute_exact(&mut self, tx: TxIndex, env: TxEnv, serve: Option<&Requests>) -> ExecOutcome;
    /// Commits a confirmed transaction (receipt, gas, state).
    fn commit(&mut self, merged: MergedTx);
}

/// One block in progress, transactions arriving one at a time.
#[derive(Debug)]
pub struct Session<'e> {
    engine: &'e Engine,
    _one_block_at_a_time: parking_lot::MutexGuard<'e, ()>,
    job: Arc<BlockJob<'static, RemoteDb>>,
    requests: Requests,
    dispatcher: Dispatcher,
    merger: Merger,
    /// Transactions the caller executed before the session started.
    prefix: usize,
    rule: ChainRule,
    /// The transactions' gas limits so far, for the cheap-block rule.
    gas: CappedGas,
    /// The chain rule, or the cheap-block rule, tripped.
    hand_back: bool,
    started: bool,
    /// Whether the owner's executions answer the slots' reads as they go.
    serving: Serving,
    turns: OwnerTurns,
    /// Recipients of transactions redone at their turn: later transactions to them are the
    /// owner's, at their turn (see `OwnerDriver::run_at_turn`).
    demoted: AddressSet,
    /// The owner's lane, a queue it executes from speculatively while it waits (see
    /// `OwnerDriver::wait`); `None`: its lane's transactions run at their turn only.
    helper_lane: Option<usize>,
    heavy: HeavyArrivals,
}

/// The owner answering the slots' reads from inside its executions (see
/// `OwnerDriver::run_at_turn`).
#[derive(Debug, Default)]
struct Serving {
    /// The owner's next execution does.
    next: bool,
    /// Reads answered that way so far.
    served: u64,
}

/// What the owner ran itself at a transaction's turn, by where static dispatch had sent it.
#[derive(Debug, Default)]
struct OwnerTurns {
    /// Per transaction of the session, whether it is in a worker's queue by dispatch: not the
    /// owner's lane, nor the beneficiary's, nor a redone recipient's (taken back when the
    /// recipient is redone).
    to_worker: Vec<bool>,
    /// First executions the owner ran at their turn (`BlockStats::owner_turn_executions`).
    executions: u64,
    /// Of those, the ones that had gone to a worker (`BlockStats::owner_overtook`).
    overtook: u64,
}

impl Engine {
    /// The cheap-block rule as a session's caller judges it before the first transaction, when
    /// all it knows of the block is its gas limit and, from a hint, its number of transactions:
    /// `Some` if those cannot average `EngineConfig::sequential_below_gas` each, with the
    /// counters of such a block handed back (recorded in the metrics, as a session's are). The
    /// caller then runs the block sequentially and never starts a session. A session judges the
    /// rule again on the gas limits it is handed, once a window is in.
    pub fn hand_back_cheap_block(&self, block_gas_limit: u64, txs: usize) -> Option<BlockStats> {
        cheap_rule::cheap_by_block_gas_limit(block_gas_limit, txs, self.config.sequential_below_gas)
            .then(|| self.handed_back(txs))
    }

    /// The counters of a block of `txs` transactions that its caller runs sequentially from the
    /// first because a rule said so before the engine started (the cheap-block rule judged up
    /// front, a [`ChainProbe`](crate::ChainProbe)'s chain), recorded in the metrics like every
    /// block the engine runs.
    pub fn handed_back(&self, txs: usize) -> BlockStats {
        let stats = BlockStats { txs, sequential_from: Some(0), ..BlockStats::default() };
        metrics::record_block(&stats);
        stats
    }

    /// Starts a session for at most `capacity` transactions of a block, whose database `owner`
    /// holds, after the `prefix` the caller executed and committed itself (a probe's); `None` if
    /// the engine is busy with another block or has a single slot (the caller then executes
    /// sequentially rather than wait). The session's transactions are numbered from 0; its
    /// counters count the prefix in.
    ///
    /// With `parent`, a view of the state the block starts from and what the caller changed
    /// before the session (pre-block system calls, the prefix), the slots read everything else
    /// from the view instead of asking the owner ([`RemoteDb::reading_parent`]).
    pub fn try_session(
        &self,
        block: BlockEnv,
        cfg: CfgEnv,
        capacity: usize,
        prefix: Prefix,
        parent: Option<(ParentState, OwnerChanges)>,
        owner: &mut impl Owner,
    ) -> Option<Session<'_>> {
        if self.config.worker_slots() == 0 {
            // One slot: the merger's thread alone (see `EngineConfig::slots`).
            return None;
        }
        let guard = self.running.try_lock()?;
        let wakeup = Arc::new(Wakeup::default());
        let (mut db, requests) = RemoteDb::served_here(wakeup.clone(), self.config.stall_timeout);
        // With the parent state, the slots hardly need the owner: its lane becomes a queue,
        // which it executes from while it waits, as the batch path's merger does.
        let helps = parent.is_some();
        if let Some((view, changed)) = parent {
            db = db.reading_parent(view, changed);
        }
        let (dispatcher, lanes) = if helps {
            (
                Dispatcher::with_merger_queue(self.config.worker_slots(), block.beneficiary),
                self.config.worker_slots() + 1,
            )
        } else {
            (Dispatcher::with_merger_lane(self.config.worker_slots(), block.beneficiary), self.config.worker_slots())
        };
        let heavy = HeavyArrivals::new(block.gas_limit);
        let job = Arc::new(BlockJob {
            base: BaseState::with_capacity(db, capacity),
            unconfirmed: Unconfirmed::with_wakeup(capacity, wakeup),
            merged: crossbeam_utils::CachePadded::new(AtomicUsize::new(0)),
            scheduler: Scheduler::for_session(TaskTable::new(capacity), lanes, self.config.steal, self.config.shadows),
            txs: BlockTxs::with_capacity(capacity),
            block,
            cfg,
            shadow_executions: AtomicU64::new(0),
            execution_nanos: AtomicU64::new(0),
            // A session reports no execution time (see `BlockStats::execution_time`).
            time_executions: false,
        });
        let session = Session {
            engine: self,
            _one_block_at_a_time: guard,
            job,
            requests,
            dispatcher,
            merger: Merger::starting_at(0, prefix.gas_used, prefix.logs),
            prefix: prefix.txs,
            rule: ChainRule::new(self.config.chain_rule),
            gas: CappedGas::default(),
            hand_back: false,
            started: false,
            serving: Serving::default(),
            turns: OwnerTurns { to_worker: Vec::with_capacity(capacity), ..OwnerTurns::default() },
            demoted: AddressSet::default(),
            helper_lane: helps.then_some(lanes - 1),
            heavy,
        };
        // The merger credits deferred fees to the beneficiary on its own thread, where it
        // cannot ask itself for the account: load it now.
        session.preload(owner, session.job.block.beneficiary);
        Some(session)
    }
}

impl Session<'_> {
    /// Whether a rule tripped (the block is a chain of dependent transactions, or too cheap to
    /// gain on): the caller should [`Session::finish`] it and execute the rest sequentially.
    pub fn wants_sequential(&self) -> bool {
        self.hand_back
    }

    /// Whether the session holds as many transactions as it was started for.
    pub fn is_full(&self) -> bool {
        self.job.txs.len() == self.job.txs.capacity()
    }

    /// Hands in the next transaction (the caller checks [`Session::is_full`] first: a
    /// transaction beyond the capacity fails the block with an internal error). Then answers
    /// the slots' pending reads and merges whatever is ready.
    pub fn push(&mut self, owner: &mut impl Owner, tx: TxEnv) -> Result<(), BlockError> {
        if self.is_full() {
            let message = format!("more transactions than the {} the session was started for", self.job.txs.len());
            return Err(BlockError::Internal { tx: self.job.txs.len(), message });
        }
        let (gas_limit, recipient) = (tx.gas_limit, tx.kind.to().copied());
        // Spares a slot the round trip to the owner for the accounts it surely reads; with the
        // parent state there is none to spare.
        if self.helper_lane.is_none() {
            self.preload(owner, tx.caller);
            if let Some(to) = recipient {
                self.preload(owner, to);
            }
        }
        let summary = TxSummary::from(&tx);
        let heavy = self.heavy.arrives(&summary, &self.engine.heavy_calls);
        let slot = self.dispatcher.assign(summary, heavy);
        let index = self.job.txs.push(tx).expect("not full: checked above");
        let queue = slot.filter(|_| !recipient.is_some_and(|to| self.demoted.contains(&to)));
        self.turns.to_worker.push(is_a_workers(queue, self.helper_lane));
        if let Some(slot) = queue {
            if heavy {
                self.job.scheduler.push_heavy(index, slot);
            } else {
                self.job.scheduler.push(index, slot);
            }
        }
        let serial = self.dispatcher.beneficiary_txs();
        self.hand_back |= chain_rule::mostly_beneficiary_txs(self.engine.config.chain_rule, serial, index + 1);
        // The cheap-block rule, judged once a window is in: a session does not see the block
        // ahead, and a few transactions say little.
        self.gas.add(gas_limit);
        self.hand_back |= index + 1 >= chain_rule::WINDOW && self.gas.is_cheap(self.engine.config.sequential_below_gas);
        if !self.started {
            self.start_workers();
        }
        self.merge_ready(owner)?;
        if self.must_wait() {
            let job = self.job.clone();
            let ctx = job.ctx();
            let mut helper = self.helper(&job, &ctx);
            while self.must_wait() {
                self.merge_next(owner, helper.as_mut())?;
            }
        }
        Ok(())
    }

    /// Answers pending reads and merges every transaction that is ready: its result is there,
    /// or it is the owner's to execute at its turn (it went to no slot). Does not wait for
    /// results not yet produced (a result found stale is redone, and waited for, at once). With
    /// the parent state the owner's lane is a queue, and its transactions wait for `finish` or
    /// for the look-ahead (see the module's notes).
    ///
    /// Running the owner's transactions as soon as their turn comes keeps the stream of
    /// committed transactions going (reth's state root task consumes it as it comes). Leaving
    /// them all to `finish` measured faster in `parevm bench --drop-in` (1 slot 0.93x instead of
    /// 0.86x on the 100+ transaction blocks), where nothing consumes the stream; not in a node.
    pub fn merge_ready(&mut self, owner: &mut impl Owner) -> Result<(), BlockError> {
        // Errors go to the slot that asked; its execution fails with them and is judged at its
        // turn, as a sequential run would have failed on the same read.
        let _ = self.requests.serve(owner.db());
        while self.merger.next() < self.job.txs.len() {
            let next = self.merger.next();
            if !self.job.unconfirmed.has_result(next) && self.job.scheduler.is_queued(next) {
                break;
            }
            self.merge_next(owner, None)?;
        }
        Ok(())
    }

    /// Merges every transaction handed in, waiting for each (and answering the slots' reads
    /// meanwhile), and ends the block's workers. Returns the block's counters.
    pub fn finish(mut self, owner: &mut impl Owner) -> Result<BlockStats, BlockError> {
        let result = self.merge_all(owner);
        self.job.scheduler.finish();
        let stats = self.stats();
        metrics::record_block(&stats);
        result.map(|()| stats)
    }

    fn merge_all(&mut self, owner: &mut impl Owner) -> Result<(), BlockError> {
        let job = self.job.clone();
        let ctx = job.ctx();
        let mut helper = self.helper(&job, &ctx);
        while self.merger.next() < self.job.txs.len() {
            self.merge_next(owner, helper.as_mut())?;
        }
        Ok(())
    }

    /// Whether the owner must merge before it takes the next transaction ([`must_wait`]).
    fn must_wait(&self) -> bool {
        must_wait(self.hand_back, self.merger.stats().total_redos(), self.job.txs.len() - self.merger.next())
    }

    /// The owner's worker on its own lane, if it has one: one per call into the session that
    /// may wait, so that its EVM is built once for all the merges of that call.
    fn helper<'c, 'a>(&self, job: &'c Job, ctx: &'c ExecCtx<'a, RemoteDb>) -> Option<Helper<'c, 'a>> {
        self.helper_lane.map(|lane| Worker::new(lane, Role::Merger, job.scheduler.table(), ctx))
    }

    fn merge_next(&mut self, owner: &mut impl Owner, helper: Option<&mut Helper<'_, '_>>) -> Result<(), BlockError> {
        let input = self.job.merge_input(self.engine.validation_pool.as_ref(), self.engine.config.stall_timeout);
        let mut driver = OwnerDriver {
            job: &self.job,
            requests: &self.requests,
            owner: &mut *owner,
            serving: &mut self.serving,
            turns: &mut self.turns,
            demoted: &mut self.demoted,
            helper,
        };
        let merged = self.merger.merge_next(&input, &mut driver)?;
        let (index, took) = (merged.index, merged.took);
        owner.commit(merged);
        self.job.teach(&self.engine.heavy_calls, index, took);
        self.hand_back |= self.rule.tripped(self.merger.next(), self.merger.stats().total_redos());
        Ok(())
    }

    fn stats(&self) -> BlockStats {
        BlockStats {
            txs: self.prefix + self.job.txs.len(),
            executions: self.job.executions(),
            // Relaxed: statistics (workers may still be finishing a stale execution).
            shadow_takeovers: self.job.shadow_executions.load(Ordering::Relaxed),
            steals: self.job.scheduler.steals.load(Ordering::Relaxed),
            merge: MergeStats::clone(self.merger.stats()),
            served_while_executing: self.serving.served,
            owner_reads: self.requests.served(),
            owner_turn_executions: self.turns.executions,
            owner_overtook: self.turns.overtook,
            execution_time: std::time::Duration::ZERO,
            // Handed back only if the caller had more to come.
            sequential_from: (self.hand_back && self.merger.next() < self.job.txs.capacity())
                .then_some(self.prefix + self.merger.next()),
        }
    }

    fn start_workers(&mut self) {
        self.started = true;
        self.engine.keep_workers_off_this_core();
        for slot in 0..self.engine.config.worker_slots() {
            for &role in self.engine.config.roles() {
                let (job, threads) = (self.job.clone(), Arc::clone(&self.engine.threads));
                self.engine.pool.spawn(move || job.run_worker(slot, role, &threads));
            }
        }
        // Threads woken ahead (`Engine::wake_ahead`) go to the jobs just queued.
        self.engine.hold.release(true);
    }

    /// Loads an account the block will surely read into the base state, from the owner's
    /// thread (without the parent state: see `push`). A database error is ignored here: the
    /// slot that needs the account asks again and fails with it, at the right transaction.
    fn preload(&self, owner: &mut impl Owner, address: Address) {
        if self.job.base.has_account(address) {
            return;
        }
        let db = owner.db();
        let Ok(mut info) = db.basic(address) else { return };
        if let Some(info) = info.as_mut().filter(|info| info.code.is_none() && info.code_hash != KECCAK_EMPTY) {
            let Ok(code) = db.code_by_hash(info.code_hash) else { return };
            info.code = Some(code);
        }
        self.job.base.fill_account(address, info);
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // Idempotent; covers a session abandoned without `finish` (a failed block, an executor
        // dropped early): its workers leave, and their pending reads fail at once.
        self.job.scheduler.finish();
    }
}

/// The session's merge driver: waits on the owner's thread while answering the slots' reads,
/// and re-executes at a transaction's turn on the owner's own, exact, state.
struct OwnerDriver<'s, 'c, 'a, O> {
    job: &'s BlockJob<'static, RemoteDb>,
    requests: &'s Requests,
    owner: &'s mut O,
    serving: &'s mut Serving,
    turns: &'s mut OwnerTurns,
    demoted: &'s mut AddressSet,
    /// The owner's worker on its own lane (see `OwnerDriver::wait`).
    helper: Option<&'s mut Helper<'c, 'a>>,
}

type Job = BlockJob<'static, RemoteDb>;
type Helper<'c, 'a> = Worker<'c, 'a, RemoteDb>;

/// Whether a transaction queued on `queue` (`None`: on none, the owner runs it at its turn) is a
/// worker's: the owner's own lane is a queue too with the parent state (`owner_queue`).
fn is_a_workers(queue: Option<usize>, owner_queue: Option<usize>) -> bool {
    queue.is_some() && queue != owner_queue
}

/// The recipient of the session's transaction `tx`.
fn tx_recipient(job: &BlockJob<'static, RemoteDb>, tx: TxIndex) -> Option<Address> {
    job.txs.summary(tx).recipient
}

enum Woken {
    Result(Arc<TxResult>),
    Request,
    /// Nobody holds the transaction: its redo was requeued after a stale execution, or a
    /// primary left it to the merger (`Scheduler::for_session`).
    Ready,
}

impl<O: Owner> MergeDriver for OwnerDriver<'_, '_, '_, O> {
    fn wait(&mut self, tx: TxIndex, seen: u32, timeout: Duration) -> Option<Arc<TxResult>> {
        let deadline = Instant::now() + timeout;
        let (job, unconfirmed, requests) = (self.job, &self.job.unconfirmed, self.requests);
        let woken_now = || {
            unconfirmed
                .newer(tx, seen)
                .map(Woken::Result)
                .or_else(|| requests.has_pending().then_some(Woken::Request))
                .or_else(|| (job.scheduler.table().status(tx) == TxStatus::Ready).then_some(Woken::Ready))
        };
        loop {
            let woken = woken_now();
            // Nothing to do for the merge yet: execute from the owner's lane, speculatively on
            // the slots' state, its misses answered from its own database. Bounded: each step
            // consumes a queue entry.
            if woken.is_none()
                && let Some(helper) = self.helper.as_deref_mut()
                && Instant::now() < deadline
                && answering_own_reads(&mut ServingDb::new(self.owner.db(), requests), || helper.step(&job.scheduler))
            {
                continue;
            }
            let woken = match woken {
                Some(woken) => woken,
                None => job
                    .scheduler
                    .placement
                    .parked(Placement::MERGER, || unconfirmed.wakeup().wait_until(deadline, woken_now))?,
            };
            match woken {
                Woken::Result(result) => return Some(result),
                // See `Session::merge_ready` for why errors are not ours to handle.
                Woken::Request => drop(requests.serve(self.owner.db())),
                // Its turn has come: run it here rather than wait for a worker to take it.
                // `None` if a worker claimed it first; then wait on.
                Woken::Ready => {
                    if let Some(result) = self.run_at_turn(tx, false) {
                        return Some(result);
                    }
                }
            }
        }
    }

    /// On the owner's own EVM, where every predecessor is committed: exact, so the result
    /// carries no reads to validate.
    ///
    /// A slot that misses in the base state while the owner executes waits for the owner's next
    /// answer. Answering from inside the execution (at each of the owner's own reads) needs an
    /// EVM built for it, ~0.6 µs, which pays only where slots do wait: on the 100+ transaction
    /// mainnet blocks a slot's read waited 7 µs on average without it, and the worker spent half
    /// of the block waiting; on the synthetic workloads almost nothing is asked (the owner loads
    /// senders and recipients up front) and AMM swaps, 1.2 µs each, lost 15% to the building.
    /// So the owner serves while it executes after an execution that left a slot waiting, and
    /// stops after one that served nobody.
    fn run_at_turn(&mut self, tx: TxIndex, redo: bool) -> Option<Arc<TxResult>> {
        let (job, owner, requests) = (self.job, &mut *self.owner, self.requests);
        // A stale result: the transactions to the same recipient that follow are likely to read
        // what this one writes (a pool's reserves, a counter). Those that no slot has started
        // run at their turn here, exactly, like the rest of the owner's lane, instead of on a
        // slot on state about to change; and so do those handed in later (`push`). Drop-in AMM
        // swaps 0.56x -> 0.69x, their redos 0.14 -> 0.00 per transaction (docs/benchmarks-log.md).
        // One pass over the block's summaries per recipient, the first time it is redone: a few
        // nanoseconds a transaction, against the microseconds of the redo itself.
        if redo
            && let Some(to) = tx_recipient(job, tx)
            && self.demoted.insert(to)
        {
            for later in tx + 1..job.txs.len() {
                if tx_recipient(job, later) == Some(to) {
                    job.scheduler.leave(later);
                    self.turns.to_worker[later] = false;
                }
            }
        }
        let serve = self.serving.next;
        let served = requests.served();
        let (mut executed, mut first) = (false, false);
        let result = job.run_at_turn(tx, redo, |incarnation| {
            executed = true;
            first = incarnation == 1;
            job.exact_result(tx, incarnation, owner.execute_exact(tx, job.txs.tx_env(tx), serve.then_some(requests)))
        });
        if first {
            self.turns.executions += 1;
            self.turns.overtook += u64::from(self.turns.to_worker[tx]);
        }
        // Judged on executions only (a worker may hold the transaction, and then nothing ran).
        if executed {
            let answered = requests.served() - served;
            if serve {
                self.serving.served += answered;
            }
            self.serving.next = if serve { answered > 0 } else { requests.has_pending() };
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_is_a_workers_if_queued_on_a_lane_not_the_owners() {
        assert!(!is_a_workers(None, None), "the owner's lane without the parent state, or the beneficiary's");
        assert!(!is_a_workers(None, Some(1)), "the beneficiary's with the parent state");
        assert!(is_a_workers(Some(0), None));
        assert!(is_a_workers(Some(0), Some(1)));
        assert!(!is_a_workers(Some(1), Some(1)), "the owner's own queue with the parent state");
    }

    #[test]
    fn the_caller_waits_only_beyond_the_look_ahead_of_a_block_with_redos_and_not_yet_handed_back() {
        assert!(must_wait(false, 1, MAX_AHEAD + 1));
        assert!(!must_wait(false, 1, MAX_AHEAD), "within the look-ahead");
        assert!(!must_wait(false, 0, 10 * MAX_AHEAD), "no redo yet: speculation is paying");
        assert!(!must_wait(true, 1, 10 * MAX_AHEAD), "handed back: the caller finishes and goes on");
    }
}
