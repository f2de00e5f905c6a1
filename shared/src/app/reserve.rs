//! Try: take stock at order time in Redis (one Lua script, on the buyer's cache shard; units are
//! moved over from other shards when it is short), then hand the order to SQS.
//!
//! A deduction is never undone here: once `deduct.lua` took stock, the order's message may have
//! reached SQS even when the send reports a failure (the answer can be lost on its way back), so
//! "nothing was taken" cannot be known. The Try answers `RESERVATION_UNCONFIRMED` instead; a
//! replay of a still-pending order sends its message again (persist is idempotent), and
//! reconciliation settles whatever no message ever reached.

use serde::Serialize;

use super::shard_moves::ShardRefill;
use super::{App, AppError};
use crate::domain::buckets::home_shard;
use crate::domain::{CollectionId, OrderId, OrderKey, Quantity, Status, UserId};
use crate::ports::{
    CacheState, Catalog, DeductOutcome, DeductRequest, MoveLog, OrderCache, Queue, ReservationMessage, ShardMoves,
};

/// Shard moves a Try makes before it gives up on its shard (each one brings units another Try
/// of the same shard may take first).
const SHARD_MOVES_PER_TRY: u32 = 3;

/// Clock skew allowed between a Try and a reconciliation run deciding the same entry.
const STALE_MARGIN_MS: i64 = crate::domain::CLOCK_SKEW.as_millis() as i64;

/// A Try as the API received it (quantity not yet checked against the collection's maximum).
#[derive(Debug, Clone)]
pub struct ReserveInput {
    pub collection: CollectionId,
    pub order: OrderId,
    pub user: UserId,
    pub quantity: i64,
}

/// The 202 answer; a replay gets the very same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub order_id: OrderId,
    pub collection_id: CollectionId,
    pub quantity: u32,
    pub status: Status,
}

impl<C: OrderCache + ShardMoves, L: Catalog + MoveLog, Q: Queue> App<C, L, Q> {
    /// Spends one request of the buyer budget in the same call, so a Try is one Redis call (and
    /// one read once the instance knows the collection sold out: the budget is not spent then).
    ///
    /// # Errors
    /// `RateLimited`, `CollectionNotFound`, `InvalidField(quantity)`, `SoldOut`, `InsufficientStock`,
    /// `LimitExceeded`, `IdempotencyMismatch` (this buyer's order id with another quantity),
    /// `Refused(Tombstoned)`, `CacheNotReady`, `Unavailable` (stock kept moving between cache
    /// shards, or one is being rebuilt: nothing taken),
    /// `Unconfirmed` (taken, but its message could not be confirmed queued: retry the same order
    /// id), `Infra`.
    pub async fn reserve(&self, input: ReserveInput, now_ms: i64) -> Result<Accepted, AppError> {
        let spec = self.spec(&input.collection).await?;
        let quantity = Quantity::parse(input.quantity, spec.max_per_order)
            .map_err(|e| AppError::InvalidField { field: "quantity", detail: e.to_string() })?
            .get();
        let accepted = Accepted {
            order_id: input.order.clone(),
            collection_id: input.collection.clone(),
            quantity,
            status: Status::Pending,
        };
        // A buyer's first order is taken without reading their records: one over the limit on
        // its own is refused here.
        if let Some(limit) = spec.per_user_limit
            && quantity > limit
        {
            return Err(AppError::LimitExceeded { held: 0 });
        }
        let key = OrderKey::new(input.collection.clone(), input.user.clone(), input.order.clone());
        // The sold-out flag keeps the horde off the collection's script; a retry of an order that
        // was accepted must still get its original answer, so with the flag up a Try reads this
        // buyer's entry (a plain read on the collection's slot) and answers from it as the script
        // would. Only a replay of a still-pending order goes on to the script, which logs it again
        // before it is re-sent.
        let mut answered = None;
        if self.sold_out.is_up(&input.collection, self.clock.instant()) {
            answered = match self.cache.entry(&key, spec.cache_shards).await? {
                // Not re-raised: the flag must lapse soon after stock comes back.
                None => return Err(AppError::SoldOut),
                Some(e) if e.state == CacheState::Cancelled => Some(DeductOutcome::Cancelled),
                Some(e) if e.quantity != quantity => Some(DeductOutcome::Mismatch),
                Some(e) if e.state != CacheState::Pending => {
                    Some(DeductOutcome::Replay { state: e.state, accepted_at_ms: e.accepted_at_ms })
                }
                Some(_) => None,
            };
        }
        let req = DeductRequest {
            key: &key,
            shards: spec.cache_shards,
            quantity,
            now_ms,
            per_user_limit: spec.per_user_limit,
            budget: self.settings.buyer_budget,
            // Reconciliation re-sends an order younger than the quiet stretch before its
            // give-up, and gives up only an older one: promise a replay only where it would still
            // heal forward (so this replay's message, too, is redelivered before the give-up).
            stale_before_ms: self.settings.pending_window().heal_forward_from(now_ms) + STALE_MARGIN_MS,
        };
        let message = |accepted_at_ms| ReservationMessage::new(&key, quantity, accepted_at_ms);
        let outcome = match answered {
            Some(o) => o,
            None => self.deduct_over_shards(&req, now_ms).await?,
        };
        match outcome {
            DeductOutcome::Accepted { stock_left, accepted_at_ms } => {
                // The buyer's shard sold out; others may not have (their Tries find out).
                if stock_left <= 0 && spec.cache_shards == 1 {
                    self.sold_out.raise(&input.collection, self.clock.instant());
                }
                self.send(message(accepted_at_ms)).await.map(|()| accepted)
            }
            // A replay of an order still pending may be the retry of a Try whose message never
            // left (it died, its send failed, or its client library re-sent the script): send
            // it again so that a 202 always has a message behind it.
            DeductOutcome::Replay { state: CacheState::Pending, accepted_at_ms } => {
                self.send(message(accepted_at_ms)).await.map(|()| accepted)
            }
            // Old enough for reconciliation to be giving it up (in the quiet stretch before its
            // deadline, or past it): send all the same (if the message wins, the order becomes
            // RESERVED), but promise nothing. Younger, reconciliation only re-sends.
            DeductOutcome::ReplayStale { accepted_at_ms } => {
                self.send(message(accepted_at_ms)).await?;
                Err(AppError::Unconfirmed)
            }
            DeductOutcome::Replay { .. } => Ok(accepted),
            DeductOutcome::Cancelled => Err(crate::domain::Refusal::Tombstoned.into()),
            DeductOutcome::Mismatch => Err(AppError::IdempotencyMismatch),
            DeductOutcome::NoCache => {
                // Perhaps routed by a layout raised since (its stock key is gone): read the
                // settings again soon.
                self.recheck_spec(&input.collection);
                Err(AppError::CacheNotReady)
            }
            DeductOutcome::SoldOut => {
                self.sold_out.raise(&input.collection, self.clock.instant());
                Err(AppError::SoldOut)
            }
            DeductOutcome::Insufficient { available } => Err(AppError::InsufficientStock { available }),
            DeductOutcome::LimitExceeded { held } => Err(AppError::LimitExceeded { held }),
            DeductOutcome::OverBudget { wait } => Err(AppError::rate_limited(wait)),
        }
    }

