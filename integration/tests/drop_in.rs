//! The drop-in executor factory as reth uses it: when it runs in parallel and when it must not,
//! that execution overlaps the caller's loop, and that every fallback gives the sequential result.
//! (Its equivalence on the mainnet blocks, the consensus suite and random blocks is tested with
//! the other engines, through `Executor::DropIn`.)

mod common;

use std::{sync::Arc, time::Duration};

use alloy_evm::{
    EvmFactory,
    block::{BlockExecutionError, BlockExecutionResult, BlockExecutor, BlockExecutorFactory},
    eth::{EthBlockExecutionCtx, EthEvmFactory},
};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use parevm::{
    BlockInput, ChainSpec, Executor, OneParentState, PRE_BLOCK_CONTRACTS, ParallelBlockExecutorFactory, ParentStates,
    Receipt, RethReceiptBuilder,
    replay::compare_outputs,
    synthetic::{Fee, SyntheticBlock, contracts},
    workloads::Workload,
};
use parevm_dispatcher::{CHAIN_RULE_WINDOW, Engine, EngineConfig};
use parevm_statedb::InMemoryDb;
use revm::{
    Inspector,
    database::{BundleState, State, states::bundle_state::BundleRetention},
    interpreter::{Interpreter, InterpreterTypes},
};

type Factory = ParallelBlockExecutorFactory<RethReceiptBuilder, ChainSpec>;

const COUNTER: Address = Address::with_last_byte(0xc0);

fn sender(i: usize) -> Address {
    Address::left_padding_from(&(0x2000 + i as u32).to_be_bytes())
}

/// `n` transactions from `senders` senders: transfers between distinct accounts, and every third
/// one an increment of a shared counter (so the block has both independent and dependent work).
fn mixed_block(n: usize, senders: usize) -> SyntheticBlock {
    let mut block = SyntheticBlock::new("Cancun", 30_000_000, Address::with_last_byte(0xee));
    for i in 0..senders {
        block.fund(sender(i), U256::from(10).pow(U256::from(18)));
    }
    block.deploy(COUNTER, contracts::COUNTER, []);
    for i in 0..n {
        let (to, value, input) = if i % 3 == 0 {
            (COUNTER, U256::ZERO, Bytes::from(B256::ZERO.0.to_vec()))
        } else {
            (Address::left_padding_from(&(0x9000 + i as u32).to_be_bytes()), U256::from(7), Bytes::new())
        };
        block.push(sender(i % senders), TxKind::Call(to), value, input, 60_000, Fee::Dynamic(20, 1), 0);
    }
    block
}

fn factory(slots: usize) -> Factory {
    let engine = common::engine(slots);
    Factory::new(RethReceiptBuilder, ChainSpec::from_genesis("Cancun").unwrap(), Arc::new(engine))
}

/// What a driven block produced, and whether it ran on the engine.
struct Driven {
    result: Result<BlockExecutionResult<Receipt>, BlockExecutionError>,
    /// The caller's state afterwards (also after a failure: what was committed by then).
    bundle: BundleState,
    parallel: bool,
}

/// Drives `factory` exactly as reth's block validation does, with `ctx` adjusted by `edit_ctx`;
/// `between` runs after each `execute_transaction` call, with the number of receipts so far.
fn drive(
    factory: &Factory,
    chain: &ChainSpec,
    block: &BlockInput,
    db: &InMemoryDb,
    edit_ctx: impl FnOnce(&mut EthBlockExecutionCtx<'_>),
    mut between: impl FnMut(usize),
) -> Driven {
    let mut state = state(db);
    let evm = EthEvmFactory::default().create_evm(&mut state, block.evm_env(chain));
    let mut ctx = block.execution_ctx();
    edit_ctx(&mut ctx);
    let mut executor = factory.create_executor(evm, ctx);
    let mut parallel = false;
    let result = (|| {
        executor.apply_pre_execution_changes()?;
        for tx in &block.txs {
            executor.execute_transaction(tx)?;
            parallel |= executor.is_parallel();
            between(executor.receipts().len());
        }
        executor.finish().map(|(_, result)| result)
    })();
    Driven { result, bundle: bundle_of(state), parallel }
}

type Db<'a> = revm::database_interface::WrapDatabaseRef<&'a InMemoryDb>;
type DropIn<'s, 'd> =
    <Factory as BlockExecutorFactory>::Executor<'s, &'s mut State<Db<'d>>, revm::inspector::NoOpInspector>;

/// A fresh `State` over `db`, as reth builds one per block.
fn state(db: &InMemoryDb) -> State<Db<'_>> {
    State::builder().with_database_ref(db).with_bundle_update().build()
}

