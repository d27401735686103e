//! The consensus suite (BlockchainTests, Cancun) through `parevm::ethtest`: the whole suite with
//! both executors, loader errors, and tampered tests that must be caught.

mod common;

use std::path::{Path, PathBuf};

use alloy_primitives::U256;
use parevm::{
    Executor, LoadError,
    ethtest::{self, EthTest, Outcome, PostState, Summary, load_file, run_paths, run_test},
};

const SUITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/ethereum-tests");

fn suite() -> PathBuf {
    PathBuf::from(SUITE)
}

fn test_file(relative: &str) -> PathBuf {
    suite().join("BlockchainTests").join(relative)
}

fn describe_failures(summary: &Summary) -> String {
    summary
        .failures()
        .map(|r| {
            let problems: Vec<String> = r.problems.iter().take(3).map(ToString::to_string).collect();
            format!("{} {}: {}", r.file.display(), r.name, problems.join("; "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn parallel() -> Executor {
    Executor::Parallel(common::engine(4))
}

#[test]
fn whole_suite_sequential() {
    let summary = run_paths(&[suite()], &Executor::Sequential).expect("suite loads");
    assert_eq!(summary.reports.len(), 573, "{}", summary.line());
    assert_eq!(summary.failed, 0, "{}\n{}", summary.line(), describe_failures(&summary));
    // 84 tests contain a block whose exception is header- or RLP-level (out of scope): every
    // other test must pass.
    assert_eq!(summary.out_of_scope, 84, "{}\n{}", summary.line(), summary.out_of_scope_line());
    assert_eq!(summary.passed, 573 - 84, "{}", summary.line());
    assert_eq!(summary.out_of_scope_by_exception.values().sum::<usize>(), 108);
    assert_eq!(summary.out_of_scope_by_exception["BlockException.IMPORT_IMPOSSIBLE_UNCLES_OVER_PARIS"], 66);
}

/// With an engine, every block is also compared with the sequential executor (outputs and
/// bundle, or the same error), so passing means equal to `EthBlockExecutorFactory` as well as
/// to the tests' expectations.
#[test]
fn whole_suite_parallel_4_slots() {
    let summary = run_paths(&[suite()], &parallel()).expect("suite loads");
    assert_eq!(summary.reports.len(), 573, "{}", summary.line());
    assert_eq!(summary.failed, 0, "{}\n{}", summary.line(), describe_failures(&summary));
    assert_eq!(summary.passed, 573 - 84, "{}", summary.line());
}

#[test]
fn whole_suite_drop_in_1_2_8_slots() {
    for slots in [2, 3, 8] {
        let executor = Executor::DropIn(common::engine(slots).into());
        let summary = run_paths(&[suite()], &executor).expect("suite loads");
        assert_eq!(summary.failed, 0, "{slots} slots: {}\n{}", summary.line(), describe_failures(&summary));
        assert_eq!(summary.passed, 573 - 84, "{slots} slots: {}", summary.line());
    }
}

// ---------------------------------------------------------------------------------------------
// Loader errors
// ---------------------------------------------------------------------------------------------

/// A file under the temp dir with a name no other test (or run) uses.
fn temp_file(tag: &str, contents: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let path = std::env::temp_dir().join(format!("parevm-ethtest-{tag}-{}-{nanos}-{unique}.json", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

/// A small real test (one valid block) as JSON, to corrupt.
fn sample_json() -> serde_json::Value {
    let text = std::fs::read_to_string(test_file("ValidBlocks/bcValidBlockTest/SimpleTx.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn sample_name(json: &serde_json::Value) -> String {
    json.as_object().unwrap().keys().next().unwrap().clone()
}

fn assert_names(error: &LoadError, file: &Path, field: &str) {
    let message = error.to_string();
    assert!(message.contains(&file.display().to_string()), "no file name in: {message}");
    assert!(message.contains(field), "no field {field:?} in: {message}");
}

#[test]
fn the_unmodified_sample_loads_and_passes() {
    let json = sample_json();
    let path = temp_file("sample", &json.to_string());
    let tests = load_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(tests.len(), 1);
    assert_eq!(run_test(&tests[0], &Executor::Sequential).outcome, Outcome::Passed);
}

#[test]
fn missing_file_is_a_load_error_naming_it() {
    let path = std::env::temp_dir().join(format!("parevm-ethtest-does-not-exist-{}.json", std::process::id()));
    let error = load_file(&path).unwrap_err();
    assert!(matches!(error, LoadError::Io { .. }), "{error}");
    assert_names(&error, &path, "cannot read");
    // And through the directory walker.
    let error = run_paths(std::slice::from_ref(&path), &Executor::Sequential).unwrap_err();
    assert_names(&error, &path, "cannot read");
}

#[test]
fn bad_hex_in_pre_balance_names_the_field() {
    let mut json = sample_json();
    let name = sample_name(&json);
    let pre = json[&name]["pre"].as_object_mut().unwrap();
    let address = pre.keys().next().unwrap().clone();
    pre[&address]["balance"] = "0xzz12".into();
    let path = temp_file("bad-balance", &json.to_string());
    let error = load_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_names(&error, &path, &format!("{name}.pre.{address}.balance"));
}

#[test]
fn truncated_block_rlp_names_the_field() {
    let mut json = sample_json();
    let name = sample_name(&json);
    let rlp = json[&name]["blocks"][0]["rlp"].as_str().unwrap().to_string();
    json[&name]["blocks"][0]["rlp"] = rlp[..rlp.len() - 20].into();
    let path = temp_file("truncated-rlp", &json.to_string());
    let error = load_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_names(&error, &path, &format!("{name}.blocks[0].rlp"));
}

#[test]
fn wrong_shape_and_invalid_json_are_load_errors() {
    let mut json = sample_json();
    let name = sample_name(&json);
    json[&name]["blocks"] = serde_json::json!({ "not": "an array" });
    let path = temp_file("blocks-object", &json.to_string());
    let error = load_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_names(&error, &path, &format!("{name}.blocks"));

    let path = temp_file("not-json", "{ \"test\": ");
    let error = load_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(error, LoadError::Json { .. }), "{error}");
    assert_names(&error, &path, "invalid JSON");
}

// ---------------------------------------------------------------------------------------------
// Tampered tests must fail
// ---------------------------------------------------------------------------------------------

fn load_one(relative: &str) -> EthTest {
    let mut tests = load_file(&test_file(relative)).unwrap();
    assert_eq!(tests.len(), 1);
    tests.pop().unwrap()
}

fn run_one(test: &EthTest) -> Summary {
    let mut summary = Summary::default();
    summary.add(run_test(test, &Executor::Sequential));
    summary
}

#[test]
fn tampered_post_state_balance_is_caught() {
    let mut test = load_one("ValidBlocks/bcValidBlockTest/SimpleTx.json");
    assert_eq!(run_one(&test).passed, 1);
    let PostState::Accounts(accounts) = &mut test.post else { panic!("SimpleTx has a postState") };
    let account = accounts.values_mut().find(|a| !a.balance.is_zero()).unwrap();
    account.balance += U256::from(1);
    let summary = run_one(&test);
    assert_eq!((summary.passed, summary.failed), (0, 1), "{}", summary.line());
    let problem = &summary.reports[0].problems[0];
    assert!(problem.field.starts_with("postState.") && problem.field.ends_with(".balance"), "{problem}");
}

#[test]
fn tampered_state_root_is_caught() {
    let mut test = load_one("ValidBlocks/bcValidBlockTest/SimpleTx.json");
    let block = test.blocks[0].decoded.as_mut().unwrap();
    block.block.header.state_root.0[0] ^= 1;
    let summary = run_one(&test);
    assert_eq!(summary.failed, 1, "{}", summary.line());
    let report = &summary.reports[0];
    assert_eq!(report.problems[0].block, Some(0));
    assert_eq!(report.problems[0].field, "stateRoot");
}

#[test]
fn tampered_gas_used_is_caught() {
    let mut test = load_one("ValidBlocks/bcValidBlockTest/SimpleTx.json");
    test.blocks[0].decoded.as_mut().unwrap().block.header.gas_used += 1;
    let summary = run_one(&test);
    assert_eq!(summary.failed, 1, "{}", summary.line());
    assert_eq!(summary.reports[0].problems[0].field, "gasUsed");
}

#[test]
fn transaction_exception_block_passed_off_as_valid_is_caught() {
    let mut test = load_one("InvalidBlocks/bcStateTests/TransactionFromCoinbaseNotEnoughFounds.json");
    let index = test
        .blocks
        .iter()
        .position(|b| b.expect_exception.as_deref().is_some_and(|e| e.starts_with("TransactionException.")))
        .expect("a TransactionException block");
    assert_eq!(run_one(&test).passed, 1, "the untampered test passes");
    test.blocks[index].expect_exception = None;
    let summary = run_one(&test);
    assert_eq!(summary.failed, 1, "{}", summary.line());
    assert_eq!(summary.reports[0].problems[0].block, Some(index));
    assert_eq!(summary.reports[0].problems[0].field, "execution");
}

#[test]
fn valid_block_marked_invalid_is_caught() {
    // A block the executor accepts, marked with an in-scope exception, must fail the test.
    let mut test = load_one("ValidBlocks/bcValidBlockTest/SimpleTx.json");
    test.blocks[0].expect_exception = Some("TransactionException.INSUFFICIENT_ACCOUNT_FUNDS".into());
    let summary = run_one(&test);
    assert_eq!(summary.failed, 1, "{}", summary.line());
    assert!(summary.reports[0].problems.iter().any(|p| p.field == "expectException"));
}

#[test]
fn exception_scope() {
    assert!(ethtest::expectation_in_scope("TransactionException.INTRINSIC_GAS_TOO_LOW"));
    assert!(ethtest::expectation_in_scope(
        "TransactionException.INSUFFICIENT_MAX_FEE_PER_GAS|TransactionException.GAS_ALLOWANCE_EXCEEDED"
    ));
    assert!(ethtest::expectation_in_scope("BlockException.INVALID_STATE_ROOT"));
    assert!(ethtest::expectation_in_scope("BlockException.GAS_USED_OVERFLOW"));
    assert!(!ethtest::expectation_in_scope("BlockException.IMPORT_IMPOSSIBLE_UNCLES_OVER_PARIS"));
    assert!(!ethtest::expectation_in_scope(
        "BlockException.RLP_STRUCTURES_ENCODING|BlockException.RLP_INVALID_ADDRESS"
    ));
}

/// Side chains: every block runs on its own parent's state, and the final state is the one at
/// `lastblockhash`. UncleFromSideChain has chain A (3 blocks) then chain B forking from genesis
/// (4 blocks, plus one out-of-scope block with uncles); the head is B's last block.
#[test]
fn side_chains_use_the_parent_state() {
    let test = load_one("InvalidBlocks/bcMultiChainTest/UncleFromSideChain.json");
    let genesis_children = test
        .blocks
        .iter()
        .filter(|b| b.decoded.as_ref().is_ok_and(|d| d.block.header.parent_hash == test.genesis_hash))
        .count();
    assert_eq!(genesis_children, 2, "two chains fork from genesis");
    let report = run_test(&test, &Executor::Sequential);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.outcome, Outcome::OutOfScope);
    assert_eq!(report.out_of_scope, ["BlockException.IMPORT_IMPOSSIBLE_UNCLES_OVER_PARIS"]);
    let accepted = report.blocks.iter().filter(|b| b.status == ethtest::BlockStatus::Accepted).count();
    assert_eq!(accepted, 7);

    // Running chain B's first block on chain A's head instead of genesis breaks its state root.
    let mut wrong = test.clone();
    let a_head = wrong.blocks[2].decoded.as_ref().unwrap().hash;
    let b_first = wrong.blocks[3].decoded.as_mut().unwrap();
    b_first.block.header.parent_hash = a_head;
    let report = run_test(&wrong, &Executor::Sequential);
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.problems[0].block, Some(3));
}
