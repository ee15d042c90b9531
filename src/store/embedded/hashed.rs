//! Hashed keys: the embedded store keeps a dedup key or a watermark under a keyed
//! 128-bit hash of `route NUL id` (or `route NUL entity`), not under the raw string.
//!
//! # Why
//!
//! The raw key is as long as the sender makes its ids (a 36-byte UUID under a
//! 19-byte route name is 56 bytes) and it is stored twice, in the table and in its
//! expiry index: 285 bytes per id in the file with raw keys, against 16 bytes for a
//! hash (issue 14: ≤ 120 B per id). The raw key is never read back: the store only
//! asks "is this key there, and until when", which a hash answers as well.
//!
//! # Why keyed, and why HMAC-SHA-256
//!
//! Two ids whose hashes collide are one key to the store: the second would be
//! answered `duplicate` and never delivered. By chance that needs about 2^64 stored
//! keys (with 10^9 keys the odds are below 10^-20). On purpose it must be out of a
//! sender's reach, so the hash is keyed with 32 random bytes drawn from the operating
//! system when the file is created and kept in the file (table `hash_key_v1`): a
//! sender who cannot read the store file cannot compute a hash, let alone search for
//! a collision. HMAC-SHA-256 truncated to its first 128 bits (truncation as RFC 2104
//! §5 allows) is the standard keyed PRF, built from the `hmac` and `sha2` crates the
//! gateway already uses for signatures, so no new hash implementation comes in. It
//! costs three SHA-256 blocks for a key under 56 bytes (the keyed inner and outer
//! states are computed once per file and cloned), small beside a B-tree lookup.
//! SipHash-1-3-128 would be a few times faster but its reduced rounds are designed for
//! hash tables that can rehash, not for keys kept for days.
//!
//! The key never leaves the file, and a copy of the file taken elsewhere carries it:
//! the store file was already the one place that records which ids were seen.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use sha2::Sha256;

use crate::store::StoreError;

/// `name` → secret bytes: the hash key, written once when the file is created.
const HASH_KEY: TableDefinition<&str, &[u8]> = TableDefinition::new("hash_key_v1");
/// The row of [`HASH_KEY`] holding the HMAC-SHA-256 key.
const HMAC_SHA256: &str = "hmac-sha256";
/// Length of a generated key: SHA-256's output size, as RFC 2104 recommends.
const KEY_LEN: usize = 32;

/// The keyed hash of one store file. Cheap to clone (it holds the keyed HMAC state).
#[derive(Clone)]
pub(in crate::store) struct KeyHasher(Hmac<Sha256>);

impl KeyHasher {
    /// The file's hash key, generated (from the operating system's random source)
    /// and stored in `txn` when the file has none yet.
    pub(super) fn load_or_create(
        txn: &WriteTransaction,
        path: &Path,
    ) -> Result<KeyHasher, StoreError> {
        let mut table = txn.open_table(HASH_KEY)?;
        let stored = table.get(HMAC_SHA256)?.map(|v| v.value().to_vec());
        let key = match stored {
            Some(key) => key,
            None => {
                let mut key = vec![0u8; KEY_LEN];
                getrandom::fill(&mut key).map_err(|e| {
                    StoreError::io("draw a random hash key for", path, std::io::Error::other(e))
                })?;
                table.insert(HMAC_SHA256, key.as_slice())?;
                key
            }
        };
        Ok(KeyHasher::new(&key))
    }

    /// A hasher with this key (HMAC takes a key of any length).
    pub(super) fn new(key: &[u8]) -> KeyHasher {
        // `new_from_slice` refuses no length for HMAC; the fallback is unreachable but
        // keeps the no-panic rule without an `expect`.
        KeyHasher(
            <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default())),
        )
    }

    /// The stored form of a `route NUL value` key: the first 128 bits of its HMAC.
    pub(in crate::store) fn hash(&self, key: &str) -> u128 {
        let mut mac = self.0.clone();
        mac.update(key.as_bytes());
        let digest: [u8; 32] = mac.finalize().into_bytes().into();
        let mut head = [0u8; 16];
        for (h, d) in head.iter_mut().zip(digest) {
            *h = d;
        }
        u128::from_be_bytes(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash depends on the key and on every byte of the input, route and NUL
    /// included, and is stable for one key.
    #[test]
    fn hash_is_keyed_and_covers_route_and_id() {
        let a = KeyHasher::new(&[1; 32]);
        let b = KeyHasher::new(&[2; 32]);
        assert_eq!(a.hash("r\0id"), a.hash("r\0id"));
        assert_ne!(a.hash("r\0id"), b.hash("r\0id"));
        assert_ne!(a.hash("r\0id"), a.hash("r\0ie"));
        assert_ne!(a.hash("r\0id"), a.hash("s\0id"));
        assert_ne!(a.hash("r\0id"), a.hash("r\0id\0"));
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let jefe = KeyHasher::new(b"Jefe");
        assert_eq!(
            jefe.hash("what do ya want for nothing?"),
            0x5bdcc146bf60754e6a042426089575c7
        );
    }
}
