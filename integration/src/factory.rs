//! The drop-in: an alloy-evm `BlockExecutorFactory` whose executors run blocks on the engine.
//!
//! [`ParallelBlockExecutorFactory`] has the associated types of alloy-evm's
//! `EthBlockExecutorFactory` (same `EvmFactory`, execution context, transaction, receipt and
//! per-transaction result), so a reth `ConfigureEvm` can return it in place of the Ethereum one.
//! Its executor wraps an `EthBlockExecutor`, which does everything except run the block's
//! transactions: the pre-block system calls, every commit (receipt, gas, blob gas, `State`
//! commit with bundle updates), and the post-block steps in `finish`. In parallel mode
//! `execute_transaction` hands the transaction to an engine [`Session`] and returns at once; the
//! session executes it on the slots while the caller hands in the next, and commits confirmed
//! transactions, in order, into the caller's `State` whenever the caller is back in the
//! executor. `finish` waits for the rest. A block long enough for the engine's chain probe (64
//! transactions by the hint) has its first 16 held back and judged first, as the engine's own
//! entry point judges them (see `ParallelBlockExecutor::start`).
//!
//! Parallel mode needs all of: an engine (the factory is not a [`sequential`] copy), a
//! transaction count hint of at least two and at least `EngineConfig::session_min_txs` (a
//! window of 32 with the cheap-block rule on; reth gives a hint when validating blocks, none when
//! building them), a block gas limit that lets that many transactions spend the cheap-block
//! rule's threshold each on average (`Engine::hand_back_cheap_block`), no inspector, a fork the
//! engine is verified on ([`LATEST_PARALLEL_SPEC`]), and the engine not busy with another block.
//! Otherwise the executor is exactly the Ethereum one. Callers that need a transaction's result
//! at once (`execute_transaction_without_commit`, the closure variants, `commit_transaction`)
//! get the parallel part flushed first and the rest of the block sequentially.
//!
//! The slots cannot read the caller's database (`&mut State`, on the caller's thread): they ask
//! the caller and wait for its answer, which holds the drop-in under sequential speed at 2
//! slots. A caller that can give a `Sync` view of each block's parent state
//! ([`ParallelBlockExecutorFactory::with_parent_states`]) spares them that; the caller's thread
//! then also executes speculatively while it waits, as the engine's own merger does.
//!
//! In parallel mode `execute_transaction` returns `GasOutput::default()`: the gas is known only
//! once the transaction is merged. reth's block validation ignores the value (see docs/reth.md);
//! `receipts()` grows as transactions are merged.
//!
//! [`sequential`]: ParallelBlockExecutorFactory::sequential

use std::{any::type_name, sync::Arc};

use alloy_consensus::{Transaction, TransactionEnvelope, TxReceipt, transaction::Recovered};
use alloy_eips::Encodable2718;
use alloy_evm::{
    Evm, EvmEnv, EvmFactory, FromRecoveredTx, FromTxWithEncoded, RecoveredTx,
    block::{
        BlockExecutionError, BlockExecutionResult, BlockExecutor, BlockExecutorFactory, BlockValidationError,
        ExecutableTx, ExecutableTxParts, GasOutput, StateDB,
    },
    eth::{
        EthBlockExecutionCtx, EthBlockExecutor, EthBlockExecutorFactory, EthEvm, EthEvmBuilder, EthEvmContext,
        EthEvmFactory, EthTxResult,
        receipt_builder::ReceiptBuilder,
        spec::{EthExecutorSpec, EthSpec},
    },
    precompiles::PrecompilesMap,
};
use alloy_primitives::{Address, B256, Log, map::HashMap};
use parevm_dispatcher::{BlockError, BlockStats, ChainProbe, Engine, MergedTx, Owner, Prefix, Session};
use parevm_statedb::{DbError, ExecOutcome, OwnerChanges, ParentState, Requests, ServingDb, TxIndex};
use revm::{
    Inspector,
    context::{TxEnv, result::EVMError},
    context_interface::result::{HaltReason, ResultAndState},
    inspector::NoOpInspector,
    primitives::hardfork::SpecId,
    state::AccountInfo,
};

