//! The in-order merge loop.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alloy_primitives::Address;
use parevm_statedb::{BaseState, BlockDb, BlockTxs, ExecOutcome, Read, TxIndex, TxResult, Unconfirmed};
use revm::{
    context::{
        BlockEnv, CfgEnv,
        result::{EVMError, ExecutionResult, HaltReason},
    },
    state::{Account, EvmState},
};

use crate::{BlockError, Mismatch, beneficiary, credit, validate};

/// At its turn a transaction is re-executed at most this many times. One is enough in theory:
/// an execution that starts once all predecessors are merged reads exact state and is valid.
/// The slack covers a result already in flight when the turn came; exceeding it is a bug,
/// reported as [`BlockError::Internal`] instead of retrying forever.
pub const MAX_EXECUTIONS_AT_TURN: u32 = 3;

/// What the merger needs from the thread it runs on: a way to wait for results, and a way to
/// have a transaction executed again. The engine's batch path waits on the unconfirmed layer
/// (executing from the merger's lane meanwhile) and executes at a transaction's turn on the
/// caller's own EVM if the caller can, else on an EVM of the merger's own; the alloy-evm
/// executor also answers the slots' database requests while it waits, and executes at a turn on
/// the caller's own EVM.
pub trait MergeDriver {
    /// Waits, for at most `timeout`, until `tx` has a result newer than incarnation `seen`.
    fn wait(&mut self, tx: TxIndex, seen: u32, timeout: Duration) -> Option<Arc<TxResult>>;
    /// Executes `tx` on this thread and returns the result, unless a worker holds it (the
    /// merger then waits for that worker's result: `None`). Called at the transaction's turn, so
    /// the execution reads exact state: when it has no result yet (`redo` false; why wait for a
    /// worker to reach it?), and when its result was found stale (`redo` true). The result goes
    /// straight to the merger, not through the unconfirmed layer: it is merged next, and
    /// publishing it (indexing its writes, waking the merger's own wait) would be work for
    /// nobody.
    fn run_at_turn(&mut self, tx: TxIndex, redo: bool) -> Option<Arc<TxResult>>;
}

/// Why a result was sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedoCause {
    /// It read an account (not the beneficiary) that a predecessor changed.
    Account,
    /// It read a storage slot that a predecessor changed.
    Storage,
    /// It read the beneficiary, whose fees are credited only at merge.
    Beneficiary,
    /// It panicked on speculative state.
    Panic,
    /// Its database read failed, or the merger's read of the beneficiary to credit the fee the
    /// slot deferred did. The failure is judged on a second execution at the transaction's turn:
    /// a slot's read can fail where the sequential executor's would not (in a session, a slot
    /// gives up when the database's owner is away for `stall_timeout`, and the merger, on the
    /// owner's thread, cannot ask itself).
    Database,
}

impl RedoCause {
    /// All causes, for reporting.
    pub const ALL: [Self; 5] = [Self::Account, Self::Storage, Self::Beneficiary, Self::Panic, Self::Database];

    /// Metric label.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Storage => "storage",
            Self::Beneficiary => "beneficiary",
            Self::Database => "database",
            Self::Panic => "panic",
        }
    }
}

/// Counters of one block's merge.
#[derive(Debug, Default, Clone)]
pub struct MergeStats {
    /// Redos by cause, indexed like [`RedoCause::ALL`].
    pub redos: [u64; 5],
    /// Time the merger spent in its driver's wait for results (in the engine's batch path this
    /// includes the transactions its thread executes while it waits).
    pub merge_wait: Duration,
    /// The most executions any transaction needed.
    pub max_executions: u32,
    /// Stale results accepted with balances they only added to or took from rebased instead of
    /// redone (see `credit.rs`).
    pub rebased_credits: u64,
}

impl MergeStats {
    /// Total redos.
    pub fn total_redos(&self) -> u64 {
        self.redos.iter().sum()
    }

    fn count(&mut self, cause: RedoCause) {
        self.redos[cause as usize] += 1;
    }
}

