//! The transactions that move stock between a collection's buckets and its orders: create the
//! buckets, take stock for reservations, move units between buckets, and give back. Each
//! names one bucket item (a move two) and keeps every bucket's identity.

use aws_sdk_dynamodb::types::{ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

use super::DynamoLedger;
use super::items::{BucketItem, CollectionItem, FINAL_TTL_SECONDS, bucket_pk, n, ord_pk, s, to_item};
use crate::domain::buckets::split_quantity;
use crate::domain::{CancelReason, CollectionId, CollectionSpec, Status};
use crate::ports::{InfraError, OrderRecord, WriteError};

fn built<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, InfraError> {
    r.map_err(|e| InfraError::new("dynamodb build transaction item", e))
}

impl DynamoLedger {
    /// The collection's header and its buckets, the quantity split evenly, each put only where
    /// none is. Item 0 is the header.
    pub(super) fn creation(
        &self,
        id: &CollectionId,
        spec: &CollectionSpec,
        now_ms: i64,
    ) -> Result<Vec<TransactWriteItem>, InfraError> {
        let mut items = vec![self.put_new_item(to_item(&CollectionItem::new(id, spec, now_ms))?)?];
        for (k, q) in split_quantity(spec.quantity as i64, spec.buckets).into_iter().enumerate() {
            items.push(self.put_new_item(to_item(&BucketItem::new(id, k as u32, q))?)?);
        }
        Ok(items)
    }

    pub(super) fn put_new_item(
        &self,
        item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    ) -> Result<TransactWriteItem, InfraError> {
        let put = built(
            Put::builder()
                .table_name(self.table())
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// An update of bucket `bucket`: `expression` with `:t` set to `units`, under `condition`.
    pub(super) fn bucket_update(
        &self,
        collection: &CollectionId,
        bucket: u32,
        expression: &str,
        condition: &str,
        units: i64,
    ) -> Result<TransactWriteItem, InfraError> {
        let u = built(
            Update::builder()
                .table_name(self.table())
                .key("pk", bucket_pk(collection, bucket))
                .update_expression(expression)
                .condition_expression(condition)
                .expression_attribute_values(":t", n(units))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(u).build())
    }

    /// Takes `units` from a bucket's saleable into its reserved (condition: it has them).
    pub(super) fn take(
        &self,
        collection: &CollectionId,
        bucket: u32,
        units: i64,
    ) -> Result<TransactWriteItem, InfraError> {
        if units > 0 {
            self.bucket_update(
                collection,
                bucket,
                "SET saleable = saleable - :t, reserved = reserved + :t",
                "saleable >= :t",
                units,
            )
        } else {
            // Only refusals: a check that the bucket exists (the collection was not deleted under
            // us), not a write of it.
            let c = built(
                ConditionCheck::builder()
                    .table_name(self.table())
                    .key("pk", bucket_pk(collection, bucket))
                    .condition_expression("attribute_exists(pk)")
                    .build(),
            )?;
            Ok(TransactWriteItem::builder().condition_check(c).build())
        }
    }

    /// `units` of saleable stock, with their share of the quantity, from `from` to `to`.
    pub(super) fn move_items(
        &self,
        collection: &CollectionId,
        from: u32,
        to: u32,
        units: i64,
    ) -> Result<Vec<TransactWriteItem>, InfraError> {
        Ok(vec![
            self.bucket_update(
                collection,
                from,
                "SET saleable = saleable - :t, quantity = quantity - :t",
                "saleable >= :t",
                units,
            )?,
            self.bucket_update(
                collection,
                to,
                "SET saleable = saleable + :t, quantity = quantity + :t",
                "attribute_exists(pk)",
                units,
            )?,
        ])
    }

    /// The order's status change from RESERVED, conditional on it still being RESERVED.
    pub(super) fn leave_reserved(
        &self,
        order: &OrderRecord,
        to: Status,
        reason: Option<CancelReason>,
        now_ms: i64,
    ) -> Result<TransactWriteItem, InfraError> {
        let mut u = Update::builder()
            .table_name(self.table())
            .key("pk", ord_pk(&order.key()))
            .condition_expression("#s = :r")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":r", s(Status::Reserved.as_str()))
            .expression_attribute_values(":now", n(now_ms))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        u = match reason {
            None => u.update_expression("SET #s = :to, updatedAt = :now REMOVE gsi1pk, gsi1sk"),
            Some(why) => u
                .update_expression("SET #s = :to, reason = :why, updatedAt = :now, #ttl = :ttl REMOVE gsi1pk, gsi1sk")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":why", s(why.as_str()))
                .expression_attribute_values(":ttl", n(now_ms / 1000 + FINAL_TTL_SECONDS)),
        };
        Ok(TransactWriteItem::builder().update(built(u.build())?).build())
    }

    /// Sends one transaction, its cancellation reasons decoded per item.
    pub(super) async fn transact(&self, op: &'static str, items: Vec<TransactWriteItem>) -> Result<(), WriteError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| super::map_transact_error(op, e))
    }
}
