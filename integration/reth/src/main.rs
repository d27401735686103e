//! `parevm-reth`: reth v2.5.1's Ethereum node with parevm's parallel block executor.
//!
//! ```sh
//! parevm-reth node --parallel --parallel.slots 4 ...   # blocks executed by parevm
//! parevm-reth node --parallel.verify ...               # stock node, parevm checked against it
//! ```
//!
//! Without `--parallel` (and without `parallel = true` in `--parallel.config`) the node is
//! `EthereumNode::default()`, exactly what the `reth` binary runs. With it, the node's executor
//! component is [`evm::ParevmExecutorBuilder`] and its payload builder gets the sequential copy
//! of the config ([`evm::SequentialPayloadBuilder`]). `--parallel.verify` adds the
//! [`verify`] ExEx. See `docs/reth.md`.

mod evm;
mod verify;

use std::sync::Arc;

use clap::Parser;
use eyre::WrapErr;
use parevm::node_args::{ParevmArgs, Settings};
use parevm_dispatcher::Engine;
use reth_ethereum::{
    cli::{Cli, chainspec::EthereumChainSpecParser},
    evm::EthEvmConfig,
    node::{EthereumAddOns, EthereumNode, builder::components::BasicPayloadServiceBuilder},
};
use tracing::{info, warn};

use crate::evm::{ParevmEvmConfig, ParevmExecutorBuilder, SequentialPayloadBuilder};

fn main() -> eyre::Result<()> {
    Cli::<EthereumChainSpecParser, ParevmArgs>::parse().run(async move |builder, args| {
        let settings = Settings::resolve(&args)?;
        if settings.unused_engine_flags(&args) {
            warn!(target: "parevm", "--parallel.* engine flags given without --parallel or --parallel.verify: ignored");
        }

        // The verifying ExEx gets an engine of its own: the node's engine may be executing a
        // block at the same moment, and the two must not wait on each other's worker threads.
        let verify_config = if settings.verify {
            let engine = Engine::new(settings.engine.clone()).wrap_err("starting the parevm-verify engine")?;
            Some(ParevmEvmConfig::new(EthEvmConfig::new(builder.config().chain.clone()), Arc::new(engine)))
        } else {
            None
        };

        if settings.parallel {
            let engine = Arc::new(Engine::new(settings.engine.clone()).wrap_err("starting the parevm engine")?);
            info!(
                target: "parevm",
                slots = settings.engine.slots,
                shadows = engine.config().shadows,
                steal = settings.engine.steal,
                verify = settings.verify,
                "executing blocks with parevm's parallel engine"
            );
            let handle = builder
                .with_types::<EthereumNode>()
                .with_components(
                    EthereumNode::components()
                        .executor(ParevmExecutorBuilder::new(engine))
                        .payload(BasicPayloadServiceBuilder::new(SequentialPayloadBuilder::default())),
                )
                .with_add_ons(EthereumAddOns::default())
                .install_exex_if(settings.verify, verify::EXEX_ID, move |ctx| verify::start(ctx, verify_config))
                .launch_with_debug_capabilities()
                .await?;
            handle.wait_for_node_exit().await
        } else {
            let handle = builder
                .node(EthereumNode::default())
                .install_exex_if(settings.verify, verify::EXEX_ID, move |ctx| verify::start(ctx, verify_config))
                .launch_with_debug_capabilities()
                .await?;
            handle.wait_for_node_exit().await
        }
    })
}