/// A confirmed transaction, in block order.
#[derive(Debug)]
pub struct MergedTx {
    /// Position in the block.
    pub index: TxIndex,
    /// revm's result.
    pub result: ExecutionResult<HaltReason>,
    /// Its write set, beneficiary fee included: commit it as is.
    pub state: EvmState,
    /// Gas used by the block up to and including this transaction.
    pub cumulative_gas_used: u64,
    /// Block-wide index of its first log.
    pub first_log_index: usize,
    /// How many times it was executed.
    pub executions: u32,
    /// How long the execution merged took, if it was timed (see [`TxResult::took`]).
    pub took: Option<Duration>,
}

/// What the merger works on, borrowed for one block.
#[derive(Debug)]
pub struct MergeInput<'a, D> {
    /// Merged state (the merger is its only writer).
    pub base: &'a BaseState<D>,
    /// Results to confirm.
    pub unconfirmed: &'a Unconfirmed,
    /// Number of merged transactions, published to the slots.
    pub merged: &'a AtomicUsize,
    /// The block's transactions.
    pub txs: &'a BlockTxs<'a>,
    /// Block environment.
    pub block: &'a BlockEnv,
    /// Chain configuration.
    pub cfg: &'a CfgEnv,
    /// Pool for validating large read sets, if any.
    pub validation_pool: Option<&'a rayon::ThreadPool>,
    /// How long to wait for a result before declaring the engine stalled.
    pub stall_timeout: Duration,
}

/// Confirms a block's results in order: where the merge stands, between calls.
#[derive(Debug, Default)]
pub struct Merger {
    next: TxIndex,
    stats: MergeStats,
    cumulative_gas_used: u64,
    logs: usize,
}

impl Merger {
    /// A merger at the start of the block.
    pub fn new() -> Self {
        Self::default()
    }

    /// A merger for a block whose transactions before `next` were executed and committed
    /// elsewhere, using `cumulative_gas_used` gas and emitting `logs` logs: the block's gas limit
    /// and log indices count them.
    pub fn starting_at(next: TxIndex, cumulative_gas_used: u64, logs: usize) -> Self {
        Self { next, cumulative_gas_used, logs, ..Self::default() }
    }

    /// The next transaction to merge (= the number merged).
    pub fn next(&self) -> TxIndex {
        self.next
    }

    /// Counters so far.
    pub fn stats(&self) -> &MergeStats {
        &self.stats
    }

    /// Merges a complete block's transactions in order, handing each to `on_merged` as soon as
    /// it is confirmed (while the slots keep executing later ones), until all are merged, one
    /// fails, or `stop` (asked after each merge, with the number merged and the counters) says
    /// so. Returns how many were merged.
    pub fn run<D: BlockDb>(
        mut self,
        input: &MergeInput<'_, D>,
        driver: &mut impl MergeDriver,
        mut on_merged: impl FnMut(MergedTx),
        mut stop: impl FnMut(TxIndex, &MergeStats) -> bool,
    ) -> (Result<TxIndex, BlockError>, MergeStats) {
        while self.next < input.txs.len() {
            match self.merge_next(input, driver) {
                Ok(merged) => on_merged(merged),
                Err(e) => return (Err(e), self.stats),
            }
            if self.next < input.txs.len() && stop(self.next, &self.stats) {
                break;
            }
        }
        (Ok(self.next), self.stats)
    }

    /// Confirms the next transaction, waiting (bounded) for its result. It must be in
    /// `input.txs`.
    pub fn merge_next<D: BlockDb>(
        &mut self,
        input: &MergeInput<'_, D>,
        driver: &mut impl MergeDriver,
    ) -> Result<MergedTx, BlockError> {
        let tx = self.next;
        let merged = self.merge_one(input, tx, driver)?;
        self.next += 1;
        Ok(merged)
    }

