//! Scenarios, one module per kernel.

pub mod insert_sweep;
