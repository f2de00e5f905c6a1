//! The connection: one Redis node (a reconnecting manager) or a Redis Cluster (ElastiCache
//! Serverless presents a cluster endpoint). Every key a script touches shares one hash tag, so
//! both work the same.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::err;
use crate::ports::InfraResult;

#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How long a command may wait for its answer before it counts as a dependency failure. The
/// client's default (500 ms) turned a Try into a 503 while a burst queued behind one multiplexed
/// connection on a loaded machine; a healthy cache answers in about a millisecond, and the
/// functions' timeouts (10 s and more) leave room for this.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to one node, or to a cluster (following its slots: MOVED/ASK).
pub async fn connect(url: &str, cluster: bool) -> InfraResult<Conn> {
    Ok(if cluster {
        let client = redis::cluster::ClusterClientBuilder::new(vec![url])
            .response_timeout(RESPONSE_TIMEOUT)
            .build()
            .map_err(err("redis cluster open"))?;
        Conn::Cluster(client.get_async_connection().await.map_err(err("redis cluster connect"))?)
    } else {
        let client = redis::Client::open(url).map_err(err("redis open"))?;
        let config = redis::aio::ConnectionManagerConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
        Conn::Single(ConnectionManager::new_with_config(client, config).await.map_err(err("redis connect"))?)
    })
}