/// An executor from `factory` over `state` for `block`, its pre-block system calls applied.
fn started<'s, 'd: 's>(
    factory: &'s Factory,
    state: &'s mut State<Db<'d>>,
    chain: &ChainSpec,
    block: &'s BlockInput,
) -> DropIn<'s, 'd> {
    let evm = EthEvmFactory::default().create_evm(state, block.evm_env(chain));
    let mut executor = factory.create_executor(evm, block.execution_ctx());
    executor.apply_pre_execution_changes().unwrap();
    executor
}

/// What `state` holds once an executor over it is done (finished or dropped).
fn bundle_of(mut state: State<Db<'_>>) -> BundleState {
    state.merge_transitions(BundleRetention::Reverts);
    state.take_bundle()
}

fn sequential(chain: &ChainSpec, block: &BlockInput, db: &InMemoryDb) -> parevm::BlockOutput {
    Executor::Sequential.execute(chain, block, db).unwrap()
}

fn assert_same(driven: Driven, expected: &parevm::BlockOutput, what: &str) {
    let output = parevm::BlockOutput { result: driven.result.unwrap(), bundle: driven.bundle, stats: None };
    let diffs = compare_outputs(expected, &output);
    assert!(diffs.is_empty(), "{what}: {diffs:#?}");
}

/// With the cheap-block rule on (the default), a block shorter than a chain-rule window runs on
/// the Ethereum executor: the session's rules could not judge it, and the engine's fixed cost is
/// all such a block would pay for. A window or more goes to the engine. Both are sequential's.
#[test]
fn a_block_shorter_than_a_window_runs_sequentially_with_the_rules_on() {
    let engine = Engine::new(EngineConfig::with_slots(2).unwrap()).unwrap();
    assert_eq!(engine.config().session_min_txs(), CHAIN_RULE_WINDOW);
    let factory = Factory::new(RethReceiptBuilder, ChainSpec::from_genesis("Cancun").unwrap(), Arc::new(engine));
    for (txs, parallel) in [(1, false), (CHAIN_RULE_WINDOW - 1, false), (CHAIN_RULE_WINDOW, true)] {
        let synthetic = mixed_block(txs, txs);
        let block = synthetic.block();
        let driven = drive(&factory, &synthetic.chain, &block, &synthetic.db, |_| {}, |_| {});
        assert_eq!(driven.parallel, parallel, "{txs} txs");
        assert_same(driven, &sequential(&synthetic.chain, &block, &synthetic.db), &format!("{txs} txs"));
    }
    // With the rule off (as the equivalence tests run), short blocks go to the engine too.
    assert_eq!(common::config(2).session_min_txs(), 1);
}

/// With the cheap-block rule on, a block whose gas limit cannot give the transactions the hint
/// announces `sequential_below_gas` each on average never starts a session, however many they
/// are: the Ethereum executor runs it from the first transaction, and the counters say it was
/// handed back. One gas more per transaction and the engine takes it. Both are sequential's.
#[test]
fn a_block_that_cannot_spend_the_threshold_per_transaction_never_starts_a_session() {
    let engine = Arc::new(Engine::new(EngineConfig::with_slots(2).unwrap()).unwrap());
    let threshold = engine.config().sequential_below_gas;
    let factory = Factory::new(RethReceiptBuilder, ChainSpec::from_genesis("Cancun").unwrap(), engine.clone());
    let txs = 2 * CHAIN_RULE_WINDOW;
    for (gas_limit, parallel) in [(threshold * txs as u64 - 1, false), (threshold * txs as u64, true)] {
        let mut synthetic = mixed_block(txs, txs);
        synthetic.header.gas_limit = gas_limit;
        let (chain, block, db) = (&synthetic.chain, synthetic.block(), &synthetic.db);
        let mut state = state(db);
        let mut executor = started(&factory, &mut state, chain, &block);
        assert_eq!(executor.is_parallel(), parallel, "gas limit {gas_limit}, before the first transaction");
        for tx in &block.txs {
            executor.execute_transaction(tx).unwrap();
        }
        let (_, result, stats) = executor.finish_with_stats().unwrap();
        let stats = stats.expect("the engine reports on every block it was offered");
        assert_eq!(stats.sequential_from, (!parallel).then_some(0), "gas limit {gas_limit}");
        assert_eq!(stats.executions == 0, !parallel, "gas limit {gas_limit}: {} executions", stats.executions);
        let driven = Driven { result: Ok(result), bundle: bundle_of(state), parallel };
        assert_same(driven, &sequential(chain, &block, db), &format!("gas limit {gas_limit}"));
    }
}

