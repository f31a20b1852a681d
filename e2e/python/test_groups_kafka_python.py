"""kafka-python consumer groups: members sharing a topic, commits that survive closing and
reopening the group, two groups on one topic, and the Admin calls on groups."""

import time

import pytest
from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import GroupSubscribedToTopicError, NoError, UnknownMemberIdError
from kafka.structs import OffsetAndMetadata

from conftest import DEADLINE_S, REPLICATION_FACTOR, unique_topic, wait_until
from groups_common import (HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS, Member, check_exactly_once,
                           check_genuine, check_read_by_owner, close_all, ends, owners,
                           partitions_read_by, unique_group, wait_for_balance, wait_for_values)

pytestmark = pytest.mark.groups

CLIENT = "fjord-e2e-kafka-python"


@pytest.fixture
def admin(bootstrap):
    a = KafkaAdminClient(bootstrap_servers=bootstrap, client_id=CLIENT)
    yield a
    a.close()


def create_topic(admin, topic, partitions):
    admin.create_topics([NewTopic(topic, partitions, REPLICATION_FACTOR)])

    def with_leaders():
        [t] = admin.describe_topics([topic])
        return t["error_code"] == 0 and sum(1 for p in t["partitions"] if p["leader_id"] >= 0) == partitions
    wait_until(f"{topic} has {partitions} partitions with leaders", with_leaders)


