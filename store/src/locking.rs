#![doc = include_str!("../../LOCKING.md")]
