//! What committing one account of a transaction's `EvmState` does to the state.
//!
//! revm's `State::commit` (through `CacheState::apply_account_state`) decides, per touched
//! account: self-destructed accounts are destroyed, created ones start from empty storage,
//! touched empty ones are removed (EIP-161; the journal already normalised pre-Spurious-Dragon
//! accounts so that this rule is safe), and the rest change in place. Both the base state and the
//! unconfirmed-read path must apply exactly that rule, or a slot would see a state that no
//! sequential run can produce; this module is the one place it is written.

use revm::state::Account;

/// The effect of one account of a transaction's write set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountWrite {
    /// Not touched: the account was only read. Nothing is written.
    None,
    /// The account no longer exists afterwards, and all of its storage is zero.
    Destroyed,
    /// The account exists with the written info, its storage starts from zero and holds the
    /// changed slots.
    Created,
    /// The account exists with the written info; its changed slots are overwritten.
    Changed,
}

/// Classifies an account of an `EvmState` the way `State::commit` will apply it.
#[inline]
pub fn classify_write(account: &Account) -> AccountWrite {
    if !account.is_touched() {
        AccountWrite::None
    } else if account.is_selfdestructed() {
        AccountWrite::Destroyed
    } else if account.is_created() {
        AccountWrite::Created
    } else if account.is_empty() {
        AccountWrite::Destroyed
    } else {
        AccountWrite::Changed
    }
}
