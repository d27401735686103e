//! Blocks made in-process: for property tests and stress tests that compare the engine with the
//! sequential executor on shapes real blocks rarely have, and for benchmarks that need no data.
//!
//! Transactions carry a fixed dummy signature: executors take the sender from `Recovered`, so no
//! key is needed, and hashes are still real hashes of the (dummy-signed) transactions.

use alloy_consensus::{
    Header, SignableTransaction, TxEip1559, TxEip2930, TxEip4844, TxEip7702, TxEnvelope, TxLegacy,
    transaction::Recovered,
};
use alloy_eips::{eip2930::AccessList, eip4844::VERSIONED_HASH_VERSION_KZG};
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256, keccak256, map::HashMap};
use parevm_statedb::InMemoryDb;
use revm::{bytecode::Bytecode, state::AccountInfo};

use crate::{BlockInput, ChainSpec};

/// Hand-assembled contracts, each small enough to read in its comment.
pub mod contracts {
    /// `slot = calldata[0..32]; storage[slot] += 1` (a read-modify-write of one slot).
    pub const COUNTER: &[u8] = &[0x60, 0x00, 0x35, 0x80, 0x54, 0x60, 0x01, 0x01, 0x90, 0x55, 0x00];
    /// `storage[0] = 1; revert` (its reads count even though it reverts).
    pub const REVERTER: &[u8] = &[0x60, 0x01, 0x60, 0x00, 0x55, 0x60, 0x00, 0x60, 0x00, 0xfd];
    /// `storage[0] = balance(coinbase)` (observes the beneficiary's balance).
    pub const COINBASE_OBSERVER: &[u8] = &[0x41, 0x31, 0x60, 0x00, 0x55, 0x00];
    /// `tstore(0, 1); storage[0] = tload(0)` (EIP-1153 transient storage).
    pub const TRANSIENT: &[u8] = &[0x60, 0x01, 0x60, 0x00, 0x5d, 0x60, 0x00, 0x5c, 0x60, 0x00, 0x55, 0x00];
    /// `selfdestruct(caller)`.
    pub const SELFDESTRUCT: &[u8] = &[0x33, 0xff];
    /// Init code of the child the factories deploy: `storage[0] = 1`, runtime = `SELFDESTRUCT`.
    pub const CHILD_INIT: &[u8] =
        &[0x60, 0x01, 0x60, 0x00, 0x55, 0x61, 0x33, 0xff, 0x60, 0x00, 0x52, 0x60, 0x02, 0x60, 0x1e, 0xf3];

    /// Accepts ether and does nothing: a balance only ever added to.
    pub const VAULT: &[u8] = &[0x00];
    /// `log0(selfbalance())` (observes its own balance; Istanbul and later).
    pub const SELF_WATCHER: &[u8] = &[0x47, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xa0, 0x00];
    /// `log0(call(gas, caller, 2, 0, 0, 0, 0))`: pays its caller 2 wei from its balance, which
    /// fails (logging 0) when the balance, what the call brought included, is short.
    pub const PAYER: &[u8] = &[
        0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x02, 0x33, 0x5a, 0xf1, 0x60, 0x00, 0x52, 0x60, 0x20,
        0x60, 0x00, 0xa0, 0x00,
    ];

    /// `call(gas, to, callvalue, 0, 0, 0, 0)`: passes the ether it is sent on to `to`, as a
    /// router passes a swap's ether to WETH.
    pub fn forwarder(to: alloy_primitives::Address) -> Vec<u8> {
        let mut code = vec![0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x34, 0x73];
        code.extend_from_slice(to.as_slice());
        code.extend_from_slice(&[0x5a, 0xf1, 0x50, 0x00]);
        code
    }

    /// `log0(balance(of))` (observes another account's balance).
    pub fn balance_watcher(of: alloy_primitives::Address) -> Vec<u8> {
        let mut code = vec![0x73];
        code.extend_from_slice(of.as_slice());
        code.extend_from_slice(&[0x31, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xa0, 0x00]);
        code
    }

    /// `create2(0, child_init, salt = calldata[0..32])`, then `selfdestruct(child)` is NOT called:
    /// the child is called separately.
    pub fn create2_factory() -> Vec<u8> {
        let mut code = vec![0x6f]; // PUSH16 child init
        code.extend_from_slice(CHILD_INIT);
        // PUSH1 0 MSTORE; PUSH1 0 CALLDATALOAD; PUSH1 16 PUSH1 16 PUSH1 0 CREATE2; POP STOP
        code.extend_from_slice(&[
            0x60, 0x00, 0x52, 0x60, 0x00, 0x35, 0x60, 0x10, 0x60, 0x10, 0x60, 0x00, 0xf5, 0x50, 0x00,
        ]);
        code
    }

