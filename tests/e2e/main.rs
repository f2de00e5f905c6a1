//! End-to-end and fault tests, one binary (each test its own deployment on the real local
//! redis-server and moto server started by `infra/test.sh`).

mod api_contract;
mod buckets;
mod cluster;
mod persist_path;
mod raise;
mod reconcile;
mod redis_tls;
mod second_phase;
mod security;
mod shards;
mod try_path;
