"""kafka-python against the broker: keyed round trip per codec, admin calls, errors.

kafka-python finds out what the broker speaks by itself (ApiVersions, then Metadata from
v0 up), so no api_version is pinned here: the probe is part of what is tested."""

import os
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource
from kafka.errors import (
    InvalidPartitionsError,
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)

from conftest import (CODECS, DEADLINE_S, KEYS, REPLICATION_FACTOR, check_dense_offsets,
                      check_round_trip, unique_topic, wait_until)

RECORDS = int(os.environ.get("E2E_KAFKA_PYTHON_RECORDS", "20000"))
PARTITIONS = 3


@pytest.fixture
def admin(bootstrap):
    a = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fjord-e2e-kafka-python")
    yield a
    a.close()


def create_topic(admin, topic, partitions, configs=None):
    admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": REPLICATION_FACTOR,
                                 "configs": configs or {}}})
    wait_until(f"{topic} has {partitions} partitions with leaders",
               lambda: partitions_with_leaders(admin, topic) == partitions)


def partitions_with_leaders(admin, topic):
    [t] = admin.describe_topics([topic])
    if t["error_code"] != 0:
        return -1
    return sum(1 for p in t["partitions"] if p["leader_id"] >= 0)


def consumer(bootstrap):
    # No group: positions come only from seek, so a wrong fetch cannot hide behind a reset.
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         client_id="fjord-e2e-kafka-python")


def consume_exactly(c, n):
    got = []
    end = time.monotonic() + DEADLINE_S
    while len(got) < n:
        assert time.monotonic() < end, f"read {len(got)} of {n} records within {DEADLINE_S}s"
        for recs in c.poll(timeout_ms=500).values():
            got.extend(recs)
    assert not any(c.poll(timeout_ms=500).values()), "records beyond those produced"
    assert len(got) == n
    return got


