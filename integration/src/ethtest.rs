//! `parevm ethtest`: the consensus suite's BlockchainTests, run through an [`Executor`].
//!
//! Each test gives a complete pre-state, a genesis header and a list of blocks as RLP. Every block
//! is decoded from its RLP (the JSON copies of headers and transactions are not trusted), its
//! senders are recovered, and it is executed on the state of its *parent*, so that side chains
//! (blocks whose parent is not the previous block) work: the runner keeps a map block hash ->
//! post-state, and the final state is the one at `lastblockhash`.
//!
//! What is checked, per valid block: the parent is known (genesis or an accepted block), the
//! execution succeeds, gas used, logs bloom, receipts root and blob gas used match the header,
//! and the state root recomputed over the whole post-state (alloy-trie) matches the header's.
//! After the last block, the state at `lastblockhash` must equal `postState` exactly (or hash to
//! `postStateHash`).
//!
//! Blocks with `expectException` must be rejected. Only some rejections are an executor's job:
//! every `TransactionException.*` and the post-execution block checks (gas used, bloom, receipts
//! root, state root, blob gas used, gas used over the limit). Those blocks are executed and must
//! fail execution or a check; a rejected block leaves the state as it was. Every other exception
//! (RLP structure, header fields, uncles, unknown parent, ...) belongs to header or consensus
//! validation, which is not this executor's job: such blocks are not executed, and the test is
//! reported as *out of scope*, by exception name, unless something that was checked failed.

use std::{
    collections::{BTreeMap, HashMap},
    io::{IsTerminal, Write},
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};

use alloy_consensus::{Header, TxEnvelope, transaction::SignerRecoverable};
use alloy_primitives::{Address, B256, Bytes, U256, keccak256, map::HashMap as FastMap};
use alloy_trie::{
    TrieAccount,
    root::{state_root_unhashed, storage_root_unhashed},
};
use parevm_statedb::InMemoryDb;
use revm::{bytecode::Bytecode, primitives::KECCAK_EMPTY, state::AccountInfo};
use serde::Serialize;
use serde_json::Value;

use crate::{
    BlockInput, ChainSpec, Executor, LoadError,
    checks::{Checks, check_header, check_state_root},
    error::read,
    replay::compare_outputs,
};

// ---------------------------------------------------------------------------------------------
// Loaded tests
// ---------------------------------------------------------------------------------------------

/// One BlockchainTest, parsed and decoded.
#[derive(Debug, Clone)]
pub struct EthTest {
    /// The file it was loaded from.
    pub file: PathBuf,
    /// The test's name (its key in the file).
    pub name: String,
    /// The `network` field (e.g. "Cancun").
    pub network: String,
    /// The chain the network names.
    pub chain: ChainSpec,
    /// The genesis header, decoded from `genesisRLP`.
    pub genesis: Header,
    /// Its hash.
    pub genesis_hash: B256,
    /// The complete world state before the genesis block's children.
    pub pre: InMemoryDb,
    /// The blocks, in file order.
    pub blocks: Vec<TestBlock>,
    /// What the state at `last_block_hash` must be.
    pub post: PostState,
    /// `lastblockhash`: the head whose state is compared with `post`.
    pub last_block_hash: B256,
}

/// One entry of a test's `blocks`.
#[derive(Debug, Clone)]
pub struct TestBlock {
    /// `expectException`, if the block must be rejected (alternatives joined with `|`).
    pub expect_exception: Option<String>,
    /// The block as decoded from `rlp`, or why it could not be: RLP that does not decode (only
    /// accepted by the loader for blocks with `expectException`) or a signature that does not
    /// recover (an invalid block, whatever the file says).
    pub decoded: Result<DecodedBlock, String>,
}

/// A block decoded from RLP, senders recovered.
#[derive(Debug, Clone)]
pub struct DecodedBlock {
    /// The header's hash (keccak of its RLP).
    pub hash: B256,
    /// The block, ready to execute.
    pub block: BlockInput,
}

/// The expected final state.
#[derive(Debug, Clone)]
pub enum PostState {
    /// `postState`: every account, exactly.
    Accounts(BTreeMap<Address, ExpectedAccount>),
    /// `postStateHash`: only the state root.
    Root(B256),
}

/// One account of `postState`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedAccount {
    /// Balance.
    pub balance: U256,
    /// Nonce.
    pub nonce: u64,
    /// Code (empty for none).
    pub code: Bytes,
    /// Non-zero storage slots.
    pub storage: BTreeMap<U256, U256>,
}

