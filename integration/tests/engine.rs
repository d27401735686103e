//! The engine under stress: long dependency chains, a hot account, panics, invalid transactions.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use alloy_consensus::{TxEnvelope, transaction::Recovered};
use alloy_evm::{Evm, EvmEnv, EvmFactory, eth::EthEvmFactory};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use parevm::{
    BlockInput, Executor,
    synthetic::{Fee, SyntheticBlock, contracts},
};
use parevm_dispatcher::{
    CHAIN_RULE_WINDOW, Caller, Engine, EngineConfig, Executed, MAX_SLOTS, MergedTx, ParallelBlock,
};
use parevm_statedb::{BlockTxs, ExecOutcome, InMemoryDb, TxIndex};
use revm::{
    Database, DatabaseCommit, DatabaseRef,
    bytecode::Bytecode,
    context::result::{ExecutionResult, Output, ResultAndState},
    database::{State, WrapDatabaseRef},
    state::AccountInfo,
};

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

/// An engine without the chain rule, which would otherwise hand most of a chain back to the
/// sequential executor before the engine's own handling of it is exercised.
fn without_chain_rule(slots: usize) -> Executor {
    let config = EngineConfig { chain_rule: None, ..common::config(slots) };
    Executor::Parallel(common::engine_with(config))
}

