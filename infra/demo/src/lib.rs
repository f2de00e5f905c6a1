//! The demo flash sale and the benchmarks, on the local stack (`infra/local`): kept out of the
//! stack's crate so the tests do not compile them.
//!
//! - [`demo`]: concurrent buyer journeys against a running front door, with a verdict.
//! - [`flash_sale`]: the flash-sale benchmark and its plots.
//! - [`bench`]: the other benchmarks (script cost, write amplification, footprint, reconciliation).
//! - [`hot_buckets`]: one hot drop's durable side over 1, 16 and 64 stock buckets.
//! - [`shards`]: one hot drop's Tries over cache shards on the local Redis Cluster.

pub mod bench;
pub mod demo;
pub mod flash_sale;
pub mod hot_buckets;
pub mod redis_cost;
pub mod shards;