    /// `create(0, child_init)` (its address depends on the factory's nonce).
    pub fn create_factory() -> Vec<u8> {
        let mut code = vec![0x6f];
        code.extend_from_slice(CHILD_INIT);
        // PUSH1 0 MSTORE; PUSH1 16 PUSH1 16 PUSH1 0 CREATE; POP STOP
        code.extend_from_slice(&[0x60, 0x00, 0x52, 0x60, 0x10, 0x60, 0x10, 0x60, 0x00, 0xf0, 0x50, 0x00]);
        code
    }
}

/// The address CREATE2 gives `factory`'s child for `salt`.
pub fn create2_child(factory: Address, salt: B256) -> Address {
    factory.create2(salt, keccak256(contracts::CHILD_INIT))
}

/// Wraps a transaction with a dummy signature and its sender.
pub fn recovered<T>(tx: T, sender: Address) -> Recovered<TxEnvelope>
where
    T: SignableTransaction<Signature>,
    TxEnvelope: From<alloy_consensus::Signed<T>>,
{
    let signature = Signature::new(U256::from(1), U256::from(1), false);
    Recovered::new_unchecked(TxEnvelope::from(tx.into_signed(signature)), sender)
}

/// How a synthetic transaction pays for gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fee {
    /// Legacy, `gas_price`.
    Legacy(u128),
    /// EIP-2930 with an access list naming the recipient.
    AccessList(u128),
    /// EIP-1559, `max_fee` and `priority`.
    Dynamic(u128, u128),
    /// EIP-4844 with one blob hash.
    Blob(u128, u128),
    /// EIP-7702 (`max_fee`, `priority`): [`authority`]`(n)` delegates its code to the recipient.
    SetCode(u128, u128, u8),
}

/// The signing key of test authority `n` (EIP-7702 authorizations need real signatures).
pub fn authority_key(n: u8) -> k256::ecdsa::SigningKey {
    k256::ecdsa::SigningKey::from_slice(&[n.wrapping_add(1); 32]).expect("a valid secp256k1 key")
}

/// The address of test authority `n`.
pub fn authority(n: u8) -> Address {
    Address::from_private_key(&authority_key(n))
}

/// Builds a block over an in-memory state.
#[derive(Debug, Clone)]
pub struct SyntheticBlock {
    /// Chain the block is for.
    pub chain: ChainSpec,
    /// Pre-state.
    pub db: InMemoryDb,
    /// The header (number 1 unless changed).
    pub header: Header,
    /// Transactions so far.
    pub txs: Vec<Recovered<TxEnvelope>>,
    nonces: HashMap<Address, u64>,
}

impl SyntheticBlock {
    /// An empty block of `network` (a fork name, see [`ChainSpec::from_genesis`]) with `gas_limit`.
    pub fn new(network: &str, gas_limit: u64, beneficiary: Address) -> Self {
        let chain = ChainSpec::from_genesis(network).unwrap_or_else(|| panic!("unknown network {network}"));
        use alloy_hardforks::EthereumHardforks;
        let london = chain.is_london_active_at_block(1);
        let cancun = chain.is_cancun_active_at_timestamp(12);
        let header = Header {
            number: 1,
            timestamp: 12,
            gas_limit,
            beneficiary,
            base_fee_per_gas: london.then_some(7),
            excess_blob_gas: cancun.then_some(0),
            blob_gas_used: cancun.then_some(0),
            parent_beacon_block_root: cancun.then_some(B256::with_last_byte(1)),
            withdrawals_root: chain.is_shanghai_active_at_timestamp(12).then_some(B256::ZERO),
            difficulty: U256::from(1),
            ..Default::default()
        };
        Self { chain, db: InMemoryDb::default(), header, txs: Vec::new(), nonces: HashMap::default() }
    }

    /// Adds an externally owned account, or sets a deployed contract's balance.
    pub fn fund(&mut self, address: Address, balance: U256) {
        match self.db.accounts.get_mut(&address) {
            // A deployed contract keeps its code, nonce and storage.
            Some(account) => account.info.balance = balance,
            None => self.db.insert_account(address, AccountInfo { balance, ..Default::default() }, Default::default()),
        }
    }

    /// Deploys `code` at `address` with `storage`.
    pub fn deploy(&mut self, address: Address, code: &[u8], storage: impl IntoIterator<Item = (U256, U256)>) {
        let code = Bytecode::new_raw(Bytes::copy_from_slice(code));
        let info = AccountInfo { nonce: 1, code_hash: code.hash_slow(), code: Some(code), ..Default::default() };
        self.db.insert_account(address, info, storage.into_iter().collect());
    }