#[test]
fn execution_overlaps_the_callers_loop() {
    let synthetic = mixed_block(40, 40);
    let block = synthetic.block();
    let factory = factory(2);
    let mut receipts_before_finish = 0;
    // A slow caller: results must be merged and committed while it is still handing in txs.
    let driven = drive(
        &factory,
        &synthetic.chain,
        &block,
        &synthetic.db,
        |_| {},
        |receipts| {
            receipts_before_finish = receipts;
            std::thread::sleep(Duration::from_millis(2));
        },
    );
    assert!(driven.parallel);
    assert!(receipts_before_finish >= 20, "only {receipts_before_finish} of 40 merged before finish");
    assert_same(driven, &sequential(&synthetic.chain, &block, &synthetic.db), "slow caller");
}

#[test]
fn when_the_chain_rule_trips_the_rest_of_the_block_runs_sequentially() {
    let synthetic = mixed_block(80, 80);
    let block = synthetic.block();
    // Threshold 0: trips once the merge passes the first window, whatever happened.
    let config = EngineConfig { chain_rule: Some(0), ..EngineConfig::with_slots(2).unwrap() };
    let factory = Factory::new(
        RethReceiptBuilder,
        ChainSpec::from_genesis("Cancun").unwrap(),
        Arc::new(common::engine_with(config)),
    );
    let mut state = state(&synthetic.db);
    let mut executor = started(&factory, &mut state, &synthetic.chain, &block);
    let mut modes = Vec::new();
    for tx in &block.txs {
        executor.execute_transaction(tx).unwrap();
        modes.push(executor.is_parallel());
        // A slow caller, so that the merge reaches the window before the block is all handed in.
        std::thread::sleep(Duration::from_millis(1));
    }
    let (_, result, stats) = executor.finish_with_stats().unwrap();
    let from = stats.unwrap().sequential_from.expect("handed back");
    assert!((CHAIN_RULE_WINDOW..80).contains(&from), "handed back at {from}");
    // Parallel up to the hand-back, sequential from there on.
    // The hand-back happens while transaction `from - 1` is handed in.
    assert!(modes[..from - 1].iter().all(|&parallel| parallel), "{modes:?}");
    assert!(modes[from - 1..].iter().all(|&parallel| !parallel), "{modes:?}");
    let driven = Driven { result: Ok(result), bundle: bundle_of(state), parallel: true };
    assert_same(driven, &sequential(&synthetic.chain, &block, &synthetic.db), "handed back");
}

/// Counts 1024 down to 0 (about 27k gas): slow for a slot, next to nothing for the caller.
const BURNER_CODE: &[u8] = &[0x61, 0x04, 0x00, 0x5b, 0x60, 0x01, 0x90, 0x03, 0x80, 0x60, 0x03, 0x57, 0x00];
const BURNER: Address = Address::with_last_byte(0xb0);

