//! The engine under stress: long dependency chains, a hot account, panics, invalid transactions.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use parevm::{
    Executor,
    synthetic::{Fee, SyntheticBlock, contracts},
};
use parevm_dispatcher::{Engine, EngineConfig, MAX_SLOTS};
use parevm_statedb::InMemoryDb;
use revm::{DatabaseRef, bytecode::Bytecode, state::AccountInfo};

const COUNTER: Address = Address::with_last_byte(0xc0);

fn sender(i: usize) -> Address {
    Address::left_padding_from(&(0x1000 + i as u32).to_be_bytes())
}

/// `n` transactions from `senders` distinct senders, each incrementing the same counter slot:
/// transaction i reads what i-1 wrote, so the block is one dependency chain.
fn chain_block(n: usize, senders: usize) -> SyntheticBlock {
    let mut block = SyntheticBlock::new("Cancun", 30_000_000, Address::with_last_byte(0xee));
    for i in 0..senders {
        block.fund(sender(i), U256::from(10).pow(U256::from(18)));
    }
    block.deploy(COUNTER, contracts::COUNTER, []);
    for i in 0..n {
        block.push(
            sender(i % senders),
            TxKind::Call(COUNTER),
            U256::ZERO,
            Bytes::from(B256::ZERO.0.to_vec()),
            60_000,
            Fee::Dynamic(20, 1),
            0,
        );
    }
    block
}

#[test]
fn a_dependency_chain_finishes_with_at_most_two_executions_per_tx() {
    for senders in [1, 200] {
        let synthetic = chain_block(200, senders);
        let block = synthetic.block();
        let drop_ins = [1, 2, 8].map(common::own_drop_in);
        let mut executors: Vec<&Executor> = (1..=MAX_SLOTS).map(|n| -> &Executor { common::parallel(n) }).collect();
        executors.extend(&drop_ins);
        for executor in executors {
            let slots = executor.name();
            let diffs = common::differences(&synthetic.chain, &block, &synthetic.db, executor);
            assert!(diffs.is_empty(), "{slots}, {senders} senders: {diffs:?}");
            let stats = executor.execute(&synthetic.chain, &block, &synthetic.db).unwrap().stats.unwrap();
            assert!(stats.merge.max_executions <= 2, "{slots} slots: a tx ran {} times", stats.merge.max_executions);
            assert!(stats.executions <= 2 * 200);
        }
    }
}

#[test]
fn without_shadows_or_stealing_results_are_the_same() {
    let synthetic = chain_block(120, 7);
    let block = synthetic.block();
    for (shadows, steal) in [(false, true), (true, false), (false, false)] {
        let config = EngineConfig { slots: 3, shadows, steal, ..EngineConfig::default() };
        let executor = Executor::Parallel(Engine::new(config).unwrap());
        let diffs = common::differences(&synthetic.chain, &block, &synthetic.db, &executor);
        assert!(diffs.is_empty(), "shadows {shadows} steal {steal}: {diffs:?}");
        let stats = executor.execute(&synthetic.chain, &block, &synthetic.db).unwrap().stats.unwrap();
        if !shadows {
            assert_eq!(stats.shadow_takeovers, 0);
        }
        if !steal {
            assert_eq!(stats.steals, 0);
        }
    }
}

#[test]
fn an_invalid_transaction_fails_the_block_like_sequential() {
    let mut synthetic = chain_block(10, 3);
    // A sender with no money, in the middle of the block.
    let poor = Address::with_last_byte(0x99);
    synthetic.fund(poor, U256::from(1));
    synthetic.push(poor, TxKind::Call(COUNTER), U256::ZERO, Bytes::new(), 60_000, Fee::Dynamic(20, 1), 0);
    for i in 0..5 {
        synthetic.push(sender(i % 3), TxKind::Call(COUNTER), U256::ZERO, Bytes::new(), 60_000, Fee::Dynamic(20, 1), 0);
    }
    let block = synthetic.block();
    let sequential = Executor::Sequential.execute(&synthetic.chain, &block, &synthetic.db).unwrap_err().to_string();
    assert!(sequential.contains("lack of funds"), "{sequential}");
    for executor in [1, 2, 8].map(common::parallel).into_iter().chain([1, 2, 8].map(common::drop_in)) {
        let parallel = executor.execute(&synthetic.chain, &block, &synthetic.db).unwrap_err().to_string();
        assert_eq!(parallel, sequential, "{}", executor.name());
    }
}

/// A database that panics on reads of one storage slot, `budget` times (forever if `usize::MAX`).
#[derive(Debug)]
struct PanickyDb {
    inner: InMemoryDb,
    slot: U256,
    budget: AtomicUsize,
}