/// Expands files and folders (searched recursively) into the `.json` files under them, sorted.
/// A path given explicitly is used whatever its extension.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
        let io = |source| LoadError::Io { path: dir.to_owned(), source };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| LoadError::Io { path: path.clone(), source })?;
        if meta.is_dir() {
            let start = files.len();
            walk(path, &mut files)?;
            files[start..].sort();
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Loads every test of one BlockchainTests file.
pub fn load_file(path: &Path) -> Result<Vec<EthTest>, LoadError> {
    let text = read(path)?;
    let json: Value =
        serde_json::from_str(&text).map_err(|source| LoadError::Json { path: path.to_owned(), source })?;
    let Value::Object(tests) = json else {
        return Err(LoadError::field(path, "$", "expected an object of tests"));
    };
    tests.iter().map(|(name, test)| load_test(path, name, test)).collect()
}

/// Field paths and error construction for one test.
struct Ctx<'a> {
    path: &'a Path,
    name: &'a str,
}

impl Ctx<'_> {
    fn err(&self, field: &str, message: impl std::fmt::Display) -> LoadError {
        LoadError::field(self.path, format!("{}.{field}", self.name), message)
    }

    fn get<'v>(&self, value: &'v Value, parent: &str, key: &str) -> Result<&'v Value, LoadError> {
        let field = if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") };
        match value {
            Value::Object(map) => map.get(key).ok_or_else(|| self.err(&field, "missing")),
            _ => Err(self.err(if parent.is_empty() { "$" } else { parent }, "expected an object")),
        }
    }

    fn str<'v>(&self, value: &'v Value, field: &str) -> Result<&'v str, LoadError> {
        value.as_str().ok_or_else(|| self.err(field, format!("expected a string, found {}", short(value))))
    }

    fn object<'v>(&self, value: &'v Value, field: &str) -> Result<&'v serde_json::Map<String, Value>, LoadError> {
        value.as_object().ok_or_else(|| self.err(field, format!("expected an object, found {}", short(value))))
    }

    fn u256(&self, value: &Value, field: &str) -> Result<U256, LoadError> {
        let text = self.str(value, field)?;
        parse_quantity(text).map_err(|e| self.err(field, e))
    }

    fn u64(&self, value: &Value, field: &str) -> Result<u64, LoadError> {
        let n = self.u256(value, field)?;
        u64::try_from(n).map_err(|_| self.err(field, format!("{n} does not fit in 64 bits")))
    }

    fn bytes(&self, value: &Value, field: &str) -> Result<Bytes, LoadError> {
        let text = self.str(value, field)?;
        parse_bytes(text).map_err(|e| self.err(field, e))
    }

    fn b256(&self, value: &Value, field: &str) -> Result<B256, LoadError> {
        let bytes = self.bytes(value, field)?;
        if bytes.len() != 32 {
            return Err(self.err(field, format!("expected 32 bytes, found {}", bytes.len())));
        }
        Ok(B256::from_slice(&bytes))
    }

    fn address(&self, text: &str, field: &str) -> Result<Address, LoadError> {
        let bytes = parse_bytes(text).map_err(|e| self.err(field, e))?;
        if bytes.len() != 20 {
            return Err(self.err(field, format!("expected a 20-byte address, found {} bytes", bytes.len())));
        }
        Ok(Address::from_slice(&bytes))
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 40 { format!("{}...", &text[..text.floor_char_boundary(40)]) } else { text }
}

/// A `0x`-prefixed hex quantity (`"0x"` alone is zero).
fn parse_quantity(text: &str) -> Result<U256, String> {
    let digits = text.strip_prefix("0x").ok_or_else(|| format!("{:?}: expected 0x-prefixed hex", short_str(text)))?;
    if digits.is_empty() {
        return Ok(U256::ZERO);
    }
    U256::from_str_radix(digits, 16).map_err(|e| format!("{:?}: {e}", short_str(text)))
}

/// `0x`-prefixed hex bytes.
fn parse_bytes(text: &str) -> Result<Bytes, String> {
    let digits = text.strip_prefix("0x").ok_or_else(|| format!("{:?}: expected 0x-prefixed hex", short_str(text)))?;
    alloy_primitives::hex::decode(digits).map(Bytes::from).map_err(|e| format!("{:?}: {e}", short_str(text)))
}

fn short_str(text: &str) -> String {
    if text.len() > 24 { format!("{}...", &text[..text.floor_char_boundary(24)]) } else { text.to_string() }
}

