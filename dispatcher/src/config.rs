//! Engine configuration: how many slots, and which mechanisms are on.

use parevm_slots::Role;
use std::time::Duration;

/// The most slots BSC found worth having ("8 is slightly better than 15").
pub const MAX_SLOTS: usize = 8;

/// How the engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Number of slots: threads that execute the block's transactions, the merger's thread
    /// included. `slots - 1` of them are workers on the engine's pool (each with a shadow, if
    /// enabled); the last is the thread the merger runs on, which executes queued transactions
    /// while it waits for the result it must merge next. So N slots keep N threads busy, one per
    /// core on an N-core machine. At 1 slot the merger's thread would be alone, which is the
    /// sequential executor with the engine's bookkeeping added: the engine hands every block to
    /// the caller's sequential executor instead. Default: cores, at least 1, at most 8.
    pub slots: usize,
    /// Give every slot a shadow worker that takes redos while the primary is busy, where the
    /// machine has a core for each beyond the slots' (the engine starts none otherwise:
    /// [`Engine::with_cores`](crate::Engine::with_cores)). Default: true, which with the default
    /// slots (one per core, at most 8) starts shadows only on a machine of 15 cores or more.
    pub shadows: bool,
    /// Let a slot with an empty queue steal queued transactions from other slots.
    pub steal: bool,
    /// How long the merger waits for one result before failing the block as stalled.
    pub stall_timeout: Duration,
    /// Blocks with fewer transactions than this are better run by the sequential executor: the
    /// engine's fixed cost per block (waking the workers, setting up the block's shared state)
    /// outweighs what it can gain on them. The engine itself ignores it; callers that have a
    /// sequential executor at hand (`parevm::Executor`, a block executor) apply it. 0: never.
    pub sequential_below_txs: usize,
    /// The cheap-block rule (`cheap_rule.rs`): a block whose transactions' mean gas limit, each
    /// counted up to 100,000, is under this is handed to the caller's sequential executor before
    /// the engine starts (a session: once a chain-rule window of transactions is in). Mostly
    /// plain transfers: the engine's bookkeeping per transaction costs about what executing one
    /// does, and leaves it nothing to gain. Default 40,000 gas. 0: never. The same rule hands
    /// back a whole block whose capped gas limits sum to less than
    /// [`SMALL_BLOCK_GAS`](crate::SMALL_BLOCK_GAS) (engine entry point only); 0 turns
    /// that off too.
    pub sequential_below_gas: u64,
    /// The chain rule (`chain_rule.rs`): once the block so far needed this many redos per
    /// [`CHAIN_RULE_WINDOW`](crate::CHAIN_RULE_WINDOW) merged transactions (judged at the end
    /// of each window), stop speculating and hand the rest of the block back to the caller's
    /// sequential executor. Default: half the window. `None`: never; 0: after the first window,
    /// whatever happened (for tests of the hand-back).
    pub chain_rule: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            slots: default_slots(),
            shadows: true,
            steal: true,
            stall_timeout: Duration::from_secs(60),
            sequential_below_txs: 0,
            sequential_below_gas: crate::cheap_rule::DEFAULT_SEQUENTIAL_BELOW_GAS,
            chain_rule: Some(crate::chain_rule::DEFAULT_REDOS),
        }
    }
}

/// One slot per core, clamped to `1..=8`: BSC's cores - 1 workers plus the merger's thread.
pub fn default_slots() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.clamp(1, MAX_SLOTS)
}

/// A configuration the engine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Slot count outside `1..=MAX_SLOTS`.
    #[error("slot count must be between 1 and {MAX_SLOTS}, got {0}")]
    Slots(usize),
}

impl EngineConfig {
    /// A default configuration with `slots` slots.
    pub fn with_slots(slots: usize) -> Result<Self, ConfigError> {
        let config = Self { slots, ..Self::default() };
        config.validate()?;
        Ok(config)
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_SLOTS).contains(&self.slots) {
            return Err(ConfigError::Slots(self.slots));
        }
        Ok(())
    }

    /// Slots whose transactions run on the engine's pool, each with its own queue: all but the
    /// merger's thread, which has a smaller lane of its own (see [`EngineConfig::slots`]). 0: the
    /// engine hands every block back.
    pub fn worker_slots(&self) -> usize {
        self.slots - 1
    }

    /// The fewest transactions (by the caller's count hint) a session runs on the engine: the
    /// small-block rule's count, at least one, and with the cheap-block rule on a chain-rule
    /// window ([`CHAIN_RULE_WINDOW`](crate::CHAIN_RULE_WINDOW)), since a session's rules judge a
    /// block only once a window is in, and on shorter blocks the engine's fixed cost is the loss
    /// (through the drop-in at 2 slots, the mainnet blocks under 20 transactions ran at
    /// 0.08-0.73x; `docs/benchmarks.md`, "The rules that hand a block back").
    pub fn session_min_txs(&self) -> usize {
        let window = if self.sequential_below_gas > 0 { crate::CHAIN_RULE_WINDOW } else { 0 };
        self.sequential_below_txs.max(1).max(window)
    }

    /// Worker threads the engine keeps: a primary per worker slot, plus a shadow each if enabled.
    pub fn threads(&self) -> usize {
        self.worker_slots() * self.roles().len()
    }

    /// Whether an engine on a machine with `cores` cores for it starts shadows: if asked, and only
    /// with a core for each of them beyond the slots' (see
    /// [`Engine::with_cores`](crate::Engine::with_cores)).
    pub fn shadows_on(&self, cores: usize) -> bool {
        self.shadows && self.worker_slots() > 0 && cores >= self.slots + self.worker_slots()
    }

    /// The workers each slot runs.
    pub fn roles(&self) -> &'static [Role] {
        if self.shadows { &[Role::Primary, Role::Shadow] } else { &[Role::Primary] }
    }
}