/// A caller that outruns the slots (whether it waits is the session's `must_wait`, unit-tested
/// there; redos, which switch the look-ahead bound on, are a matter of timing): every receipt
/// still arrives, in order, the same as sequential.
#[test]
fn a_caller_that_outruns_the_slots_gets_the_sequential_result() {
    // One sender: every transaction goes to one slot's lane, which the caller outruns.
    let mut synthetic = SyntheticBlock::new("Cancun", 30_000_000, Address::with_last_byte(0xee));
    synthetic.fund(sender(0), U256::from(10).pow(U256::from(18)));
    synthetic.deploy(BURNER, BURNER_CODE, []);
    for _ in 0..256 {
        synthetic.push(sender(0), TxKind::Call(BURNER), U256::ZERO, Bytes::new(), 60_000, Fee::Dynamic(20, 1), 0);
    }
    let block = synthetic.block();
    let factory = factory(2);
    let (mut handed_in, mut most_ahead) = (0, 0);
    let driven = drive(
        &factory,
        &synthetic.chain,
        &block,
        &synthetic.db,
        |_| {},
        |receipts| {
            handed_in += 1;
            most_ahead = most_ahead.max(handed_in - receipts);
        },
    );
    assert!(driven.parallel);
    assert!(most_ahead > 0, "the caller never got ahead of the merge");
    assert_same(driven, &sequential(&synthetic.chain, &block, &synthetic.db), "fast caller");
}

/// Redos while the merger waits. With the chain rule off, calls to one counter are redone
/// nearly one by one, and AMM swaps often. A redo goes to the workers' queue; a primary that
/// takes it among the merger's next turns leaves it to the merger (`Scheduler::for_session`),
/// which must then run it itself: waiting for a result nobody computes stalled the block (a 2 s
/// stall timeout here makes that a failure, not a hang). Every result is sequential's. The same
/// with the parent state, where the caller also executes speculatively from its own lane while
/// it waits, and the worker steals from that lane.
#[test]
fn redos_left_to_the_merger_never_stall_the_block() {
    let code = parevm::workloads::Erc20Code::locate(&common::mainnet_dir());
    let blocks: Vec<_> = [Workload::Hot, Workload::Amm]
        .into_iter()
        .map(|workload| parevm::workloads::generate(workload, 2_000_000, 7, &code))
        .map(|block| {
            let parent = common::parent_of(&block.db);
            (block, parent)
        })
        .collect();
    for slots in [2, 3, 4] {
        let config = EngineConfig { chain_rule: None, stall_timeout: Duration::from_secs(2), ..common::config(slots) };
        let drop_in = Executor::DropIn(Arc::new(common::engine_with(config)));
        for round in 0..300 {
            for (block, parent) in &blocks {
                for parent in [None, Some(parent)] {
                    let diffs = common::differences_with(&block.chain, &block.block, &block.db, &drop_in, parent);
                    let with = if parent.is_some() { "with" } else { "without" };
                    let name = block.workload.name();
                    assert!(
                        diffs.is_empty(),
                        "{name} at {slots} slots {with} the parent state, round {round}: {diffs:#?}"
                    );
                }
            }
        }
    }
}

/// A transaction redone at its turn in a session makes its recipient the caller's: the later
/// transactions to it that no slot has started run at their turn on the caller's thread, exactly,
/// instead of speculatively on state a predecessor is about to change. On a block of calls that
/// all bump one counter, with the chain rule off (it would hand the block back), nearly every
/// call used to be executed twice (0.87 redos per transaction at 2 slots); now a few are, those a
/// slot ran before the first redo. Results are sequential's whatever the timing; the redo count
/// is taken as the best of ten runs, which a slow host can only lower.
#[test]
fn a_recipient_redone_at_its_turn_is_left_to_the_caller() {
    let erc20 = parevm::workloads::Erc20Code::Minimal { reason: String::new() };
    let hot = parevm::workloads::generate_txs(Workload::Hot, 120, 5, &erc20);
    let config = EngineConfig { chain_rule: None, ..common::config(2) };
    let executor = Executor::DropIn(Arc::new(common::engine_with(config)));
    let expected = sequential(&hot.chain, &hot.block, &hot.db);
    let mut fewest = u64::MAX;
    for _ in 0..10 {
        let output = executor.execute(&hot.chain, &hot.block, &hot.db).unwrap();
        assert!(compare_outputs(&expected, &output).is_empty());
        fewest = fewest.min(output.stats.unwrap().merge.total_redos());
    }
    assert!(fewest < 120 / 4, "{fewest} redos of 120 transactions in the best run");
}

