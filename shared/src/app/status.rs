//! Status polling: what the storefront sees of one order (owner only).

use serde::Serialize;

use super::{App, AppError};
use crate::domain::{CollectionId, OrderId, Status, UserId};
use crate::ports::{CacheState, DirectoryEntry, Ledger, OrderRecord, Queue, StockCache};

/// The reservation as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationView {
    pub order_id: OrderId,
    pub collection_id: Option<CollectionId>,
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
    pub fn cancelled(order: &OrderId, collection: Option<CollectionId>, quantity: u32, reason: Option<&str>) -> Self {
        Self {
            order_id: order.clone(),
            collection_id: collection,
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
        collection: CollectionId,
        user: UserId,
        quantity: u32,
        state: CacheState,
        accepted_at_ms: i64,
    },
    /// The directory holds a tombstone but DynamoDB no longer has the record.
    Tombstone {
        user: UserId,
    },
    /// Claimed by a Try still running, or never seen.
    Unknown {
        claimed: Option<(CollectionId, UserId, u32)>,
    },
}

impl Located {
    /// The status the state machine sees (a claim without an entry: a Try still running).
    pub(crate) fn status(&self) -> Option<Status> {
        match self {
            Located::Durable(r) => Some(r.status),
            Located::Cached { state, .. } => Some(state.status()),
            Located::Tombstone { .. } => Some(Status::Cancelled),
            Located::Unknown { claimed: Some(_) } => Some(Status::Pending),
            Located::Unknown { claimed: None } => None,
        }
    }

    pub(crate) fn owner(&self) -> Option<&UserId> {
        match self {
            Located::Durable(r) => Some(&r.user),
            Located::Cached { user, .. } | Located::Tombstone { user } => Some(user),
            Located::Unknown { claimed } => claimed.as_ref().map(|c| &c.1),
        }
    }
}

impl<C: StockCache, L: Ledger, Q: Queue> App<C, L, Q> {
    /// DynamoDB first (the truth), then Redis for orders not durable yet.
    pub(crate) async fn locate(&self, order: &OrderId) -> Result<Located, AppError> {
        if let Some(r) = self.ledger.order(order).await? {
            return Ok(Located::Durable(r));
        }
        match self.cache.directory(order).await? {
            None => Ok(Located::Unknown { claimed: None }),
            Some(DirectoryEntry::Tombstone { user }) => Ok(Located::Tombstone { user }),
            Some(DirectoryEntry::Order { collection, user, quantity }) => {
                match self.cache.entry(&collection, order).await? {
                    Some(e) if e.state == CacheState::Durable => {
                        // Persist settled it between our two reads: DynamoDB has it now.
                        match self.ledger.order(order).await? {
                            Some(r) => Ok(Located::Durable(r)),
                            None => Ok(Located::Cached {
                                collection,
                                user,
                                quantity,
                                state: e.state,
                                accepted_at_ms: e.accepted_at_ms,
                            }),
                        }
                    }
                    Some(e) => Ok(Located::Cached {
                        collection,
                        user,
                        quantity,
                        state: e.state,
                        accepted_at_ms: e.accepted_at_ms,
                    }),
                    None => Ok(Located::Unknown { claimed: Some((collection, user, quantity)) }),
                }
            }
        }
    }

    /// # Errors
    /// `ReservationNotFound` for an unknown order or another user's.
    pub async fn status(&self, order: &OrderId, caller: &UserId) -> Result<ReservationView, AppError> {
        let located = self.locate(order).await?;
        if located.owner() != Some(caller) {
            return Err(AppError::ReservationNotFound);
        }
        Ok(match located {
            Located::Durable(r) => r.into(),
            Located::Cached { collection, quantity, state, .. } => ReservationView {
                order_id: order.clone(),
                collection_id: Some(collection),
                quantity,
                status: state.status(),
                expires_at: None,
                reason: None,
            },
            Located::Tombstone { .. } => ReservationView::cancelled(order, None, 0, None),
            Located::Unknown { .. } => return Err(AppError::ReservationNotFound),
        })
    }
}
