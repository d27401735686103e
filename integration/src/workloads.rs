//! Synthetic benchmark workloads: blocks generated in-process from a seed, so that
//! `parevm bench --workload ...` runs on a fresh machine with no data.
//!
//! | workload | each transaction | shared state |
//! |---|---|---|
//! | `transfers` | a fresh sender sends ETH to a fresh recipient (21,000 gas) | the beneficiary only |
//! | `erc20` | a fresh holder calls `transfer(to, amount)` on one token, to another fresh holder | the token's code |
//! | `amm` | a fresh sender swaps on one of [`POOLS`] pools, picked at random: `x += dx; y = x·y / x'` | 4 pools' two reserve slots |
//! | `hot` | a fresh sender sends ETH to one counter contract, which increments its slot 0 | one balance and one slot |
//!
//! `transfers` and `erc20` are embarrassingly parallel; `amm` conflicts on almost every pair of
//! neighbouring transactions that pick the same pool; `hot` is a dependency chain (the worst
//! case: no parallelism at all, every execution but the first in a slot's window is redone).
//!
//! The ERC-20 is WETH9's real runtime bytecode when a mainnet pre-state holding it is found
//! under the data folder ([`Erc20Code::locate`]), else a small hand-assembled token with the same
//! `transfer` semantics ([`minimal_erc20`]); [`Erc20Code::describe`] says which one a block uses.
//!
//! A block is sized by gas: the gas one transaction of the workload uses is measured by executing
//! a few of them sequentially ([`gas_per_tx`]), and the block gets as many as reach the target.
//! Every random choice (addresses, amounts, pools) comes from one [`Lcg`] seeded with the seed
//! and the workload, so a seed always gives the same transactions (the same hashes).

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    str::FromStr,
};

use alloy_primitives::{Address, B256, Bytes, TxKind, U256, address, b256, keccak256, map::HashMap as FastMap};
use revm::bytecode::opcode::*;

use crate::{
    BlockInput, ChainSpec, Executor,
    mainnet::{discover, load_pre_state},
    synthetic::{Fee, SyntheticBlock, contracts},
};
use parevm_statedb::{InMemoryDb, token_selector};

/// The largest `--gas` accepted: one gigagas.
pub const MAX_GAS: u64 = 1_000_000_000;
/// The default `--gas`: a mainnet block's gas limit.
pub const DEFAULT_GAS: u64 = 30_000_000;
/// Number of AMM pools.
pub const POOLS: usize = 4;

/// The block's beneficiary (funded, so it exists before the block).
pub const BENEFICIARY: Address = address!("00000000000000000000000000000000000bee01");
/// WETH9 on mainnet; the `erc20` token's address when its real code is used.
pub const WETH: Address = address!("c02aaa39b223fe8d0a0e5c4f27ead9083c756cc2");
/// `keccak256` of WETH9's runtime code, checked when it is loaded.
pub const WETH9_CODE_HASH: B256 = b256!("d0a06b12ac47863b5c7be4185c2deaad1c61557033f56c7d4ea74429cbb25e23");
/// WETH9's `balanceOf` mapping slot.
pub const WETH9_BALANCE_SLOT: u64 = 3;
/// The hand-assembled token's address.
pub const MINIMAL_TOKEN: Address = address!("00000000000000000000000000000000000e2c20");
/// The `hot` workload's counter contract (`synthetic::contracts::COUNTER`), also the recipient of
/// every transaction's value.
pub const HOT_COUNTER: Address = address!("00000000000000000000000000000000000c0c00");

/// Gas limit of the contract-calling transactions (each uses about half).
const CALL_GAS_LIMIT: u64 = 100_000;
/// `max_fee_per_gas`, `max_priority_fee_per_gas` of every transaction (the base fee is 7 wei).
const FEE: Fee = Fee::Dynamic(2_000_000_000, 1_000_000_000);
/// What every sender and the beneficiary start with: 10 ETH.
const FUNDS: u128 = 10_000_000_000_000_000_000;
/// Both reserves of every pool at the start.
const INITIAL_RESERVE: u128 = 1_000_000_000_000_000_000_000_000;
/// Transactions executed to measure [`gas_per_tx`].
const CALIBRATION_TXS: u64 = 16;

