//! Every historical mainnet block: the sequential baseline matches the header, and the parallel
//! engine's output (receipts, gas, requests, and the whole bundle of state changes) equals the
//! sequential one at 2, 3, 4 and 8 slots, and through the drop-in executor factory at 2, 3 and 8
//! (`common::engines`), the drop-in's caller answering the slots' reads from inside its own
//! executions included. Plus the loader's handling of broken input.

mod common;

use std::path::{Path, PathBuf};

use parevm::{
    ChainSpec, Executor, LoadError,
    checks::check_header,
    mainnet::{discover, load_block},
    replay::{compare_outputs, header_checks},
};
use parevm_statedb::{TxSource, TxSummary};

fn blocks() -> Vec<PathBuf> {
    discover(&[common::mainnet_dir()]).expect("the mainnet data is at ../shared/data/mainnet")
}

#[test]
fn all_fifty_blocks_are_found_in_order() {
    let dirs = blocks();
    assert_eq!(dirs.len(), 50);
    let numbers: Vec<u64> = dirs.iter().map(|d| d.file_name().unwrap().to_str().unwrap().parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn sequential_matches_every_header() {
    let chain = ChainSpec::mainnet();
    for dir in blocks() {
        let block = load_block(&dir).unwrap();
        let output = Executor::Sequential.execute(&chain, &block.block, &block.db).unwrap();
        let mismatches = check_header(&block.block.header, &output.result, header_checks(&chain, &block));
        assert!(mismatches.is_empty(), "block {}: {mismatches:?}", block.block.number());
    }
}

#[test]
fn parallel_equals_sequential_on_every_block() {
    let chain = ChainSpec::mainnet();
    for dir in blocks() {
        let block = load_block(&dir).unwrap();
        for executor in common::engines() {
            let diffs = common::differences(&chain, &block.block, &block.db, executor);
            assert!(diffs.is_empty(), "block {} with {}: {diffs:#?}", block.block.number(), executor.name());
        }
    }
}

/// The drop-in given each block's parent state, which its slots read directly instead of asking
/// the caller (`ParallelBlockExecutorFactory::with_parent_states`), and whose caller executes
/// from its own lane while it waits, equals the sequential executor on every block. The Cancun
/// blocks' beacon-root call changes a contract the view does not hold.
///
/// And the view is what the slots read: on the blocks of 100+ transactions the caller answers
/// thousands of their reads a pass without it, and with it only those of what it changed before
/// the session (the beacon-roots contract, which hardly any transaction reads).
#[test]
fn the_drop_in_with_the_parent_state_equals_sequential_on_every_block() {
    let chain = ChainSpec::mainnet();
    let own = common::own_drop_in(2);
    let (mut asked_without, mut asked_with) = (0, 0);
    for dir in blocks() {
        let block = load_block(&dir).unwrap();
        let parent = common::parent_of(&block.db);
        for slots in [2, 3] {
            let executor = common::drop_in(slots);
            let diffs = common::differences_with(&chain, &block.block, &block.db, executor, Some(&parent));
            assert!(diffs.is_empty(), "block {} with {}: {diffs:#?}", block.block.number(), executor.name());
        }
        if block.block.txs.len() >= 100 {
            let asked = |parent| {
                let output = own.execute_with_parent(&chain, &block.block, &block.db, parent).unwrap();
                output.stats.map_or(0, |stats| stats.owner_reads)
            };
            asked_without += asked(None);
            asked_with += asked(Some(&parent));
        }
    }
    assert!(asked_without > 1000, "without the view the slots ask the caller: {asked_without} reads");
    assert!(asked_with * 50 < asked_without, "with it, {asked_with} reads against {asked_without}");
}

/// The drop-in's caller answers the slots' reads from inside its own executions once slots wait
/// on them (on an EVM of its own over the same `State`), and blocks run that way still equal the
/// sequential executor's. The blocks of 100+ transactions read about one value per transaction
/// from the caller; thousands are answered that way in a pass, so none at all would be a bug.
#[test]
fn the_drop_in_answers_reads_while_it_executes_and_stays_exact() {
    let chain = ChainSpec::mainnet();
    let (executor, batch) = (common::own_drop_in(2), Executor::Parallel(common::engine(2)));
    let (mut served, mut turn_executions, mut overtook, mut txs) = (0, 0, 0, 0);
    for dir in blocks() {
        let block = load_block(&dir).unwrap();
        if block.block.txs.len() < 100 {
            continue;
        }
        let expected = Executor::Sequential.execute(&chain, &block.block, &block.db).unwrap();
        let output = executor.execute(&chain, &block.block, &block.db).unwrap();
        let diffs = compare_outputs(&expected, &output);
        assert!(diffs.is_empty(), "block {}: {diffs:#?}", block.block.number());
        // No counters: the block ran on the Ethereum executor from the start (the chain probe).
        if let Some(stats) = output.stats {
            served += stats.served_while_executing;
            if stats.sequential_from.is_none() {
                // Each transaction is executed first once, by a worker or by the caller at its turn.
                assert!(stats.owner_turn_executions <= stats.txs as u64, "block {}: {stats:?}", block.block.number());
                turn_executions += stats.owner_turn_executions;
                overtook += stats.owner_overtook;
                txs += stats.txs as u64;
            }
        }
        let batch = batch.execute(&chain, &block.block, &block.db).unwrap().stats;
        assert_eq!(
            batch.map(|stats| (stats.owner_turn_executions, stats.owner_overtook)),
            Some((0, 0)),
            "the batch path has no owner"
        );
    }
    assert!(served > 0, "no read was answered from inside the caller's executions");
    // The caller runs its own lane at each turn, whatever the worker manages.
    assert!(turn_executions > 0 && turn_executions <= txs, "{turn_executions} of {txs}");
    // The worker, waiting a round trip per missing key, falls behind the caller's turns now and
    // then (the slower it runs, the more often), so some were overtaken.
    assert!(overtook > 0, "{overtook} of {turn_executions}");
}

/// The engine schedules by a transaction's summary and executes its `TxEnv`, built separately
/// from the signed transaction; the two must describe the same transaction.
/// Block 2641321 is 75 withdrawals from one exchange wallet among 8 other transactions. The
/// wallet's run shares a lane, and each execution reads its predecessor's nonce; taken out of the
/// lane by the other thread, or run after the merger's thread overtook the lane, an execution
/// read a stale nonce and was redone at its turn (16-20 redos in a block of 83, 0.54x). Now
/// neither happens, and the block still equals the sequential one.
#[test]
fn a_wallets_run_of_transactions_is_not_taken_out_of_order() {
    let chain = ChainSpec::mainnet();
    let block = load_block(&common::mainnet_dir().join("2641321")).unwrap();
    let mut redos = Vec::new();
    for slots in [2, 3] {
        let executor = common::parallel(slots);
        let diffs = common::differences(&chain, &block.block, &block.db, executor);
        assert!(diffs.is_empty(), "{slots} slots: {diffs:#?}");
        // Five runs each: how often the threads meet in the wallet's run is up to the scheduler.
        for _ in 0..5 {
            let stats = executor.execute(&chain, &block.block, &block.db).unwrap().stats.unwrap();
            redos.push(stats.redos(parevm_merger::RedoCause::Account));
        }
    }
    assert!(redos.iter().sum::<u64>() <= 5, "account redos per run: {redos:?}");
}

/// Block 19932703 spends most of its time in transaction 142, a rollup's proof verification
/// whose gas limit (556,413 of the block's 24.5 M) does not make it heavy: milliseconds here,
/// where 500 µs make a call heavy. After two runs, by either entry point, the engine remembers
/// the call; the dispatch then starts 142 ahead of the block's first transaction, and the next
/// run still equals the sequential executor. (Whether other calls are remembered too depends
/// on the host's load: a wall clock's time; the memory's rules are unit-tested with fixed
/// durations in `heavy_calls.rs`.)
#[test]
fn a_call_that_ran_long_is_remembered_and_the_block_stays_exact() {
    let chain = ChainSpec::mainnet();
    let block = load_block(&common::mainnet_dir().join("19932703")).unwrap();
    let summaries: Vec<TxSummary> = (0..TxSource::len(&block.block)).map(|tx| block.block.summary(tx)).collect();
    let verification = &summaries[142];
    for executor in [Executor::Parallel(common::engine(2)), common::own_drop_in(2)] {
        let calls = executor.engine().unwrap().heavy_calls();
        let plan = || {
            let beneficiary = block.block.header.beneficiary;
            parevm_dispatcher::dispatch::static_dispatch(&summaries, 0, 1, beneficiary, true, calls)
        };
        assert!(!calls.is_heavy(verification), "{}: nothing learnt yet", executor.name());
        // Transaction 71 (2 M gas) is heavy by its gas: it goes first in the worker's lane.
        assert_eq!(plan()[0][..2], [71, 0], "{}: by gas alone", executor.name());
        for run in 0..=parevm_slots::HEAVY_RUNS {
            let diffs = common::differences(&chain, &block.block, &block.db, &executor);
            assert!(diffs.is_empty(), "{} run {run}: {diffs:#?}", executor.name());
        }
        assert!(calls.is_heavy(verification), "{}: the verification is remembered", executor.name());
        // Heavy ones go first in the worker's lane, in block order (under load, other calls
        // may have run long enough to join them).
        let lane = &plan()[0];
        let position = |tx| lane.iter().position(|&t| t == tx).unwrap_or_else(|| panic!("{tx} in {lane:?}"));
        assert!(position(142) < position(0), "{}: the verification ahead of 0: {lane:?}", executor.name());
    }
}

#[test]
fn every_summary_agrees_with_its_converted_transaction() {
    let (mut creations, mut total) = (0, 0);
    for dir in blocks() {
        let block = load_block(&dir).unwrap().block;
        for tx in 0..TxSource::len(&block) {
            let env = block.tx_env(tx);
            assert_eq!(block.summary(tx), TxSummary::from(&env), "block {} tx {tx}", block.number());
            creations += usize::from(block.summary(tx).recipient.is_none());
            total += 1;
        }
    }
    assert!(creations > 0 && total > 5_000, "the blocks hold creations and calls ({creations} of {total})");
}

#[test]
fn a_tampered_header_is_caught() {
    let chain = ChainSpec::mainnet();
    let dir = blocks().into_iter().find(|d| d.ends_with("19934116")).unwrap();
    let mut block = load_block(&dir).unwrap();
    let output = Executor::Sequential.execute(&chain, &block.block, &block.db).unwrap();
    block.block.header.gas_used += 1;
    block.block.header.receipts_root.0[0] ^= 1;
    let mismatches = check_header(&block.block.header, &output.result, header_checks(&chain, &block));
    let fields: Vec<_> = mismatches.iter().map(|m| m.field).collect();
    assert_eq!(fields, ["gasUsed", "receiptsRoot"]);
    assert!(mismatches[0].to_string().contains(&output.result.gas_used.to_string()));
}

/// A scratch copy of one block folder whose files a test may break, removed when dropped (a
/// failing test's copy too: the panic unwinds through the drop).
struct ScratchBlock(PathBuf);

impl ScratchBlock {
    fn new(name: &str) -> Self {
        let source = blocks().into_iter().find(|d| d.ends_with("46147")).unwrap();
        let dir = std::env::temp_dir().join(format!("parevm-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["block.json", "pre_state.json"] {
            std::fs::copy(source.join(file), dir.join(file)).unwrap();
        }
        Self(dir)
    }
}

impl std::ops::Deref for ScratchBlock {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchBlock {
    fn drop(&mut self) {
        // Best effort: a copy left behind is litter in the temporary folder, not a wrong result.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_missing_file_is_named() {
    let dir = ScratchBlock::new("missing");
    std::fs::remove_file(dir.join("pre_state.json")).unwrap();
    let err = load_block(&dir).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }));
    assert!(err.to_string().contains("pre_state.json"), "{err}");
}

#[test]
fn bad_hex_names_file_and_field() {
    let dir = ScratchBlock::new("badhex");
    let pre = dir.join("pre_state.json");
    let text = std::fs::read_to_string(&pre).unwrap();
    let start = text.find("\"balance\":\"0x").expect("compact JSON") + "\"balance\":\"".len();
    std::fs::write(&pre, format!("{}0xzz{}", &text[..start], &text[start + 2..])).unwrap();
    let err = load_block(&dir).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("pre_state.json") && message.contains(".basic.balance"), "{message}");
}

#[test]
fn a_truncated_block_file_is_named() {
    let dir = ScratchBlock::new("truncated");
    let path = dir.join("block.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    let err = load_block(&dir).unwrap_err();
    assert!(matches!(err, LoadError::Json { .. }) && err.to_string().contains("block.json"), "{err}");
}

#[test]
fn a_corrupted_header_field_fails_the_hash_check() {
    let dir = ScratchBlock::new("header");
    let path = dir.join("block.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let gas_used = json["gasUsed"].as_str().unwrap().to_string();
    let text = std::fs::read_to_string(&path).unwrap();
    let tampered = text.replacen(&format!("\"gasUsed\":\"{gas_used}\""), "\"gasUsed\":\"0x1\"", 1);
    assert_ne!(tampered, text);
    std::fs::write(&path, tampered).unwrap();
    let err = load_block(&dir).unwrap_err();
    assert!(err.to_string().contains("block.json: field `hash`"), "{err}");
}