use crate::RethReceiptBuilder;

/// The newest fork the engine is verified on: the consensus suite and the mainnet blocks are
/// Cancun; the randomized equivalence tests (`integration/tests/random_blocks.rs`) cover Prague,
/// with EIP-7702 delegations, and Osaka. Later forks (Amsterdam's block access lists) run
/// sequentially.
pub const LATEST_PARALLEL_SPEC: SpecId = SpecId::OSAKA;

/// The accounts the Ethereum executor's pre-block system calls may change, up to
/// [`LATEST_PARALLEL_SPEC`]: the EIP-2935 block hash history and the EIP-4788 beacon roots
/// contracts (each call drops the system caller and the beneficiary from what it commits). A
/// session's slots never read these from a [`ParentStates`] view.
pub const PRE_BLOCK_CONTRACTS: [Address; 2] =
    [alloy_eips::eip2935::HISTORY_STORAGE_ADDRESS, alloy_eips::eip4788::BEACON_ROOTS_ADDRESS];

/// Where the drop-in finds the state a block starts from, for its slots to read without asking
/// the caller's thread (see [`ParallelBlockExecutorFactory::with_parent_states`]).
pub trait ParentStates: Send + Sync + std::fmt::Debug {
    /// A view of the state after the block `parent_hash`, exactly as the executor's database
    /// reads it before the block's own changes; `None` if there is none (the slots then ask the
    /// caller's thread for every value, as without a source).
    fn after(&self, parent_hash: B256) -> Option<ParentState>;
}

/// The parent state of one block, known by its hash: a source for a caller that executes one
/// block at a time, as `parevm bench` and `parevm replay` do with their pre-states.
#[derive(Clone)]
pub struct OneParentState {
    /// The parent block's hash.
    pub parent_hash: B256,
    /// The state after it.
    pub state: ParentState,
}

impl std::fmt::Debug for OneParentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneParentState").field("parent_hash", &self.parent_hash).finish_non_exhaustive()
    }
}

impl ParentStates for OneParentState {
    fn after(&self, parent_hash: B256) -> Option<ParentState> {
        (parent_hash == self.parent_hash).then(|| self.state.clone())
    }
}

/// alloy-evm's Ethereum executor factory, with blocks executed by parevm's engine.
#[derive(Debug, Clone)]
pub struct ParallelBlockExecutorFactory<R = RethReceiptBuilder, Spec = EthSpec> {
    eth: EthBlockExecutorFactory<R, Spec, EthEvmFactory>,
    /// `None`: a sequential copy.
    engine: Option<Arc<Engine>>,
    parents: Option<Arc<dyn ParentStates>>,
}

impl<R, Spec> ParallelBlockExecutorFactory<R, Spec> {
    /// A factory running blocks on `engine`.
    pub fn new(receipt_builder: R, spec: Spec, engine: Arc<Engine>) -> Self {
        Self::from_eth(EthBlockExecutorFactory::new(receipt_builder, spec, EthEvmFactory::default()), Some(engine))
    }

    /// Wraps an Ethereum factory; `None` makes it sequential.
    pub fn from_eth(eth: EthBlockExecutorFactory<R, Spec, EthEvmFactory>, engine: Option<Arc<Engine>>) -> Self {
        Self { eth, engine, parents: None }
    }

