//! The bugs BSC's parallel EVM is known to have hit, each as a block whose parallel execution
//! must equal the sequential one at every slot count, and whose outcome is asserted on directly.

mod common;

use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use parevm::{
    Executor,
    synthetic::{Fee, SyntheticBlock, contracts, create2_child},
};
use parevm_dispatcher::MAX_SLOTS;

const FACTORY: Address = Address::with_last_byte(0xf1);
const FACTORY2: Address = Address::with_last_byte(0xf2);
const COUNTER: Address = Address::with_last_byte(0xc0);

fn sender(i: u8) -> Address {
    Address::left_padding_from(&[0x10, i])
}

fn block(network: &str, senders: u8) -> SyntheticBlock {
    let mut block = SyntheticBlock::new(network, 30_000_000, Address::with_last_byte(0xee));
    for i in 0..senders {
        block.fund(sender(i), U256::from(10).pow(U256::from(18)));
    }
    block.deploy(FACTORY, &contracts::create_factory(), []);
    block.deploy(FACTORY2, &contracts::create2_factory(), []);
    block.deploy(COUNTER, contracts::COUNTER, []);
    block
}

fn call(block: &mut SyntheticBlock, from: Address, to: Address, value: u64, input: Bytes) {
    block.push(from, TxKind::Call(to), U256::from(value), input, 200_000, Fee::Dynamic(20, 1), 0);
}

/// Runs the block at every slot count, checks equality with sequential, returns the bundle.
fn run_everywhere(synthetic: &SyntheticBlock) -> revm::database::BundleState {
    let block = synthetic.block();
    for slots in 1..=MAX_SLOTS {
        let diffs = common::differences(&synthetic.chain, &block, &synthetic.db, common::parallel(slots));
        assert!(diffs.is_empty(), "{slots} slots: {diffs:#?}");
    }
    Executor::Sequential.execute(&synthetic.chain, &block, &synthetic.db).unwrap().bundle
}

#[test]
fn create_advances_the_creators_nonce() {
    // Ten senders each make the factory CREATE a child: every child's address depends on the
    // factory's nonce, which every transaction reads and bumps.
    let mut synthetic = block("Cancun", 10);
    for i in 0..10 {
        call(&mut synthetic, sender(i), FACTORY, 0, Bytes::new());
    }
    let bundle = run_everywhere(&synthetic);
    assert_eq!(bundle.state[&FACTORY].info.as_ref().unwrap().nonce, 11);
    for nonce in 1..=10 {
        let child = FACTORY.create(nonce);
        assert!(bundle.state[&child].info.is_some(), "child at nonce {nonce}");
    }
    // A sender's own CREATE bumps its nonce too.
    let mut synthetic = block("Cancun", 1);
    let init = Bytes::from_static(contracts::CHILD_INIT);
    for _ in 0..3 {
        synthetic.push(sender(0), TxKind::Create, U256::ZERO, init.clone(), 200_000, Fee::Dynamic(20, 1), 0);
    }
    let bundle = run_everywhere(&synthetic);
    assert_eq!(bundle.state[&sender(0)].info.as_ref().unwrap().nonce, 3);
    assert!(bundle.state[&sender(0).create(2)].info.is_some());
}

#[test]
fn storage_of_a_destroyed_account_reads_as_zero_when_it_is_recreated() {
    // Before Cancun: create a child (its constructor writes slot 0), destroy it, create it again
    // at the same address. The recreated child's slot 0 must come from its new constructor only.
    let salt = B256::with_last_byte(1);
    let child = create2_child(FACTORY2, salt);
    let mut synthetic = block("Shanghai", 3);
    call(&mut synthetic, sender(0), FACTORY2, 0, Bytes::from(salt.0.to_vec()));
    call(&mut synthetic, sender(1), child, 0, Bytes::new());
    call(&mut synthetic, sender(2), FACTORY2, 0, Bytes::from(salt.0.to_vec()));
    let bundle = run_everywhere(&synthetic);
    assert!(bundle.state[&child].info.is_some(), "recreated");
    assert_eq!(bundle.state[&child].storage[&U256::ZERO].present_value, U256::from(1));
    // Had the old slot leaked into the new account, the second constructor's SSTORE would have
    // been a no-op and cheaper than the first one.
    let output = Executor::Sequential.execute(&synthetic.chain, &synthetic.block(), &synthetic.db).unwrap();
    let gas: Vec<u64> = output.result.receipts.iter().map(alloy_consensus::TxReceipt::cumulative_gas_used).collect();
    assert_eq!(gas[0], gas[2] - gas[1], "both creations cost the same");

    // From Cancun on, SELFDESTRUCT of an older contract only moves its balance.
    let mut synthetic = block("Cancun", 3);
    call(&mut synthetic, sender(0), FACTORY2, 0, Bytes::from(salt.0.to_vec()));
    call(&mut synthetic, sender(1), child, 5, Bytes::new());
    call(&mut synthetic, sender(2), child, 7, Bytes::new());
    let bundle = run_everywhere(&synthetic);
    let info = bundle.state[&child].info.as_ref().expect("survives after Cancun");
    assert_eq!(info.balance, U256::ZERO, "each call's value goes back to its caller");
    assert_eq!(bundle.state[&child].storage[&U256::ZERO].present_value, U256::from(1));
}

#[test]
fn state_changed_and_read_in_one_block() {
    // A pays B, B (who could not afford it before) pays C, C pays A; and a counter read and
    // written by everyone.
    let mut synthetic = block("Cancun", 3);
    let ether = U256::from(10).pow(U256::from(18));
    let poor = Address::with_last_byte(0x77);
    synthetic.fund(poor, U256::ZERO);
    synthetic.push(sender(0), TxKind::Call(poor), ether / U256::from(2), Bytes::new(), 21_000, Fee::Dynamic(20, 1), 0);
    synthetic.push(poor, TxKind::Call(sender(1)), ether / U256::from(4), Bytes::new(), 21_000, Fee::Dynamic(20, 1), 0);
    for i in 0..3 {
        call(&mut synthetic, sender(i), COUNTER, 0, Bytes::from(B256::ZERO.0.to_vec()));
    }
    let bundle = run_everywhere(&synthetic);
    assert_eq!(bundle.state[&COUNTER].storage[&U256::ZERO].present_value, U256::from(3));
    assert_eq!(bundle.state[&poor].info.as_ref().unwrap().nonce, 1);
}