#[test]
fn without_a_tx_count_hint_it_is_the_sequential_executor() {
    let synthetic = mixed_block(12, 4);
    let block = synthetic.block();
    let driven = drive(&factory(2), &synthetic.chain, &block, &synthetic.db, |ctx| ctx.tx_count_hint = None, |_| {});
    assert!(!driven.parallel);
    assert_same(driven, &sequential(&synthetic.chain, &block, &synthetic.db), "no hint");
}

#[test]
fn a_sequential_copy_never_uses_the_engine() {
    let synthetic = mixed_block(12, 4);
    let block = synthetic.block();
    let copy = factory(2).sequential();
    assert!(copy.engine().is_none());
    let driven = drive(&copy, &synthetic.chain, &block, &synthetic.db, |_| {}, |_| {});
    assert!(!driven.parallel);
    assert_same(driven, &sequential(&synthetic.chain, &block, &synthetic.db), "sequential copy");
}

#[test]
fn more_transactions_than_the_hint_finish_sequentially() {
    let synthetic = mixed_block(30, 6);
    let block = synthetic.block();
    let driven =
        drive(&factory(2), &synthetic.chain, &block, &synthetic.db, |ctx| ctx.tx_count_hint = Some(10), |_| {});
    assert!(driven.parallel);
    assert_same(driven, &sequential(&synthetic.chain, &block, &synthetic.db), "hint too small");
}

/// Counts interpreter steps: any inspector but the no-op one.
#[derive(Debug, Default)]
struct Steps(usize);

impl<CTX, INTR: InterpreterTypes> Inspector<CTX, INTR> for Steps {
    fn step(&mut self, _interp: &mut Interpreter<INTR>, _context: &mut CTX) {
        self.0 += 1;
    }
}

#[test]
fn with_an_inspector_it_runs_sequentially_so_the_inspector_sees_every_step() {
    let synthetic = mixed_block(9, 3);
    let block = synthetic.block();
    let factory = factory(2);
    let mut state = state(&synthetic.db);
    let evm = EthEvmFactory::default().create_evm_with_inspector(
        &mut state,
        block.evm_env(&synthetic.chain),
        Steps::default(),
    );
    let mut executor = factory.create_executor(evm, block.execution_ctx());
    executor.apply_pre_execution_changes().unwrap();
    for tx in &block.txs {
        executor.execute_transaction(tx).unwrap();
        assert!(!executor.is_parallel());
    }
    let (evm, result) = executor.finish().unwrap();
    assert!(alloy_evm::Evm::inspector(&evm).0 > 0, "the inspector ran");
    drop(evm);
    let driven = Driven { result: Ok(result), bundle: bundle_of(state), parallel: false };
    assert_same(driven, &sequential(&synthetic.chain, &block, &synthetic.db), "inspector");
}

#[test]
fn a_second_block_while_the_engine_is_busy_runs_sequentially_and_both_are_right() {
    let first = mixed_block(20, 5);
    let second = mixed_block(15, 3);
    let (first_block, second_block) = (first.block(), second.block());
    let factory = factory(2);

    let mut state = state(&first.db);
    let mut executor = started(&factory, &mut state, &first.chain, &first_block);
    executor.execute_transaction(&first_block.txs[0]).unwrap();
    assert!(executor.is_parallel(), "the first block holds the engine");

    let driven = drive(&factory, &second.chain, &second_block, &second.db, |_| {}, |_| {});
    assert!(!driven.parallel, "the engine was busy");
    assert_same(driven, &sequential(&second.chain, &second_block, &second.db), "second block");

    for tx in &first_block.txs[1..] {
        executor.execute_transaction(tx).unwrap();
    }
    let (_, result) = executor.finish().unwrap();
    let driven = Driven { result: Ok(result), bundle: bundle_of(state), parallel: true };
    assert_same(driven, &sequential(&first.chain, &first_block, &first.db), "first block");
}

