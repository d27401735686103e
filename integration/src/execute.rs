//! The two executors behind one interface, both driven the way reth drives a block executor.
//!
//! Sequential: alloy-evm's `EthBlockExecutor` over revm's `State` with bundle updates:
//! `apply_pre_execution_changes`, `execute_transaction` per transaction, `finish`. This is the
//! reference every parallel run is compared with and the baseline every benchmark divides by.
//!
//! Drop-in: [`ParallelBlockExecutorFactory`] in place of the Ethereum factory, driven exactly like
//! the sequential one; the engine then reads the block's state only through the caller's
//! `State`, as it must inside reth.
//!
//! Parallel: the engine's own entry point, for a database the slots can share. The Ethereum
//! executor runs the pre-block system calls; the engine executes and merges
//! the transactions, and each confirmed result is committed, in order and as soon as it is
//! confirmed, through the executor's own `commit_transaction` (receipt, gas, blob gas, state
//! commit); `finish` runs the post-block steps. Only the transactions' execution differs, so any
//! difference in output is the engine's. A failing block leaves the `State` exactly as the
//! sequential executor leaves it: holding the transactions before the failing one, the database
//! under it untouched.

use alloy_consensus::{Transaction, TxEnvelope, TxType, transaction::Recovered};
use alloy_evm::{
    Evm, EvmFactory,
    block::{BlockExecutionError, BlockExecutionResult, BlockExecutor, BlockExecutorFactory},
    eth::{EthBlockExecutorFactory, EthEvmFactory, EthTxResult},
};
use std::sync::Arc;

use parevm_dispatcher::{
    BlockStats, Caller, ChainProbe, Engine, Executed, MergedTx, ParallelBlock, Prefix, SeedAccount,
};
use parevm_statedb::{BlockDb, BlockTxs, ExecOutcome, ParentState, TxIndex};
use revm::{
    context::{
        TxEnv,
        result::{EVMError, HaltReason, ResultAndState},
    },
    database::{BundleState, State, states::bundle_state::BundleRetention},
    database_interface::DBErrorMarker,
};

use crate::{
    BlockInput, ChainSpec, ParallelBlockExecutorFactory, Receipt, RethReceiptBuilder,
    factory::{OneParentState, block_error, engine_error, probe_opening},
};

/// What executing a block produced.
#[derive(Debug, Clone)]
pub struct BlockOutput {
    /// Receipts, gas used, blob gas used, requests.
    pub result: BlockExecutionResult<Receipt>,
    /// The block's state changes (with reverts), as reth would write them.
    pub bundle: BundleState,
    /// Engine counters (parallel only).
    pub stats: Option<BlockStats>,
}

/// Sequential or parallel execution.
#[derive(Debug)]
pub enum Executor {
    /// alloy-evm's Ethereum block executor, one transaction at a time.
    Sequential,
    /// The parallel engine.
    Parallel(Engine),
    /// The parallel engine behind the drop-in: [`ParallelBlockExecutorFactory`], driven the way
    /// reth drives it, with the database owned by the calling thread.
    DropIn(Arc<Engine>),
}

impl Executor {
    /// A short name for reports: `sequential` or `parallel(N)`.
    pub fn name(&self) -> String {
        match self {
            Self::Sequential => "sequential".into(),
            Self::Parallel(engine) => format!("parallel({})", engine.config().slots),
            Self::DropIn(engine) => format!("parallel({}, drop-in)", engine.config().slots),
        }
    }

    /// The engine, unless sequential.
    pub fn engine(&self) -> Option<&Engine> {
        match self {
            Self::Sequential => None,
            Self::Parallel(engine) => Some(engine),
            Self::DropIn(engine) => Some(engine),
        }
    }

    /// Executes `block` on `db` (the state before the block).
    pub fn execute<D>(&self, chain: &ChainSpec, block: &BlockInput, db: &D) -> Result<BlockOutput, BlockExecutionError>
    where
        D: BlockDb + std::fmt::Debug,
        D::Error: DBErrorMarker,
    {
        self.execute_with_parent(chain, block, db, None)
    }

