//! [`Catalog`] on DynamoDB: a collection's header item and its stock bucket items, created in one
//! transaction, read back together, listed from the kind index, its drift recorded.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Get, TransactGetItem};

use super::items::{BucketItem, COLLECTIONS, CollectionItem, OrderItem, bucket_pk, col_pk, n, ord_pk, s};
use super::{DynamoLedger, KIND_INDEX, sdk_err};
use crate::domain::{CollectionId, CollectionSpec, OrderKey, StockLevels};
use crate::ports::{
    Catalog, CollectionHeader, CollectionRecord, CreateOutcome, InfraError, InfraResult, ItemFailure,
    MAX_ORDERS_WITH_LEVELS, OrderRecord, WriteError,
};

impl DynamoLedger {
    /// Every bucket of a collection and these orders' records, in one snapshot (TransactGetItems
    /// is serialisable against the write transactions): a BatchGetItem could see one half of a
    /// move, or a persist's bucket but not its order, and a decision on it (a short bucket's
    /// refusals, an identity check, drift, a rebuild) would be wrong.
    async fn read_together(
        &self,
        id: &CollectionId,
        buckets: u32,
        orders: &[OrderKey],
    ) -> InfraResult<(Vec<StockLevels>, Vec<Option<OrderRecord>>)> {
        let op = "dynamodb read buckets";
        if orders.len() > MAX_ORDERS_WITH_LEVELS {
            return Err(InfraError::new(op, format!("{} orders, at most {MAX_ORDERS_WITH_LEVELS}", orders.len())));
        }
        let keys = (0..buckets).map(|k| bucket_pk(id, k)).chain(orders.iter().map(ord_pk));
        let mut gets = Vec::with_capacity(buckets as usize + orders.len());
        for key in keys {
            let get =
                Get::builder().table_name(&self.table).key("pk", key).build().map_err(|e| InfraError::new(op, e))?;
            gets.push(TransactGetItem::builder().get(get).build());
        }
        let out = self.client.transact_get_items().set_transact_items(Some(gets)).send().await.map_err(sdk_err(op))?;
        let mut items = out.responses.unwrap_or_default().into_iter().map(|r| r.item);
        let levels = items
            .by_ref()
            .take(buckets as usize)
            .enumerate()
            .map(|(k, item)| {
                let item = item.ok_or_else(|| InfraError::new(op, format!("{id} has no bucket {k}")))?;
                serde_dynamo::from_item::<_, BucketItem>(item).map(|b| b.levels()).map_err(|e| InfraError::new(op, e))
            })
            .collect::<InfraResult<Vec<StockLevels>>>()?;
        let records = items
            .map(|item| {
                item.map(|i| serde_dynamo::from_item::<_, OrderItem>(i).map(OrderItem::into_record))
                    .transpose()
                    .map_err(|e| InfraError::new(op, e))
            })
            .collect::<InfraResult<Vec<_>>>()?;
        if levels.len() != buckets as usize || records.len() != orders.len() {
            return Err(InfraError::new(
                op,
                format!("{id}: {} of {} items read", levels.len() + records.len(), buckets as usize + orders.len()),
            ));
        }
        Ok((levels, records))
    }

    /// The records of these headers, each with its buckets read in one batch (per item
    /// consistent, not a snapshot across items: for listing many collections at once, where a
    /// torn read only makes a collection look changed).
    async fn with_buckets(&self, headers: Vec<CollectionItem>) -> InfraResult<Vec<CollectionRecord>> {
        let keys = headers.iter().flat_map(|h| (0..h.buckets).map(|k| bucket_pk(&h.collection_id, k))).collect();
        let mut levels: HashMap<(CollectionId, u32), StockLevels> = self
            .batch_get::<BucketItem>(keys, "dynamodb batch get buckets")
            .await?
            .into_iter()
            .map(|b| ((b.collection_id.clone(), b.bucket), b.levels()))
            .collect();
        headers
            .into_iter()
            .map(|h| {
                let buckets = (0..h.buckets)
                    .map(|k| {
                        levels.remove(&(h.collection_id.clone(), k)).ok_or_else(|| {
                            InfraError::new(
                                "dynamodb read collection",
                                format!("{} has no bucket {k}", h.collection_id),
                            )
                        })
                    })
                    .collect::<InfraResult<Vec<_>>>()?;
                Ok(h.into_record(buckets))
            })
            .collect()
    }
}

