//! `fjord-check`: small broker checks over fjord-client, shipped in the operator image
//! so the chart's `helm test` needs no other image, and used by e2e/k8s.sh.
//!
//! - `fjord-check roundtrip <bootstrap> <topic>`: creates the topic if missing,
//!   produces one record and reads it back; exits non-zero unless it comes back.
//! - `fjord-check topic <bootstrap> <topic>`: prints the topic's partition count,
//!   replication factor and topic-level configs as JSON
//!   (`{"partitions":3,"replicationFactor":3,"configs":{"retention.ms":"1"}}`).
//! - `fjord-check brokers <bootstrap>`: prints the brokers that are up, the partition
//!   replicas each broker holds and the partitions each leads, as JSON
//!   (`{"up":[0,1],"replicas":{"0":4,"1":4},"leaders":{"0":2,"1":2}}`).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use fjord_client::{
    Client, ClientConfig, ConfigResource, FetchOptions, NewTopic, ProduceOptions, ProduceRecord,
    ResponseError,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: fjord-check roundtrip|topic <bootstrap> <topic> | brokers <bootstrap>";
    let (cmd, bootstrap, topic) = match args.as_slice() {
        [cmd, bootstrap, topic] if cmd != "brokers" => (cmd.as_str(), bootstrap, topic.clone()),
        [cmd, bootstrap] if cmd == "brokers" => (cmd.as_str(), bootstrap, String::new()),
        _ => bail!(usage),
    };
    let topic = &topic;
    let client = Client::connect(&[bootstrap], ClientConfig::default())
        .await
        .with_context(|| format!("connecting to {bootstrap}"))?;
    match cmd {
        "brokers" => {
            let md = client.metadata(None).await?;
            let mut replicas: BTreeMap<String, usize> = BTreeMap::new();
            let mut leaders: BTreeMap<String, usize> = BTreeMap::new();
            for p in md.topics.iter().flat_map(|t| &t.partitions) {
                for r in &p.replicas {
                    *replicas.entry(r.to_string()).or_default() += 1;
                }
                if p.leader_id >= 0 {
                    *leaders.entry(p.leader_id.to_string()).or_default() += 1;
                }
            }
            let mut up: Vec<i32> = md.brokers.iter().map(|b| b.node_id).collect();
            up.sort_unstable();
            println!(
                "{}",
                serde_json::json!({"up": up, "replicas": replicas, "leaders": leaders})
            );
        }
        "roundtrip" => {
            match client.create_topic(NewTopic::new(topic, 1, -1)).await {
                Ok(_) => {}
                Err(e) if e.kafka() == Some(ResponseError::TopicAlreadyExists) => {}
                Err(e) => return Err(e.into()),
            }
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
            let value = format!("fjord-check {nanos}");
            let produced = client
                .produce(
                    topic,
                    0,
                    &[ProduceRecord::new(Some("k"), value.clone())],
                    &ProduceOptions::default(),
                )
                .await?;
            let fetched = client
                .fetch(topic, 0, produced.base_offset, &FetchOptions::default())
                .await?;
            let got = fetched.records.first().and_then(|r| r.value.clone());
            if got.as_deref() != Some(value.as_bytes()) {
                bail!(
                    "produced {value:?} at offset {}, read back {got:?}",
                    produced.base_offset
                );
            }
            println!(
                "roundtrip ok: topic {topic:?} offset {}",
                produced.base_offset
            );
        }
        "topic" => {
            let md = client.metadata(Some(&[topic])).await?;
            let t = md.topic(topic).filter(|t| t.error.is_none());
            let Some(t) = t else {
                bail!("topic {topic:?} not found")
            };
            let configs: BTreeMap<String, String> = client
                .describe_configs(&ConfigResource::Topic(topic.clone()))
                .await?
                .into_iter()
                .filter(|c| c.source == 1)
                .filter_map(|c| c.value.map(|v| (c.name, v)))
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "partitions": t.partitions.len(),
                    "replicationFactor": t.partitions.first().map_or(0, |p| p.replicas.len()),
                    "configs": configs,
                })
            );
        }
        other => bail!("unknown command {other:?}"),
    }
    Ok(())
}
