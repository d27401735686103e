//! Read-set validation: is every value an execution read still the merged value?
//!
//! Run by the merger when the transaction's turn comes, so the base holds exactly its
//! sequential pre-state and nothing writes to the base meanwhile. Large read sets are split
//! over a thread pool; small ones are cheaper to check inline than to fan out.
//!
//! Validation never reads the database. Almost every key an execution read is in the base
//! (loaded by that read, or written by a merged transaction); the exception is a value read from
//! an unconfirmed result whose final execution no longer writes it. Such a read counts as stale:
//! its source was a stale result, and the redo is exact. Fetching it instead would ask the
//! database's server, which in a session is the very thread that is validating.

use parevm_statedb::{BaseState, BlockDb, Read};
use rayon::prelude::*;

/// Read sets at least this long are validated in parallel when a pool is given.
pub const PARALLEL_VALIDATION_MIN_READS: usize = 256;

/// The first read found stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch(pub Read);

pub(crate) fn current<D: BlockDb>(base: &BaseState<D>, read: &Read) -> bool {
    match *read {
        Read::Account(address, seen) => base.cached_snapshot(address) == Some(seen),
        Read::Storage(address, slot, seen) => base.cached_storage(address, slot) == Some(seen),
        // Says how the balance was used; whether the value is current is the `Account` read's.
        Read::Balance(..) => true,
    }
}

/// Checks `reads` against `base`; `None` if all are current.
pub fn validate<D: BlockDb>(base: &BaseState<D>, reads: &[Read], pool: Option<&rayon::ThreadPool>) -> Option<Mismatch> {
    match pool {
        Some(pool) if reads.len() >= PARALLEL_VALIDATION_MIN_READS => {
            pool.install(|| reads.par_iter().find_any(|read| !current(base, read)).map(|read| Mismatch(*read)))
        }
        _ => reads.iter().find(|read| !current(base, read)).map(|read| Mismatch(*read)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, U256};
    use parevm_statedb::InMemoryDb;
    use revm::{DatabaseRef, bytecode::Bytecode, primitives::B256, state::AccountInfo};

    /// A database validation must never touch.
    #[derive(Debug)]
    struct Untouchable;

    impl DatabaseRef for Untouchable {
        type Error = std::convert::Infallible;
        fn basic_ref(&self, _: Address) -> Result<Option<AccountInfo>, Self::Error> {
            panic!("validation read the database")
        }
        fn code_by_hash_ref(&self, _: B256) -> Result<Bytecode, Self::Error> {
            panic!("validation read the database")
        }
        fn storage_ref(&self, _: Address, _: U256) -> Result<U256, Self::Error> {
            panic!("validation read the database")
        }
        fn block_hash_ref(&self, _: u64) -> Result<B256, Self::Error> {
            panic!("validation read the database")
        }
    }

    /// A base that holds one account (balance 5) and nothing else, and a current read of it.
    fn base_knowing_one_account() -> (BaseState<Untouchable>, Address, Read) {
        let base = BaseState::new(Untouchable);
        let address = InMemoryDb::synthetic_address(0);
        base.fill_account(address, Some(AccountInfo::from_balance(U256::from(5))));
        let known = Read::Account(address, base.cached_snapshot(address).unwrap());
        (base, address, known)
    }

    #[test]
    fn a_value_the_base_does_not_hold_is_stale_and_never_fetched() {
        let (base, address, known) = base_knowing_one_account();
        let unknown_slot = Read::Storage(address, U256::from(1), U256::from(7));
        let unknown_account = Read::Account(InMemoryDb::synthetic_address(1), None);
        assert_eq!(validate(&base, &[known], None), None);
        assert_eq!(validate(&base, &[known, unknown_slot], None), Some(Mismatch(unknown_slot)));
        assert_eq!(validate(&base, &[unknown_account], None), Some(Mismatch(unknown_account)));
    }

    #[test]
    fn a_long_read_set_is_judged_the_same_split_over_a_pool() {
        let (base, address, known) = base_knowing_one_account();
        let stale = Read::Account(address, Some((&AccountInfo::from_balance(U256::from(6))).into()));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let mut reads = vec![known; 2 * PARALLEL_VALIDATION_MIN_READS];
        assert_eq!(validate(&base, &reads, Some(&pool)), None);
        reads[PARALLEL_VALIDATION_MIN_READS + 7] = stale;
        assert_eq!(validate(&base, &reads, Some(&pool)), Some(Mismatch(stale)));
    }
}
