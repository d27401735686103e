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
    /// Its database read failed. The failure is judged on a second execution at the
    /// transaction's turn: a slot's read can fail where the sequential executor's would not (in a
    /// session, a slot gives up when the database's owner is away for `stall_timeout`).
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
        let (result, rebased) = loop {
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
                (None, _) => break (result, rebased),
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
        self.accept(input, tx, result, rebased)
    }

    fn accept<D: BlockDb>(
        &mut self,
        input: &MergeInput<'_, D>,
        tx: TxIndex,
        result: Arc<TxResult>,
        rebased: Vec<(Address, Account)>,
    ) -> Result<MergedTx, BlockError> {
        let (exec, state, deferred_reward) = match &result.outcome {
            ExecOutcome::Executed { result, state, deferred_reward } => (result, state, *deferred_reward),
            ExecOutcome::Invalid(error) => {
                return Err(BlockError::Evm { tx, error: error.clone() });
            }
            ExecOutcome::Panicked(message) => {
                return Err(BlockError::Panicked { tx, message: message.clone() });
            }
        };
        let beneficiary = input.block.beneficiary;
        let credited = deferred_reward
            .map(|reward| beneficiary::credited_account(input.base, beneficiary, reward, input.cfg.spec))
            .transpose()
            .map_err(|error| BlockError::Database { tx, error })?;
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
        let executions = result.incarnation;
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
        })
    }
}
