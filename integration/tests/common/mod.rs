//! Shared by the integration tests: engines (built once, like a node does) and comparisons.

#![allow(dead_code)]

use std::{path::PathBuf, sync::OnceLock};

use parevm::{BlockInput, ChainSpec, Executor, replay::compare_outputs};
use parevm_dispatcher::{Engine, EngineConfig};
use parevm_statedb::{InMemoryDb, ParentState, SharedParent};

/// The mainnet blocks folder.
pub fn mainnet_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/mainnet"))
}

/// The engine configuration of the equivalence tests: the default at `slots` slots, except that
/// the cheap-block rule is off. Their blocks are often plain transfers, which the rule hands to
/// the sequential executor, and these tests are there to compare the engine with it.
pub fn config(slots: usize) -> EngineConfig {
    EngineConfig { sequential_below_gas: 0, ..EngineConfig::with_slots(slots).unwrap() }
}

/// An engine with `slots` slots (`config`), with its shadows: see [`engine_with`].
pub fn engine(slots: usize) -> Engine {
    engine_with(config(slots))
}

/// An engine started as on a machine with a core for each of its shadows beyond the slots', so
/// that it has them on the 2-core machines the tests run on too, where `Engine::new` starts none
/// (and, as there, no validation pool).
pub fn engine_with(config: EngineConfig) -> Engine {
    let cores = 2 * config.slots.max(1) - 1;
    Engine::with_cores(config, cores).unwrap()
}

/// A parallel executor with `slots` slots (1..=8), shared by all tests of the binary.
pub fn parallel(slots: usize) -> &'static Executor {
    static ENGINES: OnceLock<Vec<Executor>> = OnceLock::new();
    let engines = ENGINES.get_or_init(|| (1..=8).map(|n| Executor::Parallel(engine(n))).collect());
    &engines[slots - 1]
}

/// The drop-in executor (the alloy-evm factory, driven as reth drives it) with `slots` slots
/// (1..=8), shared by all tests of the binary.
pub fn drop_in(slots: usize) -> &'static Executor {
    static ENGINES: OnceLock<Vec<Executor>> = OnceLock::new();
    let engines = ENGINES.get_or_init(|| (1..=8).map(|n| Executor::DropIn(engine(n).into())).collect());
    &engines[slots - 1]
}

/// A drop-in executor with an engine of its own. The shared ones run sequentially while another
/// test holds their engine (that is the drop-in's rule); a test that checks the engine's counters
/// needs an engine nobody else uses.
pub fn own_drop_in(slots: usize) -> Executor {
    Executor::DropIn(engine(slots).into())
}

/// Every engine configuration the equivalence tests run: the engine's own entry point at 2, 3, 4
/// and 8 slots, and the drop-in at 2, 3 and 8 (at 1 slot both are the sequential executor).
pub fn engines() -> impl Iterator<Item = &'static Executor> {
    [2, 3, 4, 8].into_iter().map(parallel).chain([2, 3, 8].into_iter().map(drop_in))
}

/// Runs `block` sequentially and with `executor`; returns a description of every difference
/// (results, state changes, or errors), empty if they agree.
pub fn differences(chain: &ChainSpec, block: &BlockInput, db: &InMemoryDb, executor: &Executor) -> Vec<String> {
    differences_with(chain, block, db, executor, None)
}

/// A view of `db` that the drop-in's slots may share, as its parent state.
pub fn parent_of(db: &InMemoryDb) -> ParentState {
    SharedParent::view(db.clone())
}

/// [`differences`], the drop-in given `parent` as the block's parent state.
pub fn differences_with(
    chain: &ChainSpec,
    block: &BlockInput,
    db: &InMemoryDb,
    executor: &Executor,
    parent: Option<&ParentState>,
) -> Vec<String> {
    let sequential = Executor::Sequential.execute(chain, block, db);
    let parallel = executor.execute_with_parent(chain, block, db, parent);
    match (sequential, parallel) {
        (Ok(s), Ok(p)) => compare_outputs(&s, &p),
        (Err(s), Err(p)) if s.to_string() == p.to_string() => Vec::new(),
        (Err(s), Err(p)) => vec![format!("different errors: sequential `{s}`, parallel `{p}`")],
        (Err(s), Ok(_)) => vec![format!("sequential failed (`{s}`), parallel succeeded")],
        (Ok(_), Err(p)) => vec![format!("parallel failed (`{p}`), sequential succeeded")],
    }
}