fn load_test(path: &Path, name: &str, test: &Value) -> Result<EthTest, LoadError> {
    let cx = Ctx { path, name };
    cx.object(test, "$")?;

    let network = cx.str(cx.get(test, "", "network")?, "network")?.to_string();
    let chain =
        ChainSpec::from_genesis(&network).ok_or_else(|| cx.err("network", format!("unknown network {network:?}")))?;

    // Genesis: its hash is what block 1's parentHash refers to.
    let genesis_rlp = cx.bytes(cx.get(test, "", "genesisRLP")?, "genesisRLP")?;
    let genesis = decode_block(&genesis_rlp).map_err(|e| cx.err("genesisRLP", e))?;
    let genesis_hash = genesis.hash();
    let genesis_json = cx.get(test, "", "genesisBlockHeader")?;
    let given = cx.b256(cx.get(genesis_json, "genesisBlockHeader", "hash")?, "genesisBlockHeader.hash")?;
    if given != genesis_hash {
        return Err(
            cx.err("genesisBlockHeader.hash", format!("genesisRLP hashes to {genesis_hash}, file says {given}"))
        );
    }
    let genesis = genesis.into_inner().header;

    let pre = load_pre(&cx, cx.get(test, "", "pre")?)?;

    let blocks_json = cx.get(test, "", "blocks")?;
    let blocks_json = blocks_json
        .as_array()
        .ok_or_else(|| cx.err("blocks", format!("expected an array, found {}", short(blocks_json))))?;
    let blocks = blocks_json.iter().enumerate().map(|(i, b)| load_block(&cx, i, b)).collect::<Result<_, _>>()?;

    let post = match (test.get("postState"), test.get("postStateHash")) {
        (Some(state), _) => PostState::Accounts(load_post(&cx, state)?),
        (None, Some(hash)) => PostState::Root(cx.b256(hash, "postStateHash")?),
        (None, None) => return Err(cx.err("postState", "missing (and no postStateHash)")),
    };
    let last_block_hash = cx.b256(cx.get(test, "", "lastblockhash")?, "lastblockhash")?;

    Ok(EthTest {
        file: path.to_owned(),
        name: name.to_string(),
        network,
        chain,
        genesis,
        genesis_hash,
        pre,
        blocks,
        post,
        last_block_hash,
    })
}

/// Decodes a block's RLP (all of it), computing the header hash from the header's own bytes.
fn decode_block(rlp: &[u8]) -> Result<alloy_primitives::Sealed<alloy_consensus::Block<TxEnvelope>>, String> {
    let mut buf = rlp;
    let block =
        alloy_consensus::Block::<TxEnvelope>::decode_sealed(&mut buf).map_err(|e| format!("bad block RLP: {e}"))?;
    if !buf.is_empty() {
        return Err(format!("bad block RLP: {} trailing bytes", buf.len()));
    }
    Ok(block)
}

fn load_block(cx: &Ctx<'_>, index: usize, json: &Value) -> Result<TestBlock, LoadError> {
    let at = format!("blocks[{index}]");
    cx.object(json, &at)?;
    let expect_exception = match json.get("expectException") {
        None => None,
        Some(value) => Some(cx.str(value, &format!("{at}.expectException"))?.to_string()),
    };
    let field = format!("{at}.rlp");
    let rlp = cx.bytes(cx.get(json, &at, "rlp")?, &field)?;
    let decoded = match decode_block(&rlp) {
        Ok(sealed) => {
            let hash = sealed.hash();
            // The JSON copy of the header is not used, but it must describe the same block.
            if let Some(header) = json.get("blockHeader") {
                let field = format!("{at}.blockHeader.hash");
                let given = cx.b256(cx.get(header, &format!("{at}.blockHeader"), "hash")?, &field)?;
                if given != hash {
                    return Err(cx.err(&field, format!("the block's RLP hashes to {hash}, file says {given}")));
                }
            }
            let block = sealed.into_inner();
            let mut txs = Vec::with_capacity(block.body.transactions.len());
            let mut failure = None;
            for (i, tx) in block.body.transactions.into_iter().enumerate() {
                match tx.try_into_recovered() {
                    Ok(tx) => txs.push(tx),
                    Err(e) => {
                        failure = Some(format!("transaction {i}: signature does not recover: {e}"));
                        break;
                    }
                }
            }
            match failure {
                Some(reason) => Err(reason),
                None => Ok(DecodedBlock {
                    hash,
                    block: BlockInput {
                        header: block.header,
                        txs,
                        ommers: block.body.ommers,
                        withdrawals: block.body.withdrawals,
                    },
                }),
            }
        }
        // A block expected to be invalid may well be malformed on purpose; a valid one may not.
        Err(e) if expect_exception.is_some() => Err(e),
        Err(e) => return Err(cx.err(&field, e)),
    };
    Ok(TestBlock { expect_exception, decoded })
}

fn load_pre(cx: &Ctx<'_>, json: &Value) -> Result<InMemoryDb, LoadError> {
    let accounts = cx.object(json, "pre")?;
    let mut db = InMemoryDb::default();
    for (address_text, account) in accounts {
        let at = format!("pre.{address_text}");
        let address = cx.address(address_text, &at)?;
        cx.object(account, &at)?;
        let balance = cx.u256(cx.get(account, &at, "balance")?, &format!("{at}.balance"))?;
        let nonce = cx.u64(cx.get(account, &at, "nonce")?, &format!("{at}.nonce"))?;
        let code = cx.bytes(cx.get(account, &at, "code")?, &format!("{at}.code"))?;
        let storage = load_storage(cx, cx.get(account, &at, "storage")?, &format!("{at}.storage"))?;
        let (code_hash, code) = if code.is_empty() {
            (KECCAK_EMPTY, Bytecode::default())
        } else {
            (keccak256(&code), Bytecode::new_raw(code))
        };
        let info = AccountInfo { balance, nonce, code_hash, account_id: None, code: Some(code) };
        db.insert_account(address, info, storage.into_iter().collect::<FastMap<_, _>>());
    }
    Ok(db)
}