#[test]
fn a_dependency_chain_finishes_with_at_most_two_executions_per_tx() {
    for senders in [1, 200] {
        let synthetic = chain_block(200, senders);
        let block = synthetic.block();
        let drop_ins = [2, 3, 8].map(common::own_drop_in);
        let ruleless = [2, 3, 8].map(without_chain_rule);
        let mut executors: Vec<&Executor> = (2..=MAX_SLOTS).map(|n| -> &Executor { common::parallel(n) }).collect();
        executors.extend(&drop_ins);
        executors.extend(&ruleless);
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
fn the_execution_timer_is_off_unless_turned_on_and_changes_no_result() {
    let synthetic = chain_block(120, 60);
    let block = synthetic.block();
    let executor = without_chain_rule(2);
    let engine = executor.engine().unwrap();
    let run = || executor.execute(&synthetic.chain, &block, &synthetic.db).unwrap().stats.unwrap();
    let off = run();
    assert!(off.sequential_from.is_none() && off.executions >= 120, "the engine ran the block");
    assert_eq!(off.execution_time, std::time::Duration::ZERO, "no clock reads by default");
    engine.time_executions(true);
    let on = run();
    assert!(on.execution_time > std::time::Duration::ZERO, "every execution timed");
    assert!(common::differences(&synthetic.chain, &block, &synthetic.db, &executor).is_empty());
    engine.time_executions(false);
    assert_eq!(run().execution_time, std::time::Duration::ZERO);
}

#[test]
fn without_shadows_or_stealing_results_are_the_same() {
    let synthetic = chain_block(120, 7);
    let block = synthetic.block();
    for (shadows, steal) in [(false, true), (true, false), (false, false)] {
        let config = EngineConfig { slots: 3, shadows, steal, ..EngineConfig::default() };
        let executor = Executor::Parallel(common::engine_with(config));
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

/// Shadows need a core each: with every core taken by a slot the engine starts none, and says so
/// in its configuration; with a core for each beyond the slots' it starts one per worker slot.
#[test]
fn shadows_start_only_with_a_core_each() {
    let two = EngineConfig::with_slots(2).unwrap();
    assert!(two.shadows, "wanted by default");
    let full = Engine::with_cores(two.clone(), 2).unwrap();
    assert!(!full.config().shadows);
    assert_eq!(full.config().threads(), 1, "the worker alone");
    let spare = Engine::with_cores(two.clone(), 3).unwrap();
    assert!(spare.config().shadows);
    assert_eq!(spare.config().threads(), 2, "the worker and its shadow");
    let unwanted = Engine::with_cores(EngineConfig { shadows: false, ..two }, 16).unwrap();
    assert!(!unwanted.config().shadows);
    let three = EngineConfig::with_slots(3).unwrap();
    assert!(!Engine::with_cores(three.clone(), 4).unwrap().config().shadows, "one core for two shadows");
    assert!(Engine::with_cores(three, 5).unwrap().config().shadows);
    let one = Engine::with_cores(EngineConfig::with_slots(1).unwrap(), 16).unwrap();
    assert!(!one.config().shadows, "no worker, no shadow");
    // Either way the block comes out the same.
    let synthetic = chain_block(60, 5);
    let block = synthetic.block();
    for engine in [full, spare] {
        let executor = Executor::Parallel(engine);
        assert!(common::differences(&synthetic.chain, &block, &synthetic.db, &executor).is_empty());
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
    for executor in [2, 3, 8].map(common::parallel).into_iter().chain([2, 3, 8].map(common::drop_in)) {
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

/// The block's shared maps are built on a pool thread while the caller dispatches; a panic
/// there (here the database's, loading a seeded account's code) fails the block with a typed
/// error, as a panic in a slot does, and the engine runs the next block.
#[test]
fn a_panic_while_setting_up_fails_the_block_cleanly() {
    #[derive(Debug)]
    struct CodelessDb;
    impl DatabaseRef for CodelessDb {
        type Error = std::convert::Infallible;
        fn basic_ref(&self, _: Address) -> Result<Option<AccountInfo>, Self::Error> {
            Ok(None)
        }
        fn code_by_hash_ref(&self, _: B256) -> Result<Bytecode, Self::Error> {
            panic!("injected code failure")
        }
        fn storage_ref(&self, _: Address, _: U256) -> Result<U256, Self::Error> {
            Ok(U256::ZERO)
        }
        fn block_hash_ref(&self, _: u64) -> Result<B256, Self::Error> {
            Ok(B256::ZERO)
        }
    }
    let engine = Engine::new(EngineConfig::with_slots(2).unwrap()).unwrap();
    let txs: Vec<revm::context::TxEnv> = (0..64)
        .map(|i| revm::context::TxEnv {
            caller: sender(i),
            gas_limit: 100_000,
            kind: TxKind::Call(sender(1000 + i)),
            ..Default::default()
        })
        .collect();
    let block = |seed| ParallelBlock {
        db: &CodelessDb,
        seed,
        prefix: parevm_dispatcher::Prefix::default(),
        block: revm::context::BlockEnv { gas_limit: 30_000_000, ..Default::default() },
        cfg: revm::context::CfgEnv::default(),
        txs: BlockTxs::from_source(&txs),
    };
    let codeless = AccountInfo { code_hash: B256::repeat_byte(7), code: None, ..Default::default() };
    let seed = vec![parevm_dispatcher::SeedAccount {
        address: Address::with_last_byte(7),
        info: Some(codeless),
        storage_known: false,
        storage: Vec::new(),
    }];
    match engine.execute(block(seed), &mut |_: MergedTx| {}) {
        Err(parevm_dispatcher::BlockError::Panicked { message, .. }) => {
            assert!(message.contains("injected code failure"), "{message}")
        }
        other => panic!("not a typed failure: {other:?}"),
    }
    // Free transactions from empty accounts: valid, and the same threads run them.
    let next = engine.execute(block(Vec::new()), &mut |_: MergedTx| {});
    assert!(matches!(&next, Ok(Executed::Complete(stats)) if stats.executions >= 64), "{next:?}");
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

/// One slot is the merger's thread alone: no thread to run beside it, so both entry points run
/// the block on the sequential executor rather than add the engine's bookkeeping to it.
#[test]
fn one_slot_is_the_sequential_executor() {
    let synthetic = chain_block(40, 8);
    let block = synthetic.block();
    for executor in [common::parallel(1), common::drop_in(1)] {
        assert!(common::differences(&synthetic.chain, &block, &synthetic.db, executor).is_empty());
        let output = executor.execute(&synthetic.chain, &block, &synthetic.db).unwrap();
        assert!(output.stats.is_none(), "{}: ran on the engine", executor.name());
    }
    // Called directly, the engine hands the whole block back.
    let engine = Engine::new(EngineConfig::with_slots(1).unwrap()).unwrap();
    assert_eq!(engine.config().threads(), 0);
    let input = engine_input(&synthetic.db, &block, &EvmEnv::default());
    let mut merged = 0;
    match engine.execute(input, &mut |_| merged += 1) {
        Ok(Executed::HandedBack { from: 0, .. }) => assert_eq!(merged, 0),
        other => panic!("not handed back whole: {other:?}"),
    }
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
    let executor = Executor::Parallel(common::engine_with(config));
    for (txs, on_engine) in [(9, false), (10, true)] {
        let synthetic = chain_block(txs, 3);
        let block = synthetic.block();
        let output = executor.execute(&synthetic.chain, &block, &synthetic.db).unwrap();
        assert_eq!(output.stats.is_some(), on_engine, "{txs} txs");
        assert!(common::differences(&synthetic.chain, &block, &synthetic.db, &executor).is_empty());
    }
}

/// Whether the chain rule trips is a matter of timing (it counts redos, and a slot that runs a
/// chain alone, in order, needs none), so the hand-back itself is tested with a threshold of 0,
/// which trips at the end of the first window whatever happened, on independent transfers (a
/// chain of calls to one contract is judged by the probe before the engine starts; below).
#[test]
fn a_block_handed_back_by_the_chain_rule_is_finished_sequentially_with_the_same_result() {
    let erc20 = parevm::workloads::Erc20Code::Minimal { reason: String::new() };
    let synthetic = parevm::workloads::generate_txs(parevm::workloads::Workload::Transfers, 300, 7, &erc20);
    let block = &synthetic.block;
    for slots in [2, 3, 8] {
        let engine = || common::engine_with(EngineConfig { chain_rule: Some(0), ..common::config(slots) });
        for executor in [Executor::Parallel(engine()), Executor::DropIn(engine().into())] {
            let name = executor.name();
            let diffs = common::differences(&synthetic.chain, block, &synthetic.db, &executor);
            assert!(diffs.is_empty(), "{name}: {diffs:?}");
            let stats = executor.execute(&synthetic.chain, block, &synthetic.db).unwrap().stats.unwrap();
            // The batch path stops right after the window. The drop-in merges while
            // transactions arrive, so when its merge reaches the window, more may have been
            // handed in (it finishes those first), or all of them (nothing is left to hand
            // back); its hand-back is tested with a slow caller in tests/drop_in.rs.
            if name.contains("drop-in") {
                if let Some(from) = stats.sequential_from {
                    assert!((CHAIN_RULE_WINDOW..300).contains(&from), "{name}: handed back at {from}");
                }
            } else {
                assert_eq!(stats.sequential_from, Some(CHAIN_RULE_WINDOW), "{name}");
            }
        }
    }
}

/// A block that opens with calls to one contract is probed: its first transactions run on the
/// caller's executor, and a chain never reaches the engine, through either way in (the drop-in
/// holds the opening back to judge it).
#[test]
fn a_chain_of_calls_to_one_contract_is_judged_by_the_probe_and_never_reaches_the_engine() {
    let synthetic = chain_block(300, 300);
    let block = synthetic.block();
    for slots in [2, 3, 8] {
        for executor in [common::parallel(slots), &common::own_drop_in(slots)] {
            let diffs = common::differences(&synthetic.chain, &block, &synthetic.db, executor);
            assert!(diffs.is_empty(), "{}: {diffs:?}", executor.name());
            let stats = executor.execute(&synthetic.chain, &block, &synthetic.db).unwrap().stats.unwrap();
            assert_eq!((stats.sequential_from, stats.executions), (Some(0), 0), "{}", executor.name());
        }
    }
}

/// ERC-20 transfers open with calls to one contract too, but between distinct holders: the
/// probe lets them go after a few transactions, and the engine takes over from there, counting
/// the probed transactions' gas against the block's limit.
#[test]
fn after_a_probe_that_finds_no_chain_the_engine_takes_over_with_the_same_result() {
    let erc20 = parevm::workloads::Erc20Code::Minimal { reason: String::new() };
    let mut synthetic = parevm::workloads::generate_txs(parevm::workloads::Workload::Erc20, 120, 3, &erc20);
    let n = synthetic.block.txs.len();
    for slots in [2, 3, 8] {
        for executor in [common::parallel(slots), &common::own_drop_in(slots)] {
            let diffs = common::differences(&synthetic.chain, &synthetic.block, &synthetic.db, executor);
            assert!(diffs.is_empty(), "{}: {diffs:?}", executor.name());
            let stats = executor.execute(&synthetic.chain, &synthetic.block, &synthetic.db).unwrap().stats.unwrap();
            assert_eq!((stats.txs, stats.sequential_from), (n, None), "{}", executor.name());
            // The probed transactions ran on the caller's executor, not the engine's.
            assert!(stats.executions < n as u64, "{}: {} executions", executor.name(), stats.executions);
        }
    }
    // A block gas limit that the 31st transaction exceeds, counting the probed ones' gas.
    let sequential = Executor::Sequential.execute(&synthetic.chain, &synthetic.block, &synthetic.db).unwrap();
    let tx_gas_limit = alloy_consensus::Transaction::gas_limit(synthetic.block.txs[30].inner());
    let used = alloy_consensus::TxReceipt::cumulative_gas_used(&sequential.result.receipts[29]);
    synthetic.block.header.gas_limit = used + tx_gas_limit - 1;
    let expected = Executor::Sequential.execute(&synthetic.chain, &synthetic.block, &synthetic.db).unwrap_err();
    assert!(expected.to_string().contains("gas"), "{expected}");
    for executor in [2, 3, 8].into_iter().flat_map(|slots| [common::parallel(slots), common::drop_in(slots)]) {
        let error = executor.execute(&synthetic.chain, &synthetic.block, &synthetic.db).unwrap_err();
        assert_eq!(error.to_string(), expected.to_string(), "{}", executor.name());
    }
}

/// An invalid transaction fails a probed block exactly as the sequential executor fails it,
/// whether the probe (the caller's executor) or the engine meets it.
#[test]
fn an_invalid_transaction_fails_a_probed_block_like_sequential() {
    let erc20 = parevm::workloads::Erc20Code::Minimal { reason: String::new() };
    let synthetic = parevm::workloads::generate_txs(parevm::workloads::Workload::Erc20, 120, 3, &erc20);
    let poor = Address::with_last_byte(0x99);
    for at in [3, 40] {
        let mut block = synthetic.block.clone();
        // Signed by someone else, sent by an account with no money.
        block.txs[at] = alloy_consensus::transaction::Recovered::new_unchecked(block.txs[at].inner().clone(), poor);
        let expected = Executor::Sequential.execute(&synthetic.chain, &block, &synthetic.db).unwrap_err().to_string();
        assert!(expected.contains("lack of funds"), "{expected}");
        for executor in [2, 3, 8].into_iter().flat_map(|slots| [common::parallel(slots), common::drop_in(slots)]) {
            let error = executor.execute(&synthetic.chain, &block, &synthetic.db).unwrap_err().to_string();
            assert_eq!(error, expected, "tx {at}, {}", executor.name());
        }
    }
}

#[test]
fn independent_transactions_never_trip_the_chain_rule() {
    let erc20 = parevm::workloads::Erc20Code::Minimal { reason: String::new() };
    let generated = parevm::workloads::generate_txs(parevm::workloads::Workload::Transfers, 300, 7, &erc20);
    for slots in [2, 3, 8] {
        for executor in [common::parallel(slots), &common::own_drop_in(slots)] {
            let output = executor.execute(&generated.chain, &generated.block, &generated.db).unwrap();
            let stats = output.stats.unwrap();
            assert_eq!(stats.sequential_from, None, "{}: {} redos", executor.name(), stats.merge.total_redos());
        }
    }
}

#[test]
fn without_the_chain_rule_a_chain_runs_to_the_end_on_the_engine() {
    let synthetic = chain_block(300, 300);
    let block = synthetic.block();
    for slots in [2, 3] {
        let executor = without_chain_rule(slots);
        let output = executor.execute(&synthetic.chain, &block, &synthetic.db).unwrap();
        assert_eq!(output.stats.unwrap().sequential_from, None);
    }
}

/// A pool's payout: the beneficiary sends most of the block's transactions, which go to no slot
/// (the merger runs them at their turn), so the engine would only add its bookkeeping.
#[test]
fn a_payout_block_is_handed_to_the_sequential_executor_up_front() {
    let beneficiary = Address::with_last_byte(0xee);
    let mut block = SyntheticBlock::new("Cancun", 30_000_000, beneficiary);
    block.fund(beneficiary, U256::from(10).pow(U256::from(20)));
    block.fund(sender(0), U256::from(10).pow(U256::from(18)));
    for i in 0..100 {
        let (from, to) = if i % 10 == 9 { (sender(0), sender(1)) } else { (beneficiary, sender(100 + i)) };
        block.push(from, TxKind::Call(to), U256::from(1000), Bytes::new(), 21_000, Fee::Dynamic(20, 1), 0);
    }
    let input = block.block();
    for slots in [2, 3] {
        let engine = Executor::Parallel(common::engine(slots));
        let drop_in = common::own_drop_in(slots);
        for executor in [&engine, &drop_in] {
            let name = executor.name();
            let diffs = common::differences(&block.chain, &input, &block.db, executor);
            assert!(diffs.is_empty(), "{name}: {diffs:?}");
            let stats = executor.execute(&block.chain, &input, &block.db).unwrap().stats.unwrap();
            // The batch path sees the whole block at once; the drop-in judges once a window of
            // transactions has been handed in, and finishes those first.
            let expected = if name.contains("drop-in") { CHAIN_RULE_WINDOW } else { 0 };
            assert_eq!(stats.sequential_from, Some(expected), "{name}");
        }
    }
}

/// A heavy transaction (a large share of the block's gas limits) starts first, on state from
/// before its predecessors: here it reads a counter that earlier transactions increment, so
/// that early execution is stale and must be redone at its turn. The block's result is the
/// sequential one whatever the order the slots ran it in.
#[test]
fn a_heavy_transaction_started_first_that_reads_earlier_writes_is_redone_in_order() {
    let mut block = SyntheticBlock::new("Cancun", 30_000_000, Address::with_last_byte(0xee));
    for i in 0..120 {
        block.fund(sender(i), U256::from(10).pow(U256::from(18)));
    }
    block.deploy(COUNTER, contracts::COUNTER, []);
    let increment = || Bytes::from(B256::ZERO.0.to_vec());
    for i in 0..100 {
        if i % 10 == 5 {
            block.push(sender(i), TxKind::Call(COUNTER), U256::ZERO, increment(), 60_000, Fee::Dynamic(20, 1), 0);
        } else {
            let to = sender(200 + i);
            block.push(sender(i), TxKind::Call(to), U256::from(1000), Bytes::new(), 21_000, Fee::Dynamic(20, 1), 0);
        }
    }
    // 5M of about 7.6M in all: heavy, and last.
    block.push(sender(110), TxKind::Call(COUNTER), U256::ZERO, increment(), 5_000_000, Fee::Dynamic(20, 1), 0);
    let input = block.block();
    for executor in [2, 3, 8].map(common::parallel) {
        let diffs = common::differences(&block.chain, &input, &block.db, executor);
        assert!(diffs.is_empty(), "{}: {diffs:?}", executor.name());
    }
}

/// The cheap-block rule: a block of plain transfers (gas limit 21,000 each) goes to the
/// sequential executor before the engine starts (the drop-in: once a window is in), with the
/// sequential result; with the rule off the engine runs it; and a block of token transfers (gas
/// limit 100,000) is not cheap.
#[test]
fn a_block_of_plain_transfers_is_handed_to_the_sequential_executor_up_front() {
    let erc20 = parevm::workloads::Erc20Code::Minimal { reason: String::new() };
    let generate = |workload| parevm::workloads::generate_txs(workload, 200, 11, &erc20);
    let (transfers, tokens) =
        (generate(parevm::workloads::Workload::Transfers), generate(parevm::workloads::Workload::Erc20));
    for slots in [2, 3] {
        let config = EngineConfig::with_slots(slots).unwrap();
        assert_eq!(config.sequential_below_gas, parevm_dispatcher::DEFAULT_SEQUENTIAL_BELOW_GAS, "on by default");
        let engine = Executor::Parallel(common::engine_with(config.clone()));
        let drop_in = Executor::DropIn(common::engine_with(config).into());
        for executor in [&engine, &drop_in] {
            let name = executor.name();
            let diffs = common::differences(&transfers.chain, &transfers.block, &transfers.db, executor);
            assert!(diffs.is_empty(), "{name}: {diffs:?}");
            let stats = executor.execute(&transfers.chain, &transfers.block, &transfers.db).unwrap().stats.unwrap();
            let expected = if name.contains("drop-in") { CHAIN_RULE_WINDOW } else { 0 };
            assert_eq!(stats.sequential_from, Some(expected), "{name}");

            let stats = executor.execute(&tokens.chain, &tokens.block, &tokens.db).unwrap().stats.unwrap();
            assert!(stats.executions > 0 && stats.sequential_from.is_none(), "{name}: {stats:?}");
        }
        let ruleless = Executor::Parallel(common::engine(slots));
        let stats = ruleless.execute(&transfers.chain, &transfers.block, &transfers.db).unwrap().stats.unwrap();
        assert!(stats.executions >= 200 && stats.sequential_from.is_none(), "rule off: {stats:?}");
    }
}

/// The rules that hand a block back before anything is set up judge it by what they need alone:
/// the cheap-block rule by gas limits, the payout rule by senders and recipients. A block they
/// hand back costs the caller no summary of any transaction (which parses every input), and a
/// caller can ask before waking the engine's threads for it, while a block with a contract
/// call's gas limits (to accounts without code) is summarised for the dispatch.
#[test]
fn the_rules_at_the_start_read_gas_limits_and_parties_and_nothing_else() {
    struct LimitsOnly {
        txs: Vec<revm::context::TxEnv>,
        summaries: AtomicUsize,
    }
    impl parevm_statedb::TxSource for LimitsOnly {
        fn len(&self) -> usize {
            self.txs.len()
        }
        fn tx_env(&self, tx: TxIndex) -> revm::context::TxEnv {
            self.txs[tx].clone()
        }
        fn summary(&self, tx: TxIndex) -> parevm_statedb::TxSummary {
            self.summaries.fetch_add(1, Ordering::Relaxed);
            parevm_statedb::TxSummary::from(&self.txs[tx])
        }
        fn gas_limit(&self, tx: TxIndex) -> u64 {
            self.txs[tx].gas_limit
        }
        fn parties(&self, tx: TxIndex) -> (Address, Option<Address>) {
            (self.txs[tx].caller, self.txs[tx].kind.to().copied())
        }
    }
    let beneficiary = Address::with_last_byte(0xee);
    let block_of = |gas_limit, payout: bool| LimitsOnly {
        txs: (0..200)
            .map(|i| revm::context::TxEnv {
                caller: if payout { beneficiary } else { sender(i) },
                gas_limit,
                kind: TxKind::Call(sender(1000 + i)),
                ..Default::default()
            })
            .collect(),
        summaries: AtomicUsize::new(0),
    };
    let engine = Engine::new(EngineConfig::with_slots(2).unwrap()).unwrap();
    let db = InMemoryDb::default();
    let run = |txs: &LimitsOnly| {
        let block = ParallelBlock {
            db: &db,
            seed: Vec::new(),
            prefix: parevm_dispatcher::Prefix::default(),
            block: revm::context::BlockEnv { gas_limit: 30_000_000, beneficiary, ..Default::default() },
            cfg: revm::context::CfgEnv::default(),
            txs: BlockTxs::from_source(txs),
        };
        // Free transactions (no gas price) from empty accounts: each is valid.
        engine.execute(block, &mut |_: MergedTx| {})
    };
    // A pool's payout (every transaction from the beneficiary) is judged by the transactions'
    // parties alone, like the cheap rule by their gas limits; neither wakes the engine's threads.
    for (handed_back, why) in [(block_of(21_000, false), "transfers"), (block_of(100_000, true), "a payout")] {
        assert!(engine.would_hand_back(&handed_back, beneficiary), "{why}: nothing to wake the threads for");
        assert!(matches!(run(&handed_back), Ok(Executed::HandedBack { from: 0, .. })), "{why}");
        assert_eq!(handed_back.summaries.load(Ordering::Relaxed), 0, "{why}: a handed-back block is not summarised");
    }
    let calls = block_of(100_000, false);
    assert!(!engine.would_hand_back(&calls, beneficiary));
    let awake = engine.wake_ahead();
    assert!(awake.woke(), "a block the engine runs wakes its threads ahead");
    assert!(matches!(run(&calls), Ok(Executed::Complete(stats)) if stats.executions >= 200), "run on the engine");
    drop(awake);
    assert!(calls.summaries.load(Ordering::Relaxed) >= 200, "summarised for the dispatch");
}

/// A block with little gas in all (here a dozen contract calls, whatever their limits) is handed to
/// the sequential executor before the engine starts, as is an empty block; fifteen such calls are
/// not, and with the rule off the small block runs on the engine. Results are sequential's.
#[test]
fn a_block_with_little_gas_is_handed_to_the_sequential_executor_up_front() {
    // A counter each: independent calls, which no probe takes for a chain.
    let counter = |i: usize| Address::left_padding_from(&[0xc0, i as u8]);
    let block_of = |txs: usize| {
        let mut block = SyntheticBlock::new("Cancun", 30_000_000, Address::with_last_byte(0xee));
        for i in 0..txs {
            block.deploy(counter(i), contracts::COUNTER, []);
            block.fund(sender(i), U256::from(10).pow(U256::from(18)));
            let slot = Bytes::from(B256::ZERO.0.to_vec());
            block.push(sender(i), TxKind::Call(counter(i)), U256::ZERO, slot, 2_000_000, Fee::Dynamic(20, 1), 0);
        }
        block
    };
    let engine = Executor::Parallel(Engine::new(EngineConfig::with_slots(2).unwrap()).unwrap());
    let ruleless = Executor::Parallel(common::engine(2));
    for (txs, small) in [(0, true), (1, true), (12, true), (15, false)] {
        let block = block_of(txs);
        let input = block.block();
        for executor in [&engine, &ruleless] {
            let diffs = common::differences(&block.chain, &input, &block.db, executor);
            assert!(diffs.is_empty(), "{txs} txs: {diffs:?}");
        }
        let stats = engine.execute(&block.chain, &input, &block.db).unwrap().stats.unwrap();
        let handed_back = stats.sequential_from == Some(0) && stats.executions == 0;
        assert_eq!(handed_back, small, "{txs} txs: {stats:?}");
        if txs > 0 {
            let stats = ruleless.execute(&block.chain, &input, &block.db).unwrap().stats.unwrap();
            assert!(stats.executions >= txs as u64 && stats.sequential_from.is_none(), "rule off: {stats:?}");
        }
    }
}

/// Many transfers paying one account (an exchange's hot wallet): each execution after the first
/// reads a balance a predecessor changed, but never observes it, so the merger rebases the credit
/// instead of redoing the transfer. Every 25th transaction is the wallet paying out, which does
/// observe its balance and moves its nonce: those must still be redone (the transfers that saw
/// the old nonce need not), and every result must be the sequential one.
#[test]
fn transfers_paying_one_account_are_rebased_not_redone() {
    let wallet = Address::with_last_byte(0xaa);
    let mut block = SyntheticBlock::new("Cancun", 30_000_000, Address::with_last_byte(0xee));
    block.fund(wallet, U256::from(10).pow(U256::from(18)));
    for i in 0..300 {
        block.fund(sender(i), U256::from(10).pow(U256::from(18)));
    }
    let payouts = |i: usize| i % 25 == 24;
    for i in 0..300 {
        let (from, to) = if payouts(i) { (wallet, sender(1000 + i)) } else { (sender(i), wallet) };
        block.push(from, TxKind::Call(to), U256::from(1000 + i), Bytes::new(), 21_000, Fee::Dynamic(20, 1), 0);
    }
    let input = block.block();
    let drop_ins = [2, 3].map(common::own_drop_in);
    let mut executors: Vec<&Executor> = (2..=MAX_SLOTS).map(|n| -> &Executor { common::parallel(n) }).collect();
    executors.extend(&drop_ins);
    for executor in executors {
        let name = executor.name();
        let diffs = common::differences(&block.chain, &input, &block.db, executor);
        assert!(diffs.is_empty(), "{name}: {diffs:?}");
    }
    // Without rebasing, nearly every transfer to the wallet would be redone; with it, only the
    // payouts can be (once each), since a transfer reads neither the wallet's balance nor its
    // nonce.
    let engine = without_chain_rule(2);
    let stats = engine.execute(&block.chain, &input, &block.db).unwrap().stats.unwrap();
    let redos = stats.redos(parevm_merger::RedoCause::Account);
    let payout_count = (0..300).filter(|&i| payouts(i)).count() as u64;
    assert!(redos <= payout_count, "{redos} account redos, {} rebased", stats.merge.rebased_credits);
}

/// Transfers like those above, to a contract that logs its own balance instead: its code
/// observes the balance, so nothing may be rebased. Logged rather than stored, so that no storage
/// conflict sends the transfers back first: without the SELFBALANCE hook the logs would differ.
#[test]
fn transfers_to_code_that_observes_its_balance_are_never_rebased() {
    let observer = Address::with_last_byte(0xab);
    let mut block = SyntheticBlock::new("Cancun", 30_000_000, Address::with_last_byte(0xee));
    block.deploy(observer, contracts::SELF_WATCHER, []);
    for i in 0..200 {
        block.fund(sender(i), U256::from(10).pow(U256::from(18)));
        block.push(sender(i), TxKind::Call(observer), U256::from(1 + i), Bytes::new(), 60_000, Fee::Dynamic(20, 1), 0);
    }
    let input = block.block();
    for slots in [2, 3, 8] {
        let engine = without_chain_rule(slots);
        let diffs = common::differences(&block.chain, &input, &block.db, &engine);
        assert!(diffs.is_empty(), "{slots} slots: {diffs:?}");
        let stats = engine.execute(&block.chain, &input, &block.db).unwrap().stats.unwrap();
        assert_eq!(stats.merge.rebased_credits, 0, "{slots} slots");
    }
}

/// Ether paid into one contract through several forwarders (a router wrapping a swap's ether
/// into WETH): every execution reads the vault to call it, at a balance unmerged predecessors
/// moved, but never observes it, so the merger rebases the vault's balance. Among them, calls to
/// a contract that logs the vault's balance (it observes it, and must be redone when stale), and
/// to a payer that pays 2 wei out of a balance of a few wei (the transfer needs the balance to
/// cover it and fails when it does not: a balance lower than the one read may be rebased only if
/// it still covers the payment). Every result must be the sequential one.
#[test]
fn balances_credited_through_calls_are_rebased_not_redone() {
    let vault = Address::with_last_byte(0xa0);
    let forwarders: Vec<Address> = (0..4).map(|i| Address::with_last_byte(0xa1 + i)).collect();
    let (watcher, payer) = (Address::with_last_byte(0xa8), Address::with_last_byte(0xa9));
    let mut block = SyntheticBlock::new("Cancun", 30_000_000, Address::with_last_byte(0xee));
    block.deploy(vault, contracts::VAULT, []);
    for &forwarder in &forwarders {
        block.deploy(forwarder, &contracts::forwarder(vault), []);
    }
    block.deploy(watcher, &contracts::balance_watcher(vault), []);
    block.deploy(payer, contracts::PAYER, []);
    block.fund(payer, U256::from(3));
    let (watches, withdrawals) = (|i: usize| i % 20 == 19, |i: usize| i % 7 == 3);
    for i in 0..300 {
        block.fund(sender(i), U256::from(10).pow(U256::from(18)));
        let (to, value) = if watches(i) {
            (watcher, 0)
        } else if withdrawals(i) {
            (payer, 3 * (i % 2))
        } else {
            (forwarders[i % forwarders.len()], 1000 + i)
        };
        block.push(sender(i), TxKind::Call(to), U256::from(value), Bytes::new(), 100_000, Fee::Dynamic(20, 1), 0);
    }
    let input = block.block();
    let drop_ins = [2, 3].map(common::own_drop_in);
    let engines: Vec<Executor> = (2..=MAX_SLOTS).map(without_chain_rule).collect();
    // Only the watcher's and the payer's transactions observe a balance that moves.
    let observers = (0..300).filter(|&i| watches(i) || withdrawals(i)).count() as u64;
    let check = |executor: &Executor| {
        let stats = executor.execute(&block.chain, &input, &block.db).unwrap().stats.unwrap();
        let redos = stats.redos(parevm_merger::RedoCause::Account);
        assert!(
            redos <= observers,
            "{}: {redos} account redos, {} rebased",
            executor.name(),
            stats.merge.rebased_credits
        );
        stats.merge.rebased_credits
    };
    let mut rebased = 0;
    for executor in engines.iter().chain(&drop_ins) {
        let diffs = common::differences(&block.chain, &input, &block.db, executor);
        assert!(diffs.is_empty(), "{}: {diffs:?}", executor.name());
        rebased += check(executor);
    }
    // The forwarders spread over the lanes, so executions on two threads at once read the vault
    // stale. On a loaded host the threads may take turns instead, for a few blocks: try again.
    for executor in engines.iter().cycle().take(100) {
        if rebased > 0 {
            break;
        }
        rebased += check(executor);
    }
    assert!(rebased > 0, "nothing was rebased in 100 more blocks");
}

/// What a [`StateCaller`] does when the engine asks it to execute a transaction at its turn.
#[derive(Debug, Clone, Copy, PartialEq)]
enum AtTurn {
    /// Declines: the merger executes it on its own EVM.
    Decline,
    /// Executes it on the caller's state.
    Execute,
    /// Executes it and marks the result's output, to show that the engine commits what the
    /// caller returned.
    Mark,
    /// Panics.
    Panic,
}

const MARK: &[u8] = b"executed by the caller";

/// A caller of the engine's batch path over its own `State`, which counts the engine's asks and
/// answers them as `at_turn` says.
struct StateCaller<'a> {
    state: State<WrapDatabaseRef<&'a InMemoryDb>>,
    env: EvmEnv,
    txs: &'a [Recovered<TxEnvelope>],
    at_turn: AtTurn,
    asked: usize,
    /// Each committed transaction's result and the block's gas up to it.
    results: Vec<(ExecutionResult, u64)>,
}

impl Caller for StateCaller<'_> {
    fn commit(&mut self, merged: MergedTx) {
        self.state.commit(merged.state);
        self.results.push((merged.result, merged.cumulative_gas_used));
    }

    fn execute_exact(&mut self, tx: TxIndex) -> Option<ExecOutcome> {
        assert_eq!(tx, self.results.len(), "asked before every predecessor was committed");
        self.asked += 1;
        match self.at_turn {
            AtTurn::Decline => return None,
            AtTurn::Panic => panic!("the caller's EVM panicked at {tx}"),
            AtTurn::Execute | AtTurn::Mark => {}
        }
        let mut evm = EthEvmFactory::default().create_evm(&mut self.state, self.env.clone());
        let ResultAndState { mut result, state } = evm.transact(&self.txs[tx]).expect("a valid transaction");
        if self.at_turn == AtTurn::Mark
            && let ExecutionResult::Success { output, .. } = &mut result
        {
            *output = Output::Call(Bytes::from_static(MARK));
        }
        Some(ExecOutcome::Executed { result, state, deferred_reward: None })
    }
}

/// [`chain_block`] of `n` transactions from 10 senders, then a transfer from the beneficiary,
/// with its block input and environment. The beneficiary's transaction goes to no slot
/// (`dispatch.rs`): the merger runs it at its turn in every run. The chain alone does not
/// guarantee that: on a loaded machine the worker can run the whole chain in order ahead of the
/// merger, every result valid, and a test of what happens at a turn then saw none.
fn chain_with_env(n: usize) -> (SyntheticBlock, BlockInput, EvmEnv) {
    let mut synthetic = chain_block(n, 10);
    let beneficiary = Address::with_last_byte(0xee);
    synthetic.fund(beneficiary, U256::from(10).pow(U256::from(18)));
    synthetic.push(beneficiary, TxKind::Call(sender(0)), U256::from(1), Bytes::new(), 21_000, Fee::Dynamic(20, 1), 0);
    let block = synthetic.block();
    let env = block.evm_env(&synthetic.chain);
    (synthetic, block, env)
}

/// A whole block for the engine's batch path, without pre-block system calls (as its callers in
/// these tests run it).
fn engine_input<'a>(db: &'a InMemoryDb, block: &'a BlockInput, env: &EvmEnv) -> ParallelBlock<'a, InMemoryDb> {
    ParallelBlock {
        db,
        seed: Vec::new(),
        prefix: parevm_dispatcher::Prefix::default(),
        block: env.block_env.clone(),
        cfg: env.cfg_env.clone(),
        txs: BlockTxs::from_source(block),
    }
}

/// The engine asks its caller to execute each transaction that runs at its turn (every redo of
/// a chain does), commits what the caller returns, and the block comes out the same whether the
/// caller executes or declines and the merger executes on its own EVM.
#[test]
fn the_caller_executes_at_a_transactions_turn_or_leaves_it_to_the_merger() {
    let (synthetic, block, env) = chain_with_env(100);
    let fresh = || State::builder().with_database_ref(&synthetic.db).build();

    let mut sequential = fresh();
    let mut expected = Vec::new();
    {
        let mut evm = EthEvmFactory::default().create_evm(&mut sequential, env.clone());
        let mut gas = 0;
        for tx in &synthetic.txs {
            let result = evm.transact_commit(tx).expect("a valid transaction");
            gas += result.tx_gas_used();
            expected.push((result, gas));
        }
    }

    let engine = common::engine_with(EngineConfig { chain_rule: None, ..common::config(2) });
    for at_turn in [AtTurn::Execute, AtTurn::Decline, AtTurn::Mark] {
        let mut caller = StateCaller {
            state: fresh(),
            env: env.clone(),
            txs: &synthetic.txs,
            at_turn,
            asked: 0,
            results: Vec::new(),
        };
        let input = engine_input(&synthetic.db, &block, &env);
        let outcome = engine.execute(input, &mut caller).expect("a valid block");
        assert!(matches!(outcome, Executed::Complete(_)), "{at_turn:?}: {outcome:?}");
        assert!(caller.asked > 0, "{at_turn:?}: a chain on two threads runs some transactions at their turn");
        if at_turn == AtTurn::Mark {
            let marked = caller.results.iter().filter(|(result, _)| result.output() == Some(&Bytes::from_static(MARK)));
            assert_eq!(marked.count(), caller.asked, "the engine commits what the caller returned, once per ask");
            continue;
        }
        assert_eq!(caller.results, expected, "{at_turn:?}");
        let beneficiary = env.block_env.beneficiary;
        for address in (0..10).map(sender).chain([COUNTER, beneficiary]) {
            assert_eq!(caller.state.basic(address).unwrap(), sequential.basic(address).unwrap(), "{at_turn:?}");
        }
        assert_eq!(
            caller.state.storage(COUNTER, U256::ZERO).unwrap(),
            sequential.storage(COUNTER, U256::ZERO).unwrap(),
            "{at_turn:?}"
        );
    }
}

/// A panic in the caller's own execution at a transaction's turn fails the block at that
/// transaction, as a panic on exact state does on the engine's EVMs, and leaves the engine
/// ready for the next block.
#[test]
fn a_panic_in_the_callers_execution_fails_the_block_at_that_transaction() {
    let (synthetic, block, env) = chain_with_env(100);
    let engine = common::engine_with(EngineConfig { chain_rule: None, ..common::config(2) });
    for at_turn in [AtTurn::Panic, AtTurn::Execute] {
        let state = State::builder().with_database_ref(&synthetic.db).build();
        let mut caller =
            StateCaller { state, env: env.clone(), txs: &synthetic.txs, at_turn, asked: 0, results: Vec::new() };
        let input = engine_input(&synthetic.db, &block, &env);
        match (at_turn, engine.execute(input, &mut caller)) {
            (AtTurn::Panic, Err(parevm_dispatcher::BlockError::Panicked { tx, message })) => {
                assert_eq!(tx, caller.results.len(), "at the transaction it was asked for");
                assert!(message.contains("the caller's EVM panicked"), "{message}");
                assert_eq!(caller.asked, 1);
            }
            (AtTurn::Execute, Ok(Executed::Complete(_))) => assert_eq!(caller.results.len(), synthetic.txs.len()),
            (at_turn, other) => panic!("{at_turn:?}: {other:?}"),
        }
    }
}

/// A panic in the caller's own commit fails the block at the transaction being committed, after
/// exactly its predecessors were committed, and the engine runs the next block.
#[test]
fn a_panic_in_the_callers_commit_fails_the_block_at_that_transaction() {
    let (synthetic, block, env) = chain_with_env(20);
    let engine = common::engine_with(EngineConfig { chain_rule: None, ..common::config(2) });
    let mut committed = Vec::new();
    let mut caller = |merged: MergedTx| {
        assert!(merged.index != 7, "the caller's commit panicked");
        committed.push(merged.index);
    };
    match engine.execute(engine_input(&synthetic.db, &block, &env), &mut caller) {
        Err(parevm_dispatcher::BlockError::Panicked { tx, message }) => {
            assert_eq!(tx, 7, "at the transaction being committed");
            assert!(message.contains("the caller's commit panicked"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(committed, (0..7).collect::<Vec<_>>());
    let mut all = 0;
    let next = engine.execute(engine_input(&synthetic.db, &block, &env), &mut |_: MergedTx| all += 1);
    assert!(matches!(next, Ok(Executed::Complete(_))), "{next:?}");
    assert_eq!(all, synthetic.txs.len());
}
