//! The node's EVM configuration: reth's `EthEvmConfig` with parevm's block executor factory.
//!
//! [`ParevmEvmConfig`] delegates everything to the wrapped `EthEvmConfig` (EVM environments,
//! execution contexts, the block assembler, payload decoding) and only swaps the
//! `BlockExecutorFactory` for parevm's `ParallelBlockExecutorFactory`, which has the same
//! `EvmFactory`, `ExecutionCtx<'a>`, `Transaction`, `Receipt` and `TxExecutionResult`. Every
//! reth component that executes whole blocks through the config (engine payload validation, the
//! pipeline's execution stage, `debug_executionWitness`, invalid-block hooks) therefore gets
//! parevm's executor.
//!
//! Payload building gets [`ParevmEvmConfig::sequential`], through [`SequentialPayloadBuilder`]:
//! the builder executes candidate transactions one at a time, decides on each one from its
//! `GasOutput` and result, and may leave transactions out, which a parallel block run cannot
//! answer.

use std::sync::Arc;

use parevm::ParallelBlockExecutorFactory;
use parevm_dispatcher::Engine;
use reth_ethereum::{
    Block, EthPrimitives,
    chainspec::ChainSpec,
    evm::{
        EthBlockAssembler, EthEvmConfig, RethReceiptBuilder,
        primitives::{EvmEnvFor, ExecutionCtxFor, NextBlockEnvAttributes},
    },
    node::{
        api::{ConfigureEngineEvm, ConfigureEvm, ExecutableTxIterator, FullNodeTypes, NodeTypes},
        builder::{
            BuilderContext,
            components::{ExecutorBuilder, PayloadBuilderBuilder},
        },
        payload::EthereumPayloadBuilder,
    },
    primitives::{Header, SealedBlock, SealedHeader},
    rpc::types::engine::ExecutionData,
};
use reth_transaction_pool::TransactionPool;

/// parevm's factory over exactly the `EthBlockExecutorFactory` type `EthEvmConfig` holds.
pub type ParevmFactory = ParallelBlockExecutorFactory<RethReceiptBuilder, Arc<ChainSpec>>;

/// `EthEvmConfig` whose block executor factory is parevm's.
#[derive(Debug, Clone)]
pub struct ParevmEvmConfig {
    /// reth's Ethereum configuration; everything but block execution is delegated to it.
    inner: EthEvmConfig,
    /// parevm's factory, built from `inner.executor_factory`.
    factory: ParevmFactory,
}

impl ParevmEvmConfig {
    /// Wraps `inner`; blocks are executed on `engine`.
    pub fn new(inner: EthEvmConfig, engine: Arc<Engine>) -> Self {
        let factory = ParallelBlockExecutorFactory::from_eth(inner.executor_factory.clone(), Some(engine));
        Self { inner, factory }
    }

    /// The same configuration with a factory that always executes sequentially (alloy-evm's
    /// `EthBlockExecutor` behaviour, transaction by transaction).
    pub fn sequential(&self) -> Self {
        Self { inner: self.inner.clone(), factory: self.factory.sequential() }
    }
}

impl ConfigureEvm for ParevmEvmConfig {
    type Primitives = <EthEvmConfig as ConfigureEvm>::Primitives;
    type Error = <EthEvmConfig as ConfigureEvm>::Error;
    type NextBlockEnvCtx = <EthEvmConfig as ConfigureEvm>::NextBlockEnvCtx;
    type BlockExecutorFactory = ParevmFactory;
    type BlockAssembler = EthBlockAssembler<ChainSpec>;

    fn block_executor_factory(&self) -> &Self::BlockExecutorFactory {
        &self.factory
    }

    fn block_assembler(&self) -> &Self::BlockAssembler {
        self.inner.block_assembler()
    }

    fn evm_env(&self, header: &Header) -> Result<EvmEnvFor<Self>, Self::Error> {
        self.inner.evm_env(header)
    }