fn load_storage(cx: &Ctx<'_>, json: &Value, at: &str) -> Result<BTreeMap<U256, U256>, LoadError> {
    let mut storage = BTreeMap::new();
    for (slot, value) in cx.object(json, at)? {
        let field = format!("{at}.{slot}");
        let key = parse_quantity(slot).map_err(|e| cx.err(&field, e))?;
        let value = cx.u256(value, &field)?;
        if !value.is_zero() {
            storage.insert(key, value);
        }
    }
    Ok(storage)
}

fn load_post(cx: &Ctx<'_>, json: &Value) -> Result<BTreeMap<Address, ExpectedAccount>, LoadError> {
    let mut post = BTreeMap::new();
    for (address_text, account) in cx.object(json, "postState")? {
        let at = format!("postState.{address_text}");
        let address = cx.address(address_text, &at)?;
        cx.object(account, &at)?;
        let expected = ExpectedAccount {
            balance: cx.u256(cx.get(account, &at, "balance")?, &format!("{at}.balance"))?,
            nonce: cx.u64(cx.get(account, &at, "nonce")?, &format!("{at}.nonce"))?,
            code: cx.bytes(cx.get(account, &at, "code")?, &format!("{at}.code"))?,
            storage: load_storage(cx, cx.get(account, &at, "storage")?, &format!("{at}.storage"))?,
        };
        post.insert(address, expected);
    }
    Ok(post)
}

// ---------------------------------------------------------------------------------------------
// Exceptions: which rejections are an executor's job
// ---------------------------------------------------------------------------------------------

/// Block exceptions that only show after executing the block.
///
/// `GAS_USED_OVERFLOW` (bcBlockGasLimitTest/GasUsedHigherThanBlockGasLimitButNotWithRefunds
/// SuicideLast, the suite's only instance) is a block whose transactions' gas limits add up to
/// one more than the block gas limit: the executor's own check that a transaction's gas limit fits
/// in the gas left in the block rejects it (and the header's gasUsed, above its gasLimit, cannot
/// match the execution either), so it is an execution-level rejection.
const EXECUTION_BLOCK_EXCEPTIONS: &[&str] = &[
    "BlockException.INVALID_GAS_USED",
    "BlockException.INVALID_LOG_BLOOM",
    "BlockException.INVALID_RECEIPTS_ROOT",
    "BlockException.INVALID_STATE_ROOT",
    "BlockException.INCORRECT_BLOB_GAS_USED",
    "BlockException.GAS_USED_OVERFLOW",
];

/// Whether one exception name (no `|`) is for the executor to detect.
pub fn exception_in_scope(name: &str) -> bool {
    let name = name.trim();
    name.starts_with("TransactionException.") || EXECUTION_BLOCK_EXCEPTIONS.contains(&name)
}

/// Whether a block with this `expectException` (alternatives joined by `|`) is in scope: any
/// alternative is.
pub fn expectation_in_scope(expect_exception: &str) -> bool {
    expect_exception.split('|').any(exception_in_scope)
}

// ---------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------

/// A test's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every check passed and nothing was skipped.
    Passed,
    /// A check failed.
    Failed,
    /// Every executed check passed, but some block's exception is not the executor's to detect.
    OutOfScope,
}

impl Outcome {
    /// `passed`, `failed` or `out-of-scope`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::OutOfScope => "out-of-scope",
        }
    }
}

/// The field of a [`Problem`] that is a difference between the engine and the sequential executor.
pub const VS_SEQUENTIAL: &str = "sequential vs parallel";

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The block's index in `blocks`, if the check is about a block.
    pub block: Option<usize>,
    /// What was checked (a header field, `postState.<address>.balance`, `execution`, ...).
    pub field: String,
    /// What the test expects.
    pub expected: String,
    /// What the execution gave.
    pub actual: String,
}

impl Problem {
    fn new(
        block: Option<usize>,
        field: impl Into<String>,
        expected: impl std::fmt::Display,
        actual: impl std::fmt::Display,
    ) -> Self {
        Self { block, field: field.into(), expected: expected.to_string(), actual: actual.to_string() }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(block) = self.block {
            write!(f, "blocks[{block}] ")?;
        }
        write!(f, "{}: expected {}, got {}", self.field, self.expected, self.actual)
    }
}

