"""A principal without ACLs is refused on a guarded topic and group, with the error each
client reports for Kafka's TOPIC_AUTHORIZATION_FAILED and GROUP_AUTHORIZATION_FAILED.

FJORD_BOOTSTRAP is a SASL_PLAINTEXT listener of a broker with the standard authorizer and
allow.everyone.if.no.acl.found=true; FJORD_SASL_USER (a super user) creates a topic and
PREFIXED ALLOW ACLs for itself on a topic prefix and a group prefix of its own, which
makes them guarded; FJORD_SASL_DENIED_USER has no ACL there. Consumers subscribe (with
assign() alone librdkafka only logs the refused metadata); the group tests read a topic
no ACL names, so the refusal is the group's. kafka-python's consumer only logs a refused
topic ("not authorized for this client"; its exception is raised inside a metadata
listener and dropped), so only its producer and group refusals are asserted."""

import os

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType)
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from conftest import REPLICATION_FACTOR, unique_topic

USER = os.environ.get("FJORD_SASL_USER", "")
PASSWORD = os.environ.get("FJORD_SASL_PASSWORD", "")
DENIED = os.environ.get("FJORD_SASL_DENIED_USER", "")
DENIED_PASSWORD = os.environ.get("FJORD_SASL_DENIED_PASSWORD", "")
MECHANISM = "SCRAM-SHA-512"

pytestmark = pytest.mark.skipif(not (USER and DENIED),
                                reason="FJORD_SASL_USER and FJORD_SASL_DENIED_USER not set")


def ck_config(bootstrap, user, password):
    return {"bootstrap.servers": bootstrap, "security.protocol": "sasl_plaintext",
            "sasl.mechanism": MECHANISM, "sasl.username": user, "sasl.password": password}


def kp_config(bootstrap, user, password):
    return {"bootstrap_servers": bootstrap, "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": MECHANISM, "sasl_plain_username": user,
            "sasl_plain_password": password}


@pytest.fixture(scope="module")
def guarded(bootstrap):
    """(topic, prefix): a topic, and the prefix of topics and groups, that only USER has
    ACLs on."""
    prefix = unique_topic("acl") + "-"
    topic = prefix + "t"
    admin = AdminClient(ck_config(bootstrap, USER, PASSWORD))
    for t in (topic, open_topic_of(prefix)):
        admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=REPLICATION_FACTOR)])[
            t].result(timeout=60)
    acls = [AclBinding(kind, prefix, ResourcePatternType.PREFIXED, f"User:{USER}", "*",
                       AclOperation.ALL, AclPermissionType.ALLOW)
            for kind in (ResourceType.TOPIC, ResourceType.GROUP)]
    for f in admin.create_acls(acls).values():
        f.result(timeout=60)
    producer = Producer(ck_config(bootstrap, USER, PASSWORD))
    producer.produce(topic, value=b"allowed", partition=0)
    assert producer.flush(30) == 0, "the user the ACL allows could not produce"
    yield topic, prefix
    for kind in (ResourceType.TOPIC, ResourceType.GROUP):
        f = AclBindingFilter(kind, prefix, ResourcePatternType.PREFIXED, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
        admin.delete_acls([f])[f].result(timeout=60)
    for t in (topic, open_topic_of(prefix)):
        admin.delete_topics([t])[t].result(timeout=60)


def open_topic_of(prefix):
    """A topic outside the guarded prefix, which no ACL names."""
    return "open-" + prefix + "t"


def ck_poll_error(consumer):
    """The first error a consumer reports within 30 s."""
    for _ in range(30):
        m = consumer.poll(1)
        if m is not None and m.error() is not None:
            return m.error().code()
        assert m is None, f"read a record the ACLs should have kept out: {m.value()!r}"
    pytest.fail("no error within 30 s")


def test_confluent_kafka_produce_is_refused(bootstrap, guarded):
    topic, _ = guarded
    errors = []
    producer = Producer({**ck_config(bootstrap, DENIED, DENIED_PASSWORD), "message.timeout.ms": 30000})
    producer.produce(topic, value=b"denied", partition=0, on_delivery=lambda err, _m: errors.append(err))
    producer.flush(40)
    assert [e and e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], errors


def test_confluent_kafka_consume_is_refused(bootstrap, guarded):
    topic, _ = guarded
    consumer = Consumer({**ck_config(bootstrap, DENIED, DENIED_PASSWORD),
                         "group.id": unique_topic("acl-open-g")})
    consumer.subscribe([topic])
    try:
        assert ck_poll_error(consumer) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    finally:
        consumer.close()


@pytest.mark.groups
def test_confluent_kafka_group_is_refused(bootstrap, guarded):
    _, prefix = guarded
    consumer = Consumer({**ck_config(bootstrap, DENIED, DENIED_PASSWORD), "group.id": prefix + "g"})
    consumer.subscribe([open_topic_of(prefix)])
    try:
        assert ck_poll_error(consumer) == KafkaError.GROUP_AUTHORIZATION_FAILED
    finally:
        consumer.close()


def test_kafka_python_produce_is_refused(bootstrap, guarded):
    topic, _ = guarded
    producer = KafkaProducer(**kp_config(bootstrap, DENIED, DENIED_PASSWORD), max_block_ms=30000)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(topic, b"denied", partition=0).get(timeout=30)
    finally:
        producer.close()


@pytest.mark.groups
def test_kafka_python_group_is_refused(bootstrap, guarded):
    _, prefix = guarded
    consumer = KafkaConsumer(**kp_config(bootstrap, DENIED, DENIED_PASSWORD), group_id=prefix + "g")
    consumer.subscribe([open_topic_of(prefix)])
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            for _ in range(30):
                assert not consumer.poll(1000), "joined a group the ACLs should have kept out"
    finally:
        consumer.close()
