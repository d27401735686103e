//! The `parevm-verify` ExEx: re-executes every committed chain with the parallel engine and
//! compares the result with what the node committed.
//!
//! For each `ChainCommitted` / `ChainReorged` notification: take the state of the committed
//! chain's parent block (`state_by_block_hash`, which also serves blocks that are still only in
//! memory), execute the chain's blocks on it one after the other with the verifying
//! [`ParevmEvmConfig`] (reth's `BasicBlockExecutor`, so exactly the calls the node makes), and
//! compare per block gas used, blob gas used, requests hash and every receipt, and for the chain
//! the net state changes with the notification's `ExecutionOutcome`. The work runs on a blocking
//! thread; `FinishedHeight` is sent once the chain has been checked.
//!
//! What the node committed came from the node's own executor: the stock sequential one without
//! `--parallel` (then this is a check of parevm against reth), parevm with it (then this only
//! catches non-determinism, since the node already checked its result against the header).

use std::{future::Future, sync::Arc};

use eyre::WrapErr;
use futures::TryStreamExt;
use reth_ethereum::{
    EthPrimitives, Receipt,
    evm::{
        primitives::{ConfigureEvm, execute::Executor},
        revm::database::StateProviderDatabase,
    },
    exex::{ExExContext, ExExEvent},
    node::api::{FullNodeComponents, FullNodeTypes, NodeTypes},
    provider::Chain,
    storage::StateProviderFactory,
};
use tracing::{info, warn};

use parevm::verify::{self as compare, Diff, ReceiptView};

use crate::evm::ParevmEvmConfig;

/// The ExEx's id in reth's ExEx manager (and in its logs and metrics).
pub const EXEX_ID: &str = "parevm-verify";

/// The outcome of checking one committed chain.
#[derive(Debug, Default)]
struct ChainReport {
    /// Blocks re-executed.
    blocks: u64,
    /// One entry per block that differs (its first differing field), plus one for the chain's
    /// state changes.
    mismatches: Vec<(u64, Diff)>,
}

/// `install_exex` entry point: checks the configuration and returns the ExEx's future.
pub async fn start<Node>(
    ctx: ExExContext<Node>,
    config: Option<ParevmEvmConfig>,
) -> eyre::Result<impl Future<Output = eyre::Result<()>> + Send>
where
    Node: FullNodeComponents<Types: NodeTypes<Primitives = EthPrimitives>>,
    <Node as FullNodeTypes>::Provider: Clone + Send + Sync + 'static,
{
    let config = config.ok_or_else(|| eyre::eyre!("{EXEX_ID} installed without an engine"))?;
    info!(target: "parevm::verify", "re-executing every committed block with the parallel engine");
    Ok(run(ctx, config))
}

async fn run<Node>(mut ctx: ExExContext<Node>, config: ParevmEvmConfig) -> eyre::Result<()>
where
    Node: FullNodeComponents<Types: NodeTypes<Primitives = EthPrimitives>>,
    <Node as FullNodeTypes>::Provider: Clone + Send + Sync + 'static,
{
    while let Some(notification) = ctx.notifications.try_next().await? {
        let Some(chain) = notification.committed_chain() else { continue };

        let provider = ctx.provider().clone();
        let verifier = config.clone();
        let to_check = Arc::clone(&chain);
        let checked = tokio::task::spawn_blocking(move || check_chain(&provider, &verifier, &to_check))
            .await
            .wrap_err("the parevm-verify task panicked")?;

        match checked {
            Ok(report) => record(&report),
            Err(error) => {
                // Not a mismatch: the chain could not be re-executed at all (state unavailable…).
                metrics::counter!("parevm_verify_errors_total").increment(1);
                warn!(target: "parevm::verify", range = ?chain.range(), %error, "could not verify the committed chain");
            }
        }

        ctx.events.send(ExExEvent::FinishedHeight(chain.tip().num_hash()))?;
    }
    Ok(())
}

fn record(report: &ChainReport) {
    metrics::counter!("parevm_verify_blocks_total").increment(report.blocks);
    for (block, diff) in &report.mismatches {
        metrics::counter!("parevm_verify_mismatches_total").increment(1);
        warn!(
            target: "parevm::verify",
            block,
            field = %diff.field,
            expected = %diff.expected,
            got = %diff.got,
            "parevm's re-execution differs from the block the node committed"
        );
    }
}

/// Re-executes `chain` on its parent's state and compares it with what the node committed.
fn check_chain<P>(provider: &P, config: &ParevmEvmConfig, chain: &Chain<EthPrimitives>) -> eyre::Result<ChainReport>
where
    P: StateProviderFactory,
{
    let parent = chain.first().header().parent_hash;
    let state = provider.state_by_block_hash(parent).wrap_err_with(|| format!("state of parent block {parent}"))?;
    let mut executor = config.batch_executor(StateProviderDatabase::new(state));
    let expected = chain.execution_outcome();

    let mut report = ChainReport::default();
    for block in chain.blocks_iter() {
        let header = block.header();
        report.blocks += 1;
        match executor.execute_one(block) {
            Ok(result) => {
                let diff = compare_receipts(&result.receipts, expected.receipts_by_block(header.number))
                    .or_else(|| scalar("gas_used", header.gas_used, result.gas_used))
                    .or_else(|| header.blob_gas_used.and_then(|e| scalar("blob_gas_used", e, result.blob_gas_used)))
                    .or_else(|| {
                        header.requests_hash.and_then(|e| scalar("requests_hash", e, result.requests.requests_hash()))
                    });
                if let Some(diff) = diff {
                    report.mismatches.push((header.number, diff));
                }
            }
            Err(error) => {
                // The node executed this block and parevm fails it: a mismatch. The executor's
                // state is no longer the node's, so the rest of the chain is not checked.
                let diff = Diff { field: "execution".into(), expected: "success".into(), got: error.to_string() };
                report.mismatches.push((header.number, diff));
                return Ok(report);
            }
        }
    }

    let bundle = executor.into_state().take_bundle();
    if let Some(diff) = compare::bundles(&expected.bundle, &bundle) {
        report.mismatches.push((chain.tip().header().number, diff));
    }
    Ok(report)
}

/// Receipts of one block: parevm's against the node's.
fn compare_receipts(got: &[Receipt], expected: &[Receipt]) -> Option<Diff> {
    let expected: Vec<_> = expected.iter().map(view).collect();
    let got: Vec<_> = got.iter().map(view).collect();
    compare::receipts(&expected, &got)
}

fn view(receipt: &Receipt) -> ReceiptView<'_> {
    ReceiptView {
        tx_type: receipt.tx_type as u8,
        success: receipt.success,
        cumulative_gas_used: receipt.cumulative_gas_used,
        logs: &receipt.logs,
    }
}

fn scalar<T: PartialEq + std::fmt::Debug>(field: &str, expected: T, got: T) -> Option<Diff> {
    (expected != got).then(|| Diff { field: field.into(), expected: format!("{expected:?}"), got: format!("{got:?}") })
}
