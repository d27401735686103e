//! The synthetic benchmark workloads at a small gas target: every transaction succeeds when
//! executed sequentially, the engine (2 slots) produces exactly the sequential output, the gas
//! used is near the target, and a seed always generates the same transactions.

mod common;

use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use parevm::{
    Executor,
    bench::{BenchOptions, bench_generated},
    replay::compare_outputs,
    synthetic::{Fee, SyntheticBlock},
    workloads::{
        Erc20Code, GeneratedBlock, POOLS, Workload, balance_key, generate, minimal_erc20, pool_address,
        transfer_calldata,
    },
};
use parevm_dispatcher::EngineConfig;

const GAS: u64 = 2_000_000;
const SEED: u64 = 42;

fn erc20_code() -> Erc20Code {
    Erc20Code::locate(&common::mainnet_dir())
}

fn hashes(block: &GeneratedBlock) -> Vec<B256> {
    block.block.txs.iter().map(|tx| *tx.inner().tx_hash()).collect()
}

/// Sequential: every receipt successful, gas near the target; parallel (2 slots) identical.
fn check(block: &GeneratedBlock) -> parevm::BlockOutput {
    let name = block.workload.name();
    let sequential = Executor::Sequential.execute(&block.chain, &block.block, &block.db).expect("executes");
    let receipts = &sequential.result.receipts;
    assert_eq!(receipts.len(), block.block.txs.len(), "{name}");
    for (i, receipt) in receipts.iter().enumerate() {
        assert!(receipt.success, "{name}: tx {i} failed");
    }
    let gas = sequential.result.gas_used;
    assert!((GAS..GAS + 100_000).contains(&gas), "{name}: {gas} gas for a target of {GAS}");

    let parallel = common::parallel(2).execute(&block.chain, &block.block, &block.db).expect("executes in parallel");
    let diffs = compare_outputs(&sequential, &parallel);
    assert!(diffs.is_empty(), "{name}: {diffs:?}");
    sequential
}

#[test]
fn transfers() {
    let block = generate(Workload::Transfers, GAS, SEED, &erc20_code());
    assert_eq!(block.block.txs.len() as u64, GAS.div_ceil(21_000));
    let output = check(&block);
    // Every sender and every recipient is distinct: 2 accounts per transaction, plus the
    // beneficiary.
    assert_eq!(output.bundle.state.len(), 2 * block.block.txs.len() + 1);
}

fn check_erc20(code: Erc20Code) {
    let token = code.address();
    let block = generate(Workload::Erc20, GAS, SEED, &code);
    let output = check(&block);
    // Each transfer moved tokens: both holders' balances changed.
    let storage = &output.bundle.state[&token].storage;
    assert_eq!(storage.len(), 2 * block.block.txs.len());
    assert!(storage.values().all(|slot| slot.present_value != slot.previous_or_original_value));
    // The tokens are conserved.
    let before: U256 = storage.values().map(|slot| slot.previous_or_original_value).sum();
    let after: U256 = storage.values().map(|slot| slot.present_value).sum();
    assert_eq!(before, after);
}

#[test]
fn erc20_with_weth9() {
    let code = erc20_code();
    assert!(matches!(code, Erc20Code::Weth9 { .. }), "WETH9 not found: {}", code.describe());
    check_erc20(code);
}

#[test]
fn erc20_with_the_hand_assembled_token() {
    check_erc20(Erc20Code::Minimal { reason: "test".into() });
}

/// The hand-assembled token refuses an unknown selector and an amount above the balance, and
/// moves exactly the amount otherwise (also to oneself).
#[test]
fn hand_assembled_token_semantics() {
    let (token, alice, bob) =
        (Address::with_last_byte(0xe2), Address::with_last_byte(0xa1), Address::with_last_byte(0xb0));
    let mut block = SyntheticBlock::new("Cancun", 30_000_000, Address::with_last_byte(0xbe));
    block.fund(alice, U256::from(10u128.pow(18)));
    block.deploy(token, &minimal_erc20(), [(balance_key(alice, 0), U256::from(100))]);
    let call = |block: &mut SyntheticBlock, input: Bytes| {
        block.push(alice, TxKind::Call(token), U256::ZERO, input, 100_000, Fee::Dynamic(100, 1), 0)
    };
    call(&mut block, transfer_calldata(bob, U256::from(101))); // more than the balance
    call(&mut block, Bytes::from_static(&[0x12, 0x34, 0x56, 0x78])); // unknown selector
    call(&mut block, transfer_calldata(bob, U256::from(30)));
    call(&mut block, transfer_calldata(alice, U256::from(70))); // to oneself
    let output = Executor::Sequential.execute(&block.chain, &block.block(), &block.db).expect("executes");
    let status: Vec<bool> = output.result.receipts.iter().map(|r| r.success).collect();
    assert_eq!(status, [false, false, true, true]);
    let storage = &output.bundle.state[&token].storage;
    assert_eq!(storage[&balance_key(alice, 0)].present_value, U256::from(70));
    assert_eq!(storage[&balance_key(bob, 0)].present_value, U256::from(30));
}

#[test]
fn amm() {
    let block = generate(Workload::Amm, GAS, SEED, &erc20_code());
    let output = check(&block);
    // Every pool was used, and both of its reserves changed.
    for i in 0..POOLS {
        let pool = &output.bundle.state[&pool_address(i)];
        assert_eq!(pool.storage.len(), 2, "pool {i}");
    }
}

#[test]
fn hot() {
    let block = generate(Workload::Hot, GAS, SEED, &erc20_code());
    let output = check(&block);
    // The counter went from 1 up by one per transaction.
    let counter = &output.bundle.state[&parevm::workloads::HOT_COUNTER];
    assert_eq!(counter.storage[&U256::ZERO].present_value, U256::from(1 + block.block.txs.len()));
}

#[test]
fn generation_is_deterministic_per_seed() {
    let code = erc20_code();
    for workload in Workload::ALL {
        let first = generate(workload, GAS, SEED, &code);
        let second = generate(workload, GAS, SEED, &code);
        assert_eq!(hashes(&first), hashes(&second), "{workload}");
        assert_eq!(first.db.accounts, second.db.accounts, "{workload}");
        let other = generate(workload, GAS, SEED + 1, &code);
        assert_ne!(hashes(&first), hashes(&other), "{workload}");
    }
}

#[test]
fn bench_runs_on_generated_blocks() {
    let code = erc20_code();
    let blocks: Vec<_> = Workload::ALL.iter().map(|&w| generate(w, 200_000, SEED, &code)).collect();
    let configs = [EngineConfig::with_slots(2).unwrap()];
    let report = bench_generated(
        &blocks,
        &configs,
        BenchOptions { runs: 1, warmup: 0, drop_in: false, parent_state: false },
        |_, _, _| {},
    )
    .expect("benchmark completes");
    let labels: Vec<&str> = report.blocks.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, ["transfers", "erc20", "amm", "hot"]);
    let table = parevm::bench::render_table(&report);
    assert!(table.starts_with("workload"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("amm ")), "{table}");
}
