"""confluent-kafka and kafka-python over a SASL_PLAINTEXT listener.

FJORD_BOOTSTRAP is the SASL listener; FJORD_SASL_USER and FJORD_SASL_PASSWORD a user
with SCRAM-SHA-256 and SCRAM-SHA-512 credentials (the broker's FJORD_SCRAM_BOOTSTRAP),
and the listener enables PLAIN too. Each client, with each mechanism, produces and reads
back records; a wrong password is refused with the authentication error."""

import os

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.errors import KafkaError

from conftest import unique_topic

RECORDS = 50
USER = os.environ.get("FJORD_SASL_USER", "")
PASSWORD = os.environ.get("FJORD_SASL_PASSWORD", "")
MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]

pytestmark = pytest.mark.skipif(not USER, reason="FJORD_SASL_USER not set: no SASL listener")


def ck_config(bootstrap, mechanism, password=None):
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "sasl_plaintext",
        "sasl.mechanism": mechanism,
        "sasl.username": USER,
        "sasl.password": PASSWORD if password is None else password,
        "socket.timeout.ms": 5000,
    }


def kp_config(bootstrap, mechanism, password=None):
    return {
        "bootstrap_servers": bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": USER,
        "sasl_plain_password": PASSWORD if password is None else password,
    }


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_kafka_round_trip(bootstrap, mechanism):
    topic = unique_topic("sasl")
    producer = Producer(ck_config(bootstrap, mechanism))
    for i in range(RECORDS):
        producer.produce(topic, value=f"v-{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    consumer = Consumer({**ck_config(bootstrap, mechanism), "group.id": unique_topic("sasl-g")})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < RECORDS:
        m = consumer.poll(30)
        assert m is not None, f"{len(got)} of {RECORDS} records read over {mechanism}"
        assert m.error() is None, m.error()
        got.append(m.value().decode())
    consumer.close()
    assert got == [f"v-{i}" for i in range(RECORDS)]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_kafka_wrong_password_is_refused(bootstrap, mechanism):
    producer = Producer(ck_config(bootstrap, mechanism, password="wrong"))
    with pytest.raises(KafkaException) as e:
        producer.list_topics(timeout=5)
    assert "Authentication" in str(e.value) or "_TRANSPORT" in str(e.value), e.value


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python_round_trip(bootstrap, mechanism):
    topic = unique_topic("sasl-kp")
    producer = KafkaProducer(**kp_config(bootstrap, mechanism))
    for i in range(RECORDS):
        producer.send(topic, value=f"v-{i}".encode(), partition=0)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(**kp_config(bootstrap, mechanism), consumer_timeout_ms=30000)
    tp = KpTopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = []
    for m in consumer:
        got.append(m.value.decode())
        if len(got) == RECORDS:
            break
    consumer.close()
    assert got == [f"v-{i}" for i in range(RECORDS)]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python_wrong_password_is_refused(bootstrap, mechanism):
    # kafka-python retries until max_block_ms and then gives up bootstrapping. It logs
    # the broker's SASL_AUTHENTICATION_FAILED, or for SCRAM at times only the close that
    # follows it, so the test holds it to being refused.
    with pytest.raises(KafkaError):
        KafkaProducer(**kp_config(bootstrap, mechanism, password="wrong"), max_block_ms=3000)