    /// The next nonce of `sender` as the block so far leaves it.
    pub fn next_nonce(&self, sender: Address) -> u64 {
        self.nonces.get(&sender).copied().unwrap_or_else(|| self.db.accounts.get(&sender).map_or(0, |a| a.info.nonce))
    }

    /// Appends a transaction; `nonce_offset` > 0 makes a nonce gap (an invalid transaction).
    #[expect(clippy::too_many_arguments, reason = "a transaction's fields, named at every call")]
    pub fn push(
        &mut self,
        sender: Address,
        to: TxKind,
        value: U256,
        input: Bytes,
        gas_limit: u64,
        fee: Fee,
        nonce_offset: u64,
    ) {
        let nonce = self.next_nonce(sender) + nonce_offset;
        self.nonces.insert(sender, nonce + 1);
        let chain_id = self.chain.chain_id;
        let access_list = || match to {
            TxKind::Call(address) => {
                AccessList(vec![alloy_eips::eip2930::AccessListItem { address, storage_keys: vec![B256::ZERO] }])
            }
            TxKind::Create => AccessList::default(),
        };
        // Blob and set-code transactions cannot create: they call address zero instead.
        let call_target = || match to {
            TxKind::Call(address) => address,
            TxKind::Create => Address::ZERO,
        };
        let tx = match fee {
            Fee::Legacy(gas_price) => {
                use alloy_hardforks::EthereumHardforks;
                let chain_id = self.chain.is_spurious_dragon_active_at_block(1).then_some(chain_id);
                recovered(TxLegacy { chain_id, nonce, gas_price, gas_limit, to, value, input }, sender)
            }
            Fee::AccessList(gas_price) => recovered(
                TxEip2930 { chain_id, nonce, gas_price, gas_limit, to, value, access_list: access_list(), input },
                sender,
            ),
            Fee::Dynamic(max_fee_per_gas, max_priority_fee_per_gas) => recovered(
                TxEip1559 {
                    chain_id,
                    nonce,
                    gas_limit,
                    max_fee_per_gas,
                    max_priority_fee_per_gas,
                    to,
                    value,
                    access_list: AccessList::default(),
                    input,
                },
                sender,
            ),
            Fee::SetCode(max_fee_per_gas, max_priority_fee_per_gas, n) => {
                let to = call_target();
                // Signed for the authority's nonce as the block leaves it, counting this
                // transaction's own nonce bump when the authority sends it.
                let address = authority(n);
                let auth_nonce = self.next_nonce(address);
                self.nonces.insert(address, auth_nonce + 1);
                let auth = alloy_eips::eip7702::Authorization {
                    chain_id: U256::from(chain_id),
                    address: to,
                    nonce: auth_nonce,
                };
                let (signature, recovery) =
                    authority_key(n).sign_prehash_recoverable(auth.signature_hash().as_slice()).expect("signing");
                let signed = auth.into_signed(Signature::from((signature, recovery)));
                recovered(
                    TxEip7702 {
                        chain_id,
                        nonce,
                        gas_limit,
                        max_fee_per_gas,
                        max_priority_fee_per_gas,
                        to,
                        value,
                        access_list: AccessList::default(),
                        authorization_list: vec![signed],
                        input,
                    },
                    sender,
                )
            }
            Fee::Blob(max_fee_per_gas, max_priority_fee_per_gas) => {
                let mut hash = B256::with_last_byte(7);
                hash.0[0] = VERSIONED_HASH_VERSION_KZG;
                let to = call_target();
                recovered(
                    TxEip4844 {
                        chain_id,
                        nonce,
                        gas_limit,
                        max_fee_per_gas,
                        max_priority_fee_per_gas,
                        to,
                        value,
                        access_list: AccessList::default(),
                        blob_versioned_hashes: vec![hash],
                        max_fee_per_blob_gas: 10,
                        input,
                    },
                    sender,
                )
            }
        };
        self.txs.push(tx);
    }

    /// The block, ready for an executor.
    pub fn block(&self) -> BlockInput {
        use alloy_hardforks::EthereumHardforks;
        let withdrawals = self
            .chain
            .is_shanghai_active_at_timestamp(self.header.timestamp)
            .then(alloy_eips::eip4895::Withdrawals::default);
        BlockInput { header: self.header.clone(), txs: self.txs.clone(), ommers: Vec::new(), withdrawals }
    }
}