    /// Gives the executors a view of each block's parent state, which the engine's slots read
    /// directly where they would otherwise ask the caller's thread, which owns the database, and
    /// wait for its answer (on the mainnet blocks about one read per transaction, each waiting
    /// until the caller is back in the engine: see docs/benchmarks.md, "The drop-in").
    ///
    /// The views must be exact: what the executor's database returns before the block's first
    /// pre-block change, with code they do not hold read as empty. Anything the caller writes
    /// to the executor's database itself (through `evm_mut().db_mut()`) before the block's
    /// transactions is not seen: give no view for such a block. A `State` reused across blocks (reth's backfill) holds the earlier
    /// blocks' changes, which a view of the parent block's persisted state would not: give none
    /// there. The accounts the pre-block system calls change ([`PRE_BLOCK_CONTRACTS`]) and those
    /// of transactions the executor ran before its session started are read from the caller's
    /// database whatever the view says.
    pub fn with_parent_states(mut self, parents: Arc<dyn ParentStates>) -> Self {
        self.parents = Some(parents);
        self
    }

    /// A copy that always executes sequentially (for block building).
    pub fn sequential(&self) -> Self
    where
        R: Clone,
        Spec: Clone,
    {
        Self { eth: self.eth.clone(), engine: None, parents: None }
    }

    /// The engine, unless sequential.
    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.engine.as_ref()
    }

    /// The wrapped Ethereum factory.
    pub fn eth(&self) -> &EthBlockExecutorFactory<R, Spec, EthEvmFactory> {
        &self.eth
    }
}

type TxTypeOf<R> = <<R as ReceiptBuilder>::Transaction as TransactionEnvelope>::TxType;

impl<R, Spec> BlockExecutorFactory for ParallelBlockExecutorFactory<R, Spec>
where
    R: ReceiptBuilder<Transaction: Transaction + Encodable2718 + Clone, Receipt: TxReceipt<Log = Log>>,
    Spec: EthExecutorSpec,
    TxEnv: FromRecoveredTx<R::Transaction> + FromTxWithEncoded<R::Transaction>,
    TxTypeOf<R>: Send + 'static,
    Self: 'static,
{
    type EvmFactory = EthEvmFactory;
    type ExecutionCtx<'a> = EthBlockExecutionCtx<'a>;
    type Transaction = R::Transaction;
    type Receipt = R::Receipt;
    type TxExecutionResult = EthTxResult<HaltReason, TxTypeOf<R>>;
    type Executor<'a, DB: StateDB, I: Inspector<<EthEvmFactory as EvmFactory>::Context<DB>>> =
        ParallelBlockExecutor<'a, DB, I, Spec, R>;

    fn evm_factory(&self) -> &Self::EvmFactory {
        self.eth.evm_factory()
    }

    fn create_executor<'a, DB, I>(
        &'a self,
        evm: <EthEvmFactory as EvmFactory>::Evm<DB, I>,
        ctx: Self::ExecutionCtx<'a>,
    ) -> Self::Executor<'a, DB, I>
    where
        DB: StateDB,
        I: Inspector<<EthEvmFactory as EvmFactory>::Context<DB>>,
    {
        // Slots do not run inspectors. `I` carries no `'static` bound, so its type is compared by
        // name: reth's validation builds its EVMs with `NoOpInspector`, tracing with others.
        let no_inspector = type_name::<I>() == type_name::<NoOpInspector>();
        let capacity = ctx.tx_count_hint.unwrap_or(0);
        let verified = evm.cfg_env().spec <= LATEST_PARALLEL_SPEC;
        let engine = self
            .engine
            .as_deref()
            .filter(|engine| no_inspector && verified && capacity >= engine.config().session_min_txs());
        // A block that cannot spend enough gas per transaction never starts a session (see
        // `Engine::hand_back_cheap_block`).
        let stats = engine.and_then(|engine| engine.hand_back_cheap_block(evm.block().gas_limit, capacity));
        let mode = match engine {
            Some(engine) if stats.is_none() => Mode::Pending {
                engine,
                capacity,
                held: Vec::with_capacity(probed_opening(engine, capacity)),
                parent: self.parents.as_ref().and_then(|parents| parents.after(ctx.parent_hash)),
            },
            _ => Mode::Sequential,
        };
        ParallelBlockExecutor {
            eth: EthBlockExecutor::new(evm, ctx, self.eth.spec(), self.eth.receipt_builder()),
            mode,
            stats,
        }
    }
}