    fn next_evm_env(
        &self,
        parent: &Header,
        attributes: &NextBlockEnvAttributes,
    ) -> Result<EvmEnvFor<Self>, Self::Error> {
        self.inner.next_evm_env(parent, attributes)
    }

    fn context_for_block<'a>(&self, block: &'a SealedBlock<Block>) -> Result<ExecutionCtxFor<'a, Self>, Self::Error> {
        self.inner.context_for_block(block)
    }

    fn context_for_next_block(
        &self,
        parent: &SealedHeader,
        attributes: Self::NextBlockEnvCtx,
    ) -> Result<ExecutionCtxFor<'_, Self>, Self::Error> {
        self.inner.context_for_next_block(parent, attributes)
    }
}

/// The engine API validates `engine_newPayload` payloads through this trait; reth's own
/// wrappers delegate it the same way (examples/custom-beacon-withdrawals).
impl ConfigureEngineEvm<ExecutionData> for ParevmEvmConfig {
    fn evm_env_for_payload(&self, payload: &ExecutionData) -> Result<EvmEnvFor<Self>, Self::Error> {
        self.inner.evm_env_for_payload(payload)
    }

    fn context_for_payload<'a>(&self, payload: &'a ExecutionData) -> Result<ExecutionCtxFor<'a, Self>, Self::Error> {
        self.inner.context_for_payload(payload)
    }

    fn tx_iterator_for_payload(&self, payload: &ExecutionData) -> Result<impl ExecutableTxIterator<Self>, Self::Error> {
        self.inner.tx_iterator_for_payload(payload)
    }
}

/// Builds the node's [`ParevmEvmConfig`] (replaces `EthereumExecutorBuilder`).
///
/// The inner config is `EthEvmConfig::new(chain_spec)`, as reth's own executor-builder examples
/// build it. reth's `EthereumExecutorBuilder` may attach optional extras to its config (the
/// `--engine.sender-recovery-cache` cache, JIT support); those are not carried over here.
#[derive(Debug, Clone)]
pub struct ParevmExecutorBuilder {
    engine: Arc<Engine>,
}

impl ParevmExecutorBuilder {
    /// Blocks will be executed on `engine`.
    pub const fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

impl<Types, Node> ExecutorBuilder<Node> for ParevmExecutorBuilder
where
    Types: NodeTypes<ChainSpec = ChainSpec, Primitives = EthPrimitives>,
    Node: FullNodeTypes<Types = Types>,
{
    type EVM = ParevmEvmConfig;

    async fn build_evm(self, ctx: &BuilderContext<Node>) -> eyre::Result<Self::EVM> {
        Ok(ParevmEvmConfig::new(EthEvmConfig::new(ctx.chain_spec()), self.engine))
    }
}

/// reth's Ethereum payload builder, handed the sequential copy of the node's config.
///
/// reth gives the payload builder the same `ConfigureEvm` as the rest of the node; block
/// building calls `BlockBuilder::execute_transaction` per candidate and uses the returned
/// `GasOutput` (cumulative gas, fees) and per-transaction errors (skip invalid transactions),
/// so it must not go through the parallel path.
#[derive(Debug, Clone, Default)]
pub struct SequentialPayloadBuilder {
    inner: EthereumPayloadBuilder,
}

impl<Node, Pool> PayloadBuilderBuilder<Node, Pool, ParevmEvmConfig> for SequentialPayloadBuilder
where
    Node: FullNodeTypes,
    Pool: TransactionPool,
    EthereumPayloadBuilder: PayloadBuilderBuilder<Node, Pool, ParevmEvmConfig>,
{
    type PayloadBuilder =
        <EthereumPayloadBuilder as PayloadBuilderBuilder<Node, Pool, ParevmEvmConfig>>::PayloadBuilder;

    async fn build_payload_builder(
        self,
        ctx: &BuilderContext<Node>,
        pool: Pool,
        evm_config: ParevmEvmConfig,
    ) -> eyre::Result<Self::PayloadBuilder> {
        self.inner.build_payload_builder(ctx, pool, evm_config.sequential()).await
    }
}
