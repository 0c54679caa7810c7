//! The blob format: how chunks and `.blob` files are stored.
//!
//! A blob is `magic[8] || crc32_le[4] || payload`. The CRC-32 (IEEE) covers the payload. The
//! magic says how the payload is encoded; only the uncompressed encoding exists so far. The
//! byte map is documented in `docs/format.md`.
//!
//! # Invariants
//!
//! * [`encode`] and [`decode`] are inverse: `decode(&encode(x)) == Ok(x)`.
//! * [`decode`] never panics: any byte string is either a valid blob or a typed [`BlobError`].

/// Magic of an uncompressed blob: the first 8 bytes of SHA-256("chunk store uncompressed blob v1").
/// Do not modify: it is on disk.
pub const MAGIC_UNCOMPRESSED: [u8; 8] = [147, 210, 163, 182, 17, 61, 54, 18];

/// Length of the blob header (magic + CRC).
pub const HEADER_LEN: usize = 12;

/// The largest payload a blob may carry (128 MiB).
pub const PAYLOAD_LEN_MAX: usize = 128 * 1024 * 1024;

/// Why bytes are not a valid blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// Shorter than the header.
    #[error("blob too short: {len} bytes, the header alone is 12")]
    TooShort {
        /// Length found.
        len: usize,
    },
    /// The magic is not one this store writes.
    #[error("unknown blob magic {magic:?}")]
    UnknownMagic {
        /// The magic found.
        magic: [u8; 8],
    },
    /// The payload does not match its CRC.
    #[error("blob CRC mismatch: header says {expected:08x}, payload has {actual:08x}")]
    CrcMismatch {
        /// CRC stored in the header.
        expected: u32,
        /// CRC of the payload read.
        actual: u32,
    },
    /// The payload exceeds [`PAYLOAD_LEN_MAX`].
    #[error("blob payload of {len} bytes exceeds the limit of 128 MiB")]
    TooLarge {
        /// Payload length.
        len: usize,
    },
}

/// Encodes `payload` as an uncompressed blob.
pub fn encode(payload: &[u8]) -> Result<Vec<u8>, BlobError> {
    if payload.len() > PAYLOAD_LEN_MAX {
        return Err(BlobError::TooLarge { len: payload.len() });
    }
    let mut blob = Vec::with_capacity(HEADER_LEN + payload.len());
    blob.extend_from_slice(&MAGIC_UNCOMPRESSED);
    blob.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    blob.extend_from_slice(payload);
    Ok(blob)
}

/// Checks a blob's header and CRC and returns its payload.
pub fn decode(blob: &[u8]) -> Result<&[u8], BlobError> {
    if blob.len() < HEADER_LEN {
        return Err(BlobError::TooShort { len: blob.len() });
    }
    let (header, payload) = blob.split_at(HEADER_LEN);
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&header[..8]);
    if magic != MAGIC_UNCOMPRESSED {
        return Err(BlobError::UnknownMagic { magic });
    }
    if payload.len() > PAYLOAD_LEN_MAX {
        return Err(BlobError::TooLarge { len: payload.len() });
    }
    let expected = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    let actual = crc32fast::hash(payload);
    if expected != actual {
        return Err(BlobError::CrcMismatch { expected, actual });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    #[test]
    fn magic_is_derived_as_documented() {
        let hash = sha2::Sha256::digest(b"chunk store uncompressed blob v1");
        assert_eq!(&hash[..8], &MAGIC_UNCOMPRESSED);
    }

    #[test]
    fn round_trip_and_corruption() {
        let blob = encode(b"hello").expect("small payload");
        assert_eq!(decode(&blob), Ok(&b"hello"[..]));
        assert_eq!(decode(&blob[..5]), Err(BlobError::TooShort { len: 5 }));
        let mut flipped = blob.clone();
        flipped[HEADER_LEN] ^= 1;
        assert!(matches!(
            decode(&flipped),
            Err(BlobError::CrcMismatch { .. })
        ));
        let mut bad_magic = blob;
        bad_magic[0] ^= 1;
        assert!(matches!(
            decode(&bad_magic),
            Err(BlobError::UnknownMagic { .. })
        ));
        assert_eq!(decode(&encode(b"").expect("empty payload")), Ok(&b""[..]));
    }
}