/// A block executor that runs the block's transactions on the engine when it may (see the
/// module docs), and is alloy-evm's `EthBlockExecutor` otherwise.
pub struct ParallelBlockExecutor<'a, DB: alloy_evm::Database, I, Spec, R: ReceiptBuilder> {
    eth: EthBlockExecutor<'a, EthEvm<DB, I, PrecompilesMap>, &'a Spec, &'a R>,
    mode: Mode<'a, TxTypeOf<R>, R::Transaction>,
    /// The engine's counters, once the parallel part is merged.
    stats: Option<BlockStats>,
}

impl<DB: alloy_evm::Database, I, Spec, R: ReceiptBuilder> std::fmt::Debug
    for ParallelBlockExecutor<'_, DB, I, Spec, R>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.mode {
            Mode::Sequential => "sequential",
            Mode::Pending { .. } => "parallel (not started)",
            Mode::Parallel(_) => "parallel",
            Mode::Failed => "failed",
        };
        f.debug_struct("ParallelBlockExecutor").field("mode", &mode).finish_non_exhaustive()
    }
}

enum Mode<'a, T, Tx> {
    /// alloy-evm's executor, one transaction at a time.
    Sequential,
    /// Parallel from the first transaction, or once the opening a probe judges the block by is in
    /// (see `start`), after the pre-block system calls, whose changes the session then reads
    /// through the caller's `State`.
    Pending {
        engine: &'a Engine,
        capacity: usize,
        /// The opening a probe judges the block by (`probed_opening`), as far as it is in,
        /// handed in and not yet executed.
        held: Vec<(TxEnv, Recovered<Tx>)>,
        /// The block's parent state, from the factory's [`ParentStates`].
        parent: Option<ParentState>,
    },
    Parallel(Box<Parallel<'a, T>>),
    /// The block failed; the error was returned.
    Failed,
}

struct Parallel<'a, T> {
    session: Session<'a>,
    txs: Vec<TxMeta<T>>,
    /// Errors of transactions re-executed on the caller's EVM, exactly as the Ethereum executor
    /// reports them.
    exact_errors: Vec<(TxIndex, BlockExecutionError)>,
}

/// What committing a transaction needs besides its result.
struct TxMeta<T> {
    hash: B256,
    /// Taken by the commit.
    tx_type: Option<T>,
    blob_gas_used: u64,
}

/// The caller's side of a session: its `EthBlockExecutor`.
struct EthOwner<'x, 'a, DB: alloy_evm::Database, I, Spec, R: ReceiptBuilder> {
    eth: &'x mut EthBlockExecutor<'a, EthEvm<DB, I, PrecompilesMap>, &'a Spec, &'a R>,
    txs: &'x mut [TxMeta<TxTypeOf<R>>],
    exact_errors: &'x mut Vec<(TxIndex, BlockExecutionError)>,
}

