//! Instruction hooks that record how an execution used account balances.
//!
//! Most stale reads on mainnet are of a balance the transaction never looked at: every swap
//! that wraps ether credits WETH's balance, every payment through a contract credits the
//! contract, and each of those reads the account (to run its code) at a balance an unmerged
//! predecessor has since moved. The read is stale, yet the execution would have been the same:
//! the EVM adds to a balance without branching on it. The merger can then accept the result with
//! the account's balance rebased (`merger/src/credit.rs`) instead of redoing it at its turn, if it
//! knows that nothing in the execution depended on that balance.
//!
//! Within a transaction's execution, code depends on an account's balance in these places only:
//! BALANCE (any account) and SELFBALANCE read it; SELFDESTRUCT moves all of it; CALL, CALLCODE,
//! CREATE and CREATE2 with value check that the sender covers the value. Elsewhere an account's
//! balance matters through its emptiness (new-account gas, EXTCODEHASH, state clearing), which
//! the merger rules out by rebasing only accounts with a nonce or code, and through the
//! transaction's own fee and value checks on its sender, whom it never rebases. The hooks wrap
//! the seven opcodes and record a [`Read::Balance`](parevm_statedb::Read::Balance) for them, then
//! run revm's own instruction unchanged: a transfer records how much the balance covered it by,
//! so that a rebased balance can be checked to cover it too.

use alloy_primitives::Address;
use parevm_statedb::{BlockDb, SlotDb};
use revm::{
    bytecode::opcode,
    handler::MainnetContext,
    interpreter::{
        InstructionContext, InstructionExecResult, InstructionTable,
        instructions::{contract, host, utility::IntoAddress},
        interpreter::EthInterpreter,
        interpreter_types::InputsTr,
    },
};

type Ctx<'a, D> = MainnetContext<SlotDb<'a, D>>;
type Ictx<'c, 'a, D> = InstructionContext<'c, Ctx<'a, D>, EthInterpreter>;

/// Replaces the seven balance-dependent instructions of `table` by recording wrappers.
pub(crate) fn hook<'a, D: BlockDb>(table: &mut InstructionTable<EthInterpreter, Ctx<'a, D>>) {
    use revm::interpreter::Instruction;
    table[usize::from(opcode::BALANCE)] = Instruction::new(balance::<D>);
    table[usize::from(opcode::SELFBALANCE)] = Instruction::new(selfbalance::<D>);
    table[usize::from(opcode::SELFDESTRUCT)] = Instruction::new(selfdestruct::<D>);
    table[usize::from(opcode::CALL)] = Instruction::new(call::<D>);
    table[usize::from(opcode::CALLCODE)] = Instruction::new(callcode::<D>);
    table[usize::from(opcode::CREATE)] = Instruction::new(create::<D>);
    table[usize::from(opcode::CREATE2)] = Instruction::new(create2::<D>);
}

fn observed<D: BlockDb>(ctx: &mut Ictx<'_, '_, D>, address: Address) {
    ctx.host.journaled_state.database.note_balance_use(address, None);
}

/// Records that the running contract sends the value `depth` places down the stack, if any.
fn sends<D: BlockDb>(ctx: &mut Ictx<'_, '_, D>, depth: usize) {
    // A short stack fails the instruction itself, before any transfer.
    let Ok(value) = ctx.interpreter.stack.peek(depth) else { return };
    if value.is_zero() {
        return;
    }
    let sender = ctx.interpreter.input.target_address();
    // The running contract is in the journal (its frame loaded it): read its balance there, with
    // no side effect on warmth. Not found, or short of the value (the transfer fails, and that
    // depends on the balance): observed.
    let slack = ctx.host.journaled_state.inner.state.get(&sender).and_then(|a| a.info.balance.checked_sub(value));
    ctx.host.journaled_state.database.note_balance_use(sender, slack);
}

fn balance<D: BlockDb>(mut ctx: Ictx<'_, '_, D>) -> InstructionExecResult {
    if let Ok(word) = ctx.interpreter.stack.peek(0) {
        observed(&mut ctx, word.into_address());
    }
    host::balance(ctx)
}

fn selfbalance<D: BlockDb>(mut ctx: Ictx<'_, '_, D>) -> InstructionExecResult {
    let address = ctx.interpreter.input.target_address();
    observed(&mut ctx, address);
    host::selfbalance(ctx)
}

fn selfdestruct<D: BlockDb>(mut ctx: Ictx<'_, '_, D>) -> InstructionExecResult {
    let address = ctx.interpreter.input.target_address();
    observed(&mut ctx, address);
    host::selfdestruct(ctx)
}

fn call<D: BlockDb>(mut ctx: Ictx<'_, '_, D>) -> InstructionExecResult {
    // gas, address, value, ...
    sends(&mut ctx, 2);
    contract::call::<{ opcode::CALL }, _, _>(ctx)
}

fn callcode<D: BlockDb>(mut ctx: Ictx<'_, '_, D>) -> InstructionExecResult {
    sends(&mut ctx, 2);
    contract::call::<{ opcode::CALLCODE }, _, _>(ctx)
}

