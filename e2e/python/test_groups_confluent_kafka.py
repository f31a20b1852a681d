"""confluent-kafka (librdkafka) consumer groups: members sharing a topic, commits that
survive closing and reopening the group, two groups on one topic, and the Admin calls on
groups."""

import time

import pytest
from confluent_kafka import (ConsumerGroupState, ConsumerGroupTopicPartitions, Consumer, KafkaError,
                             KafkaException, Producer, TopicCollection, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import DEADLINE_S, REPLICATION_FACTOR, unique_topic, wait_until
from groups_common import (HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS, Member, check_exactly_once,
                           check_genuine, check_read_by_owner, close_all, ends, owners,
                           partitions_read_by, unique_group, wait_for_balance, wait_for_values)

pytestmark = pytest.mark.groups

CLIENT = "fjord-e2e-confluent"


@pytest.fixture
def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "client.id": CLIENT})


def result(future):
    return future.result(timeout=DEADLINE_S)


def create_topic(admin, topic, partitions):
    result(admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=REPLICATION_FACTOR)])[topic])

    def with_leaders():
        d = result(admin.describe_topics(TopicCollection([topic]))[topic])
        return sum(1 for p in d.partitions if p.leader is not None) == partitions
    wait_until(f"{topic} has {partitions} partitions with leaders", with_leaders)


def produce(bootstrap, topic, partitions, per_partition, prefix):
    """per_partition records to each partition; returns {value: (partition, offset)}."""
    p = Producer({"bootstrap.servers": bootstrap, "client.id": CLIENT, "enable.idempotence": True,
                  "linger.ms": 5})
    sent, errors = {}, []

    def delivered(err, msg):
        if err:
            errors.append(err)
        else:
            sent[msg.value().decode()] = (msg.partition(), msg.offset())
    for i in range(per_partition):
        for part in range(partitions):
            p.produce(topic, partition=part, key=f"k{part}", value=f"{prefix}-p{part}-{i}", on_delivery=delivered)
        p.poll(0)
    assert p.flush(DEADLINE_S) == 0, "records still undelivered"
    assert not errors, errors[:5]
    assert len(sent) == partitions * per_partition
    return sent


def consumer_config(bootstrap, group, name, **extra):
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "client.id": f"{CLIENT}-{name}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS}
    conf.update(extra)
    return conf


def batch(c, name, n=200):
    out = []
    for m in c.consume(num_messages=n, timeout=0.2):
        if m.error():
            raise KafkaException(m.error())
        out.append((name, m.partition(), m.offset(), m.value().decode()))
    return out


class CkMember(Member):
    def __init__(self, bootstrap, group, topic, name, sink, **extra):
        self._conf = consumer_config(bootstrap, group, name, **extra)
        self._topic = topic
        self.c = None
        super().__init__(name, sink)

    def open(self):
        self.c = Consumer(self._conf)
        self.c.subscribe([self._topic],
                         on_assign=lambda _c, ps: self.assigned({p.partition for p in ps}),
                         on_revoke=lambda _c, ps: self.revoked({p.partition for p in ps}),
                         on_lost=lambda _c, ps: self.revoked({p.partition for p in ps}))

    def poll(self):
        return [(p, o, v) for _, p, o, v in batch(self.c, self.name)]

    def commit(self):
        self.c.commit(asynchronous=False)

    def close_consumer(self):
        if self.c is not None:
            self.c.close()


def committed(admin, group):
    """{partition: offset} the group has committed (one topic per test)."""
    r = result(admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group])
    return {tp.partition: tp.offset for tp in r.topic_partitions if tp.offset >= 0}


def describe(admin, group):
    return result(admin.describe_consumer_groups([group])[group])


def listed(admin, group):
    return [g for g in result(admin.list_consumer_groups()).valid if g.group_id == group]


def poll_until(c, into, name, done, after=None):
    end = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < end, f"{name}: not done within {DEADLINE_S}s, read {len(into)}"
        got = batch(c, name, n=50)
        into.extend(got)
        if got and after:
            after()


def nonzero(offsets):
    return {p: o for p, o in offsets.items() if o > 0}


def test_three_members_share_six_partitions(bootstrap, admin):
    topic, group = unique_topic("ck-grp-three"), unique_group("ck-three")
    create_topic(admin, topic, 6)
    sink = []
    members = []
    try:
        members = [CkMember(bootstrap, group, topic, f"m{i}", sink) for i in range(3)]
        wait_for_balance(members, 6, each=2)
        held = owners(members)
        sent = produce(bootstrap, topic, 6, 100, "three")
        wait_for_values(sink, sent, members)
        assert owners(members) == held, "assignment changed while reading"
        check_exactly_once(sent, sink)
        check_read_by_owner(sink, held)
        for m in members:
            assert partitions_read_by(sink, m.name) == held[m.name]
        wait_until("committed offsets reach the ends", lambda: committed(admin, group) == ends(sent))
    finally:
        close_all(members)
    result(admin.delete_topics([topic])[topic])


