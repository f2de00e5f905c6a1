//! Confirm and the tally. A confirm writes only its own order (RESERVED → CONFIRMED) and lists it
//! in the sparse index `byTally` under its stock bucket; its units still count as `reserved` in
//! the bucket. The tally later moves a bucket's listed orders' units from `reserved` to
//! `confirmed` in one transaction of up to [`TALLY_CHUNK`] orders, taking each off the index in
//! the same transaction (condition: still listed), so each order is tallied once.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

use super::DynamoLedger;
use super::items::{n, ord_pk, parse_ord_key, s};
use crate::domain::{CollectionId, Status};
use crate::ports::{InfraError, InfraResult, ItemFailure, OrderRecord, Tallies, Untallied, WriteError};

pub const TALLY_INDEX: &str = "byTally";
/// Orders per tally transaction (DynamoDB's limit is 100 items; item 0 is the bucket).
pub const TALLY_CHUNK: usize = 99;

/// The index key of a bucket's untallied orders: `TAL#<collection>#B<bucket>`.
pub(super) fn tally_key(collection: &CollectionId, bucket: u32) -> String {
    format!("TAL#{collection}#B{bucket}")
}

impl DynamoLedger {
    /// RESERVED → CONFIRMED on the order alone, listed for the tally.
    pub(super) async fn confirm_order(&self, order: &OrderRecord, now_ms: i64) -> Result<(), WriteError> {
        let res = self
            .client
            .update_item()
            .table_name(self.table())
            .key("pk", ord_pk(&order.key()))
            .condition_expression("#s = :r")
            .update_expression("SET #s = :c, updatedAt = :now, gsi3pk = :tk REMOVE gsi1pk, gsi1sk")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":r", s(Status::Reserved.as_str()))
            .expression_attribute_values(":c", s(Status::Confirmed.as_str()))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":tk", s(tally_key(&order.collection, order.bucket)))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => {
                let e = e.into_err();
                if e.is_conditional_check_failed_exception() {
                    Err(WriteError::ConditionFailed)
                } else if e.is_transaction_conflict_exception()
                    || e.is_provisioned_throughput_exceeded_exception()
                    || e.is_request_limit_exceeded()
                {
                    // The order is in another transaction (a cancel, a tally), or throttled.
                    Err(WriteError::Cancelled(vec![ItemFailure::Retryable]))
                } else {
                    Err(InfraError::new("dynamodb confirm", aws_sdk_dynamodb::error::DisplayErrorContext(e)).into())
                }
            }
            Err(e) => Err(InfraError::new("dynamodb confirm", aws_sdk_dynamodb::error::DisplayErrorContext(e)).into()),
        }
    }

    /// Up to `limit` orders listed for the tally in this bucket (the index is eventually
    /// consistent: a listed order may be tallied already, and the tally's conditions say so).
    pub(super) async fn list_untallied(
        &self,
        collection: &CollectionId,
        bucket: u32,
        limit: usize,
    ) -> Result<Vec<Untallied>, InfraError> {
        let values = [(":k", s(tally_key(collection, bucket)))];
        self.query_index("dynamodb query untallied", TALLY_INDEX, "gsi3pk = :k", &values, limit, |item| {
            let key = match item.get("pk") {
                Some(AttributeValue::S(pk)) => parse_ord_key(pk),
                _ => None,
            };
            let quantity = match item.get("quantity") {
                Some(AttributeValue::N(q)) => q.parse::<u32>().ok(),
                _ => None,
            };
            match (key, quantity) {
                (Some(key), Some(quantity)) => Ok(Some(Untallied { key, quantity })),
                _ => Err(InfraError::new(
                    "dynamodb query untallied",
                    format!("an index item without an order key or quantity: {item:?}"),
                )),
            }
        })
        .await
    }

    /// The tally transaction: item 0 the bucket (reserved → confirmed), then each order taken
    /// off the index (condition: still listed in this bucket).
    pub(super) fn tally_items(
        &self,
        collection: &CollectionId,
        bucket: u32,
        orders: &[Untallied],
    ) -> Result<Vec<TransactWriteItem>, InfraError> {
        let units: i64 = orders.iter().map(|o| i64::from(o.quantity)).sum();
        let mut items = vec![self.bucket_update(
            collection,
            bucket,
            "SET reserved = reserved - :t, confirmed = confirmed + :t",
            "reserved >= :t",
            units,
        )?];
        let key = tally_key(collection, bucket);
        for o in orders {
            let u = Update::builder()
                .table_name(self.table())
                .key("pk", ord_pk(&o.key))
                .update_expression("REMOVE gsi3pk")
                .condition_expression("gsi3pk = :tk AND quantity = :q")
                .expression_attribute_values(":tk", s(key.clone()))
                .expression_attribute_values(":q", n(o.quantity))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
                .build()
                .map_err(|e| InfraError::new("dynamodb build transaction item", e))?;
            items.push(TransactWriteItem::builder().update(u).build());
        }
        Ok(items)
    }
}

impl Tallies for DynamoLedger {
    async fn untallied(&self, collection: &CollectionId, bucket: u32, limit: usize) -> InfraResult<Vec<Untallied>> {
        self.list_untallied(collection, bucket, limit).await
    }

    async fn tally(&self, collection: &CollectionId, bucket: u32, orders: &[Untallied]) -> Result<(), WriteError> {
        if orders.is_empty() {
            return Ok(());
        }
        if orders.len() > TALLY_CHUNK {
            let detail = format!("{} orders in one tally (at most {TALLY_CHUNK})", orders.len());
            return Err(InfraError::new("dynamodb tally", detail).into());
        }
        self.transact("dynamodb tally", self.tally_items(collection, bucket, orders)?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_keys_are_per_bucket_and_apart_from_the_table_keys() {
        let c = CollectionId::parse("c").unwrap();
        assert_eq!(tally_key(&c, 3), "TAL#c#B3");
        assert_ne!(tally_key(&c, 1), tally_key(&c, 11));
    }
}
