//! The chains we execute, as alloy-evm executor specs.
//!
//! Mainnet uses alloy's own hardfork table (`EthereumChainHardforks::mainnet`), so fork blocks
//! and timestamps are never written by hand here. The consensus suite names a fork ("Cancun")
//! and expects every fork up to it active from genesis.

use alloy_eips::{eip6110::MAINNET_DEPOSIT_CONTRACT_ADDRESS, eip7840::BlobParams};
use alloy_evm::eth::spec::EthExecutorSpec;
use alloy_hardforks::{EthereumChainHardforks, EthereumHardfork, EthereumHardforks, ForkCondition};
use alloy_primitives::{Address, U256};

/// A chain: its hardforks, id and deposit contract.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    hardforks: EthereumChainHardforks,
    /// Chain id (1 for mainnet and for the consensus suite).
    pub chain_id: u64,
    deposit_contract: Option<Address>,
}

impl ChainSpec {
    /// Ethereum mainnet.
    pub fn mainnet() -> Self {
        Self {
            hardforks: EthereumChainHardforks::mainnet(),
            chain_id: 1,
            deposit_contract: Some(MAINNET_DEPOSIT_CONTRACT_ADDRESS),
        }
    }

    /// A chain with every fork up to and including `last` active from genesis, as the consensus
    /// suite's `network` field means it. `None` for a network name we do not know.
    pub fn from_genesis(network: &str) -> Option<Self> {
        use EthereumHardfork::*;
        let order = [
            Frontier,
            Homestead,
            Dao,
            Tangerine,
            SpuriousDragon,
            Byzantium,
            Constantinople,
            Petersburg,
            Istanbul,
            MuirGlacier,
            Berlin,
            London,
            ArrowGlacier,
            GrayGlacier,
            Paris,
            Shanghai,
            Cancun,
            Prague,
            Osaka,
        ];
        let last =
            order.iter().position(|f| f.name().eq_ignore_ascii_case(network) || (network == "Merge" && *f == Paris))?;
        let forks = order[..=last].iter().filter(|f| **f != Dao).map(|&fork| {
            let condition = match fork {
                Paris => {
                    ForkCondition::TTD { activation_block_number: 0, fork_block: None, total_difficulty: U256::ZERO }
                }
                Shanghai | Cancun | Prague | Osaka => ForkCondition::Timestamp(0),
                _ => ForkCondition::Block(0),
            };
            (fork, condition)
        });
        Some(Self { hardforks: EthereumChainHardforks::new(forks), chain_id: 1, deposit_contract: None })
    }

    /// Blob fee parameters in force at `timestamp`, if blobs exist then.
    pub fn blob_params_at(&self, timestamp: u64) -> Option<BlobParams> {
        if self.is_osaka_active_at_timestamp(timestamp) {
            Some(BlobParams::osaka())
        } else if self.is_prague_active_at_timestamp(timestamp) {
            Some(BlobParams::prague())
        } else if self.is_cancun_active_at_timestamp(timestamp) {
            Some(BlobParams::cancun())
        } else {
            None
        }
    }
}

impl EthereumHardforks for ChainSpec {
    fn ethereum_fork_activation(&self, fork: EthereumHardfork) -> ForkCondition {
        self.hardforks.ethereum_fork_activation(fork)
    }
}

impl EthExecutorSpec for ChainSpec {
    fn deposit_contract_address(&self) -> Option<Address> {
        self.deposit_contract
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::primitives::hardfork::SpecId;

    #[test]
    fn mainnet_heights_map_to_their_forks() {
        let chain = ChainSpec::mainnet();
        let spec = |number, timestamp| alloy_evm::spec_by_timestamp_and_block_number(&chain, timestamp, number);
        assert_eq!(spec(46_147, 1_438_918_233), SpecId::FRONTIER);
        assert_eq!(spec(1_150_000, 1_457_981_393), SpecId::HOMESTEAD);
        assert_eq!(spec(4_370_000, 1_508_131_331), SpecId::BYZANTIUM);
        assert_eq!(spec(12_965_000, 1_628_166_822), SpecId::LONDON);
        assert_eq!(spec(19_934_116, 1_716_485_843), SpecId::CANCUN);
    }

    #[test]
    fn cancun_from_genesis() {
        let chain = ChainSpec::from_genesis("Cancun").unwrap();
        assert_eq!(alloy_evm::spec_by_timestamp_and_block_number(&chain, 0, 0), SpecId::CANCUN);
        assert!(chain.blob_params_at(0).is_some());
        assert!(ChainSpec::from_genesis("Atlantis").is_none());
        let osaka = ChainSpec::from_genesis("Osaka").unwrap();
        assert_eq!(alloy_evm::spec_by_timestamp_and_block_number(&osaka, 0, 0), SpecId::OSAKA);
        assert_eq!(osaka.blob_params_at(0), Some(BlobParams::osaka()));
    }
}