#[test]
fn an_executor_dropped_without_finish_frees_the_engine() {
    let synthetic = mixed_block(20, 5);
    let block = synthetic.block();
    let factory = factory(2);
    {
        let mut state = state(&synthetic.db);
        let mut executor = started(&factory, &mut state, &synthetic.chain, &block);
        for tx in &block.txs[..10] {
            executor.execute_transaction(tx).unwrap();
        }
        // Dropped here, as reth's tracing drops the executor it used for the system calls.
    }
    let driven = drive(&factory, &synthetic.chain, &block, &synthetic.db, |_| {}, |_| {});
    assert!(driven.parallel, "the engine is free again");
    assert_same(driven, &sequential(&synthetic.chain, &block, &synthetic.db), "after a drop");
}

#[test]
fn asking_for_a_result_at_once_flushes_and_continues_sequentially() {
    let synthetic = mixed_block(20, 5);
    let block = synthetic.block();
    let factory = factory(2);
    let mut state = state(&synthetic.db);
    let mut executor = started(&factory, &mut state, &synthetic.chain, &block);
    for tx in &block.txs[..10] {
        executor.execute_transaction(tx).unwrap();
    }
    for tx in &block.txs[10..] {
        let output = executor.execute_transaction_without_commit(tx).unwrap();
        assert_eq!(executor.receipts().len(), block.txs.iter().position(|t| t == tx).unwrap());
        executor.commit_transaction(output);
    }
    let (_, result) = executor.finish().unwrap();
    let driven = Driven { result: Ok(result), bundle: bundle_of(state), parallel: true };
    assert_same(driven, &sequential(&synthetic.chain, &block, &synthetic.db), "flushed");
}

#[test]
fn an_invalid_transaction_fails_the_block_with_the_same_error_and_the_same_committed_state() {
    let mut synthetic = mixed_block(12, 4);
    let poor = Address::with_last_byte(0x99);
    synthetic.fund(poor, U256::from(1));
    synthetic.push(poor, TxKind::Call(COUNTER), U256::ZERO, Bytes::new(), 60_000, Fee::Dynamic(20, 1), 0);
    for i in 0..6 {
        synthetic.push(sender(i % 4), TxKind::Call(COUNTER), U256::ZERO, Bytes::new(), 60_000, Fee::Dynamic(20, 1), 0);
    }
    let block = synthetic.block();
    let eth = factory(1).sequential();
    let expected = drive(&eth, &synthetic.chain, &block, &synthetic.db, |_| {}, |_| {});
    let expected_error = expected.result.as_ref().unwrap_err().to_string();
    assert!(expected_error.contains("lack of funds"), "{expected_error}");
    for slots in [2, 3, 8] {
        let driven = drive(&factory(slots), &synthetic.chain, &block, &synthetic.db, |_| {}, |_| {});
        assert!(driven.parallel);
        assert_eq!(driven.result.as_ref().unwrap_err().to_string(), expected_error, "{slots} slots");
        assert_eq!(driven.bundle, expected.bundle, "{slots} slots: the caller's state after the failure");
    }
}

/// reth keeps its `ConfigureEvm` (which holds the factory) in every component and clones it
/// across threads: `Send + Sync + Clone + Debug + Unpin + 'static`. (Executors themselves are
/// not `Send`, for the Ethereum factory either: revm's EVM context is not.)
#[test]
fn the_factory_is_what_reth_requires_of_an_evm_config_part() {
    fn assert_config_part<T: Send + Sync + Clone + std::fmt::Debug + Unpin + 'static>() {}
    assert_config_part::<Factory>();
}

/// A block whose transactions read what the pre-block system calls wrote: every other one asks
/// the EIP-4788 contract for this block's beacon root, which succeeds only if it sees the root
/// the block's own pre-block call stored (the parent state holds none for this timestamp: the
/// call reverts there). The rest are plain transfers, so that no probe runs the opening first.
fn beacon_root_block(network: &str) -> SyntheticBlock {
    let mut block = SyntheticBlock::new(network, 30_000_000, Address::with_last_byte(0xee));
    // Non-zero, so that the EIP-2935 call (Prague on) changes its contract's storage.
    block.header.parent_hash = B256::with_last_byte(0x42);
    block.deploy(alloy_eips::eip4788::BEACON_ROOTS_ADDRESS, &alloy_eips::eip4788::BEACON_ROOTS_CODE, []);
    block.deploy(alloy_eips::eip2935::HISTORY_STORAGE_ADDRESS, &alloy_eips::eip2935::HISTORY_STORAGE_CODE, []);
    for i in 0..80 {
        block.fund(sender(i), U256::from(10).pow(U256::from(18)));
    }
    let timestamp = Bytes::from(U256::from(block.header.timestamp).to_be_bytes::<32>().to_vec());
    for i in 0..80 {
        let (to, value, input) = if i % 2 == 1 {
            (alloy_eips::eip4788::BEACON_ROOTS_ADDRESS, U256::ZERO, timestamp.clone())
        } else {
            (Address::left_padding_from(&(0x9000 + i as u32).to_be_bytes()), U256::from(7), Bytes::new())
        };
        block.push(sender(i), TxKind::Call(to), value, input, 60_000, Fee::Dynamic(20, 1), 0);
    }
    block
}

