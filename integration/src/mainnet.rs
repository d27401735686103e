//! Loader for the historical mainnet blocks in `../shared/data/mainnet`.
//!
//! Each block is a folder: `block.json` (an `eth_getBlockByNumber(n, true)` answer),
//! `pre_state.json` (the accounts and slots the block touches, before it) and, for some,
//! `block_hashes.json` (for BLOCKHASH). The header's hash is recomputed and checked, so a
//! corrupted file is caught at load time rather than as a mysterious mismatch later.

use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256, Bytes, U256, keccak256, map::HashMap as FastMap};
use parevm_statedb::InMemoryDb;
use revm::{bytecode::Bytecode, primitives::KECCAK_EMPTY, state::AccountInfo};
use serde_json::Value;

use crate::{
    BlockInput, LoadError,
    error::{read, read_json},
};

/// A historical block with the state it runs on.
#[derive(Debug, Clone)]
pub struct MainnetBlock {
    /// Where it was loaded from.
    pub dir: PathBuf,
    /// The block.
    pub block: BlockInput,
    /// The pre-state (partial: what the block touches).
    pub db: InMemoryDb,
}

/// The default data folder: `$PAREVM_DATA`, else `../shared/data/mainnet`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("PAREVM_DATA").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("../shared/data/mainnet"))
}

/// Expands the given paths into block folders: a folder with a `block.json` is a block; any
/// other folder is searched one level down. Blocks are returned in block-number order.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut dirs = Vec::new();
    for path in paths {
        if path.join("block.json").is_file() {
            dirs.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|source| LoadError::Io { path: path.clone(), source })?;
        for entry in entries {
            let entry = entry.map_err(|source| LoadError::Io { path: path.clone(), source })?;
            if entry.path().join("block.json").is_file() {
                dirs.push(entry.path());
            }
        }
    }
    dirs.sort_by_key(|d| {
        (d.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u64>().ok()).unwrap_or(u64::MAX), d.clone())
    });
    if dirs.is_empty() {
        let shown: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(LoadError::field(shown.join(", "), "block.json", "no block folder found"));
    }
    Ok(dirs)
}

/// Loads one block folder.
pub fn load_block(dir: &Path) -> Result<MainnetBlock, LoadError> {
    let block_path = dir.join("block.json");
    let rpc: alloy_rpc_types_eth::Block = read_json(&block_path)?;
    let header = rpc.header.inner.clone();
    let computed = header.hash_slow();
    if computed != rpc.header.hash {
        return Err(LoadError::field(
            &block_path,
            "hash",
            format!("header hashes to {computed}, file says {}", rpc.header.hash),
        ));
    }
    let Some(txs) = rpc.transactions.as_transactions() else {
        return Err(LoadError::field(&block_path, "transactions", "full transactions expected, found hashes"));
    };
    let txs = txs.iter().map(|tx| tx.inner.clone()).collect();
    let block = BlockInput { header, txs, ommers: Vec::new(), withdrawals: rpc.withdrawals.clone() };

    let mut db = load_pre_state(&dir.join("pre_state.json"))?;
    let hashes_path = dir.join("block_hashes.json");
    if hashes_path.is_file() {
        let hashes: FastMap<String, String> = read_json(&hashes_path)?;
        for (number, hash) in hashes {
            let n = number.parse::<u64>().map_err(|e| LoadError::field(&hashes_path, &number, e))?;
            let h = hash.parse::<B256>().map_err(|e| LoadError::field(&hashes_path, &number, e))?;
            db.block_hashes.insert(n, h);
        }
    }
    Ok(MainnetBlock { dir: dir.to_owned(), block, db })
}