fn create<D: BlockDb>(mut ctx: Ictx<'_, '_, D>) -> InstructionExecResult {
    // value, offset, size
    sends(&mut ctx, 0);
    contract::create::<false, _, _>(ctx)
}

fn create2<D: BlockDb>(mut ctx: Ictx<'_, '_, D>) -> InstructionExecResult {
    // value, offset, size, salt
    sends(&mut ctx, 0);
    contract::create::<true, _, _>(ctx)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use alloy_primitives::{Address, Bytes, U256};
    use parevm_statedb::{BaseState, BlockTxs, InMemoryDb, Read, Unconfirmed};
    use revm::{
        bytecode::Bytecode,
        context::{BlockEnv, CfgEnv, TxEnv},
        primitives::{TxKind, hardfork::SpecId},
        state::AccountInfo,
    };

    use crate::{ExecCtx, TxExecutor};

    // Clear of the precompiles' addresses.
    const CALLER: Address = Address::with_last_byte(0xa1);
    const CONTRACT: Address = Address::with_last_byte(0xa2);
    const OTHER: Address = Address::with_last_byte(0xa3);

    /// The balance uses one call to `code` (holding 10 wei) records.
    fn uses(code: &[u8]) -> Vec<Read> {
        let mut db = InMemoryDb::default();
        db.insert_account(CALLER, AccountInfo::from_balance(U256::from(10).pow(U256::from(18))), Default::default());
        let code = Bytecode::new_raw(Bytes::copy_from_slice(code));
        let info = AccountInfo {
            balance: U256::from(10),
            nonce: 1,
            code_hash: code.hash_slow(),
            code: Some(code),
            ..Default::default()
        };
        db.insert_account(CONTRACT, info, Default::default());
        let txs =
            vec![TxEnv { caller: CALLER, kind: TxKind::Call(CONTRACT), gas_limit: 100_000, ..Default::default() }];
        let (base, unconfirmed, merged) = (BaseState::new(&db), Unconfirmed::new(1), AtomicUsize::new(0));
        let (block, cfg) = (BlockEnv::default(), CfgEnv::new_with_spec(SpecId::CANCUN));
        let txs = BlockTxs::from_source(&txs);
        let ctx = ExecCtx {
            base: &base,
            unconfirmed: &unconfirmed,
            merged: &merged,
            txs: &txs,
            block: &block,
            cfg: &cfg,
            time_executions: false,
        };
        let result = TxExecutor::new(&ctx).execute(0, 1);
        assert!(result.state().is_some(), "executed: {:?}", result.outcome);
        result.reads.iter().copied().filter(|read| matches!(read, Read::Balance(..))).collect()
    }

    /// `call(gas, OTHER, value, 0, 0, 0, 0); pop`
    fn call(value: u8) -> Vec<u8> {
        let mut code = vec![0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, value, 0x73];
        code.extend_from_slice(OTHER.as_slice());
        code.extend_from_slice(&[0x5a, 0xf1, 0x50]);
        code
    }

    #[test]
    fn every_use_of_a_balance_is_recorded_and_nothing_else() {
        let other_balance = [[0x73].as_slice(), OTHER.as_slice(), &[0x31, 0x50]].concat();
        assert_eq!(uses(&other_balance), [Read::Balance(OTHER, None)], "BALANCE");
        assert_eq!(uses(&[0x47, 0x50]), [Read::Balance(CONTRACT, None)], "SELFBALANCE");
        assert_eq!(
            uses(&[0x73; 1].iter().chain(OTHER.as_slice()).chain(&[0xff]).copied().collect::<Vec<_>>()),
            [Read::Balance(CONTRACT, None)],
            "SELFDESTRUCT"
        );
        // A transfer records what the balance (10) had to spare: 7 for 3 wei, none for 11.
        assert_eq!(uses(&call(3)), [Read::Balance(CONTRACT, Some(U256::from(7)))], "CALL");
        assert_eq!(uses(&call(11)), [Read::Balance(CONTRACT, None)], "CALL short of funds");
        let mut callcode = call(4);
        callcode[call(4).len() - 2] = 0xf2;
        assert_eq!(uses(&callcode), [Read::Balance(CONTRACT, Some(U256::from(6)))], "CALLCODE");
        // create(value 5, offset 0, size 0) and create2 with salt 0
        assert_eq!(
            uses(&[0x60, 0x00, 0x60, 0x00, 0x60, 0x05, 0xf0, 0x50]),
            [Read::Balance(CONTRACT, Some(U256::from(5)))],
            "CREATE"
        );
        assert_eq!(
            uses(&[0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x02, 0xf5, 0x50]),
            [Read::Balance(CONTRACT, Some(U256::from(8)))],
            "CREATE2"
        );
        // Moving no value, and reading other things about accounts, records nothing.
        assert_eq!(uses(&call(0)), [], "CALL without value");
        let code_hash = [[0x73].as_slice(), OTHER.as_slice(), &[0x3f, 0x50]].concat();
        assert_eq!(uses(&code_hash), [], "EXTCODEHASH");
    }
}