/// The pre-block system calls change only [`PRE_BLOCK_CONTRACTS`] (what a session never reads
/// from the parent state), on every fork the engine runs: a new system call would show here.
#[test]
fn the_pre_block_calls_change_only_the_contracts_a_session_never_reads_from_the_parent_state() {
    for network in ["Cancun", "Prague", "Osaka"] {
        let synthetic = beacon_root_block(network);
        let block = synthetic.block();
        let eth = alloy_evm::eth::EthBlockExecutorFactory::new(
            RethReceiptBuilder,
            synthetic.chain.clone(),
            EthEvmFactory::default(),
        );
        let mut state = state(&synthetic.db);
        let evm = EthEvmFactory::default().create_evm(&mut state, block.evm_env(&synthetic.chain));
        let mut executor = eth.create_executor(evm, block.execution_ctx());
        executor.apply_pre_execution_changes().unwrap();
        drop(executor);
        let changed: Vec<Address> = bundle_of(state).state.keys().copied().collect();
        assert!(!changed.is_empty(), "{network}: the calls changed nothing, the test proves nothing");
        assert!(changed.iter().all(|a| PRE_BLOCK_CONTRACTS.contains(a)), "{network}: {changed:?}");
        if network != "Cancun" {
            assert_eq!(changed.len(), 2, "{network}: both contracts written");
        }
    }
}

/// With the parent state, the slots read the beacon-roots contract from the caller's `State`,
/// where the block's pre-block call wrote this block's root: every lookup succeeds, as in the
/// sequential run. Read from the parent state, half the block's transactions would revert.
#[test]
fn with_the_parent_state_transactions_see_what_the_pre_block_calls_wrote() {
    for network in ["Cancun", "Prague"] {
        let synthetic = beacon_root_block(network);
        let block = synthetic.block();
        let expected = sequential(&synthetic.chain, &block, &synthetic.db);
        assert!(
            expected.result.receipts.iter().all(alloy_consensus::TxReceipt::status),
            "{network}: every lookup succeeds sequentially"
        );
        let executor = common::own_drop_in(2);
        let parent = common::parent_of(&synthetic.db);
        let output = executor.execute_with_parent(&synthetic.chain, &block, &synthetic.db, Some(&parent)).unwrap();
        assert_eq!(output.stats.as_ref().and_then(|s| s.sequential_from), None, "{network}: ran on the engine");
        let diffs = compare_outputs(&expected, &output);
        assert!(diffs.is_empty(), "{network}: {diffs:#?}");
    }
}

/// A source is asked for the block's parent by hash: a view of another block is never used.
#[test]
fn a_parent_state_is_used_only_for_its_own_block() {
    let parent =
        OneParentState { parent_hash: B256::with_last_byte(1), state: common::parent_of(&InMemoryDb::default()) };
    assert!(parent.after(B256::with_last_byte(1)).is_some());
    assert!(parent.after(B256::with_last_byte(2)).is_none());
}

/// A database whose reads of one account fail, the first `budget` times (all of them if
/// `usize::MAX`).
#[derive(Debug)]
struct FailingAccount {
    inner: InMemoryDb,
    account: Address,
    budget: std::sync::atomic::AtomicUsize,
}

