//! The blob format: how chunks and `.blob` files are stored.
//!
//! A blob is `magic[8] || crc32_le[4] || payload`. The CRC-32 (IEEE) covers the payload as
//! stored. The magic says how the payload is encoded: as it is ([`MAGIC_UNCOMPRESSED`]) or as
//! one zstd frame ([`MAGIC_COMPRESSED`]). The byte map is documented in `docs/format.md`.
//!
//! # Invariants
//!
//! * [`encode`] and [`encode_compressed`] are inverse to [`decode`]:
//!   `decode(&encode(x)) == Ok(x)`, `decode(&encode_compressed(x, level)) == Ok(x)`.
//! * [`decode`] never panics: any byte string is either a valid blob or a typed [`BlobError`];
//!   a compressed payload never decodes to more than [`PAYLOAD_LEN_MAX`] bytes.

use std::borrow::Cow;
use std::io::Read;

/// Magic of an uncompressed blob: the first 8 bytes of SHA-256("chunk store uncompressed blob v1").
/// Do not modify: it is on disk.
pub const MAGIC_UNCOMPRESSED: [u8; 8] = [147, 210, 163, 182, 17, 61, 54, 18];

/// Magic of a zstd-compressed blob: the first 8 bytes of
/// SHA-256("chunk store zstd compressed blob v1"). Do not modify: it is on disk.
pub const MAGIC_COMPRESSED: [u8; 8] = [118, 174, 229, 222, 234, 161, 113, 103];

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
    /// A compressed payload is not a valid zstd frame.
    #[error("compressed blob payload does not decompress: {reason}")]
    Decompress {
        /// What zstd reported.
        reason: String,
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

/// Encodes `payload` as a zstd-compressed blob at `level` (1 to 22; 0 is zstd's default, 3),
/// or as an uncompressed one when compression would not make it smaller.
pub fn encode_compressed(payload: &[u8], level: i32) -> Result<Vec<u8>, BlobError> {
    if payload.len() > PAYLOAD_LEN_MAX {
        return Err(BlobError::TooLarge { len: payload.len() });
    }
    let compressed = zstd::bulk::compress(payload, level).map_err(|err| BlobError::Decompress {
        reason: format!("compressing: {err}"),
    })?;
    if compressed.len() >= payload.len() {
        return encode(payload);
    }
    let mut blob = Vec::with_capacity(HEADER_LEN + compressed.len());
    blob.extend_from_slice(&MAGIC_COMPRESSED);
    blob.extend_from_slice(&crc32fast::hash(&compressed).to_le_bytes());
    blob.extend_from_slice(&compressed);
    Ok(blob)
}

/// Is `blob` (at least its header) a compressed blob?
pub fn is_compressed(blob: &[u8]) -> bool {
    blob.get(..8) == Some(&MAGIC_COMPRESSED[..])
}

/// Checks a blob's header and CRC and returns its payload: borrowed from an uncompressed blob,
/// decompressed from a compressed one.
pub fn decode(blob: &[u8]) -> Result<Cow<'_, [u8]>, BlobError> {
    if blob.len() < HEADER_LEN {
        return Err(BlobError::TooShort { len: blob.len() });
    }
    let (header, payload) = blob.split_at(HEADER_LEN);
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&header[..8]);
    if magic != MAGIC_UNCOMPRESSED && magic != MAGIC_COMPRESSED {
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
    if magic == MAGIC_UNCOMPRESSED {
        return Ok(Cow::Borrowed(payload));
    }
    decompress(payload).map(Cow::Owned)
}

fn decompress(payload: &[u8]) -> Result<Vec<u8>, BlobError> {
    let fail = |err: std::io::Error| BlobError::Decompress {
        reason: err.to_string(),
    };
    let decoder = zstd::stream::read::Decoder::with_buffer(payload).map_err(fail)?;
    let mut data = Vec::new();
    decoder
        .take(PAYLOAD_LEN_MAX as u64 + 1)
        .read_to_end(&mut data)
        .map_err(fail)?;
    if data.len() > PAYLOAD_LEN_MAX {
        return Err(BlobError::TooLarge { len: data.len() });
    }
    Ok(data)
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
    fn compressed_magic_is_derived_as_documented() {
        let hash = sha2::Sha256::digest(b"chunk store zstd compressed blob v1");
        assert_eq!(&hash[..8], &MAGIC_COMPRESSED);
    }

    #[test]
    fn compressed_round_trip_and_corruption() {
        let text = b"a line of text repeated\n".repeat(1000);
        let blob = encode_compressed(&text, 3).expect("compresses");
        assert!(is_compressed(&blob) && blob.len() < text.len() / 10);
        assert_eq!(decode(&blob).as_deref(), Ok(&text[..]));
        // Incompressible data is stored as it is.
        let plain = encode_compressed(b"xyz", 3).expect("small");
        assert!(!is_compressed(&plain));
        assert_eq!(decode(&plain).as_deref(), Ok(&b"xyz"[..]));
        // A valid CRC over a payload that is not zstd: a typed error.
        let mut junk = MAGIC_COMPRESSED.to_vec();
        junk.extend_from_slice(&crc32fast::hash(b"not zstd").to_le_bytes());
        junk.extend_from_slice(b"not zstd");
        assert!(matches!(decode(&junk), Err(BlobError::Decompress { .. })));
        let mut flipped = blob;
        flipped[HEADER_LEN + 3] ^= 1;
        assert!(matches!(
            decode(&flipped),
            Err(BlobError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn round_trip_and_corruption() {
        let blob = encode(b"hello").expect("small payload");
        assert_eq!(decode(&blob).as_deref(), Ok(&b"hello"[..]));
        assert_eq!(
            decode(&blob[..5]).as_deref(),
            Err(&BlobError::TooShort { len: 5 })
        );
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
        let empty = encode(b"").expect("empty payload");
        assert_eq!(decode(&empty).as_deref(), Ok(&b""[..]));
    }
}