    /// [`Executor::execute`], the drop-in given `parent`, a shareable view of `db`, as the
    /// block's parent state (`ParallelBlockExecutorFactory::with_parent_states`, what reth could
    /// give it). The other executors ignore it.
    pub fn execute_with_parent<D>(
        &self,
        chain: &ChainSpec,
        block: &BlockInput,
        db: &D,
        parent: Option<&ParentState>,
    ) -> Result<BlockOutput, BlockExecutionError>
    where
        D: BlockDb + std::fmt::Debug,
        D::Error: DBErrorMarker,
    {
        // The engine's threads wake while this one builds the state and runs the pre-block
        // calls (`Engine::wake_ahead`): asleep since the last block, they take 100 µs and more.
        let awake = match self {
            Self::Parallel(engine)
                if block.txs.len() >= engine.config().sequential_below_txs
                    && !engine.would_hand_back(block, block.header.beneficiary) =>
            {
                Some(engine.wake_ahead())
            }
            _ => None,
        };
        let mut state = State::builder().with_database_ref(db).with_bundle_update().build();
        let env = block.evm_env(chain);
        let evm = EthEvmFactory::default().create_evm(&mut state, env.clone());
        let (result, stats) = match self {
            Self::DropIn(engine) => {
                let mut factory = ParallelBlockExecutorFactory::new(RethReceiptBuilder, chain.clone(), engine.clone());
                let ctx = block.execution_ctx();
                if let Some(state) = parent {
                    let parent = OneParentState { parent_hash: ctx.parent_hash, state: state.clone() };
                    factory = factory.with_parent_states(Arc::new(parent));
                }
                let mut executor = factory.create_executor(evm, ctx);
                executor.apply_pre_execution_changes()?;
                for tx in &block.txs {
                    executor.execute_transaction(tx)?;
                }
                let (_, result, stats) = executor.finish_with_stats()?;
                (result, stats)
            }
            Self::Sequential | Self::Parallel(_) => {
                let factory = EthBlockExecutorFactory::new(RethReceiptBuilder, chain.clone(), EthEvmFactory::default());
                let mut executor = factory.create_executor(evm, block.execution_ctx());
                executor.apply_pre_execution_changes()?;
                let mut stats = None;
                // The engine, unless this executor is sequential, has a single slot (nothing
                // to run beside the merger's thread), or the block is under its small-block rule.
                let engine = match self {
                    Self::Parallel(engine)
                        if engine.config().worker_slots() > 0
                            && block.txs.len() >= engine.config().sequential_below_txs =>
                    {
                        Some(engine)
                    }
                    _ => None,
                };
                match engine {
                    None => {
                        for tx in &block.txs {
                            executor.execute_transaction(tx)?;
                        }
                    }
                    Some(engine) => 'engine: {
                        // A block that opens with calls to one contract is probed first: the
                        // executor runs its first transactions as it would anyway, and a chain
                        // never reaches the engine (`ChainProbe`).
                        let mut prefix = Prefix::default();
                        if engine.config().chain_rule.is_some() && ChainProbe::wanted(block) {
                            let opening = probe_opening(&mut executor, &block.txs, false)?;
                            prefix = opening.prefix;
                            if opening.chain {
                                drop(awake);
                                for tx in &block.txs[prefix.txs..] {
                                    executor.execute_transaction(tx)?;
                                }
                                stats = Some(engine.handed_back(block.txs.len()));
                                break 'engine;
                            }
                        }
                        let input = ParallelBlock {
                            db,
                            seed: seed_from_state(executor.evm().db()),
                            prefix,
                            block: env.block_env,
                            cfg: env.cfg_env,
                            txs: BlockTxs::from_source(block),
                        };
                        let outcome =
                            engine.execute(input, &mut EthCaller { executor: &mut executor, txs: &block.txs });
                        let outcome = outcome.map_err(|e| block_error(e, |tx| *block.txs[tx].inner().tx_hash()))?;
                        let outcome = match outcome {
                            Executed::Complete(stats) => stats,
                            // A rule handed the rest of the block back.
                            Executed::HandedBack { from, stats } => {
                                for tx in &block.txs[from..] {
                                    executor.execute_transaction(tx)?;
                                }
                                stats
                            }
                        };
                        stats = Some(outcome);
                    }
                }
                (executor.finish()?.1, stats)
            }
        };
        state.merge_transitions(BundleRetention::Reverts);
        Ok(BlockOutput { result, bundle: state.take_bundle(), stats })
    }
}

/// The engine's caller in the batch path: the Ethereum executor. Each confirmed transaction is
/// committed through its own `commit_transaction` (receipt, gas, blob gas, `State` commit) while
/// the slots keep executing later ones, and a transaction's execution at its turn runs on its
/// EVM, over the `State` that holds every predecessor.
struct EthCaller<'x, X> {
    executor: &'x mut X,
    txs: &'x [Recovered<TxEnvelope>],
}

impl<X, E> Caller for EthCaller<'_, X>
where
    X: BlockExecutor<Result = EthTxResult<HaltReason, TxType>>,
    X::Evm: Evm<Tx = TxEnv, HaltReason = HaltReason, Error = EVMError<E>>,
    E: std::fmt::Display,
{
    fn commit(&mut self, merged: MergedTx) {
        let tx = &self.txs[merged.index];
        self.executor.commit_transaction(EthTxResult {
            result: ResultAndState { result: merged.result, state: merged.state },
            blob_gas_used: tx.blob_gas_used().unwrap_or_default(),
            tx_type: tx.tx_type(),
        });
    }

    fn execute_exact(&mut self, tx: TxIndex) -> Option<ExecOutcome> {
        Some(match self.executor.evm_mut().transact(&self.txs[tx]) {
            Ok(ResultAndState { result, state }) => ExecOutcome::Executed { result, state, deferred_reward: None },
            Err(error) => ExecOutcome::Invalid(engine_error(&error)),
        })
    }
}

/// What the pre-block system calls left in the `State`'s cache, for the engine's base state.
fn seed_from_state<DB>(state: &State<DB>) -> Vec<SeedAccount> {
    state
        .cache
        .accounts
        .iter()
        .map(|(address, account)| SeedAccount {
            address: *address,
            info: account.account.as_ref().map(|a| a.info.clone()),
            storage_known: account.status.is_storage_known(),
            storage: account
                .account
                .as_ref()
                .map(|a| a.storage.iter().map(|(k, v)| (*k, *v)).collect())
                .unwrap_or_default(),
        })
        .collect()
}
