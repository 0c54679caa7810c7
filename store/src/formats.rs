#![doc = include_str!("../../docs/format.md")]
