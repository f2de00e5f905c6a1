//! The ledger's reads: consistent gets of one item, batched gets of many, and index queries
//! page by page. Each decodes what it read, strictly.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use super::items::{EXPIRY_INDEX, EXPIRY_SHARDS, OrderItem, n, ord_pk, parse_ord_key, s};
use super::{DynamoLedger, sdk_err};
use crate::domain::OrderKey;
use crate::ports::{InfraError, InfraResult, OrderBook, OrderRecord};

/// Retries of a BatchGetItem's unprocessed keys before giving up (≈ 5 s of backoff on average).
const BATCH_GET_ATTEMPTS: u32 = 9;

impl DynamoLedger {
    /// Strongly consistent reads of these keys, 100 per BatchGetItem, unprocessed keys retried
    /// with backoff; the items found, decoded (keys without an item are left out).
    pub(super) async fn batch_get<T: serde::de::DeserializeOwned>(
        &self,
        pks: Vec<AttributeValue>,
        what: &'static str,
    ) -> InfraResult<Vec<T>> {
        let mut out = Vec::with_capacity(pks.len());
        for chunk in pks.chunks(100) {
            let keys = chunk.iter().map(|pk| HashMap::from([("pk".to_owned(), pk.clone())])).collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| InfraError::new("dynamodb build batch get", e))?,
            );
            let mut attempt = 0u32;
            while let Some(req) = request.take() {
                let res =
                    self.client.batch_get_item().request_items(&self.table, req).send().await.map_err(sdk_err(what))?;
                for item in res.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
                    out.push(serde_dynamo::from_item(item).map_err(|e| InfraError::new(what, e))?);
                }
                request = res.unprocessed_keys.and_then(|mut u| u.remove(&self.table));
                if request.is_some() {
                    attempt += 1;
                    if attempt > BATCH_GET_ATTEMPTS {
                        return Err(InfraError::new(what, "keys still unprocessed after retries (throttled)"));
                    }
                    crate::retry::backoff(attempt).await;
                }
            }
        }
        Ok(out)
    }

    /// Queries `index` under `condition` (its values in `values`), page by page, decoding each item
    /// with `decode` (`None` skips it), until `limit` are decoded or the pages end.
    pub(super) async fn query_index<T>(
        &self,
        op: &'static str,
        index: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
        limit: usize,
        mut decode: impl FnMut(&HashMap<String, AttributeValue>) -> InfraResult<Option<T>>,
    ) -> InfraResult<Vec<T>> {
        let mut query =
            self.client.query().table_name(&self.table).index_name(index).key_condition_expression(condition);
        for (name, value) in values {
            query = query.expression_attribute_values(*name, value.clone());
        }
        let mut items = query.into_paginator().items().send();
        let mut out = Vec::new();
        while out.len() < limit
            && let Some(item) = items.next().await
        {
            if let Some(v) = decode(&item.map_err(sdk_err(op))?)? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Reads one item by key, consistently, and decodes it.
    pub(super) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        pk: AttributeValue,
        op: &'static str,
    ) -> InfraResult<Option<T>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk)
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err(op))?;
        out.item.map(serde_dynamo::from_item).transpose().map_err(|e| InfraError::new(op, e))
    }
}

impl OrderBook for DynamoLedger {
    async fn order(&self, key: &OrderKey) -> InfraResult<Option<OrderRecord>> {
        Ok(self.get::<OrderItem>(ord_pk(key), "dynamodb get order").await?.map(OrderItem::into_record))
    }

    async fn orders(&self, ids: &[OrderKey]) -> InfraResult<Vec<OrderRecord>> {
        let mut uniq: Vec<&OrderKey> = ids.iter().collect();
        uniq.sort();
        uniq.dedup();
        let items: Vec<OrderItem> =
            self.batch_get(uniq.into_iter().map(ord_pk).collect(), "dynamodb batch get orders").await?;
        Ok(items.into_iter().map(OrderItem::into_record).collect())
    }

    async fn expired_reservations(&self, deadline_s: i64, limit: usize) -> InfraResult<Vec<OrderKey>> {
        let mut out = Vec::new();
        for shard in 0..EXPIRY_SHARDS {
            let values = [(":p", s(format!("EXP#{shard}"))), (":d", n(deadline_s))];
            let condition = "gsi1pk = :p AND gsi1sk <= :d";
            out.extend(
                self.query_index(
                    "dynamodb query expired",
                    EXPIRY_INDEX,
                    condition,
                    &values,
                    limit - out.len(),
                    |item| {
                        Ok(match item.get("pk") {
                            Some(AttributeValue::S(pk)) => parse_ord_key(pk),
                            _ => None,
                        })
                    },
                )
                .await?,
            );
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}