/// What happened to one block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockStatus {
    /// Executed, every check passed, its state is kept.
    Accepted,
    /// Not accepted (decoding, unknown parent, execution or a check failed).
    Rejected,
    /// Not executed: its exception is header- or RLP-level.
    OutOfScope,
}

/// One block's result.
#[derive(Debug, Clone, Serialize)]
pub struct BlockReport {
    /// Index in `blocks`.
    pub index: usize,
    /// `expectException`, if any.
    pub expect_exception: Option<String>,
    /// What happened.
    pub status: BlockStatus,
    /// Why it was rejected (first reason), if it was.
    pub reason: Option<String>,
}

/// One test's result.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// The file.
    pub file: PathBuf,
    /// The test's name.
    pub name: String,
    /// The result.
    pub outcome: Outcome,
    /// Failed checks.
    pub problems: Vec<Problem>,
    /// Exceptions of the blocks that were out of scope, one per block.
    pub out_of_scope: Vec<String>,
    /// Per block.
    pub blocks: Vec<BlockReport>,
    /// Wall time of the whole test, in milliseconds.
    pub millis: f64,
}

/// The result of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Tests that passed.
    pub passed: usize,
    /// Tests with a failed check.
    pub failed: usize,
    /// Tests that passed every executed check but had out-of-scope blocks.
    pub out_of_scope: usize,
    /// Out-of-scope blocks by `expectException`.
    pub out_of_scope_by_exception: BTreeMap<String, usize>,
    /// Every test's report, in file order.
    pub reports: Vec<TestReport>,
}

impl Summary {
    /// Adds one test's report.
    pub fn add(&mut self, report: TestReport) {
        match report.outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::OutOfScope => self.out_of_scope += 1,
        }
        for exception in &report.out_of_scope {
            *self.out_of_scope_by_exception.entry(exception.clone()).or_default() += 1;
        }
        self.reports.push(report);
    }

    /// `passed N, failed N, out-of-scope N`.
    pub fn line(&self) -> String {
        format!("passed {}, failed {}, out-of-scope {}", self.passed, self.failed, self.out_of_scope)
    }

    /// `out-of-scope: NAME xN, ...`, most frequent first.
    pub fn out_of_scope_line(&self) -> String {
        let mut counts: Vec<_> = self.out_of_scope_by_exception.iter().collect();
        counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let parts: Vec<String> = counts.iter().map(|(name, n)| format!("{name} x{n}")).collect();
        format!("out-of-scope: {}", if parts.is_empty() { "none".to_string() } else { parts.join(", ") })
    }

    /// Reports of the failed tests.
    pub fn failures(&self) -> impl Iterator<Item = &TestReport> {
        self.reports.iter().filter(|r| r.outcome == Outcome::Failed)
    }
}

/// The state root of a complete state.
pub fn state_root(db: &InMemoryDb) -> B256 {
    state_root_unhashed(db.accounts.iter().map(|(address, account)| {
        let storage_root = storage_root_unhashed(
            account.storage.iter().filter(|(_, v)| !v.is_zero()).map(|(slot, value)| (B256::from(*slot), *value)),
        );
        let trie_account = TrieAccount {
            nonce: account.info.nonce,
            balance: account.info.balance,
            storage_root,
            code_hash: account.info.code_hash,
        };
        (*address, trie_account)
    }))
}

/// An account's code bytes as the state holds them.
fn account_code(db: &InMemoryDb, info: &AccountInfo) -> Bytes {
    if info.code_hash == KECCAK_EMPTY {
        return Bytes::new();
    }
    match &info.code {
        Some(code) if !code.is_empty() => code.original_bytes(),
        _ => db.contracts.get(&info.code_hash).map(|c| c.original_bytes()).unwrap_or_default(),
    }
}

/// Compares a state with `postState`; returns every difference.
pub fn compare_post_state(db: &InMemoryDb, expected: &BTreeMap<Address, ExpectedAccount>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (address, want) in expected {
        let Some(have) = db.accounts.get(address) else {
            problems.push(Problem::new(None, format!("postState.{address}"), "an account", "no account"));
            continue;
        };
        let at = |field: &str| format!("postState.{address}.{field}");
        if have.info.balance != want.balance {
            problems.push(Problem::new(None, at("balance"), want.balance, have.info.balance));
        }
        if have.info.nonce != want.nonce {
            problems.push(Problem::new(None, at("nonce"), want.nonce, have.info.nonce));
        }
        let code = account_code(db, &have.info);
        if code != want.code {
            problems.push(Problem::new(None, at("code"), &want.code, code));
        }
        let have_storage: BTreeMap<U256, U256> =
            have.storage.iter().filter(|(_, v)| !v.is_zero()).map(|(k, v)| (*k, *v)).collect();
        if have_storage != want.storage {
            let mut slots: Vec<U256> = have_storage.keys().chain(want.storage.keys()).copied().collect();
            slots.sort();
            slots.dedup();
            for slot in slots {
                let (w, h) = (want.storage.get(&slot).copied(), have_storage.get(&slot).copied());
                if w != h {
                    problems.push(Problem::new(
                        None,
                        at(&format!("storage.{slot:#x}")),
                        w.unwrap_or_default(),
                        h.unwrap_or_default(),
                    ));
                }
            }
        }
    }
    let mut extra: Vec<&Address> = db.accounts.keys().filter(|a| !expected.contains_key(*a)).collect();
    extra.sort();
    for address in extra {
        problems.push(Problem::new(None, format!("postState.{address}"), "no account", "an account"));
    }
    problems
}