/// One of the synthetic workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Raw ETH transfers between distinct accounts.
    Transfers,
    /// ERC-20 `transfer` calls between distinct holders of one token.
    Erc20,
    /// Swaps over [`POOLS`] constant-product pools (hot storage).
    Amm,
    /// Every transaction touches one account's balance and one slot.
    Hot,
}

impl Workload {
    /// All workloads, in the order `all` runs them.
    pub const ALL: [Workload; 4] = [Workload::Transfers, Workload::Erc20, Workload::Amm, Workload::Hot];

    /// The name used on the command line and as the benchmark's row label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Transfers => "transfers",
            Self::Erc20 => "erc20",
            Self::Amm => "amm",
            Self::Hot => "hot",
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|w| w.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown workload {s:?} (expected transfers, erc20, amm, hot or all)"))
    }
}

/// Workloads chosen on the command line (`--workload amm`, `--workload erc20,hot`, `--workload all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSet(pub Vec<Workload>);

/// Parses `--workload`: `all`, or one or more comma-separated workload names (duplicates dropped).
pub fn parse_workloads(s: &str) -> Result<WorkloadSet, String> {
    let mut workloads = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let chosen = if part.trim().eq_ignore_ascii_case("all") { Workload::ALL.to_vec() } else { vec![part.parse()?] };
        for workload in chosen {
            if !workloads.contains(&workload) {
                workloads.push(workload);
            }
        }
    }
    if workloads.is_empty() {
        return Err("no workload given (expected transfers, erc20, amm, hot or all)".into());
    }
    Ok(WorkloadSet(workloads))
}

/// Parses `--gas`: a gas amount from 21,000 to [`MAX_GAS`]; `_` separators are allowed.
pub fn parse_gas(s: &str) -> Result<u64, String> {
    let gas: u64 = s.replace('_', "").parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !(21_000..=MAX_GAS).contains(&gas) {
        return Err(format!("{gas} is outside 21000..={MAX_GAS}"));
    }
    Ok(gas)
}

/// A 64-bit linear congruential generator (Knuth's MMIX constants); outputs are the high 32 bits
/// of the state, whose low bits are poor. Deterministic and good enough to pick addresses,
/// amounts and pools.
#[derive(Debug, Clone)]
pub struct Lcg(u64);

impl Lcg {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut lcg = Self(seed ^ 0x9e37_79b9_7f4a_7c15);
        lcg.next_u32();
        lcg
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        (u64::from(self.next_u32()) << 32) | u64::from(self.next_u32())
    }

    /// A number in `low..=high` (`low <= high`; the modulo bias is irrelevant here).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        let span = high - low;
        if span == u64::MAX { self.next_u64() } else { low + self.next_u64() % (span + 1) }
    }

    /// 20 random bytes.
    pub fn address(&mut self) -> Address {
        let mut bytes = [0u8; 20];
        for chunk in bytes.chunks_mut(4) {
            chunk.copy_from_slice(&self.next_u32().to_be_bytes());
        }
        Address::from(bytes)
    }
}

/// The token code the `erc20` workload deploys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Erc20Code {
    /// WETH9's runtime bytecode, taken from a mainnet pre-state (`balanceOf` at slot 3).
    Weth9 {
        /// The code.
        code: Bytes,
        /// The `pre_state.json` it came from.
        source: PathBuf,
    },
    /// [`minimal_erc20`] (balances at slot 0), because WETH9's code was not found.
    Minimal {
        /// Why WETH9's code was not used.
        reason: String,
    },
}

impl Erc20Code {
    /// Looks for WETH9's code in the mainnet pre-states under `data_dir` (the smallest
    /// `pre_state.json` that holds the WETH9 account, code hash checked); falls back to the
    /// hand-assembled token.
    pub fn locate(data_dir: &Path) -> Self {
        match find_weth9(data_dir) {
            Ok((code, source)) => Self::Weth9 { code, source },
            Err(reason) => Self::Minimal { reason },
        }
    }

