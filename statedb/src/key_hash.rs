//! The hasher of the shared state maps' keys: addresses, storage slots and code hashes.
//!
//! Every read an execution makes, and every write the merger applies, hashes an address, often
//! with a slot: the base's maps, the unconfirmed layer's writer index. The default hasher takes
//! a 20- or 32-byte key as a byte string, down its general path for inputs over 16 bytes. These
//! keys have one of two lengths, so [`KeyHasher`] folds them in as 16-byte words instead, with
//! the same seeded multiply the default hasher uses for each word (alloy's
//! [`DefaultHashBuilder`]); anything else goes to the default hasher as it is.

use std::hash::{BuildHasher, Hasher};

use alloy_primitives::map::DefaultHashBuilder;

/// A [`BuildHasher`] for the state maps' keys (see the module's notes).
#[derive(Clone, Default)]
pub struct KeyHashBuilder(DefaultHashBuilder);

impl std::fmt::Debug for KeyHashBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHashBuilder")
    }
}

impl BuildHasher for KeyHashBuilder {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.0.build_hasher())
    }
}

/// The default hasher, taking 20- and 32-byte strings (addresses, slots, hashes) as words.
pub struct KeyHasher(<DefaultHashBuilder as BuildHasher>::Hasher);

impl Hasher for KeyHasher {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) {
        let word = |at: usize| u128::from_le_bytes(bytes[at..at + 16].try_into().expect("16 bytes"));
        match bytes.len() {
            20 => {
                self.0.write_u128(word(0));
                self.0.write_u32(u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")));
            }
            32 => {
                self.0.write_u128(word(0));
                self.0.write_u128(word(16));
            }
            _ => self.0.write(bytes),
        }
    }

    #[inline(always)]
    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i);
    }

    #[inline(always)]
    fn write_u32(&mut self, i: u32) {
        self.0.write_u32(i);
    }

    #[inline(always)]
    fn write_u64(&mut self, i: u64) {
        self.0.write_u64(i);
    }

    #[inline(always)]
    fn write_u128(&mut self, i: u128) {
        self.0.write_u128(i);
    }

    #[inline(always)]
    fn write_usize(&mut self, i: usize) {
        self.0.write_usize(i);
    }

    #[inline(always)]
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, B256, U256};
    use std::collections::HashSet;

    #[test]
    fn keys_that_differ_in_any_byte_hash_apart() {
        let builder = KeyHashBuilder::default();
        let address = Address::repeat_byte(0x11);
        let slot = U256::from_be_bytes([0x22; 32]);
        let mut hashes = HashSet::new();
        assert!(hashes.insert(builder.hash_one((address, slot))));
        for byte in 0..20 {
            let mut other = address;
            other.0[byte] ^= 1;
            assert!(hashes.insert(builder.hash_one((other, slot))), "address byte {byte}");
        }
        for byte in 0..32 {
            let mut other = slot.to_be_bytes::<32>();
            other[byte] ^= 1;
            assert!(hashes.insert(builder.hash_one((address, U256::from_be_bytes(other)))), "slot byte {byte}");
        }
        assert_eq!(builder.hash_one(B256::repeat_byte(7)), builder.hash_one(B256::repeat_byte(7)));
        assert_ne!(builder.hash_one(B256::repeat_byte(7)), builder.hash_one(B256::repeat_byte(8)));
    }
}