    fn merge_one<D: BlockDb>(
        &mut self,
        input: &MergeInput<'_, D>,
        tx: TxIndex,
        driver: &mut impl MergeDriver,
    ) -> Result<MergedTx, BlockError> {
        // The same check, in the same place, as alloy-evm's `EthBlockExecutor`.
        let block_available_gas = input.block.gas_limit - self.cumulative_gas_used;
        let gas_limit = input.txs.gas_limit(tx);
        let mut max_tx_gas = gas_limit;
        if let Some(cap) = input.cfg.tx_gas_limit_cap {
            max_tx_gas = max_tx_gas.min(cap);
        }
        if max_tx_gas > block_available_gas {
            return Err(BlockError::GasLimitExceeded { tx, transaction_gas_limit: gas_limit, block_available_gas });
        }

        // Its newest result, or, if it has none yet, its execution right here (`None` if a worker
        // holds it): one look at the unconfirmed layer, then the clock only for a real wait.
        let mut ours = input.unconfirmed.newer(tx, 0).or_else(|| driver.run_at_turn(tx, false));
        let mut seen = 0;
        let mut redos_at_turn = 0;
        let (result, rebased, credited) = loop {
            let result = match ours.take().or_else(|| input.unconfirmed.newer(tx, seen)) {
                Some(result) => result,
                // Not in yet. Most results are in by their turn, and the clock is read only for
                // those that are not: two reads per merge were ~3% of the merger's time on AMM
                // swaps, whose merges are the block's serial path.
                None => {
                    let started = Instant::now();
                    let Some(result) = driver.wait(tx, seen, input.stall_timeout) else {
                        return Err(BlockError::Stalled { tx, waited: input.stall_timeout });
                    };
                    self.stats.merge_wait += started.elapsed();
                    result
                }
            };
            seen = result.incarnation;
            // All predecessors were merged when this execution started: it read exact state.
            let exact = result.merged_at_start >= tx;
            // An exact execution read nothing but the base, which nobody has written since: it is
            // valid by construction, and checking it again is pure cost (most executions are
            // exact when slots keep up, and every one the merger runs itself is). Debug builds
            // still check, and report a stale read as an internal error below.
            let mut mismatch = if exact && !cfg!(debug_assertions) {
                None
            } else {
                validate(input.base, &result.reads, input.validation_pool)
            };
            // A stale read may be only of balances the execution never observed: rebase them
            // instead of redoing (`credit.rs`).
            let mut rebased = Vec::new();
            if let Some(Mismatch(Read::Account(address, _))) = mismatch
                && !exact
                // Never rebased (see `credit.rs`): no need to build the transaction to know.
                && address != input.block.beneficiary
                && let Some(state) = result.state()
            {
                let tx_env = input.txs.tx_env(tx);
                match credit::rebased_balances(input.base, &result.reads, state, &tx_env, input.block.beneficiary) {
                    Ok(accounts) => {
                        mismatch = None;
                        rebased = accounts;
                        self.stats.rebased_credits += 1;
                    }
                    Err(stale) => mismatch = Some(stale),
                }
            }
            let cause = match (&mismatch, &result.outcome) {
                (None, ExecOutcome::Panicked(message)) if exact => {
                    return Err(BlockError::Panicked { tx, message: message.clone() });
                }
                (None, ExecOutcome::Panicked(_)) => RedoCause::Panic,
                (None, ExecOutcome::Invalid(EVMError::Database(_))) if redos_at_turn == 0 => RedoCause::Database,
                // The fee the slot deferred is credited now, from the base. Reading the
                // beneficiary can fail where the sequential executor's read would not (a
                // session's merger cannot ask its own thread): judged again at the turn, like a
                // slot's failed read.
                (None, ExecOutcome::Executed { deferred_reward: Some(reward), .. }) => {
                    match beneficiary::credited_account(input.base, input.block.beneficiary, *reward, input.cfg.spec) {
                        Ok(account) => break (result, rebased, Some(account)),
                        Err(_) if redos_at_turn == 0 => RedoCause::Database,
                        Err(error) => return Err(BlockError::Database { tx, error }),
                    }
                }
                (None, _) => break (result, rebased, None),
                (Some(Mismatch(read)), _) if exact => {
                    return Err(BlockError::Internal {
                        tx,
                        message: format!("an execution on exact state read a stale value: {read:?}"),
                    });
                }
                (Some(Mismatch(Read::Account(address, _))), _) if *address == input.block.beneficiary => {
                    RedoCause::Beneficiary
                }
                // A `Balance` entry is never stale by itself (see `validate.rs`).
                (Some(Mismatch(Read::Account(..) | Read::Balance(..))), _) => RedoCause::Account,
                (Some(Mismatch(Read::Storage(..))), _) => RedoCause::Storage,
            };
            redos_at_turn += 1;
            if redos_at_turn > MAX_EXECUTIONS_AT_TURN {
                return Err(BlockError::Internal { tx, message: format!("still invalid after {redos_at_turn} redos") });
            }
            self.stats.count(cause);
            ours = driver.run_at_turn(tx, true);
        };
        self.accept(input, tx, result, rebased, credited)
    }