    /// The token's address.
    pub fn address(&self) -> Address {
        match self {
            Self::Weth9 { .. } => WETH,
            Self::Minimal { .. } => MINIMAL_TOKEN,
        }
    }

    /// The slot of the `balanceOf` mapping.
    pub fn balance_slot(&self) -> u64 {
        match self {
            Self::Weth9 { .. } => WETH9_BALANCE_SLOT,
            Self::Minimal { .. } => 0,
        }
    }

    /// The runtime bytecode.
    pub fn code(&self) -> Bytes {
        match self {
            Self::Weth9 { code, .. } => code.clone(),
            Self::Minimal { .. } => Bytes::from(minimal_erc20()),
        }
    }

    /// One line saying which token is used and why.
    pub fn describe(&self) -> String {
        match self {
            Self::Weth9 { code, source } => {
                format!("WETH9 runtime bytecode ({} bytes) from {}", code.len(), source.display())
            }
            Self::Minimal { reason } => format!("hand-assembled minimal ERC-20 ({reason})"),
        }
    }

    /// The storage key of `holder`'s balance: `keccak256(pad32(holder) ++ pad32(slot))`.
    pub fn balance_key(&self, holder: Address) -> U256 {
        balance_key(holder, self.balance_slot())
    }
}

/// `keccak256(pad32(holder) ++ pad32(slot))`, Solidity's key of `mapping(address => _)` at `slot`.
pub fn balance_key(holder: Address, slot: u64) -> U256 {
    let mut preimage = [0u8; 64];
    preimage[12..32].copy_from_slice(holder.as_slice());
    preimage[56..64].copy_from_slice(&slot.to_be_bytes());
    U256::from_be_bytes(keccak256(preimage).0)
}

/// WETH9's code from the smallest pre-state under `data_dir` that holds it.
fn find_weth9(data_dir: &Path) -> Result<(Bytes, PathBuf), String> {
    let dirs = discover(&[data_dir.to_path_buf()]).map_err(|e| format!("no mainnet data: {e}"))?;
    let mut files: Vec<(u64, PathBuf)> = dirs
        .into_iter()
        .map(|d| d.join("pre_state.json"))
        .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (m.len(), p)))
        .collect();
    files.sort();
    let needle = format!("{WETH:#x}");
    for (_, path) in files {
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        if !text.to_ascii_lowercase().contains(&needle) {
            continue;
        }
        let db = load_pre_state(&path).map_err(|e| e.to_string())?;
        let Some(code) = db.accounts.get(&WETH).and_then(|a| a.info.code.as_ref()) else { continue };
        let code = code.original_bytes();
        if keccak256(&code) == WETH9_CODE_HASH {
            return Ok((code, path));
        }
    }
    Err(format!("WETH9's code not found under {}", data_dir.display()))
}

/// A tiny assembler: opcodes, and PUSH1 of labels resolved at the end (code under 256 bytes).
#[derive(Debug, Default)]
struct Asm {
    code: Vec<u8>,
    labels: FastMap<&'static str, usize>,
    fixups: Vec<(usize, &'static str)>,
}

impl Asm {
    fn ops(&mut self, bytes: &[u8]) -> &mut Self {
        self.code.extend_from_slice(bytes);
        self
    }

    /// `PUSH1 label`.
    fn push_label(&mut self, label: &'static str) -> &mut Self {
        self.code.push(PUSH1);
        self.fixups.push((self.code.len(), label));
        self.code.push(0);
        self
    }

    /// `label: JUMPDEST`.
    fn label(&mut self, label: &'static str) -> &mut Self {
        self.labels.insert(label, self.code.len());
        self.code.push(JUMPDEST);
        self
    }