def produce(bootstrap, topic, partitions, per_partition, prefix):
    """per_partition records to each partition; returns {value: (partition, offset)}."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id=CLIENT, linger_ms=5)
    futures = {}
    for i in range(per_partition):
        for p in range(partitions):
            value = f"{prefix}-p{p}-{i}"
            futures[value] = producer.send(topic, partition=p, key=f"k{p}".encode(), value=value.encode())
    producer.flush(timeout=DEADLINE_S)
    sent = {}
    for value, f in futures.items():
        md = f.get(timeout=DEADLINE_S)
        sent[value] = (md.partition, md.offset)
    producer.close()
    return sent


def consumer_config(bootstrap, group, name, **extra):
    conf = dict(bootstrap_servers=bootstrap, group_id=group, client_id=f"{CLIENT}-{name}",
                auto_offset_reset="earliest", enable_auto_commit=False,
                session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
                max_poll_records=200)
    conf.update(extra)
    return conf


class KpMember(Member):
    def __init__(self, bootstrap, group, topic, name, sink, **extra):
        self._conf = consumer_config(bootstrap, group, name, **extra)
        self._topic = topic
        self.c = None
        super().__init__(name, sink)

    def open(self):
        self.c = KafkaConsumer(**self._conf)
        member = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                member.revoked({tp.partition for tp in revoked})

            def on_partitions_assigned(self, assigned):
                member.assigned({tp.partition for tp in assigned})

        self.c.subscribe([self._topic], listener=Listener())

    def poll(self):
        return [(r.partition, r.offset, r.value.decode())
                for records in self.c.poll(timeout_ms=200).values() for r in records]

    def commit(self):
        self.c.commit()

    def close_consumer(self):
        if self.c is not None:
            self.c.close()


def committed(admin, group):
    """{partition: offset} the group has committed (one topic per test)."""
    return {tp.partition: om.offset for tp, om in admin.list_group_offsets(group)[group].items()
            if om is not None and om.offset >= 0}


def poll_until(c, into, name, done, after=None):
    end = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < end, f"{name}: not done within {DEADLINE_S}s, read {len(into)}"
        got = [(name, r.partition, r.offset, r.value.decode())
               for records in c.poll(timeout_ms=200).values() for r in records]
        into.extend(got)
        if got and after:
            after()


def nonzero(offsets):
    return {p: o for p, o in offsets.items() if o > 0}


def test_three_members_share_six_partitions(bootstrap, admin):
    topic, group = unique_topic("kp-grp-three"), unique_group("kp-three")
    create_topic(admin, topic, 6)
    sink = []
    members = []
    try:
        members = [KpMember(bootstrap, group, topic, f"m{i}", sink) for i in range(3)]
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
    admin.delete_topics([topic])


@pytest.mark.parametrize("mode", ["sync", "auto"])
def test_commits_survive_closing_and_reopening_the_group(bootstrap, admin, mode):
    topic, group = unique_topic(f"kp-grp-resume-{mode}"), unique_group(f"kp-resume-{mode}")
    create_topic(admin, topic, 3)
    sent = produce(bootstrap, topic, 3, 200, "resume")
    extra = dict(max_poll_records=50)
    if mode == "auto":
        extra.update(enable_auto_commit=True, auto_commit_interval_ms=500)

    first = []
    c = KafkaConsumer(**consumer_config(bootstrap, group, "first", **extra))
    c.subscribe([topic])
    poll_until(c, first, "first", lambda: len(first) >= len(sent) // 2,
               after=c.commit if mode == "sync" else None)
    at_close = {tp.partition: c.position(tp) for tp in c.assignment()}
    if mode == "auto":
        # The periodic auto-commit reaches the broker on its own, not only at close.
        c.pause(*c.assignment())

        def stored():
            c.poll(timeout_ms=100)
            return nonzero(committed(admin, group)) == nonzero(at_close)
        wait_until("auto-commit stores the consumed positions", stored)
    c.close()  # with auto commit on, commits the positions once more

    done = nonzero(committed(admin, group))
    assert done == nonzero(at_close), "committed offsets after close = positions read to"
    assert 0 < sum(done.values()) < len(sent), f"the first member stopped part-way: {done}"

    second = []
    unread = set(sent) - {v for _, _, _, v in first}
    c = KafkaConsumer(**consumer_config(bootstrap, group, "second", **extra))
    c.subscribe([topic])
    poll_until(c, second, "second", lambda: unread <= {v for _, _, _, v in second},
               after=c.commit if mode == "sync" else None)
    c.close()
    check_genuine(sent, second)
    first_read = {}
    for _, p, o, v in second:
        assert o >= done.get(p, 0), f"re-read {v} at {o}, before the committed offset {done.get(p, 0)}"
        first_read.setdefault(p, o)
    for p, o in first_read.items():
        assert o == done.get(p, 0), f"partition {p}: the second member starts at the committed offset"
    check_exactly_once(sent, first + second)
    admin.delete_topics([topic])


def test_two_groups_on_one_topic_each_read_every_record(bootstrap, admin):
    topic = unique_topic("kp-grp-two")
    create_topic(admin, topic, 6)
    ga, gb = unique_group("kp-a"), unique_group("kp-b")
    sink_a, sink_b = [], []
    a, b = [], []
    try:
        for i in range(2):
            a.append(KpMember(bootstrap, ga, topic, f"a{i}", sink_a))
            b.append(KpMember(bootstrap, gb, topic, f"b{i}", sink_b))
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
    admin.delete_topics([topic])


def test_admin_lists_describes_alters_and_deletes_groups(bootstrap, admin):
    topic, group = unique_topic("kp-grp-admin"), unique_group("kp-admin")
    create_topic(admin, topic, 6)
    tp = [TopicPartition(topic, p) for p in range(6)]
    sink = []
    members = []
    try:
        members = [KpMember(bootstrap, group, topic, name, sink) for name in ("x", "y")]
        wait_for_balance(members, 6, each=3)
        sent = produce(bootstrap, topic, 6, 50, "admin")
        wait_for_values(sink, sent, members)
        wait_until("committed to the end", lambda: committed(admin, group) == ends(sent))

        [listed] = [g for g in admin.list_groups() if g["group_id"] == group]
        assert listed["protocol_type"] == "consumer"
        assert listed.get("group_state", "Stable") == "Stable"

        d = admin.describe_groups([group])[group]
        assert d["error"] is None, d["error"]
        assert d["group_state"] == "Stable"
        assert d["protocol_type"] == "consumer" and d["protocol_data"] == "range"
        assert len(d["members"]) == 2
        assert len({m["member_id"] for m in d["members"]}) == 2
        by_name = {m.name: m for m in members}
        for m in d["members"]:
            member = by_name[m["client_id"][len(CLIENT) + 1:]]
            assigned = {p for t in m["member_assignment"]["assigned_partitions"] for p in t["partitions"]
                        if t["topic"] == topic}
            assert assigned == set(member.assignment), f"assignment of {member.name}"

        offsets = admin.list_group_offsets(group)[group]
        assert {t.partition: om.offset for t, om in offsets.items()} == ends(sent)
        assert all(om.metadata == "" for om in offsets.values())

        # While members are in the group, the group and its subscribed offsets stay, and a
        # commit from outside the group is refused.
        assert admin.delete_groups([group]) == {group: "NonEmptyGroupError"}
        assert admin.delete_group_offsets(group, [tp[0]]) == {tp[0]: GroupSubscribedToTopicError}
        assert admin.alter_group_offsets(group, {tp[0]: OffsetAndMetadata(1, "", None)}) == \
            {tp[0]: UnknownMemberIdError}
        assert committed(admin, group) == ends(sent), "refused calls changed nothing"
    finally:
        close_all(members)

    # Members left on close: the group is empty at once, its offsets kept.
    wait_until("group empty", lambda: admin.describe_groups([group])[group]["group_state"] == "Empty")
    assert admin.alter_group_offsets(group, {tp[0]: OffsetAndMetadata(3, "fjord-e2e-meta", None),
                                             tp[1]: OffsetAndMetadata(0, "", None)}) == \
        {tp[0]: NoError, tp[1]: NoError}
    offsets = admin.list_group_offsets(group)[group]
    assert (offsets[tp[0]].offset, offsets[tp[0]].metadata) == (3, "fjord-e2e-meta")
    assert offsets[tp[1]].offset == 0
    assert offsets[tp[2]].offset == 50, "untouched partition keeps its offset"

    assert admin.delete_group_offsets(group, [tp[0]]) == {tp[0]: NoError}
    left = committed(admin, group)
    assert 0 not in left and len(left) == 5, left

    assert admin.delete_groups([group]) == {group: "OK"}
    wait_until("group no longer listed", lambda: group not in {g["group_id"] for g in admin.list_groups()})
    assert admin.list_group_offsets(group)[group] == {}
    admin.delete_topics([topic])