    fn accept<D: BlockDb>(
        &mut self,
        input: &MergeInput<'_, D>,
        tx: TxIndex,
        result: Arc<TxResult>,
        rebased: Vec<(Address, Account)>,
        credited: Option<Account>,
    ) -> Result<MergedTx, BlockError> {
        let (exec, state) = match &result.outcome {
            ExecOutcome::Executed { result, state, .. } => (result, state),
            ExecOutcome::Invalid(error) => {
                return Err(BlockError::Evm { tx, error: error.clone() });
            }
            ExecOutcome::Panicked(message) => {
                return Err(BlockError::Panicked { tx, message: message.clone() });
            }
        };
        let beneficiary = input.block.beneficiary;
        // Accounts the merger wrote for the transaction, over its write set: the deferred fee's
        // beneficiary, rebased balances (never the beneficiary's, see `credit.rs`).
        let mut merger_writes = rebased;
        merger_writes.extend(credited.map(|account| (beneficiary, account)));

        input.base.apply(state);
        for (address, account) in &merger_writes {
            input.base.apply_account(*address, account);
        }
        // Release: a slot that reads `merged > tx` (Acquire) must find tx's writes in the base,
        // since it will no longer look for them among the unconfirmed results.
        input.merged.store(tx + 1, Ordering::Release);

        self.cumulative_gas_used += exec.gas().tx_gas_used();
        let first_log_index = self.logs;
        self.logs += exec.logs().len();
        let (executions, took) = (result.incarnation, result.took);
        self.stats.max_executions = self.stats.max_executions.max(executions);

        // Nobody reads tx's result any more; take it back without copying when we can.
        drop(input.unconfirmed.take(tx));
        let (exec, mut state) = match Arc::try_unwrap(result) {
            Ok(TxResult { outcome: ExecOutcome::Executed { result, state, .. }, .. }) => (result, state),
            Ok(_) => unreachable!("matched Executed above"),
            Err(shared) => match &shared.outcome {
                ExecOutcome::Executed { result, state, .. } => (result.clone(), state.clone()),
                _ => unreachable!("matched Executed above"),
            },
        };
        state.extend(merger_writes);
        Ok(MergedTx {
            index: tx,
            result: exec,
            state,
            cumulative_gas_used: self.cumulative_gas_used,
            first_log_index,
            executions,
            took,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use alloy_primitives::U256;
    use parevm_statedb::{DbError, InMemoryDb, ReadSet};
    use revm::{
        DatabaseRef,
        bytecode::Bytecode,
        context::{
            TxEnv,
            result::{Output, ResultGas, SuccessReason},
        },
        primitives::B256,
        state::AccountInfo,
    };

    use super::*;

    const BENEFICIARY: Address = Address::with_last_byte(0xbe);

    /// A database whose reads of the beneficiary fail, the first `budget` times.
    #[derive(Debug)]
    struct FailingBeneficiary {
        inner: InMemoryDb,
        budget: AtomicUsize,
    }

    impl DatabaseRef for FailingBeneficiary {
        type Error = DbError;
        fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, DbError> {
            if address == BENEFICIARY
                && self.budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1)).is_ok()
            {
                return Err(DbError("injected failure reading the beneficiary".into()));
            }
            self.inner.basic_ref(address).map_err(DbError::from_display)
        }
        fn code_by_hash_ref(&self, hash: B256) -> Result<Bytecode, DbError> {
            self.inner.code_by_hash_ref(hash).map_err(DbError::from_display)
        }
        fn storage_ref(&self, address: Address, index: U256) -> Result<U256, DbError> {
            self.inner.storage_ref(address, index).map_err(DbError::from_display)
        }
        fn block_hash_ref(&self, number: u64) -> Result<B256, DbError> {
            self.inner.block_hash_ref(number).map_err(DbError::from_display)
        }
    }

    fn executed(deferred_reward: Option<u128>) -> ExecOutcome {
        let result = ExecutionResult::Success {
            reason: SuccessReason::Stop,
            gas: ResultGas::default(),
            logs: Vec::new(),
            output: Output::Call(Default::default()),
        };
        ExecOutcome::Executed { result, state: EvmState::default(), deferred_reward }
    }

    /// Executes at the turn with a given outcome, counting the calls.
    struct AtTurn {
        outcome: fn() -> ExecOutcome,
        calls: Vec<(TxIndex, bool)>,
    }

    impl MergeDriver for AtTurn {
        fn wait(&mut self, _: TxIndex, _: u32, _: Duration) -> Option<Arc<TxResult>> {
            None
        }
        fn run_at_turn(&mut self, tx: TxIndex, redo: bool) -> Option<Arc<TxResult>> {
            self.calls.push((tx, redo));
            let outcome = (self.outcome)();
            Some(Arc::new(TxResult {
                incarnation: 2,
                outcome,
                reads: ReadSet::default(),
                merged_at_start: tx,
                took: Some(TURN_TOOK),
            }))
        }
    }

    /// How long the slot's execution and the one at the turn took, as their results say.
    const SLOT_TOOK: Duration = Duration::from_micros(700);
    const TURN_TOOK: Duration = Duration::from_micros(600);

    /// Merges transaction 0, whose slot's result deferred a fee, over a database that fails the
    /// beneficiary's first `budget` reads.
    fn merge_deferred(
        budget: usize,
        at_turn: fn() -> ExecOutcome,
    ) -> (Result<MergedTx, BlockError>, AtTurn, MergeStats) {
        let base =
            BaseState::new(FailingBeneficiary { inner: InMemoryDb::default(), budget: AtomicUsize::new(budget) });
        let unconfirmed = Unconfirmed::new(1);
        let outcome = executed(Some(1_000));
        let slots_result = Arc::new(TxResult {
            incarnation: 1,
            outcome,
            reads: ReadSet::default(),
            merged_at_start: 0,
            took: Some(SLOT_TOOK),
        });
        // Still held here when it is merged: the merger copies it rather than taking it.
        unconfirmed.publish(0, slots_result.clone());
        let txs = BlockTxs::with_capacity(1);
        txs.push(TxEnv { gas_limit: 21_000, ..Default::default() }).expect("room for one");
        let block = BlockEnv { beneficiary: BENEFICIARY, gas_limit: 30_000_000, ..Default::default() };
        let (cfg, merged) = (CfgEnv::default(), AtomicUsize::new(0));
        let input = MergeInput {
            base: &base,
            unconfirmed: &unconfirmed,
            merged: &merged,
            txs: &txs,
            block: &block,
            cfg: &cfg,
            validation_pool: None,
            stall_timeout: Duration::from_secs(1),
        };
        let mut driver = AtTurn { outcome: at_turn, calls: Vec::new() };
        let mut merger = Merger::new();
        let merged = merger.merge_next(&input, &mut driver);
        drop(slots_result);
        (merged, driver, merger.stats().clone())
    }

    #[test]
    fn a_failed_read_of_the_beneficiary_for_a_deferred_fee_is_judged_again_at_the_turn() {
        // Once: the transaction runs again at its turn (exactly, crediting its own fee), and is
        // merged, as a slot's failed read would be.
        let (merged, driver, stats) = merge_deferred(1, || executed(None));
        let merged = merged.expect("merged after the redo");
        // The time is the merged execution's, the one at the turn (heavy calls learn from it).
        assert_eq!((merged.executions, merged.took), (2, Some(TURN_TOOK)));
        assert_eq!(driver.calls, vec![(0, true)]);
        assert_eq!(stats.redos[RedoCause::Database as usize], 1);
        // Not once: the fee is credited at once, with no redo.
        let (merged, driver, _) = merge_deferred(0, || executed(None));
        let merged = merged.expect("merged");
        assert_eq!((merged.executions, driver.calls.len(), merged.took), (1, 0, Some(SLOT_TOOK)));
        assert_eq!(merged.state[&BENEFICIARY].info.balance, U256::from(1_000));
        // Lasting: the execution at the turn fails on the database, and the block fails with the
        // EVM's error, as the sequential executor's does.
        let failed =
            || ExecOutcome::Invalid(EVMError::Database(DbError("injected failure reading the beneficiary".into())));
        let (merged, _, _) = merge_deferred(usize::MAX, failed);
        assert!(matches!(merged, Err(BlockError::Evm { tx: 0, .. })), "{merged:?}");
    }
}
