//! Path parsing, error construction and the seeded directory-listing order.
//!
//! Paths are absolute or relative to the root of the simulated disk. `.` components are
//! ignored; `..` is not supported (the store never uses it) and fails with `InvalidInput`. A
//! trailing slash is ignored (Linux would insist that the object is a directory).
//!
//! The listing order of [`crate::SimWorld`]'s `read_dir` is a pure function of (world seed,
//! directory inode number, entry name) through hashes written out here (FNV-1a and
//! splitmix64), never std's randomly keyed hashers, so the same seed always gives the same
//! order and different seeds give different ones.

use std::ffi::OsStr;
use std::io::{self, ErrorKind};
use std::path::{Component, Path};

/// The names of a path's components below the root; empty for the root itself.
pub(crate) fn components(path: &Path) -> io::Result<Vec<&OsStr>> {
    if path.as_os_str().is_empty() {
        return Err(error(ErrorKind::NotFound, "empty path", path));
    }
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => names.push(name),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(error(
                    ErrorKind::InvalidInput,
                    "`..` is not supported",
                    path,
                ));
            }
        }
    }
    Ok(names)
}

/// An error of `kind` about `path`, with a message saying it comes from the simulation.
pub(crate) fn error(kind: ErrorKind, what: &str, path: &Path) -> io::Error {
    io::Error::new(kind, format!("sim: {what}: {}", path.display()))
}

/// An error of `kind` about an open file.
pub(crate) fn file_error(kind: ErrorKind, what: &str) -> io::Error {
    io::Error::new(kind, format!("sim: {what}"))
}

/// `EBADF`: the handle was not opened for this access (std has no stable kind for it).
pub(crate) fn bad_descriptor(what: &str) -> io::Error {
    io::Error::other(format!("sim: bad file descriptor: {what}"))
}

/// The sort key of entry `name` in directory `dir_ino` of a world seeded with `seed`.
pub(crate) fn listing_key(seed: u64, dir_ino: u64, name: &OsStr) -> u64 {
    let salt = splitmix64(seed ^ splitmix64(dir_ino));
    splitmix64(fnv1a(name.as_encoded_bytes()) ^ salt)
}

/// splitmix64's finaliser: a fixed, well-mixing 64-bit permutation.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 64-bit FNV-1a of `bytes`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_skip_root_and_dot() {
        let names = components(Path::new("/a/./b/")).map_err(|e| e.kind());
        assert_eq!(names, Ok(vec![OsStr::new("a"), OsStr::new("b")]));
        assert_eq!(components(Path::new("/")).map(|n| n.len()).ok(), Some(0));
        assert_eq!(components(Path::new("a")).map(|n| n.len()).ok(), Some(1));
    }

    #[test]
    fn odd_paths_fail() {
        assert_eq!(
            components(Path::new("")).map_err(|e| e.kind()).err(),
            Some(ErrorKind::NotFound)
        );
        assert_eq!(
            components(Path::new("/a/../b")).map_err(|e| e.kind()).err(),
            Some(ErrorKind::InvalidInput)
        );
    }

    #[test]
    fn hashes_are_pinned() {
        // Pinned values: a change here changes every seeded listing order.
        assert_eq!(fnv1a(b""), 0xCBF2_9CE4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xAF63_DC4C_8601_EC8C);
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    }
}