/// Differences between two states, one line per account field (at most `limit`).
pub fn diff_states(expected: &InMemoryDb, actual: &InMemoryDb, limit: usize) -> Vec<(String, String, String)> {
    let mut addresses: Vec<Address> = expected.accounts.keys().chain(actual.accounts.keys()).copied().collect();
    addresses.sort();
    addresses.dedup();
    let mut diffs = Vec::new();
    for address in addresses {
        let (e, a) = (expected.accounts.get(&address), actual.accounts.get(&address));
        match (e, a) {
            (Some(e), Some(a)) => {
                if e.info.balance != a.info.balance {
                    diffs.push((format!("{address}.balance"), e.info.balance.to_string(), a.info.balance.to_string()));
                }
                if e.info.nonce != a.info.nonce {
                    diffs.push((format!("{address}.nonce"), e.info.nonce.to_string(), a.info.nonce.to_string()));
                }
                if e.info.code_hash != a.info.code_hash {
                    diffs.push((
                        format!("{address}.codeHash"),
                        e.info.code_hash.to_string(),
                        a.info.code_hash.to_string(),
                    ));
                }
                let mut slots: Vec<U256> = e.storage.keys().chain(a.storage.keys()).copied().collect();
                slots.sort();
                slots.dedup();
                for slot in slots {
                    let (ev, av) = (
                        e.storage.get(&slot).copied().unwrap_or_default(),
                        a.storage.get(&slot).copied().unwrap_or_default(),
                    );
                    if ev != av {
                        diffs.push((format!("{address}.storage.{slot:#x}"), format!("{ev:#x}"), format!("{av:#x}")));
                    }
                }
            }
            (Some(_), None) => diffs.push((address.to_string(), "an account".into(), "no account".into())),
            (None, Some(_)) => diffs.push((address.to_string(), "no account".into(), "an account".into())),
            (None, None) => {}
        }
        if diffs.len() >= limit {
            diffs.truncate(limit);
            break;
        }
    }
    diffs
}

/// The blocks of one test seen so far.
struct Chain {
    /// Accepted blocks (and genesis): hash -> header.
    headers: HashMap<B256, Header>,
    /// Accepted blocks (and genesis): hash -> state after the block.
    states: HashMap<B256, InMemoryDb>,
    /// Decoded blocks that were not accepted: hash -> index. A child of one is reported as such.
    rejected: HashMap<B256, usize>,
}

/// How many state differences with the sequential executor a failing parallel block reports.
const SEQUENTIAL_DIFFS: usize = 5;

impl Chain {
    /// The state a block runs on: its parent's post-state, with the hashes of up to 256 ancestors
    /// along the block's own chain for BLOCKHASH.
    fn parent_state(&self, block: &BlockInput, index: usize) -> Result<InMemoryDb, Problem> {
        let parent_hash = block.header.parent_hash;
        let Some(parent_state) = self.states.get(&parent_hash) else {
            let actual = match self.rejected.get(&parent_hash) {
                Some(parent) => format!("{parent_hash} = blocks[{parent}], which was rejected"),
                None => format!("{parent_hash}, an unknown block"),
            };
            return Err(Problem::new(Some(index), "parentHash", "an accepted block", actual));
        };
        let mut db = parent_state.clone();
        db.block_hashes.clear();
        let mut hash = parent_hash;
        for _ in 0..256 {
            let Some(header) = self.headers.get(&hash) else { break };
            db.block_hashes.insert(header.number, hash);
            if header.number == 0 {
                break;
            }
            hash = header.parent_hash;
        }
        Ok(db)
    }