@pytest.mark.parametrize("codec", CODECS)
def test_keyed_round_trip(bootstrap, admin, codec):
    topic = unique_topic(f"kp-roundtrip-{codec}")
    create_topic(admin, topic, PARTITIONS)

    # Defaults otherwise: enable_idempotence=True, acks=all.
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="fjord-e2e-kafka-python",
                             compression_type=None if codec == "none" else codec,
                             linger_ms=5)
    assert producer.config["enable_idempotence"] and producer.config["acks"] == -1
    futures = []
    for i in range(RECORDS):
        key = f"k{i % KEYS}"
        futures.append((key, f"{key}-{i}", producer.send(topic, key=key.encode(), value=f"{key}-{i}".encode())))
    producer.flush(timeout=DEADLINE_S)
    sent = {}
    for key, value, f in futures:
        md = f.get(timeout=DEADLINE_S)
        sent[value] = (key, md.partition, md.offset)
    producer.close()
    check_dense_offsets(sent)

    c = consumer(bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got = consume_exactly(c, RECORDS)
        check_round_trip(sent, [(r.key.decode(), r.value.decode(), r.partition, r.offset) for r in got])

        # seek() into the middle of a partition (likely mid-batch): reading starts exactly there.
        partition = sent[f"k0-0"][1]
        in_p = sorted((off, v) for v, (_k, p, off) in sent.items() if p == partition)
        start = len(in_p) // 2 + 1
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        c.seek(tp, in_p[start][0])
        tail = consume_exactly(c, len(in_p) - start)
        assert [(r.offset, r.value.decode()) for r in tail] == in_p[start:]
    finally:
        c.close()
    admin.delete_topics([topic])  # only on success: a failed run leaves its topic to look at


def test_list_offsets_earliest_latest_for_times(bootstrap, admin):
    topic = unique_topic("kp-offsets")
    create_topic(admin, topic, 1)
    t0 = int(time.time() * 1000) - 3_600_000
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(10):
        # One record per request, so each has its own batch and timestamp.
        md = producer.send(topic, key=b"k", value=b"v%d" % i, partition=0,
                           timestamp_ms=t0 + i * 1000).get(timeout=DEADLINE_S)
        assert md.offset == i
    producer.close()
    c = consumer(bootstrap)
    try:
        tp = TopicPartition(topic, 0)
        assert c.beginning_offsets([tp])[tp] == 0
        assert c.end_offsets([tp])[tp] == 10
        at5 = c.offsets_for_times({tp: t0 + 5000})[tp]
        assert (at5.offset, at5.timestamp) == (5, t0 + 5000)
        assert c.offsets_for_times({tp: t0 + 5500})[tp].offset == 6
        assert c.offsets_for_times({tp: t0 + 60_000})[tp] is None  # later than every record
    finally:
        c.close()
    admin.delete_topics([topic])


def test_admin_create_describe_alter_grow_delete(admin):
    topic = unique_topic("kp-admin")
    configs = {"retention.ms": "123456789", "segment.bytes": "16777216"}

    admin.create_topics({topic: {"num_partitions": 3, "replication_factor": REPLICATION_FACTOR, "configs": configs}},
                        validate_only=True)
    assert topic not in admin.list_topics(), "validate_only created the topic"

    create_topic(admin, topic, 3, configs)
    # Brokers apply the new topic from the metadata log independently: the one that
    # answers may list it a moment later than the one that created it.
    wait_until(f"{topic} listed", lambda: topic in admin.list_topics())
    [t] = admin.describe_topics([topic])
    assert t["name"] == topic and not t["is_internal"]
    assert t["topic_id"] not in (None, "00000000-0000-0000-0000-000000000000"), t["topic_id"]
    assert sorted(p["partition_index"] for p in t["partitions"]) == [0, 1, 2]
    broker_ids = {b["broker_id"] for b in admin.describe_cluster()["brokers"]}
    # REPLICATION_FACTOR replicas on distinct brokers, led by the first (preferred) one.
    assert all(p["leader_id"] in broker_ids
               and len(set(p["replica_nodes"])) == REPLICATION_FACTOR
               and set(p["replica_nodes"]) <= broker_ids
               and p["replica_nodes"][0] == p["leader_id"]
               for p in t["partitions"]), t["partitions"]

    def describe():
        return admin.describe_configs([ConfigResource("topic", topic)], config_filter="all")["topic"][topic]

    cfg = describe()
    assert cfg["retention.ms"]["value"] == "123456789"
    assert cfg["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert cfg["segment.bytes"]["value"] == "16777216"
    assert cfg["cleanup.policy"]["value"] == "delete"
    assert cfg["cleanup.policy"]["config_source"] != "DYNAMIC_TOPIC_CONFIG"
    assert int(cfg["max.message.bytes"]["value"]) > 0

    # Incremental (the client picks IncrementalAlterConfigs when the broker has it).
    result = admin.alter_configs([ConfigResource("topic", topic, {"retention.ms": "7200000",
                                                                  "cleanup.policy": "compact"})])
    assert result == {"topic": {topic: "OK"}}, result
    admin.reset_configs([ConfigResource("topic", topic, ["segment.bytes"])])
    wait_until("altered configs described", lambda: (
        describe()["retention.ms"]["value"] == "7200000"
        and describe()["cleanup.policy"]["value"] == "compact"
        and describe()["segment.bytes"]["config_source"] != "DYNAMIC_TOPIC_CONFIG"))
    assert describe()["segment.bytes"]["value"] != "16777216"

    admin.create_partitions({topic: 5})
    wait_until("topic has 5 partitions", lambda: partitions_with_leaders(admin, topic) == 5)

    admin.delete_topics([topic])
    wait_until("topic gone", lambda: topic not in admin.list_topics())
    wait_until("describe says unknown topic",
               lambda: admin.describe_topics([topic])[0]["error_code"]
               == UnknownTopicOrPartitionError.errno)


def test_describe_cluster(admin, bootstrap):
    c = admin.describe_cluster()
    assert c["cluster_id"], c
    assert c["brokers"], c
    for b in c["brokers"]:
        assert b["broker_id"] >= 0 and b["host"] and b["port"] > 0, b
    if c["controller_id"] not in (None, -1):
        assert c["controller_id"] in {b["broker_id"] for b in c["brokers"]}


def test_errors(bootstrap, admin):
    topic = unique_topic("kp-errors")
    create_topic(admin, topic, 3, {"max.message.bytes": "10000"})

    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": REPLICATION_FACTOR}})
    for count in (3, 2):
        with pytest.raises(InvalidPartitionsError):
            admin.create_partitions({topic: count})

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    # Under the client's own max_request_size: only the broker can refuse it.
    with pytest.raises(MessageSizeTooLargeError):
        producer.send(topic, value=os.urandom(20_000), partition=0).get(timeout=DEADLINE_S)
    # kafka-python's idempotent producer treats this error as fatal for itself; a new one
    # writes a record that fits, at offset 0: the refused record took no offset.
    producer.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    md = producer.send(topic, value=b"fits", partition=0).get(timeout=DEADLINE_S)
    assert md.offset == 0, "the rejected record took no offset"
    producer.close()
    admin.delete_topics([topic])


def test_version_probe_finds_a_modern_broker(bootstrap):
    # kafka-python infers the broker's version from ApiVersions (falling back to probing
    # with old requests, Metadata v0 among them) and turns features off below what it
    # infers: headers and idempotence need 0.11, the admin calls used here 2.4.
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        assert producer.config["api_version"] >= (2, 4), producer.config["api_version"]
    finally:
        producer.close()