impl<DB, I, Spec, R> Owner for EthOwner<'_, '_, DB, I, Spec, R>
where
    DB: StateDB,
    I: Inspector<EthEvmContext<DB>>,
    R: ReceiptBuilder<Transaction: Transaction + Encodable2718 + Clone, Receipt: TxReceipt<Log = Log>>,
    TxEnv: FromRecoveredTx<R::Transaction> + FromTxWithEncoded<R::Transaction>,
    TxTypeOf<R>: Send + 'static,
    Spec: EthExecutorSpec,
{
    type Db = DB;

    fn db(&mut self) -> &mut DB {
        self.eth.evm_mut().db_mut()
    }

    fn execute_exact(&mut self, tx: TxIndex, env: TxEnv, serve: Option<&Requests>) -> ExecOutcome {
        let evm = self.eth.evm_mut();
        let outcome = match serve {
            // An EVM of its own over the caller's database, so that the slots' reads are
            // answered as it reads (`ServingDb`): same environment, and Ethereum's precompiles
            // for the spec, as the slots have (a node's own map, such as reth's precompile
            // cache, computes the same outputs).
            Some(requests) => {
                let evm_env = EvmEnv { cfg_env: evm.cfg_env().clone(), block_env: evm.block().clone() };
                EthEvmBuilder::new(ServingDb::new(evm.db_mut(), requests), evm_env).build().transact(env)
            }
            None => evm.transact(env),
        };
        match outcome {
            Ok(ResultAndState { result, state }) => ExecOutcome::Executed { result, state, deferred_reward: None },
            Err(error) => {
                let engine_error = engine_error(&error);
                self.exact_errors.push((tx, BlockExecutionError::evm(error, self.txs[tx].hash)));
                ExecOutcome::Invalid(engine_error)
            }
        }
    }

    fn commit(&mut self, merged: MergedTx) {
        let meta = &mut self.txs[merged.index];
        self.eth.commit_transaction(EthTxResult {
            result: ResultAndState { result: merged.result, state: merged.state },
            blob_gas_used: meta.blob_gas_used,
            tx_type: meta.tx_type.take().expect("the merger commits each transaction once"),
        });
    }
}

/// An error of the caller's own EVM, as the engine's merger takes it (database errors by their
/// message: the engine's own type).
pub(crate) fn engine_error<E: std::fmt::Display>(error: &EVMError<E>) -> EVMError<DbError> {
    match error {
        EVMError::Transaction(e) => EVMError::Transaction(e.clone()),
        EVMError::Header(e) => EVMError::Header(*e),
        EVMError::Database(e) => EVMError::Database(DbError::from_display(e)),
        EVMError::Custom(e) => EVMError::Custom(e.clone()),
        EVMError::CustomAny(e) => EVMError::Custom(e.to_string()),
    }
}