    /// Executes a decoded block on its parent's state and checks it; returns the post-state if
    /// the block is accepted, else every reason it is not.
    fn import(
        &self,
        test: &EthTest,
        executor: &Executor,
        decoded: &DecodedBlock,
        index: usize,
    ) -> Result<InMemoryDb, Vec<Problem>> {
        let db = self.parent_state(&decoded.block, index).map_err(|p| vec![p])?;
        let outcome = execute_and_check(test, executor, &decoded.block, db.clone(), index);
        match (outcome, executor) {
            (Ok(state), _) => Ok(state),
            (Err(problems), Executor::Sequential) => Err(problems),
            // The parallel engine rejected a block: say whether the sequential executor accepts
            // it, and where their states differ, so the report is enough to start debugging.
            (Err(mut problems), Executor::Parallel(_) | Executor::DropIn(_)) => {
                let sequential = execute_and_check(test, &Executor::Sequential, &decoded.block, db.clone(), index);
                match sequential {
                    Err(_) => problems.push(Problem::new(Some(index), "sequential", "-", "rejects it too")),
                    Ok(sequential_state) => {
                        let parallel_state = executor
                            .execute(&test.chain, &decoded.block, &db)
                            .map(|output| {
                                let mut state = db.clone();
                                state.apply_bundle(&output.bundle);
                                state
                            })
                            .ok();
                        match parallel_state {
                            None => problems.push(Problem::new(Some(index), "sequential", "-", "accepts it")),
                            Some(parallel_state) => {
                                let diffs = diff_states(&sequential_state, &parallel_state, SEQUENTIAL_DIFFS);
                                if diffs.is_empty() {
                                    problems.push(Problem::new(
                                        Some(index),
                                        "sequential",
                                        "-",
                                        "accepts it (same state on a rerun)",
                                    ));
                                }
                                for (field, expected, actual) in diffs {
                                    problems.push(Problem::new(
                                        Some(index),
                                        format!("sequential vs parallel {field}"),
                                        expected,
                                        actual,
                                    ));
                                }
                            }
                        }
                    }
                }
                Err(problems)
            }
        }
    }
}

/// Executes `block` on `db` (its parent's state) and runs every check; the post-state if all
/// pass.
fn execute_and_check(
    test: &EthTest,
    executor: &Executor,
    block: &BlockInput,
    mut db: InMemoryDb,
    index: usize,
) -> Result<InMemoryDb, Vec<Problem>> {
    let executed = std::panic::catch_unwind(AssertUnwindSafe(|| executor.execute(&test.chain, block, &db)));
    // The engine must also agree with the sequential executor on every block, accepted or not:
    // same receipts, gas, requests and bundle, or the same error.
    let mut differences = Vec::new();
    if let (Some(_), Ok(parallel)) = (executor.engine(), &executed) {
        let sequential = Executor::Sequential.execute(&test.chain, block, &db);
        let found = match (&sequential, parallel) {
            (Ok(s), Ok(p)) => compare_outputs(s, p),
            (Err(s), Err(p)) if s.to_string() == p.to_string() => Vec::new(),
            (s, p) => vec![format!("sequential {:?}, parallel {:?}", s.as_ref().err(), p.as_ref().err())],
        };
        differences.extend(found.into_iter().map(|d| Problem::new(Some(index), VS_SEQUENTIAL, "-", d)));
    }
    let output = match executed {
        Ok(Ok(output)) if differences.is_empty() => output,
        Ok(Ok(_)) => return Err(differences),
        Ok(Err(error)) => {
            differences.insert(0, Problem::new(Some(index), "execution", "success", error));
            return Err(differences);
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".into());
            return Err(vec![Problem::new(Some(index), "execution", "success", format!("panic: {message}"))]);
        }
    };
    let checks = Checks { receipts_root: true, blob_gas_used: true };
    let mut problems: Vec<Problem> = check_header(&block.header, &output.result, checks)
        .into_iter()
        .map(|m| Problem::new(Some(index), m.field, m.expected, m.actual))
        .collect();
    db.apply_bundle(&output.bundle);
    if let Some(m) = check_state_root(&block.header, state_root(&db)) {
        problems.push(Problem::new(Some(index), m.field, m.expected, m.actual));
    }
    if problems.is_empty() { Ok(db) } else { Err(problems) }
}

