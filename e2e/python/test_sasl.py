"""confluent-kafka and kafka-python over SASL_PLAINTEXT and SASL_SSL listeners.

FJORD_BOOTSTRAP is the SASL_PLAINTEXT listener; FJORD_SASL_SSL_BOOTSTRAP a SASL_SSL one
that asks for no client certificate, its CA in FJORD_SSL_DIR/ca.pem (those tests are
skipped without both). FJORD_SASL_USER and FJORD_SASL_PASSWORD are a user with
SCRAM-SHA-256 and SCRAM-SHA-512 credentials (the broker's FJORD_SCRAM_BOOTSTRAP), and the
listeners enable PLAIN too. Each client, with each mechanism on each listener, produces
and reads back records; a wrong password is refused with the authentication error."""

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
PROTOCOLS = ["SASL_PLAINTEXT", "SASL_SSL"]

pytestmark = pytest.mark.skipif(not USER, reason="FJORD_SASL_USER not set: no SASL listener")


@pytest.fixture(params=PROTOCOLS)
def listener(request, bootstrap):
    """(security protocol, bootstrap, CA file or None) of the listener under test."""
    if request.param == "SASL_PLAINTEXT":
        return request.param, bootstrap, None
    sasl_ssl = os.environ.get("FJORD_SASL_SSL_BOOTSTRAP", "")
    ssl_dir = os.environ.get("FJORD_SSL_DIR", "")
    if not sasl_ssl or not ssl_dir:
        pytest.skip("FJORD_SASL_SSL_BOOTSTRAP and FJORD_SSL_DIR not set: no SASL_SSL listener")
    return request.param, sasl_ssl, os.path.join(ssl_dir, "ca.pem")


def ck_config(listener, mechanism, user=None, password=None):
    protocol, bootstrap, ca = listener
    c = {
        "bootstrap.servers": bootstrap,
        "security.protocol": protocol.lower(),
        "sasl.mechanism": mechanism,
        "sasl.username": USER if user is None else user,
        "sasl.password": PASSWORD if password is None else password,
        "socket.timeout.ms": 5000,
    }
    if ca:
        c["ssl.ca.location"] = ca
    return c


def kp_config(listener, mechanism, user=None, password=None):
    protocol, bootstrap, ca = listener
    c = {
        "bootstrap_servers": bootstrap,
        "security_protocol": protocol,
        "sasl_mechanism": mechanism,
        "sasl_plain_username": USER if user is None else user,
        "sasl_plain_password": PASSWORD if password is None else password,
    }
    if ca:
        c["ssl_cafile"] = ca
    return c


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_kafka_round_trip(listener, mechanism):
    topic = unique_topic("sasl")
    producer = Producer(ck_config(listener, mechanism))
    for i in range(RECORDS):
        producer.produce(topic, value=f"v-{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    consumer = Consumer({**ck_config(listener, mechanism), "group.id": unique_topic("sasl-g")})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < RECORDS:
        m = consumer.poll(30)
        assert m is not None, f"{len(got)} of {RECORDS} records read over {listener[0]} {mechanism}"
        assert m.error() is None, m.error()
        got.append(m.value().decode())
    consumer.close()
    assert got == [f"v-{i}" for i in range(RECORDS)]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_kafka_wrong_password_is_refused(listener, mechanism):
    producer = Producer(ck_config(listener, mechanism, password="wrong"))
    with pytest.raises(KafkaException) as e:
        producer.list_topics(timeout=5)
    assert "Authentication" in str(e.value) or "_TRANSPORT" in str(e.value), e.value


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python_round_trip(listener, mechanism):
    topic = unique_topic("sasl-kp")
    producer = KafkaProducer(**kp_config(listener, mechanism))
    for i in range(RECORDS):
        producer.send(topic, value=f"v-{i}".encode(), partition=0)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(**kp_config(listener, mechanism), consumer_timeout_ms=30000)
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
def test_kafka_python_wrong_password_is_refused(listener, mechanism):
    # kafka-python retries until bootstrap_timeout_ms and then gives up bootstrapping. It
    # logs the broker's SASL_AUTHENTICATION_FAILED, or for SCRAM at times only the close
    # that follows it, so the test holds it to being refused.
    with pytest.raises(KafkaError):
        KafkaProducer(**kp_config(listener, mechanism, password="wrong"), bootstrap_timeout_ms=3000)
