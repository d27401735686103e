//! The hasher of the shared state maps' keys: addresses, storage slots and code hashes.
//!
//! Every read an execution makes, and every write the merger applies, hashes an address, often
//! with a slot: the base's maps, the unconfirmed layer's writer index. The default hasher
//! (alloy's [`DefaultHashBuilder`], foldhash) takes a 20- or 32-byte key as a byte string, down
//! its general path for inputs over 16 bytes. These keys have one of those two lengths, so
//! [`KeyHasher`] folds them in as 16-byte words instead, with the seeded multiply the default
//! hasher applies to each word it is given; anything else goes to the default hasher as it is.
//! alloy's own fixed-bytes hasher (`map::FbBuildHasher`) takes one key of one length only, and
//! the storage map's key is an address and a slot.

use std::hash::{BuildHasher, Hasher};

use alloy_primitives::map::DefaultHashBuilder;

/// A [`BuildHasher`] for the state maps' keys (see the module's notes).
#[derive(Clone, Default)]
pub(crate) struct KeyHashBuilder(DefaultHashBuilder);

impl BuildHasher for KeyHashBuilder {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.0.build_hasher())
    }
}

/// The default hasher, taking 20- and 32-byte strings (addresses, slots, hashes) as words.
pub(crate) struct KeyHasher(<DefaultHashBuilder as BuildHasher>::Hasher);

/// Hands each listed write to the default hasher as it is.
macro_rules! forward {
    ($($write:ident($ty:ty),)*) => {$(
        #[inline(always)]
        fn $write(&mut self, i: $ty) {
            self.0.$write(i);
        }
    )*};
}

impl Hasher for KeyHasher {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) {
        let word = |half: &[u8]| u128::from_le_bytes(half.try_into().expect("16 bytes"));
        match bytes.len() {
            20 => {
                let (head, tail) = bytes.split_at(16);
                self.0.write_u128(word(head));
                self.0.write_u32(u32::from_le_bytes(tail.try_into().expect("4 bytes")));
            }
            32 => {
                let (head, tail) = bytes.split_at(16);
                self.0.write_u128(word(head));
                self.0.write_u128(word(tail));
            }
            _ => self.0.write(bytes),
        }
    }

    // The rest as the default hasher takes them (the signed integers go through these).
    forward! {
        write_u8(u8),
        write_u16(u16),
        write_u32(u32),
        write_u64(u64),
        write_u128(u128),
        write_usize(usize),
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

    /// What the default hasher, seeded like `builder`, gives for `words` written one by one.
    fn by_words(builder: &KeyHashBuilder, words: impl FnOnce(&mut <DefaultHashBuilder as BuildHasher>::Hasher)) -> u64 {
        let mut hasher = builder.0.build_hasher();
        words(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn addresses_slots_and_hashes_go_in_as_words() {
        // Fails if alloy or ruint stop handing these keys to the hasher as one 20- or 32-byte
        // string: the fast path would then be skipped without a sound.
        let builder = KeyHashBuilder::default();
        let address = Address::from_slice(&(1..=20).collect::<Vec<u8>>());
        let word = |bytes: &[u8]| u128::from_le_bytes(bytes.try_into().unwrap());
        assert_eq!(
            builder.hash_one(address),
            by_words(&builder, |h| {
                h.write_usize(20);
                h.write_u128(word(&address[..16]));
                h.write_u32(u32::from_le_bytes(address[16..].try_into().unwrap()));
            })
        );
        // A 32-byte string after its length prefix: a hash's, or a slot's four limbs'.
        let two_words = |prefix: usize, bytes: &[u8]| {
            by_words(&builder, |h| {
                h.write_usize(prefix);
                h.write_u128(word(&bytes[..16]));
                h.write_u128(word(&bytes[16..]));
            })
        };
        let hash = B256::from_slice(&(1..=32).collect::<Vec<u8>>());
        assert_eq!(builder.hash_one(hash), two_words(32, &hash[..]));
        let slot = U256::from_be_bytes(hash.0);
        let limbs: Vec<u8> = slot.as_limbs().iter().flat_map(|limb| limb.to_ne_bytes()).collect();
        assert_eq!(builder.hash_one(slot), two_words(4, &limbs));
    }

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
    }
}
