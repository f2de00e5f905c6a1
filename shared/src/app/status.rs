//! Status polling: what the storefront sees of one order (owner only).

use serde::Serialize;

use super::{App, AppError};
use crate::domain::{CollectionId, OrderId, OrderKey, Status};
use crate::ports::{CacheState, Catalog, OrderBook, OrderCache, OrderRecord};

/// The reservation as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationView {
    pub order_id: OrderId,
    pub collection_id: CollectionId,
    pub quantity: u32,
    pub status: Status,
    /// Payment deadline of a RESERVED order, epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Why a CANCELLED or FAILED order ended so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<OrderRecord> for ReservationView {
    fn from(r: OrderRecord) -> Self {
        Self {
            order_id: r.order,
            collection_id: r.collection,
            quantity: r.quantity,
            status: r.status,
            expires_at: if r.status == Status::Reserved { r.expires_at } else { None },
            reason: r.reason,
        }
    }
}

impl ReservationView {
    /// A cancelled order (or tombstone) as the API shows it.
    pub fn cancelled(key: &OrderKey, quantity: u32, reason: Option<&str>) -> Self {
        Self {
            order_id: key.order.clone(),
            collection_id: key.collection.clone(),
            quantity,
            status: Status::Cancelled,
            expires_at: None,
            reason: reason.map(str::to_owned),
        }
    }
}

/// Where an order stands, across both stores.
pub(crate) enum Located {
    Durable(OrderRecord),
    /// Only Redis knows it (not yet durable, or refused/cancelled before it was).
    Cached {
        quantity: u32,
        state: CacheState,
        accepted_at_ms: i64,
    },
    /// Never seen (or forgotten by both stores).
    Unknown,
}

impl Located {
    /// The status the state machine sees.
    pub(crate) fn status(&self) -> Option<Status> {
        match self {
            Located::Durable(r) => Some(r.status),
            Located::Cached { state, .. } => Some(state.status()),
            Located::Unknown => None,
        }
    }
}

impl<C: OrderCache, L: Catalog + OrderBook, Q> App<C, L, Q> {
    /// DynamoDB first (the truth), then the collection's Redis entry for orders not durable yet.
    /// The key is the buyer's own: another buyer's order with the same id is never found.
    pub(crate) async fn locate(&self, key: &OrderKey) -> Result<Located, AppError> {
        if let Some(r) = self.ledger.order(key).await? {
            return Ok(Located::Durable(r));
        }
        // An order of a collection that does not exist is unknown, not a missing collection.
        let mut shards = match self.spec(&key.collection).await {
            Ok(spec) => spec.cache_shards,
            Err(AppError::CollectionNotFound) => return Ok(Located::Unknown),
            Err(e) => return Err(e),
        };
        let mut entry = self.cache.entry(key, shards).await?;
        if entry.is_none() {
            // Unknown to Redis by this instance's layout: make sure it is DynamoDB's (a raise of
            // the cache shards moves buyers between shards) before answering that it is unknown.
            let Some(header) = self.ledger.collection_header(&key.collection).await? else {
                return Ok(Located::Unknown);
            };
            if header.raising_from.is_some() {
                return Err(AppError::Unavailable("the collection's cache shards are being raised; retry".into()));
            }
            if header.spec.cache_shards != shards {
                shards = self.remember_spec(&key.collection, &header.spec).cache_shards;
                entry = self.cache.entry(key, shards).await?;
            }
        }
        match entry {
            // Persist settled it between our two reads: DynamoDB has it now.
            Some(e) if e.state == CacheState::Durable => match self.ledger.order(key).await? {
                Some(r) => Ok(Located::Durable(r)),
                None => Ok(Located::Cached { quantity: e.quantity, state: e.state, accepted_at_ms: e.accepted_at_ms }),
            },
            Some(e) => Ok(Located::Cached { quantity: e.quantity, state: e.state, accepted_at_ms: e.accepted_at_ms }),
            None => Ok(Located::Unknown),
        }
    }

    /// The caller's own reservation.
    ///
    /// # Errors
    /// `ReservationNotFound` for an order id this buyer never used on this collection.
    pub async fn status(&self, key: &OrderKey) -> Result<ReservationView, AppError> {
        Ok(match self.locate(key).await? {
            Located::Durable(r) => r.into(),
            Located::Cached { quantity, state, .. } => ReservationView {
                order_id: key.order.clone(),
                collection_id: key.collection.clone(),
                quantity,
                status: state.status(),
                expires_at: None,
                reason: None,
            },
            Located::Unknown => return Err(AppError::ReservationNotFound),
        })
    }
}