    /// The deduction on the buyer's cache shard; refused for stock there while other shards
    /// hold some, units move to it first ([`Self::refill_shard`]) and it deducts again. SOLD_OUT
    /// only when every shard is empty.
    async fn deduct_over_shards(&self, req: &DeductRequest<'_>, now_ms: i64) -> Result<DeductOutcome, AppError> {
        let mut outcome = self.cache.deduct(req).await?;
        if req.shards <= 1 {
            return Ok(outcome);
        }
        let shard = home_shard(&req.key.user, req.shards);
        // The Try spent its request of the buyer budget in its first deduction.
        let again = DeductRequest { budget: None, ..req.clone() };
        for _ in 0..SHARD_MOVES_PER_TRY {
            if !matches!(outcome, DeductOutcome::SoldOut | DeductOutcome::Insufficient { .. }) {
                return Ok(outcome);
            }
            let need = i64::from(req.quantity);
            match self.refill_shard(&req.key.collection, req.shards, shard, need, now_ms).await? {
                ShardRefill::Moved => outcome = self.cache.deduct(&again).await?,
                ShardRefill::Empty => return Ok(DeductOutcome::SoldOut),
                ShardRefill::Short(available) => return Ok(DeductOutcome::Insufficient { available }),
                ShardRefill::Busy => break,
            }
        }
        if matches!(outcome, DeductOutcome::SoldOut | DeductOutcome::Insufficient { .. }) {
            return Err(AppError::Unavailable("stock is moving between this collection's cache shards; retry".into()));
        }
        Ok(outcome)
    }

    /// Sends the reservation message (the SDK retries transient failures). When it still
    /// fails the deduction stays: the message may have arrived all the same.
    async fn send(&self, msg: ReservationMessage) -> Result<(), AppError> {
        let pct = self.settings.fault_drop_message_percent;
        if pct > 0 && rand::random_range(0..100u8) < pct {
            tracing::warn!(order = %msg.order_id, "fault injection: reservation message dropped");
            return Ok(());
        }
        self.queue.send_reservation(&msg).await.map_err(|e| {
            tracing::error!(order = %msg.order_id, error = %e, "send failed; the deduction stays until a replay or reconciliation");
            AppError::Unconfirmed
        })
    }
}
