"""confluent-kafka and kafka-python over an SSL listener with ssl.client.auth=required and
one with ssl.client.auth=none.

FJORD_BOOTSTRAP is the SSL listener requiring certificates; FJORD_SSL_NOCERT_BOOTSTRAP
the one that asks for none (its tests are skipped without it); FJORD_SSL_DIR holds what
e2e/tls/certs.sh wrote (ca.pem, client.pem/.key, stranger.pem/.key from another CA,
expired.pem/.key). Each client produces and reads back records with its certificate, or
without one where none is asked for, and sees the listener's port in Metadata; it is
refused without a certificate, with the stranger's and with the expired one."""

import os

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.errors import KafkaTimeoutError

from conftest import REPLICATION_FACTOR, unique_topic

RECORDS = 200
SSL_DIR = os.environ.get("FJORD_SSL_DIR", "")

pytestmark = pytest.mark.skipif(not SSL_DIR, reason="FJORD_SSL_DIR not set: no SSL listener")


def path(name):
    return os.path.join(SSL_DIR, name)


def ck_config(bootstrap, identity="client"):
    c = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "ssl",
        "ssl.ca.location": path("ca.pem"),
        "socket.timeout.ms": 5000,
    }
    if identity:
        c["ssl.certificate.location"] = path(f"{identity}.pem")
        c["ssl.key.location"] = path(f"{identity}.key")
    return c


def kp_config(bootstrap, identity="client"):
    c = {"bootstrap_servers": bootstrap, "security_protocol": "SSL", "ssl_cafile": path("ca.pem")}
    if identity:
        c["ssl_certfile"] = path(f"{identity}.pem")
        c["ssl_keyfile"] = path(f"{identity}.key")
    return c


@pytest.fixture(params=["SSL", "SSLNOCERT"])
def listener(request, bootstrap):
    """(bootstrap, client identity) of the listener under test: the one requiring a
    certificate with the client's, the one asking for none without any."""
    if request.param == "SSL":
        return bootstrap, "client"
    nocert = os.environ.get("FJORD_SSL_NOCERT_BOOTSTRAP", "")
    if not nocert:
        pytest.skip("FJORD_SSL_NOCERT_BOOTSTRAP not set: no SSL listener without client auth")
    return nocert, None


def create_topic(bootstrap, identity):
    topic = unique_topic("tls")
    admin = AdminClient(ck_config(bootstrap, identity))
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=REPLICATION_FACTOR)])[
        topic
    ].result(timeout=60)
    return topic


def test_confluent_kafka_round_trip_and_metadata(listener):
    bootstrap, identity = listener
    topic = create_topic(bootstrap, identity)
    producer = Producer(ck_config(bootstrap, identity))
    for i in range(RECORDS):
        producer.produce(topic, value=f"v-{i}".encode())
    assert producer.flush(30) == 0
    md = producer.list_topics(timeout=10)
    port = int(bootstrap.rsplit(":", 1)[1])
    assert [b.port for b in md.brokers.values()] == [port] * len(md.brokers)

    consumer = Consumer({**ck_config(bootstrap, identity), "group.id": unique_topic("tls-g"),
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < RECORDS:
        m = consumer.poll(30)
        assert m is not None, f"{len(got)} of {RECORDS} records read over SSL"
        assert m.error() is None, m.error()
        got.append(m.value().decode())
    consumer.close()
    assert got == [f"v-{i}" for i in range(RECORDS)]


@pytest.mark.parametrize("identity", [None, "stranger", "expired"])
def test_confluent_kafka_refused_without_a_trusted_certificate(bootstrap, identity):
    admin = AdminClient(ck_config(bootstrap, identity))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)


def test_kafka_python_round_trip(listener):
    bootstrap, identity = listener
    topic = create_topic(bootstrap, identity)
    producer = KafkaProducer(**kp_config(bootstrap, identity))
    for i in range(RECORDS):
        producer.send(topic, f"v-{i}".encode())
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(**kp_config(bootstrap, identity), auto_offset_reset="earliest",
                             consumer_timeout_ms=30000)
    consumer.assign([KpTopicPartition(topic, 0)])
    got = []
    for m in consumer:
        got.append(m.value.decode())
        if len(got) == RECORDS:
            break
    consumer.close()
    assert got == [f"v-{i}" for i in range(RECORDS)]


@pytest.mark.parametrize("identity", [None, "stranger", "expired"])
def test_kafka_python_refused_without_a_trusted_certificate(bootstrap, identity):
    # The same client with the trusted certificate bootstraps (test_kafka_python_round_trip).
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        KafkaProducer(**kp_config(bootstrap, identity), bootstrap_timeout_ms=3000)
