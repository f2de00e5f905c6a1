//! Creates the table and queues a deployment needs (locally, what `template.yaml` creates in AWS).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use flashstock::adapters::dynamo_ledger::{EXPIRY_INDEX, KIND_INDEX, TALLY_INDEX};

/// Receives before a message goes to its DLQ.
pub const MAX_RECEIVE_COUNT: u32 = 5;

#[derive(Debug, Clone)]
pub struct Queues {
    pub reservations: String,
    pub reservations_dlq: String,
    pub timeouts: String,
    pub timeouts_dlq: String,
}

fn key(name: &str, t: KeyType) -> anyhow::Result<KeySchemaElement> {
    Ok(KeySchemaElement::builder().attribute_name(name).key_type(t).build()?)
}

fn attr(name: &str, t: ScalarAttributeType) -> anyhow::Result<AttributeDefinition> {
    Ok(AttributeDefinition::builder().attribute_name(name).attribute_type(t).build()?)
}

fn keys_only_index(name: &str, hash: &str, range: &str) -> anyhow::Result<GlobalSecondaryIndex> {
    Ok(GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .key_schema(key(range, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
        .build()?)
}

/// The tally's sparse index: a bucket's confirmed orders not tallied yet, with their quantity.
fn tally_index() -> anyhow::Result<GlobalSecondaryIndex> {
    Ok(GlobalSecondaryIndex::builder()
        .index_name(TALLY_INDEX)
        .key_schema(key("gsi3pk", KeyType::Hash)?)
        .projection(
            Projection::builder().projection_type(ProjectionType::Include).non_key_attributes("quantity").build(),
        )
        .build()?)
}

/// Creates the table if it does not exist (idempotent).
pub async fn table(client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    if client.describe_table().table_name(name).send().await.is_ok() {
        return Ok(());
    }
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .attribute_definitions(attr("pk", ScalarAttributeType::S)?)
        .attribute_definitions(attr("gsi1pk", ScalarAttributeType::S)?)
        .attribute_definitions(attr("gsi1sk", ScalarAttributeType::N)?)
        .attribute_definitions(attr("gsi2pk", ScalarAttributeType::S)?)
        .attribute_definitions(attr("gsi2sk", ScalarAttributeType::S)?)
        .attribute_definitions(attr("gsi3pk", ScalarAttributeType::S)?)
        .global_secondary_indexes(keys_only_index(EXPIRY_INDEX, "gsi1pk", "gsi1sk")?)
        .global_secondary_indexes(keys_only_index(KIND_INDEX, "gsi2pk", "gsi2sk")?)
        .global_secondary_indexes(tally_index()?)
        .send()
        .await?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(TimeToLiveSpecification::builder().attribute_name("ttl").enabled(true).build()?)
        .send()
        .await?;
    Ok(())
}

async fn queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    visibility_seconds: u32,
    dlq_arn: Option<&str>,
) -> anyhow::Result<String> {
    let mut req = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, visibility_seconds.to_string())
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600");
    if let Some(arn) = dlq_arn {
        req = req.attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVE_COUNT }).to_string(),
        );
    }
    Ok(req.send().await?.queue_url.unwrap_or_default())
}

pub async fn arn(client: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<String> {
    let out = client.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::QueueArn).send().await?;
    out.attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| anyhow::anyhow!("queue {url} has no ARN"))
}

/// Creates the reservation and timeout queues with their DLQs (idempotent: same attributes).
pub async fn queues(client: &aws_sdk_sqs::Client, prefix: &str, visibility_seconds: u32) -> anyhow::Result<Queues> {
    let reservations_dlq = queue(client, &format!("{prefix}-reservations-dlq"), visibility_seconds, None).await?;
    let timeouts_dlq = queue(client, &format!("{prefix}-timeouts-dlq"), visibility_seconds, None).await?;
    let r_arn = arn(client, &reservations_dlq).await?;
    let t_arn = arn(client, &timeouts_dlq).await?;
    Ok(Queues {
        reservations: queue(client, &format!("{prefix}-reservations"), visibility_seconds, Some(&r_arn)).await?,
        reservations_dlq,
        timeouts: queue(client, &format!("{prefix}-timeouts"), visibility_seconds, Some(&t_arn)).await?,
        timeouts_dlq,
    })
}