impl DynamoLedger {
    /// One update of a raise on the header, conditional: false when the condition failed.
    async fn update_raise(
        &self,
        op: &'static str,
        id: &CollectionId,
        (from, to): (u32, u32),
        update: &str,
        condition: &str,
    ) -> InfraResult<bool> {
        let done = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", col_pk(id))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_values(":from", n(from))
            .expression_attribute_values(":to", n(to))
            .send()
            .await;
        match done {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(sdk_err(op)(e)),
        }
    }
}

impl Catalog for DynamoLedger {
    async fn create_collection(
        &self,
        id: &CollectionId,
        spec: &CollectionSpec,
        now_ms: i64,
    ) -> InfraResult<CreateOutcome> {
        match self.transact("dynamodb create collection", self.creation(id, spec, now_ms)?).await {
            Ok(()) => return Ok(CreateOutcome::Created),
            Err(WriteError::Cancelled(r)) if r.first() == Some(&ItemFailure::ConditionFailed) => {}
            Err(WriteError::Infra(e)) => return Err(e),
            Err(e) => return Err(InfraError::new("dynamodb create collection", e)),
        }
        let existing = self
            .get::<CollectionItem>(col_pk(id), "dynamodb get collection")
            .await?
            .ok_or_else(|| InfraError::new("dynamodb create collection", "exists but cannot be read back"))?;
        let created = existing.created_cache_shards.unwrap_or(existing.cache_shards);
        let existing = existing.spec();
        Ok(if existing.is_created_as(spec, created) {
            CreateOutcome::Same
        } else if existing.quantity != spec.quantity {
            CreateOutcome::QuantityDiffers
        } else {
            CreateOutcome::SettingsDiffer
        })
    }

    async fn collection(&self, id: &CollectionId) -> InfraResult<Option<CollectionRecord>> {
        let Some(header) = self.get::<CollectionItem>(col_pk(id), "dynamodb get collection").await? else {
            return Ok(None);
        };
        let (buckets, _) = self.read_together(id, header.buckets, &[]).await?;
        Ok(Some(header.into_record(buckets)))
    }

    async fn collection_header(&self, id: &CollectionId) -> InfraResult<Option<CollectionHeader>> {
        let header = self.get::<CollectionItem>(col_pk(id), "dynamodb get collection").await?;
        Ok(header.map(|h| CollectionHeader { spec: h.spec(), raising_from: h.raising_from }))
    }

    async fn begin_raise(&self, id: &CollectionId, from: u32, to: u32) -> InfraResult<bool> {
        let update = "SET cacheShards = :to, raisingFrom = :from, \
                      createdCacheShards = if_not_exists(createdCacheShards, :from)";
        let condition = "(cacheShards = :from AND attribute_not_exists(raisingFrom)) OR (cacheShards = :to AND raisingFrom = :from)";
        self.update_raise("dynamodb begin raise", id, (from, to), update, condition).await
    }

    async fn end_raise(&self, id: &CollectionId, from: u32, to: u32) -> InfraResult<()> {
        let condition = "cacheShards = :to AND raisingFrom = :from";
        // Ended before (false): nothing to do.
        self.update_raise("dynamodb end raise", id, (from, to), "REMOVE raisingFrom", condition).await.map(|_| ())
    }

    async fn levels_with_orders(
        &self,
        id: &CollectionId,
        orders: &[OrderKey],
    ) -> InfraResult<Option<crate::ports::LevelsWithOrders>> {
        let Some(header) = self.get::<CollectionItem>(col_pk(id), "dynamodb get collection").await? else {
            return Ok(None);
        };
        let (buckets, records) = self.read_together(id, header.buckets, orders).await?;
        Ok(Some((buckets, records)))
    }

    async fn collections(&self) -> InfraResult<Vec<CollectionId>> {
        let values = [(":k", s(COLLECTIONS))];
        self.query_index("dynamodb list collections", KIND_INDEX, "gsi2pk = :k", &values, usize::MAX, |item| {
            Ok(match item.get("gsi2sk") {
                Some(AttributeValue::S(id)) => CollectionId::parse(id).ok(),
                _ => None,
            })
        })
        .await
    }

    async fn collection_records(&self, ids: &[CollectionId]) -> InfraResult<Vec<CollectionRecord>> {
        let headers: Vec<CollectionItem> =
            self.batch_get(ids.iter().map(col_pk).collect(), "dynamodb batch get collections").await?;
        self.with_buckets(headers).await
    }

    async fn record_drift(&self, id: &CollectionId, drift: i64) -> InfraResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", col_pk(id))
            .update_expression("SET lastDrift = :d")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":d", n(drift))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_err("dynamodb record drift"))
    }
}