impl revm::DatabaseRef for FailingAccount {
    type Error = parevm_statedb::DbError;
    fn basic_ref(&self, address: Address) -> Result<Option<revm::state::AccountInfo>, Self::Error> {
        use std::sync::atomic::Ordering::SeqCst;
        if address == self.account && self.budget.fetch_update(SeqCst, SeqCst, |b| b.checked_sub(1)).is_ok() {
            return Err(parevm_statedb::DbError("injected failure reading the beneficiary".into()));
        }
        self.inner.basic_ref(address).map_err(parevm_statedb::DbError::from_display)
    }
    fn code_by_hash_ref(&self, hash: B256) -> Result<revm::bytecode::Bytecode, Self::Error> {
        self.inner.code_by_hash_ref(hash).map_err(parevm_statedb::DbError::from_display)
    }
    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        self.inner.storage_ref(address, index).map_err(parevm_statedb::DbError::from_display)
    }
    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        self.inner.block_hash_ref(number).map_err(parevm_statedb::DbError::from_display)
    }
}

/// The session loads the beneficiary at its start, and the merger credits deferred fees from
/// it. If that read fails once, the block is still sequential's (a failed read is judged again
/// at the transaction's turn); if every read fails, the block fails with the sequential
/// executor's error, word for word.
#[test]
fn a_failed_read_of_the_beneficiary_is_judged_again_and_a_lasting_one_is_sequentials_error() {
    let synthetic = mixed_block(40, 40);
    let block = synthetic.block();
    let beneficiary = block.header.beneficiary;
    let failing = |budget| FailingAccount {
        inner: synthetic.db.clone(),
        account: beneficiary,
        budget: std::sync::atomic::AtomicUsize::new(budget),
    };
    let expected = sequential(&synthetic.chain, &block, &synthetic.db);
    for slots in [2, 3] {
        let executor = common::own_drop_in(slots);
        let output = executor.execute(&synthetic.chain, &block, &failing(1)).expect("one failed read is retried");
        let stats = output.stats.as_ref().expect("ran on the engine");
        assert_eq!(stats.sequential_from, None, "{slots} slots: to the end");
        let diffs = compare_outputs(&expected, &output);
        assert!(diffs.is_empty(), "{slots} slots: {diffs:#?}");

        let sequential = Executor::Sequential.execute(&synthetic.chain, &block, &failing(usize::MAX)).unwrap_err();
        assert!(sequential.to_string().contains("injected failure"), "{sequential}");
        let parallel = executor.execute(&synthetic.chain, &block, &failing(usize::MAX)).unwrap_err();
        assert_eq!(parallel.to_string(), sequential.to_string(), "{slots} slots");
    }
}

/// Transactions to the block's beneficiary go to no worker's queue, with or without the parent
/// state: the caller runs each first at its turn, and none counts as overtaken
/// (`BlockStats::owner_overtook`), whatever the worker does meanwhile.
#[test]
fn the_beneficiarys_transactions_are_the_callers_own_and_never_overtaken() {
    let beneficiary = Address::with_last_byte(0xee);
    let mut synthetic = SyntheticBlock::new("Cancun", 30_000_000, beneficiary);
    let n = 40;
    for i in 0..n {
        synthetic.fund(sender(i), U256::from(10).pow(U256::from(18)));
        let to = TxKind::Call(beneficiary);
        synthetic.push(sender(i), to, U256::from(7), Bytes::new(), 60_000, Fee::Dynamic(20, 1), 0);
    }
    // The chain rule would hand a block of mostly the beneficiary's transactions back, and
    // `common::config` has the cheap-block rule off.
    let engine = common::engine_with(EngineConfig { chain_rule: None, ..common::config(2) });
    let executor = Executor::DropIn(Arc::new(engine));
    let (block, parent) = (synthetic.block(), common::parent_of(&synthetic.db));
    for parent in [None, Some(&parent)] {
        let diffs = common::differences_with(&synthetic.chain, &block, &synthetic.db, &executor, parent);
        assert!(diffs.is_empty(), "parent state {}: {diffs:#?}", parent.is_some());
        let output = executor.execute_with_parent(&synthetic.chain, &block, &synthetic.db, parent).unwrap();
        let stats = output.stats.expect("run in a session");
        assert_eq!(stats.sequential_from, None, "{stats:?}");
        assert_eq!((stats.owner_turn_executions, stats.owner_overtook), (n as u64, 0), "{stats:?}");
    }
}