/// Parses `pre_state.json`.
pub fn load_pre_state(path: &Path) -> Result<InMemoryDb, LoadError> {
    let text = read(path)?;
    let json: Value =
        serde_json::from_str(&text).map_err(|source| LoadError::Json { path: path.to_owned(), source })?;
    let Value::Object(accounts) = json else {
        return Err(LoadError::field(path, "$", "expected an object of accounts"));
    };
    let mut db = InMemoryDb::default();
    for (address_text, account) in accounts {
        let field = |name: &str| format!("{address_text}.{name}");
        let address: Address = address_text.parse().map_err(|e| LoadError::field(path, &address_text, e))?;
        let basic = account.get("basic").ok_or_else(|| LoadError::field(path, field("basic"), "missing"))?;
        let balance =
            parse_u256(basic.get("balance")).map_err(|e| LoadError::field(path, field("basic.balance"), e))?;
        let nonce = parse_u64(basic.get("nonce")).map_err(|e| LoadError::field(path, field("basic.nonce"), e))?;
        let (code_hash, code) = match account.get("code") {
            None | Some(Value::Null) => (KECCAK_EMPTY, Bytecode::default()),
            Some(code) => {
                let mut bytes =
                    parse_bytes(code.get("bytecode")).map_err(|e| LoadError::field(path, field("code.bytecode"), e))?;
                // The stored bytecode may be padded by an earlier analysis; the code is its first
                // `original_len` bytes.
                if let Some(len) = code.get("original_len").and_then(Value::as_u64) {
                    bytes.truncate(len as usize);
                }
                let hash = keccak256(&bytes);
                if let Some(given) = account.get("code_hash").filter(|v| !v.is_null()) {
                    let given: B256 = given
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| LoadError::field(path, field("code_hash"), "not a 32-byte hex string"))?;
                    if given != hash {
                        return Err(LoadError::field(
                            path,
                            field("code_hash"),
                            format!("code hashes to {hash}, file says {given}"),
                        ));
                    }
                }
                if bytes.is_empty() {
                    (KECCAK_EMPTY, Bytecode::default())
                } else {
                    (hash, Bytecode::new_raw(Bytes::from(bytes)))
                }
            }
        };
        let mut storage = FastMap::default();
        if let Some(slots) = account.get("storage").filter(|v| !v.is_null()) {
            let slots =
                slots.as_object().ok_or_else(|| LoadError::field(path, field("storage"), "expected an object"))?;
            for (slot, value) in slots {
                let key =
                    slot.parse::<U256>().map_err(|e| LoadError::field(path, field(&format!("storage.{slot}")), e))?;
                let value = parse_u256(Some(value))
                    .map_err(|e| LoadError::field(path, field(&format!("storage.{slot}")), e))?;
                storage.insert(key, value);
            }
        }
        let info = AccountInfo { balance, nonce, code_hash, account_id: None, code: Some(code) };
        db.insert_account(address, info, storage);
    }
    Ok(db)
}

fn parse_u256(value: Option<&Value>) -> Result<U256, String> {
    match value {
        Some(Value::String(s)) => s.parse::<U256>().map_err(|e| format!("{s:?}: {e}")),
        Some(Value::Number(n)) => n.as_u64().map(U256::from).ok_or_else(|| format!("{n} is not an unsigned integer")),
        Some(other) => Err(format!("expected a hex string, found {other}")),
        None => Err("missing".into()),
    }
}

fn parse_u64(value: Option<&Value>) -> Result<u64, String> {
    match value {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| format!("{n} is not an unsigned 64-bit integer")),
        Some(Value::String(s)) => {
            let digits = s.strip_prefix("0x").ok_or_else(|| format!("{s:?}: expected 0x-prefixed hex"))?;
            u64::from_str_radix(digits, 16).map_err(|e| format!("{s:?}: {e}"))
        }
        Some(other) => Err(format!("expected a number, found {other}")),
        None => Err("missing".into()),
    }
}

fn parse_bytes(value: Option<&Value>) -> Result<Vec<u8>, String> {
    match value {
        Some(Value::String(s)) => alloy_primitives::hex::decode(s).map_err(|e| format!("{s:.20}...: {e}")),
        Some(other) => Err(format!("expected a hex string, found {other:.40}")),
        None => Err("missing".into()),
    }
}