impl<'a, DB, I, Spec, R> ParallelBlockExecutor<'a, DB, I, Spec, R>
where
    DB: StateDB,
    I: Inspector<EthEvmContext<DB>>,
    R: ReceiptBuilder<Transaction: Transaction + Encodable2718 + Clone, Receipt: TxReceipt<Log = Log>>,
    TxEnv: FromRecoveredTx<R::Transaction> + FromTxWithEncoded<R::Transaction>,
    TxTypeOf<R>: Send + 'static,
    Spec: EthExecutorSpec,
{
    /// Whether the block's transactions run on the engine (so far).
    pub fn is_parallel(&self) -> bool {
        matches!(self.mode, Mode::Parallel(_) | Mode::Pending { .. })
    }

    /// Like [`BlockExecutor::finish`], also returning the engine's counters if the block ran
    /// in parallel.
    #[allow(clippy::type_complexity)]
    pub fn finish_with_stats(
        mut self,
    ) -> Result<
        (EthEvm<DB, I, PrecompilesMap>, BlockExecutionResult<R::Receipt>, Option<BlockStats>),
        BlockExecutionError,
    > {
        self.flush()?;
        let (evm, result) = self.eth.finish()?;
        Ok((evm, result, self.stats))
    }

    /// Ends a pending mode once the block's opening is in (or the caller wants results): starts
    /// the session, or continues sequentially, and executes the transactions held so far.
    ///
    /// A block that opens with calls to one contract is probed first, as the engine's own entry
    /// point does (`integration/src/execute.rs`): its opening runs here, one transaction at a time
    /// on the Ethereum executor, observed by a [`ChainProbe`]; a chain runs sequentially to the
    /// end, anything else goes to the session after the probed transactions. Without the probe
    /// the drop-in ran such a chain (the `hot` workload: every transaction bumps one counter)
    /// on the engine, every transaction redone at its turn, until the chain rule tripped a
    /// window later. Holding the opening back costs a block that is not probed nothing
    /// measurable: the caller hands its transactions in without waiting, and the slots start
    /// with them queued.
    fn start(&mut self) -> Result<(), BlockExecutionError> {
        let Mode::Pending { engine, capacity, .. } = self.mode else { return Ok(()) };
        let Mode::Pending { held, parent, .. } = std::mem::replace(&mut self.mode, Mode::Sequential) else {
            unreachable!("matched above")
        };
        let mut held = held.into_iter();
        let mut opening = Opening::default();
        let recipients = held.as_slice().iter().map(|(env, _)| env.kind.to().copied());
        if probed_opening(engine, capacity) > 0 && ChainProbe::wanted_opening(capacity, recipients) {
            // What the probed transactions touched matters only to a session reading the view.
            opening = probe_opening(&mut self.eth, held.by_ref(), parent.is_some())?;
            if opening.chain {
                self.stats = Some(engine.handed_back(capacity));
            }
        }
        let prefix = opening.prefix;
        if self.stats.is_none() {
            let evm = self.eth.evm();
            let (block, cfg) = (evm.block().clone(), evm.cfg_env().clone());
            let mut exact_errors = Vec::new();
            let mut owner = EthOwner { eth: &mut self.eth, txs: &mut [], exact_errors: &mut exact_errors };
            let capacity = capacity.saturating_sub(prefix.txs);
            // What the caller changed before the session is in its database, not in the view.
            let parent = parent.map(|view| {
                let mut changed = opening.touched;
                changed.accounts.extend(PRE_BLOCK_CONTRACTS);
                (view, changed)
            });
            if let Some(session) = engine.try_session(block, cfg, capacity, prefix, parent, &mut owner) {
                let txs = Vec::with_capacity(capacity);
                self.mode = Mode::Parallel(Box::new(Parallel { session, txs, exact_errors }));
            }
        }
        for (env, recovered) in held {
            self.execute_parts(env, recovered)?;
        }
        Ok(())
    }

    /// Executes one transaction in a mode that is not pending: hands it to the session, or to
    /// the Ethereum executor.
    fn execute_parts(
        &mut self,
        env: TxEnv,
        recovered: impl RecoveredTx<R::Transaction>,
    ) -> Result<GasOutput, BlockExecutionError> {
        let full = match &self.mode {
            Mode::Parallel(parallel) => parallel.session.is_full(),
            Mode::Failed => return Err(failed()),
            _ => false,
        };
        if full {
            // More transactions than the hint said: the rest of the block runs sequentially.
            self.flush()?;
        }
        let Mode::Parallel(parallel) = &mut self.mode else {
            return self.eth.execute_transaction((env, recovered));
        };
        let signed = recovered.tx();
        parallel.txs.push(TxMeta {
            hash: signed.trie_hash(),
            tx_type: Some(signed.tx_type()),
            blob_gas_used: signed.blob_gas_used().unwrap_or_default(),
        });
        let Parallel { session, txs, exact_errors } = &mut **parallel;
        let mut owner = EthOwner { eth: &mut self.eth, txs, exact_errors };
        match session.push(&mut owner, env) {
            // A rule tripped (chain, cheap block, payout): merge what was handed in, and run the rest
            // sequentially.
            Ok(()) if session.wants_sequential() => self.flush().map(|()| GasOutput::default()),
            Ok(()) => Ok(GasOutput::default()),
            Err(error) => {
                let Mode::Parallel(parallel) = std::mem::replace(&mut self.mode, Mode::Failed) else {
                    unreachable!("matched above")
                };
                let Parallel { txs, exact_errors, .. } = *parallel;
                Err(session_error(error, &txs, exact_errors))
            }
        }
    }

    /// Executes and merges everything handed in so far, and continues sequentially.
    fn flush(&mut self) -> Result<(), BlockExecutionError> {
        self.start()?;
        match std::mem::replace(&mut self.mode, Mode::Sequential) {
            Mode::Parallel(parallel) => {
                let Parallel { session, mut txs, mut exact_errors } = *parallel;
                let mut owner = EthOwner { eth: &mut self.eth, txs: &mut txs, exact_errors: &mut exact_errors };
                match session.finish(&mut owner) {
                    Ok(stats) => {
                        self.stats = Some(stats);
                        Ok(())
                    }
                    Err(e) => {
                        self.mode = Mode::Failed;
                        Err(session_error(e, &txs, exact_errors))
                    }
                }
            }
            Mode::Failed => {
                self.mode = Mode::Failed;
                Err(failed())
            }
            Mode::Sequential | Mode::Pending { .. } => Ok(()),
        }
    }
}

