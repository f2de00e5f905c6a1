//! What travels on the queues, as JSON: an accepted Try on its way to DynamoDB, and a
//! payment-window timer.

use serde::{Deserialize, Serialize};

use crate::domain::{CollectionId, OrderId, OrderKey, UserId};

/// An accepted Try on its way to DynamoDB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationMessage {
    pub order_id: OrderId,
    pub collection_id: CollectionId,
    pub user_id: UserId,
    pub quantity: u32,
    pub accepted_at_ms: i64,
}

/// A payment-window timer: fires when due, or is re-delayed when SQS's 900 s cap is shorter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutMessage {
    pub collection_id: CollectionId,
    pub user_id: UserId,
    pub order_id: OrderId,
    /// Epoch seconds.
    pub due_at: i64,
}

impl ReservationMessage {
    pub fn new(key: &OrderKey, quantity: u32, accepted_at_ms: i64) -> Self {
        Self {
            order_id: key.order.clone(),
            collection_id: key.collection.clone(),
            user_id: key.user.clone(),
            quantity,
            accepted_at_ms,
        }
    }
    pub fn key(&self) -> OrderKey {
        OrderKey::new(self.collection_id.clone(), self.user_id.clone(), self.order_id.clone())
    }
}

impl TimeoutMessage {
    pub fn new(key: &OrderKey, due_at: i64) -> Self {
        Self { collection_id: key.collection.clone(), user_id: key.user.clone(), order_id: key.order.clone(), due_at }
    }
    pub fn key(&self) -> OrderKey {
        OrderKey::new(self.collection_id.clone(), self.user_id.clone(), self.order_id.clone())
    }
}