@pytest.mark.parametrize("mode", ["sync", "auto"])
def test_commits_survive_closing_and_reopening_the_group(bootstrap, admin, mode):
    topic, group = unique_topic(f"ck-grp-resume-{mode}"), unique_group(f"ck-resume-{mode}")
    create_topic(admin, topic, 3)
    sent = produce(bootstrap, topic, 3, 200, "resume")
    extra = {}
    if mode == "auto":
        extra = {"enable.auto.commit": True, "auto.commit.interval.ms": 500}

    first = []
    c = Consumer(consumer_config(bootstrap, group, "first", **extra))
    c.subscribe([topic])
    sync = (lambda: c.commit(asynchronous=False)) if mode == "sync" else None
    poll_until(c, first, "first", lambda: len(first) >= len(sent) // 2, after=sync)
    at_close = {tp.partition: tp.offset for tp in c.position(c.assignment())}
    if mode == "auto":
        # The periodic auto-commit reaches the broker on its own, not only at close.
        c.pause(c.assignment())

        def stored():
            assert not batch(c, "first"), "paused consumer returned records"
            return nonzero(committed(admin, group)) == nonzero(at_close)
        wait_until("auto-commit stores the consumed positions", stored)
    c.close()  # with auto commit on, commits the stored offsets once more

    done = nonzero(committed(admin, group))
    assert done == nonzero(at_close), "committed offsets after close = positions read to"
    assert 0 < sum(done.values()) < len(sent), f"the first member stopped part-way: {done}"

    second = []
    unread = set(sent) - {v for _, _, _, v in first}
    c = Consumer(consumer_config(bootstrap, group, "second", **extra))
    c.subscribe([topic])
    sync = (lambda: c.commit(asynchronous=False)) if mode == "sync" else None
    poll_until(c, second, "second", lambda: unread <= {v for _, _, _, v in second}, after=sync)
    c.close()
    check_genuine(sent, second)
    first_read = {}
    for _, p, o, v in second:
        assert o >= done.get(p, 0), f"re-read {v} at {o}, before the committed offset {done.get(p, 0)}"
        first_read.setdefault(p, o)
    for p, o in first_read.items():
        assert o == done.get(p, 0), f"partition {p}: the second member starts at the committed offset"
    check_exactly_once(sent, first + second)
    result(admin.delete_topics([topic])[topic])


def test_two_groups_on_one_topic_each_read_every_record(bootstrap, admin):
    topic = unique_topic("ck-grp-two")
    create_topic(admin, topic, 6)
    ga, gb = unique_group("ck-a"), unique_group("ck-b")
    sink_a, sink_b = [], []
    a, b = [], []
    try:
        for i in range(2):
            a.append(CkMember(bootstrap, ga, topic, f"a{i}", sink_a))
            b.append(CkMember(bootstrap, gb, topic, f"b{i}", sink_b))
        wait_for_balance(a, 6, each=3)
        wait_for_balance(b, 6, each=3)
        sent = produce(bootstrap, topic, 6, 100, "two")
        wait_for_values(sink_a, sent, a)
        wait_for_values(sink_b, sent, b)
        check_exactly_once(sent, sink_a)
        check_exactly_once(sent, sink_b)
        check_read_by_owner(sink_a, owners(a))
        check_read_by_owner(sink_b, owners(b))
        wait_until("both groups committed to the end",
                   lambda: committed(admin, ga) == ends(sent) == committed(admin, gb))
    finally:
        close_all(a + b)
    result(admin.delete_topics([topic])[topic])


def test_admin_lists_describes_alters_and_deletes_groups(bootstrap, admin):
    topic, group = unique_topic("ck-grp-admin"), unique_group("ck-admin")
    create_topic(admin, topic, 6)
    sink = []
    members = []
    try:
        members = [CkMember(bootstrap, group, topic, name, sink) for name in ("x", "y")]
        wait_for_balance(members, 6, each=3)
        sent = produce(bootstrap, topic, 6, 50, "admin")
        wait_for_values(sink, sent, members)
        wait_until("committed to the end", lambda: committed(admin, group) == ends(sent))

        [listing] = listed(admin, group)
        assert not listing.is_simple_consumer_group
        assert listing.state == ConsumerGroupState.STABLE

        d = describe(admin, group)
        assert d.group_id == group
        assert d.state == ConsumerGroupState.STABLE
        assert not d.is_simple_consumer_group
        assert d.partition_assignor == "range"
        assert d.coordinator is not None
        assert len(d.members) == 2 and len({m.member_id for m in d.members}) == 2
        by_name = {m.name: m for m in members}
        for m in d.members:
            member = by_name[m.client_id[len(CLIENT) + 1:]]
            assigned = {tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic}
            assert assigned == set(member.assignment), f"assignment of {member.name}"

        # While members are in the group, it cannot be deleted, and a commit from outside
        # the group is refused (per partition).
        with pytest.raises(KafkaException) as e:
            result(admin.delete_consumer_groups([group])[group])
        assert e.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
        refused = result(admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 1)])])[group])
        errors = [tp.error.code() if tp.error else None for tp in refused.topic_partitions]
        assert errors == [KafkaError.UNKNOWN_MEMBER_ID], errors
        assert committed(admin, group) == ends(sent), "refused calls changed nothing"
    finally:
        close_all(members)

    # Members left on close: the group is empty at once, its offsets kept.
    wait_until("group empty", lambda: describe(admin, group).state == ConsumerGroupState.EMPTY)
    assert describe(admin, group).members == []
    result(admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [
        TopicPartition(topic, 0, 3, metadata="fjord-e2e-meta"), TopicPartition(topic, 1, 0)])])[group])
    r = result(admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group])
    offsets = {tp.partition: (tp.offset, tp.metadata) for tp in r.topic_partitions}
    assert offsets[0] == (3, "fjord-e2e-meta"), "commit metadata round-trips"
    assert offsets[1][0] == 0
    assert offsets[2][0] == 50, "untouched partition keeps its offset"

    result(admin.delete_consumer_groups([group])[group])
    wait_until("group no longer listed", lambda: not listed(admin, group))
    assert committed(admin, group) == {}
    result(admin.delete_topics([topic])[topic])