/// What [`probe_opening`] ran.
#[derive(Debug, Default)]
pub(crate) struct Opening {
    /// The transactions executed and committed: the engine starts after them.
    pub prefix: Prefix,
    /// The block is a chain: it runs sequentially to the end.
    pub chain: bool,
    /// What those transactions loaded or changed, if asked for (`record_touched`).
    pub touched: OwnerChanges,
}

/// Runs a block's opening on the Ethereum executor one transaction at a time, each observed by a
/// [`ChainProbe`] before it is committed, until the probe's verdict is certain. Both ways into
/// the engine probe this way: the engine's own entry point (`execute.rs`) and the drop-in
/// (`ParallelBlockExecutor::start`).
pub(crate) fn probe_opening<'a, DB, I, Spec, R>(
    eth: &mut EthBlockExecutor<'a, EthEvm<DB, I, PrecompilesMap>, &'a Spec, &'a R>,
    opening: impl IntoIterator<Item = impl ExecutableTxParts<TxEnv, R::Transaction>>,
    record_touched: bool,
) -> Result<Opening, BlockExecutionError>
where
    DB: StateDB,
    I: Inspector<EthEvmContext<DB>>,
    R: ReceiptBuilder<Transaction: Transaction + Encodable2718, Receipt: TxReceipt<Log = Log>>,
    TxEnv: FromRecoveredTx<R::Transaction> + FromTxWithEncoded<R::Transaction>,
    TxTypeOf<R>: Send + 'static,
    Spec: EthExecutorSpec,
{
    let mut probe = ChainProbe::new(eth.evm().block().beneficiary);
    let mut touched = OwnerChanges::default();
    let mut opening = opening.into_iter();
    while probe.verdict().is_none()
        && let Some(tx) = opening.next()
    {
        let (env, recovered) = tx.into_parts();
        let result = eth.execute_transaction_without_commit((env.clone(), recovered))?;
        // What each account held before the transaction, as its execution loaded it: the
        // executor's database need not be a `State` whose cache the probe could look into.
        let state = &result.result.state;
        let before: HashMap<Address, AccountInfo> = state
            .iter()
            .filter(|(_, account)| !account.is_loaded_as_not_existing())
            .map(|(address, account)| (*address, account.original_info()))
            .collect();
        probe.observe(&env, state, |address| before.get(address));
        if record_touched {
            for (address, account) in state {
                touched.infos.insert(*address);
                if account.is_created() || account.is_selfdestructed() {
                    touched.accounts.insert(*address);
                }
                touched.slots.extend(account.storage.keys().map(|slot| (*address, *slot)));
            }
        }
        eth.commit_transaction(result);
    }
    let receipts = eth.receipts();
    let prefix = Prefix {
        txs: probe.observed(),
        gas_used: receipts.last().map_or(0, |r| r.cumulative_gas_used()),
        logs: receipts.iter().map(|r| r.logs().len()).sum(),
    };
    Ok(Opening { prefix, chain: probe.verdict() == Some(true), touched })
}

/// How many of a block's first transactions the drop-in holds back for a chain probe: those
/// `ChainProbe::wanted` looks at, with the chain rule on; none otherwise.
fn probed_opening(engine: &Engine, capacity: usize) -> usize {
    if engine.config().chain_rule.is_some() { ChainProbe::opening(capacity) } else { 0 }
}

fn failed() -> BlockExecutionError {
    BlockExecutionError::msg("parevm: the block already failed")
}