/// Runs one test with `executor`.
pub fn run_test(test: &EthTest, executor: &Executor) -> TestReport {
    let started = Instant::now();
    let mut problems = Vec::new();
    let mut out_of_scope = Vec::new();
    let mut block_reports = Vec::with_capacity(test.blocks.len());

    let mut chain = Chain { headers: HashMap::new(), states: HashMap::new(), rejected: HashMap::new() };
    if let Some(m) = check_state_root(&test.genesis, state_root(&test.pre)) {
        problems.push(Problem::new(None, format!("genesis {}", m.field), m.expected, m.actual));
    }
    chain.headers.insert(test.genesis_hash, test.genesis.clone());
    chain.states.insert(test.genesis_hash, test.pre.clone());

    for (index, block) in test.blocks.iter().enumerate() {
        let mut report = BlockReport {
            index,
            expect_exception: block.expect_exception.clone(),
            status: BlockStatus::Rejected,
            reason: None,
        };
        let in_scope = match &block.expect_exception {
            None => true,
            Some(exception) => expectation_in_scope(exception),
        };
        if !in_scope {
            report.status = BlockStatus::OutOfScope;
            out_of_scope.push(block.expect_exception.clone().unwrap_or_default());
            block_reports.push(report);
            continue;
        }
        let imported = match &block.decoded {
            Err(reason) => Err(vec![Problem::new(Some(index), "decoding", "a valid block", reason)]),
            Ok(decoded) => chain.import(test, executor, decoded, index),
        };
        match (imported, &block.expect_exception) {
            (Ok(state), None) => {
                let decoded = block.decoded.as_ref().expect("imported blocks decoded");
                chain.headers.insert(decoded.hash, decoded.block.header.clone());
                chain.states.insert(decoded.hash, state);
                report.status = BlockStatus::Accepted;
            }
            (Ok(_), Some(exception)) => {
                report.status = BlockStatus::Accepted;
                problems.push(Problem::new(
                    Some(index),
                    "expectException",
                    format!("rejection ({exception})"),
                    "block accepted",
                ));
            }
            (Err(mut rejected), expected) => {
                report.reason = rejected.first().map(ToString::to_string);
                if let Ok(decoded) = &block.decoded {
                    chain.rejected.insert(decoded.hash, index);
                }
                if expected.is_none() {
                    problems.append(&mut rejected);
                } else {
                    // Rejected as expected; but the engine must have failed it the way the
                    // sequential executor does.
                    problems.extend(rejected.into_iter().filter(|p| p.field == VS_SEQUENTIAL));
                }
            }
        }
        block_reports.push(report);
    }

    match chain.states.get(&test.last_block_hash) {
        None => {
            let actual = match chain.rejected.get(&test.last_block_hash) {
                Some(index) => format!("blocks[{index}], which was rejected"),
                None => "no block with that hash".into(),
            };
            problems.push(Problem::new(None, "lastblockhash", test.last_block_hash, actual));
        }
        Some(state) => match &test.post {
            PostState::Accounts(expected) => problems.extend(compare_post_state(state, expected)),
            PostState::Root(root) => {
                let actual = state_root(state);
                if actual != *root {
                    problems.push(Problem::new(None, "postStateHash", root, actual));
                }
            }
        },
    }

    let outcome = if !problems.is_empty() {
        Outcome::Failed
    } else if !out_of_scope.is_empty() {
        Outcome::OutOfScope
    } else {
        Outcome::Passed
    };
    TestReport {
        file: test.file.clone(),
        name: test.name.clone(),
        outcome,
        problems,
        out_of_scope,
        blocks: block_reports,
        millis: started.elapsed().as_secs_f64() * 1e3,
    }
}

/// Loads and runs every test under `paths`.
pub fn run_paths(paths: &[PathBuf], executor: &Executor) -> Result<Summary, LoadError> {
    run_paths_with_progress(paths, executor, |_, _, _| {})
}

/// Loads and runs every test under `paths`, calling `progress(files_done, files_total, reports)`
/// after each file.
pub fn run_paths_with_progress(
    paths: &[PathBuf],
    executor: &Executor,
    mut progress: impl FnMut(usize, usize, &[TestReport]),
) -> Result<Summary, LoadError> {
    let files = discover(paths)?;
    let mut summary = Summary::default();
    for (i, file) in files.iter().enumerate() {
        let tests = load_file(file)?;
        let first = summary.reports.len();
        for test in &tests {
            summary.add(run_test(test, executor));
        }
        progress(i + 1, files.len(), &summary.reports[first..]);
    }
    Ok(summary)
}

/// At most this many problems are printed per failing test (the JSON output has them all).
const PRINTED_PROBLEMS: usize = 5;

/// Runs the suite and prints the summary.
pub fn run_cli(paths: &[PathBuf], executor: &Executor, json: Option<&Path>) -> Result<ExitCode, String> {
    println!("ethtest with {}", executor.name());
    let terminal = std::io::stdout().is_terminal();
    let started = Instant::now();
    let summary = run_paths_with_progress(paths, executor, |done, total, _| {
        let mut out = std::io::stdout().lock();
        if terminal {
            let _ = write!(out, "\r{done}/{total} files");
            let _ = out.flush();
        } else if done == total || done % 50 == 0 {
            let _ = writeln!(out, "{done}/{total} files");
        }
    })
    .map_err(|e| e.to_string())?;
    if terminal {
        println!();
    }
    for report in summary.failures() {
        let mut shown: Vec<String> = report.problems.iter().take(PRINTED_PROBLEMS).map(ToString::to_string).collect();
        if report.problems.len() > PRINTED_PROBLEMS {
            shown.push(format!("(+{} more)", report.problems.len() - PRINTED_PROBLEMS));
        }
        println!("FAILED {} {}: {}", report.file.display(), report.name, shown.join("; "));
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!("{}", summary.out_of_scope_line());
    println!("({} tests in {:.1} s)", summary.reports.len(), started.elapsed().as_secs_f64());
    println!("{}", summary.line());
    Ok(if summary.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
