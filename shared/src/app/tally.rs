//! The tally: a confirm writes only its order, so its units still count as reserved in their
//! stock bucket; reconciliation moves them to confirmed, a bucket at a time, up to 99 orders per
//! transaction under the bucket's write turn. Until then, the admin view derives the counts
//! (reserved − untallied, confirmed + untallied) from the eventually consistent index, so a
//! reader sees the counts a tally will leave once the index has caught up.

use std::collections::HashSet;

use super::{App, AppError};
use crate::domain::{CollectionId, OrderKey};
use crate::ports::{ItemFailure, Tallies, Untallied, WriteError, WriteTurns};

/// Orders per tally transaction (DynamoDB allows 100 items; one is the bucket).
const CHUNK: usize = 99;
/// Attempts at one chunk before the bucket waits for the next run.
const ATTEMPTS: u32 = 4;

impl<C: WriteTurns, L: Tallies, Q> App<C, L, Q> {
    /// Tallies up to `limit` confirmed orders of the collection, bucket by bucket: how many it
    /// tallied. An order tallied meanwhile by an overlapping run fails its condition and is left
    /// out; the index's lag is met by never listing an order twice in one call.
    /// Buckets with nothing reserved are skipped (untallied units count as reserved).
    pub async fn tally(&self, id: &CollectionId, reserved: &[i64], limit: usize) -> Result<u32, AppError> {
        let mut tallied = 0usize;
        for (bucket, _) in (0u32..).zip(reserved).filter(|(_, r)| **r > 0) {
            let mut seen: HashSet<OrderKey> = HashSet::new();
            while tallied < limit {
                let listed = self.ledger.untallied(id, bucket, CHUNK.min(limit - tallied)).await?;
                let mut chunk: Vec<Untallied> = listed.into_iter().filter(|u| seen.insert(u.key.clone())).collect();
                if chunk.is_empty() {
                    break;
                }
                tallied += self.tally_chunk(id, bucket, &mut chunk).await?;
            }
        }
        Ok(tallied as u32)
    }

    /// One chunk, retried without the orders whose condition failed (tallied by someone else).
    async fn tally_chunk(&self, id: &CollectionId, bucket: u32, chunk: &mut Vec<Untallied>) -> Result<usize, AppError> {
        for attempt in 1..=ATTEMPTS {
            if chunk.is_empty() {
                return Ok(0);
            }
            let turn = self.take_turn(id, bucket, super::TURN_WAIT).await;
            let done = self.ledger.tally(id, bucket, chunk).await;
            self.end_turn(id, bucket, turn).await;
            match done {
                Ok(()) => return Ok(chunk.len()),
                Err(WriteError::Cancelled(reasons)) => {
                    let (stale, retry) = tally_retry(&reasons, chunk.len());
                    if !retry && stale.is_empty() {
                        return Err(AppError::Unavailable(format!(
                            "tally of bucket {bucket} of {id} refused: {reasons:?}"
                        )));
                    }
                    for i in stale.into_iter().rev() {
                        chunk.remove(i);
                    }
                    if retry {
                        super::backoff(attempt).await;
                    }
                }
                Err(WriteError::ConditionFailed) => return Err(AppError::Unavailable("tally condition failed".into())),
                Err(WriteError::Infra(e)) => return Err(e.into()),
            }
        }
        tracing::warn!(collection = %id, bucket, "tally still contended; the next run takes it");
        Ok(0)
    }
}

/// What a cancelled tally says: the chunk's orders already tallied (their index in the chunk),
/// and whether to retry for a conflict. The bucket's own condition failing (reserved below the
/// chunk) is neither: an identity is broken, and the run reports it.
pub fn tally_retry(reasons: &[ItemFailure], orders: usize) -> (Vec<usize>, bool) {
    let stale: Vec<usize> =
        (0..orders).filter(|&i| reasons.get(i + 1) == Some(&ItemFailure::ConditionFailed)).collect();
    let retry = reasons.contains(&ItemFailure::Retryable);
    (stale, retry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ItemFailure::{ConditionFailed as C, None as N, Retryable as R};

    #[test]
    fn a_cancelled_tally_drops_the_orders_tallied_elsewhere_and_retries_conflicts() {
        assert_eq!(tally_retry(&[N, C, N, C], 3), (vec![0, 2], false));
        assert_eq!(tally_retry(&[R, N, N], 2), (vec![], true));
        assert_eq!(tally_retry(&[N, N, R], 2), (vec![], true));
        // The bucket's own condition: nothing to drop, nothing to retry.
        assert_eq!(tally_retry(&[C, N], 1), (vec![], false));
    }
}