/// The engine's error as the Ethereum executor reports the same failure; `tx_hash` names a
/// transaction by index.
pub fn block_error(error: BlockError, tx_hash: impl Fn(TxIndex) -> B256) -> BlockExecutionError {
    match error {
        BlockError::GasLimitExceeded { transaction_gas_limit, block_available_gas, .. } => {
            BlockValidationError::TransactionGasLimitMoreThanAvailableBlockGas {
                transaction_gas_limit,
                block_available_gas,
            }
            .into()
        }
        BlockError::Evm { tx, error } => BlockExecutionError::evm(error, tx_hash(tx)),
        other => BlockExecutionError::other(other),
    }
}

/// [`block_error`], except that a transaction the caller's EVM re-executed at its turn fails with
/// the very error that EVM returned.
fn session_error<T>(
    error: BlockError,
    txs: &[TxMeta<T>],
    mut exact_errors: Vec<(TxIndex, BlockExecutionError)>,
) -> BlockExecutionError {
    if let BlockError::Evm { tx, .. } = &error
        && let Some(at) = exact_errors.iter().position(|(at, _)| at == tx)
    {
        return exact_errors.swap_remove(at).1;
    }
    block_error(error, |tx| txs[tx].hash)
}

impl<'a, DB, I, Spec, R> BlockExecutor for ParallelBlockExecutor<'a, DB, I, Spec, R>
where
    DB: StateDB,
    I: Inspector<EthEvmContext<DB>>,
    R: ReceiptBuilder<Transaction: Transaction + Encodable2718 + Clone, Receipt: TxReceipt<Log = Log>>,
    TxEnv: FromRecoveredTx<R::Transaction> + FromTxWithEncoded<R::Transaction>,
    TxTypeOf<R>: Send + 'static,
    Spec: EthExecutorSpec,
{
    type Transaction = R::Transaction;
    type Receipt = R::Receipt;
    type Evm = EthEvm<DB, I, PrecompilesMap>;
    type Result = EthTxResult<HaltReason, TxTypeOf<R>>;

    fn apply_pre_execution_changes(&mut self) -> Result<(), BlockExecutionError> {
        self.eth.apply_pre_execution_changes()
    }

    fn execute_transaction(&mut self, tx: impl ExecutableTx<Self>) -> Result<GasOutput, BlockExecutionError> {
        let (env, recovered) = tx.into_parts();
        if let Mode::Pending { engine, capacity, held, .. } = &mut self.mode {
            let opening = probed_opening(engine, *capacity);
            if opening == 0 {
                // Nothing to judge: the session starts with this transaction.
                self.start()?;
            } else {
                // Held until the opening is in (see `start`), then executed in order.
                held.push((env, Recovered::new_unchecked(recovered.tx().clone(), *recovered.signer())));
                if held.len() >= opening {
                    self.start()?;
                }
                return Ok(GasOutput::default());
            }
        }
        self.execute_parts(env, recovered)
    }

    fn execute_transaction_without_commit(
        &mut self,
        tx: impl ExecutableTx<Self>,
    ) -> Result<Self::Result, BlockExecutionError> {
        self.flush()?;
        self.eth.execute_transaction_without_commit(tx)
    }

    fn commit_transaction(&mut self, output: Self::Result) -> GasOutput {
        // Only reachable after `execute_transaction_without_commit`, which flushed.
        debug_assert!(!matches!(self.mode, Mode::Parallel(_)));
        self.eth.commit_transaction(output)
    }

    fn finish(self) -> Result<(Self::Evm, BlockExecutionResult<Self::Receipt>), BlockExecutionError> {
        self.finish_with_stats().map(|(evm, result, _)| (evm, result))
    }

    fn evm_mut(&mut self) -> &mut Self::Evm {
        self.eth.evm_mut()
    }

    fn evm(&self) -> &Self::Evm {
        self.eth.evm()
    }

    fn receipts(&self) -> &[Self::Receipt] {
        self.eth.receipts()
    }
}