impl DatabaseRef for PanickyDb {
    type Error = std::convert::Infallible;
    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        self.inner.basic_ref(address)
    }
    fn code_by_hash_ref(&self, hash: B256) -> Result<Bytecode, Self::Error> {
        self.inner.code_by_hash_ref(hash)
    }
    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        if index == self.slot
            && self.budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1)).is_ok()
        {
            panic!("injected database failure");
        }
        self.inner.storage_ref(address, index)
    }
    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        self.inner.block_hash_ref(number)
    }
}

#[test]
fn a_panic_fails_the_block_cleanly_and_the_engine_keeps_working() {
    let synthetic = chain_block(40, 5);
    let block = synthetic.block();
    let executor = common::parallel(4);
    let db = PanickyDb { inner: synthetic.db.clone(), slot: U256::ZERO, budget: AtomicUsize::new(usize::MAX) };
    let error = executor.execute(&synthetic.chain, &block, &db).unwrap_err().to_string();
    assert!(error.contains("panicked") && error.contains("injected database failure"), "{error}");

    // The same threads run the next block correctly.
    let diffs = common::differences(&synthetic.chain, &block, &synthetic.db, executor);
    assert!(diffs.is_empty(), "{diffs:?}");
}

/// Through the drop-in the database belongs to the caller, and the caller's thread answers every
/// read the slots miss: a panicking database panics on the caller's thread, exactly as it does
/// under the sequential executor, and the engine's workers are released, not left waiting.
#[test]
fn a_panicking_database_under_the_drop_in_panics_like_sequential_and_frees_the_engine() {
    let synthetic = chain_block(40, 5);
    let block = synthetic.block();
    let db = PanickyDb { inner: synthetic.db.clone(), slot: U256::ZERO, budget: AtomicUsize::new(usize::MAX) };
    let quiet = |f: &dyn Fn() -> bool| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
    assert!(quiet(&|| Executor::Sequential.execute(&synthetic.chain, &block, &db).is_ok()), "sequential panics");
    let executor = &common::own_drop_in(4);
    assert!(quiet(&|| executor.execute(&synthetic.chain, &block, &db).is_ok()), "so does the drop-in");
    let diffs = common::differences(&synthetic.chain, &block, &synthetic.db, executor);
    assert!(diffs.is_empty(), "the next block runs right: {diffs:?}");
    let stats = executor.execute(&synthetic.chain, &block, &synthetic.db).unwrap().stats;
    assert!(stats.is_some(), "and in parallel: the engine was released");
}

#[test]
fn a_transient_panic_is_redone() {
    let synthetic = chain_block(40, 5);
    let block = synthetic.block();
    let expected = Executor::Sequential.execute(&synthetic.chain, &block, &synthetic.db).unwrap();
    let db = PanickyDb { inner: synthetic.db.clone(), slot: U256::ZERO, budget: AtomicUsize::new(1) };
    // Which execution hits the panic depends on timing; if it is a speculative one the block
    // must still come out right, and if it is the merger's own read the block fails cleanly.
    match common::parallel(4).execute(&synthetic.chain, &block, &db) {
        Ok(output) => assert!(parevm::replay::compare_outputs(&expected, &output).is_empty()),
        Err(error) => assert!(error.to_string().contains("injected database failure"), "{error}"),
    }
}

#[test]
fn slot_counts_outside_one_to_eight_are_refused() {
    assert!(EngineConfig::with_slots(0).is_err());
    assert!(EngineConfig::with_slots(9).is_err());
    assert_eq!(EngineConfig::with_slots(8).unwrap().slots, 8);
    assert!((1..=8).contains(&EngineConfig::default().slots));
}

#[test]
fn blocks_submitted_from_several_threads_to_one_engine_are_all_right() {
    let synthetic = chain_block(60, 6);
    let block = synthetic.block();
    let expected = Executor::Sequential.execute(&synthetic.chain, &block, &synthetic.db).unwrap();
    // The engine's entry point waits for the engine; the drop-in runs sequentially when it is busy.
    for executor in [common::parallel(2), common::drop_in(2)] {
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..5 {
                        let output = executor.execute(&synthetic.chain, &block, &synthetic.db).unwrap();
                        assert!(parevm::replay::compare_outputs(&expected, &output).is_empty());
                    }
                });
            }
        });
    }
}

#[test]
fn the_small_block_rule_runs_small_blocks_sequentially_and_large_ones_on_the_engine() {
    let config = EngineConfig { slots: 2, sequential_below_txs: 10, ..EngineConfig::default() };
    let executor = Executor::Parallel(Engine::new(config).unwrap());
    for (txs, on_engine) in [(9, false), (10, true)] {
        let synthetic = chain_block(txs, 3);
        let block = synthetic.block();
        let output = executor.execute(&synthetic.chain, &block, &synthetic.db).unwrap();
        assert_eq!(output.stats.is_some(), on_engine, "{txs} txs");
        assert!(common::differences(&synthetic.chain, &block, &synthetic.db, &executor).is_empty());
    }
}