    fn finish(&mut self) -> Vec<u8> {
        for (at, label) in &self.fixups {
            let target = self.labels[label];
            self.code[*at] = u8::try_from(target).expect("code under 256 bytes");
        }
        std::mem::take(&mut self.code)
    }
}

/// A minimal ERC-20 `transfer(address to, uint256 amount)`: balances in `mapping(address =>
/// uint256)` at slot 0; any other selector, or an amount above the caller's balance, reverts.
///
/// ```text
///     selector = calldata[0..4]; if selector != 0xa9059cbb: revert
///     from = keccak(caller, 0); balance = sload(from); amount = calldata[36..68]
///     if balance < amount: revert
///     sstore(from, balance - amount)
///     to = keccak(calldata[4..36], 0); sstore(to, sload(to) + amount)
///     return true
/// ```
pub fn minimal_erc20() -> Vec<u8> {
    let selector = token_selector::TRANSFER;
    Asm::default()
        // calldata[0] >> 224 == selector, else revert
        .ops(&[PUSH1, 0x00, CALLDATALOAD, PUSH1, 0xe0, SHR])
        .ops(&[PUSH4, selector[0], selector[1], selector[2], selector[3], EQ])
        .push_label("transfer")
        .ops(&[JUMPI])
        .label("fail")
        .ops(&[PUSH1, 0x00, DUP1, REVERT])
        .label("transfer")
        // from = keccak(caller ++ 0)                             [from]
        .ops(&[CALLER, PUSH1, 0x00, MSTORE, PUSH1, 0x00, PUSH1, 0x20, MSTORE])
        .ops(&[PUSH1, 0x40, PUSH1, 0x00, KECCAK256])
        // balance, amount; balance < amount → fail               [from, balance, amount]
        .ops(&[DUP1, SLOAD, PUSH1, 0x24, CALLDATALOAD])
        .ops(&[DUP1, DUP3, LT])
        .push_label("fail")
        .ops(&[JUMPI])
        // sstore(from, balance - amount)                          [from, amount]
        .ops(&[SWAP1, DUP2, SWAP1, SUB, DUP3, SSTORE, SWAP1, POP])
        // to = keccak(calldata[4..36] ++ 0); sstore(to, sload(to) + amount)   [amount]
        .ops(&[PUSH1, 0x04, CALLDATALOAD, PUSH1, 0x00, MSTORE, PUSH1, 0x40, PUSH1, 0x00, KECCAK256])
        .ops(&[DUP1, SLOAD, DUP3, ADD, SWAP1, SSTORE, POP])
        // return true
        .ops(&[PUSH1, 0x01, PUSH1, 0x00, MSTORE, PUSH1, 0x20, PUSH1, 0x00, RETURN])
        .finish()
}

/// A constant-product pool: reserves `x` at slot 0 and `y` at slot 1; a call with `dx` as its
/// first calldata word stores `x' = x + dx` and `y' = x·y / x'` (two read-modify-writes).
///
/// ```text
///     x = sload(0); k = x * sload(1); x' = x + calldata[0..32]
///     sstore(0, x'); sstore(1, k / x')
/// ```
pub fn pool() -> Vec<u8> {
    Asm::default()
        .ops(&[PUSH1, 0x00, SLOAD]) // [x]
        .ops(&[DUP1, PUSH1, 0x01, SLOAD, MUL]) // [x, k]
        .ops(&[SWAP1, PUSH1, 0x00, CALLDATALOAD, ADD]) // [k, x']
        .ops(&[DUP1, PUSH1, 0x00, SSTORE]) // [k, x']
        .ops(&[SWAP1, DIV, PUSH1, 0x01, SSTORE, STOP]) // y' = k / x'
        .finish()
}

/// The address of AMM pool `i`.
pub fn pool_address(i: usize) -> Address {
    Address::left_padding_from(&[0x0a, 0x33, i as u8])
}

/// `transfer(to, amount)` calldata.
pub fn transfer_calldata(to: Address, amount: U256) -> Bytes {
    let mut data = Vec::with_capacity(68);
    data.extend_from_slice(&token_selector::TRANSFER);
    data.extend_from_slice(B256::left_padding_from(to.as_slice()).as_slice());
    data.extend_from_slice(&amount.to_be_bytes::<32>());
    Bytes::from(data)
}

/// A generated block, ready to benchmark.
#[derive(Debug, Clone)]
pub struct GeneratedBlock {
    /// Which workload.
    pub workload: Workload,
    /// The generator's seed.
    pub seed: u64,
    /// The gas the block was sized for.
    pub target_gas: u64,
    /// The gas one transaction was measured to use (see [`gas_per_tx`]).
    pub gas_per_tx: u64,
    /// The chain (Cancun from genesis).
    pub chain: ChainSpec,
    /// The block.
    pub block: BlockInput,
    /// Its pre-state.
    pub db: InMemoryDb,
    /// What the block is made of, e.g. which token code (one line).
    pub note: String,
}

/// Generates `workload`'s block of about `target_gas` gas for `seed`. `erc20` is the token code
/// for the `erc20` workload (ignored by the others).
pub fn generate(workload: Workload, target_gas: u64, seed: u64, erc20: &Erc20Code) -> GeneratedBlock {
    let per_tx = gas_per_tx(workload, seed, erc20);
    let count = target_gas.div_ceil(per_tx).max(1);
    let mut generated = generate_txs(workload, count, seed, erc20);
    generated.target_gas = target_gas;
    generated.gas_per_tx = per_tx;
    generated
}

/// The gas one transaction of `workload` uses: the mean over `CALIBRATION_TXS` transactions
/// executed sequentially (21,000 for `transfers`, which needs no measurement).
pub fn gas_per_tx(workload: Workload, seed: u64, erc20: &Erc20Code) -> u64 {
    if workload == Workload::Transfers {
        return 21_000;
    }
    let sample = generate_txs(workload, CALIBRATION_TXS, seed, erc20);
    let output =
        Executor::Sequential.execute(&sample.chain, &sample.block, &sample.db).expect("calibration block executes");
    // The block's gas minus nothing else: a synthetic block has no system-call gas.
    (output.result.gas_used / CALIBRATION_TXS).max(21_000)
}

/// Generates `workload`'s block of exactly `count` transactions for `seed`.
pub fn generate_txs(workload: Workload, count: u64, seed: u64, erc20: &Erc20Code) -> GeneratedBlock {
    let tx_gas_limit = if workload == Workload::Transfers { 21_000 } else { CALL_GAS_LIMIT };
    let gas_limit = count.saturating_mul(tx_gas_limit).max(DEFAULT_GAS);
    let mut block = SyntheticBlock::new("Cancun", gas_limit, BENEFICIARY);
    block.fund(BENEFICIARY, U256::from(FUNDS));
    let mut rng = Lcg::new(seed ^ (workload as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03));
    // Addresses already in use: a fresh one is never one of them.
    let mut taken: HashSet<Address> = [
        BENEFICIARY,
        WETH,
        MINIMAL_TOKEN,
        HOT_COUNTER,
        alloy_eips::eip4788::BEACON_ROOTS_ADDRESS,
        alloy_eips::eip2935::HISTORY_STORAGE_ADDRESS,
    ]
    .into_iter()
    .chain((0..POOLS).map(pool_address))
    .collect();
    let mut fresh = |rng: &mut Lcg| loop {
        let address = rng.address();
        // Precompiles and other low addresses are never drawn in practice; skip them anyway.
        if address > Address::left_padding_from(&[0xff, 0xff]) && taken.insert(address) {
            return address;
        }
    };

    let note = match workload {
        Workload::Transfers => {
            for _ in 0..count {
                let (sender, recipient) = (fresh(&mut rng), fresh(&mut rng));
                block.fund(sender, U256::from(FUNDS));
                let value = U256::from(rng.between(1, 1_000_000_000_000_000));
                block.push(sender, TxKind::Call(recipient), value, Bytes::new(), 21_000, FEE, 0);
            }
            "ETH transfers, fresh sender to fresh recipient".to_string()
        }
        Workload::Erc20 => {
            let token = erc20.address();
            let mut storage = Vec::with_capacity(2 * count as usize);
            for _ in 0..count {
                let (sender, recipient) = (fresh(&mut rng), fresh(&mut rng));
                block.fund(sender, U256::from(FUNDS));
                let amount = rng.between(1, 1_000_000_000_000_000_000);
                let sender_balance = amount + rng.between(0, 1_000_000_000_000_000_000);
                let recipient_balance = rng.between(1, 1_000_000_000_000_000_000);
                storage.push((erc20.balance_key(sender), U256::from(sender_balance)));
                storage.push((erc20.balance_key(recipient), U256::from(recipient_balance)));
                let input = transfer_calldata(recipient, U256::from(amount));
                block.push(sender, TxKind::Call(token), U256::ZERO, input, CALL_GAS_LIMIT, FEE, 0);
            }
            block.deploy(token, &erc20.code(), storage);
            format!("ERC-20 transfer between holders; token: {}", erc20.describe())
        }
        Workload::Amm => {
            let code = pool();
            for i in 0..POOLS {
                let reserves =
                    [(U256::ZERO, U256::from(INITIAL_RESERVE)), (U256::from(1), U256::from(INITIAL_RESERVE))];
                block.deploy(pool_address(i), &code, reserves);
            }
            for _ in 0..count {
                let sender = fresh(&mut rng);
                block.fund(sender, U256::from(FUNDS));
                let pool = pool_address(rng.between(0, POOLS as u64 - 1) as usize);
                let dx = U256::from(rng.between(1, 1_000_000_000_000_000_000));
                let input = Bytes::from(dx.to_be_bytes::<32>().to_vec());
                block.push(sender, TxKind::Call(pool), U256::ZERO, input, CALL_GAS_LIMIT, FEE, 0);
            }
            format!("swaps on {POOLS} hand-assembled constant-product pools (2 reserve slots each)")
        }
        Workload::Hot => {
            // Slot 0 starts at 1, so every increment costs the same (non-zero to non-zero).
            block.deploy(HOT_COUNTER, contracts::COUNTER, [(U256::ZERO, U256::from(1))]);
            for _ in 0..count {
                let sender = fresh(&mut rng);
                block.fund(sender, U256::from(FUNDS));
                let value = U256::from(rng.between(1, 1_000_000_000_000_000));
                let input = Bytes::from(vec![0u8; 32]);
                block.push(sender, TxKind::Call(HOT_COUNTER), value, input, CALL_GAS_LIMIT, FEE, 0);
            }
            "value to one counter contract that increments its slot 0".to_string()
        }
    };

    let input = block.block();
    GeneratedBlock {
        workload,
        seed,
        target_gas: 0,
        gas_per_tx: 0,
        chain: block.chain,
        block: input,
        db: block.db,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_selection_parses() {
        assert_eq!(parse_workloads("all").unwrap().0, Workload::ALL.to_vec());
        assert_eq!(parse_workloads("hot,amm,hot").unwrap().0, vec![Workload::Hot, Workload::Amm]);
        assert!(parse_workloads("nft").is_err());
        assert!(parse_workloads("").is_err());
    }

    #[test]
    fn gas_parses_within_bounds() {
        assert_eq!(parse_gas("1_000_000_000"), Ok(MAX_GAS));
        assert_eq!(parse_gas("30000000"), Ok(DEFAULT_GAS));
        assert!(parse_gas("1000000001").is_err());
        assert!(parse_gas("20999").is_err());
    }

    #[test]
    fn lcg_is_deterministic_and_in_range() {
        let (mut a, mut b) = (Lcg::new(7), Lcg::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
            let v = a.between(3, 5);
            assert!((3..=5).contains(&v));
            b.between(3, 5);
        }
        assert_ne!(Lcg::new(7).next_u64(), Lcg::new(8).next_u64());
    }

    #[test]
    fn balance_key_matches_solidity_layout() {
        // keccak256(pad32(0x...01) ++ pad32(3)), the WETH9 balance slot of address 1.
        let key = balance_key(Address::with_last_byte(1), 3);
        let mut preimage = [0u8; 64];
        preimage[31] = 1;
        preimage[63] = 3;
        assert_eq!(key, U256::from_be_bytes(keccak256(preimage).0));
    }
}
