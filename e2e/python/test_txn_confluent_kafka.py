"""confluent-kafka (librdkafka) exactly-once read-process-write while a broker of a 3-broker
cluster is killed with SIGKILL and restarted.

A producer writes N numbered input records (acks=all) to an input topic. A processor
consumes them read_committed in a consumer group and writes one output record per input
record in transactions of a few dozen, the consumed offsets committed in the transaction
(send_offsets_to_transaction with the consumer's group metadata, KIP-447). One transaction
in ten is aborted on purpose after its records reached the log, and its input is processed
again. The broker killed is the transaction coordinator of the processor's transactional.id
(when the metadata shows __transaction_state), between two transactions; the processor
goes on while it is down and while it restarts. Each output record names the transaction that wrote it. At the end a read_committed
reader must see every input exactly once and only records of committed transactions; a
read_uncommitted reader must see the records of the aborted transactions, so the first
check is known to be able to fail.

The processor handles the client's errors as confluent-kafka's documentation prescribes:
retriable errors are retried, abortable ones abort the transaction and rewind the consumer
to the group's committed offsets, fatal ones (a fenced producer) re-create the producer,
whose init_transactions fences and aborts the old one's open transaction.

The test starts and owns its cluster (owned_cluster.py): Fjord from FJORD_BIN, or Apache
Kafka with TXN_BROKER=kafka; TXN_BASE_PORT moves its ports. It uses no shared bootstrap:

    FJORD_BIN=target/debug/fjord e2e/python/run.sh - test_txn_confluent_kafka.py
    TXN_BROKER=kafka e2e/python/run.sh - test_txn_confluent_kafka.py"""

import os
import threading
import time
import uuid

import pytest
from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

from owned_cluster import BROKERS, owned_cluster

# Input records, partitions of both topics, records per transaction at most.
RECORDS = 1200
PARTITIONS = 4
TXN_RECORDS = 30
# Every tenth transaction is aborted on purpose.
ABORT_EVERY = 10
# Bound on each phase of the run, on retrying one retriable call, and on the readers.
PHASE_DEADLINE_S = 180.0
RETRY_DEADLINE_S = 90.0
READ_DEADLINE_S = 90.0
# Per call of the transactional API; longer than a leader election after the kill.
CALL_TIMEOUT_S = 30.0
CLIENT = "fjord-e2e-txn"

# Skipped in a run of the whole directory against a shared broker; tools/test.sh sets
# FJORD_BIN, so there it runs and can fail.
pytestmark = pytest.mark.skipif(not os.environ.get("FJORD_BIN") and not os.environ.get("TXN_BROKER"),
                                reason="FJORD_BIN not set (and no TXN_BROKER=kafka): it starts its own cluster")


@pytest.fixture
def cluster(tmp_path, request):
    c = owned_cluster(tmp_path / "cluster")
    failed_before = request.session.testsfailed
    try:
        try:
            c.start()
        except Exception:
            print(c.log_tails())
            raise
        yield c
    finally:
        c.stop()
        if request.session.testsfailed > failed_before:
            print(c.log_tails())


def retrying(what, call, also=()):
    """Calls `call` until it does not raise a retriable error (or one of the codes in
    `also`), up to RETRY_DEADLINE_S."""
    end = time.monotonic() + RETRY_DEADLINE_S
    while True:
        try:
            return call()
        except KafkaException as e:
            err = e.args[0]
            if err.txn_requires_abort() or err.fatal() or not (err.retriable() or err.code() in also):
                raise
            if time.monotonic() > end:
                pytest.fail(f"{what}: still failing after {RETRY_DEADLINE_S}s: {err}")
            print(f"{what}: {err}; retrying")


def wait_until(what, condition, deadline_s=PHASE_DEADLINE_S):
    end = time.monotonic() + deadline_s
    last = None
    while True:
        try:
            if condition():
                return
            last = None
        except KafkaException as e:  # the cluster may answer errors until it has recovered
            last = e
        if time.monotonic() > end:
            pytest.fail(f"not true within {deadline_s}s: {what} (last error: {last!r})")
        time.sleep(0.2)  # poll interval, not a synchronisation


def java_string_hash(s):
    h = 0
    for ch in s.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(ch, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def create_topics(admin, topics):
    futures = admin.create_topics([NewTopic(t, num_partitions=PARTITIONS, replication_factor=BROKERS)
                                   for t in topics])
    for f in futures.values():
        f.result(timeout=CALL_TIMEOUT_S)
    wait_until(f"{topics} fully replicated with leaders", lambda: all_in_sync(admin, topics))


def all_in_sync(admin, topics):
    md = admin.list_topics(timeout=10)
    for t in topics:
        parts = md.topics[t].partitions if t in md.topics else {}
        if len(parts) != PARTITIONS:
            return False
        if any(p.leader < 0 or len(p.isrs) != BROKERS or p.error is not None for p in parts.values()):
            return False
    return True


def produce_input(bootstrap, topic):
    p = Producer({"bootstrap.servers": bootstrap, "client.id": f"{CLIENT}-input", "acks": "all",
                  "enable.idempotence": True, "linger.ms": 5})
    errors = []
    for i in range(RECORDS):
        p.produce(topic, key=f"k{i % 16}", value=f"in-{i:06d}",
                  on_delivery=lambda err, _m: errors.append(err) if err else None)
        p.poll(0)
    assert p.flush(CALL_TIMEOUT_S) == 0, "input records still undelivered"
    assert not errors, errors[:5]


def victim_node(admin, txn_id, output):
    """The transaction coordinator of txn_id when __transaction_state is in the metadata
    (Kafka's rule: abs(String.hashCode) % partitions), else the leader of output
    partition 0."""
    md = admin.list_topics(timeout=10)
    state = md.topics.get("__transaction_state")
    if state is not None and state.partitions:
        h = java_string_hash(txn_id)
        partition = 0 if h == -(1 << 31) else abs(h) % len(state.partitions)
        leader = state.partitions[partition].leader
        if leader > 0:
            return leader, f"transaction coordinator (__transaction_state partition {partition})"
    return md.topics[output].partitions[0].leader, f"leader of {output} partition 0"


class Processor:
    """The read-process-write loop: one consumer, one transactional producer at a time."""

    def __init__(self, bootstrap, input_topic, output_topic, group, txn_id):
        self.bootstrap = bootstrap
        self.output = output_topic
        self.txn_id = txn_id
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "client.id": f"{CLIENT}-processor", "group.id": group,
            "isolation.level": "read_committed", "enable.auto.commit": False,
            "auto.offset.reset": "earliest"})
        self.consumer.subscribe([input_topic])
        self.producer = None
        self.generation = 0
        self.txn_no = 0
        self.committed = {}  # input value -> tag of the transaction that committed it
        self.committed_tags = set()
        self.aborted_on_purpose = {}  # tag -> output values the log acknowledged
        self.forced_aborts = 0
        self.recreated = 0
        try:
            self._new_producer()
        except BaseException:
            self.consumer.close()
            raise

    def _new_producer(self):
        self.generation += 1
        self.producer = Producer({
            "bootstrap.servers": self.bootstrap, "client.id": f"{CLIENT}-processor-{self.generation}",
            "transactional.id": self.txn_id, "linger.ms": 5})
        retrying("init_transactions", lambda: self.producer.init_transactions(CALL_TIMEOUT_S))

    def _rewind(self):
        """Back to the group's committed offsets: what the last committed transaction
        stored, so nothing of an aborted transaction is skipped."""
        assignment = self.consumer.assignment()
        if not assignment:
            return
        # A time-out here is a coordinator that moved with the killed broker, or offsets
        # still pending (UNSTABLE_OFFSET_COMMIT, KIP-447) until a marker lands.
        offsets = retrying("committed", lambda: self.consumer.committed(assignment, timeout=CALL_TIMEOUT_S),
                           also=(KafkaError._TIMED_OUT,))
        for tp in offsets:
            if tp.error is not None:
                raise KafkaException(tp.error)
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
            self.consumer.seek(tp)

    def _abort(self):
        retrying("abort_transaction", lambda: self.producer.abort_transaction(CALL_TIMEOUT_S))

    def _poll(self):
        records = []
        for m in self.consumer.consume(num_messages=TXN_RECORDS, timeout=1.0):
            err = m.error()
            if err is None:
                records.append(m)
            elif err.fatal():
                raise KafkaException(err)
            else:  # transport errors while a broker is down: the client recovers
                print(f"consumer: {err}")
        return records

    def step(self):
        """One transaction over what one poll returns; how many inputs it committed."""
        records = self._poll()
        if not records:
            return 0
        self.txn_no += 1
        tag = f"g{self.generation}t{self.txn_no}"
        on_purpose = self.txn_no % ABORT_EVERY == 0
        acked = []
        try:
            self.producer.begin_transaction()
            for m in records:
                self._produce(m.key(), f"{m.value().decode()} {tag}", acked)
            next_offsets = {}
            for m in records:
                tp = (m.topic(), m.partition())
                next_offsets[tp] = max(next_offsets.get(tp, 0), m.offset() + 1)
            retrying("send_offsets_to_transaction", lambda: self.producer.send_offsets_to_transaction(
                [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()],
                self.consumer.consumer_group_metadata(), CALL_TIMEOUT_S))
            if on_purpose:
                # The records reach the log first, so the abort marker has something to hide;
                # those the log acknowledged are checked at the end.
                self.producer.flush(CALL_TIMEOUT_S)
                self._abort()
                self.aborted_on_purpose[tag] = list(acked)
                self._rewind()
                return 0
            retrying("commit_transaction", lambda: self.producer.commit_transaction(CALL_TIMEOUT_S))
        except KafkaException as e:
            self._recover(tag, e.args[0])
            return 0
        for m in records:
            value = m.value().decode()
            assert value not in self.committed, (
                f"{value} committed twice: by {self.committed[value]} and {tag}")
            self.committed[value] = tag
        self.committed_tags.add(tag)
        return len(records)

    def _recover(self, tag, err):
        """After a failed transaction: abort it if the error allows, else (fatal: fenced,
        or a state the producer cannot leave) a new producer with the same
        transactional.id, whose init_transactions fences this one and aborts its
        transaction. Then back to the committed offsets."""
        if err.txn_requires_abort():
            print(f"{tag}: abortable {err}; aborting")
            self.forced_aborts += 1
            try:
                self._abort()
            except KafkaException as e:
                err = e.args[0]
            else:
                self._rewind()
                return
        print(f"{tag}: {'fatal' if err.fatal() else 'unrecoverable'} {err}; new producer")
        self.recreated += 1
        self._new_producer()
        self._rewind()

    def _produce(self, key, value, acked):
        def delivered(err, msg):
            if err is None:
                acked.append(msg.value().decode())
        while True:
            try:
                self.producer.produce(self.output, key=key, value=value, on_delivery=delivered)
                return
            except BufferError:  # the client's queue is full: let it drain
                self.producer.poll(0.1)

    def run_until(self, what, committed):
        end = time.monotonic() + PHASE_DEADLINE_S
        while len(self.committed) < committed:
            if time.monotonic() > end:
                pytest.fail(f"{what}: {len(self.committed)} of {committed} inputs committed "
                            f"within {PHASE_DEADLINE_S}s (txn {self.txn_no})")
            self.step()

    def close(self):
        """Leaves the group; the producer has nothing in flight between transactions."""
        self.consumer.close()
        if self.producer is not None:
            self.producer.purge()


def read_all(bootstrap, topic, isolation):
    """Every value of `topic` from the start to its end as `isolation` sees it."""
    c = Consumer({"bootstrap.servers": bootstrap, "client.id": f"{CLIENT}-{isolation}",
                  "group.id": f"e2e-py-txn-reader-{uuid.uuid4().hex[:8]}", "isolation.level": isolation,
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    values, at_end = [], set()
    end = time.monotonic() + READ_DEADLINE_S
    try:
        while len(at_end) < PARTITIONS:
            if time.monotonic() > end:
                pytest.fail(f"{isolation} reader: only partitions {sorted(at_end)} of {topic} reached "
                            f"their end within {READ_DEADLINE_S}s ({len(values)} records read)")
            for m in c.consume(num_messages=500, timeout=1.0):
                err = m.error()
                if err is None:
                    values.append(m.value().decode())
                    at_end.discard(m.partition())
                elif err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
                elif err.fatal():
                    raise KafkaException(err)
    finally:
        c.close()
    return values


def process_through_a_kill(cluster, admin, proc, topics, txn_id):
    """A quarter of the input before the kill, a quarter with the broker down, a quarter
    while it restarts, the rest once it is back in every ISR."""
    proc.run_until("before the kill", RECORDS // 4)
    victim, why = victim_node(admin, txn_id, topics[1])
    print(f"killing broker {victim}, the {why}, after transaction {proc.txn_no}", flush=True)
    cluster.kill(victim)
    proc.run_until(f"with broker {victim} down", RECORDS // 2)

    restart_error = []

    def restart():
        try:
            cluster.restart(victim)
        except Exception as e:  # reported by the main thread below
            restart_error.append(e)
    restarting = threading.Thread(target=restart, name="restart")
    restarting.start()
    proc.run_until(f"while broker {victim} restarts", 3 * RECORDS // 4)
    restarting.join(PHASE_DEADLINE_S)
    assert not restarting.is_alive(), f"broker {victim} still restarting after {PHASE_DEADLINE_S}s"
    assert not restart_error, f"broker {victim} did not restart: {restart_error[0]}"
    wait_until(f"broker {victim} back in every ISR", lambda: all_in_sync(admin, topics))
    proc.run_until(f"after broker {victim} came back", RECORDS)


def test_read_process_write_exactly_once_through_a_broker_kill(cluster):
    bootstrap = cluster.bootstrap()
    run = uuid.uuid4().hex[:8]
    input_topic, output_topic = f"e2e-py-txn-in-{run}", f"e2e-py-txn-out-{run}"
    txn_id = f"e2e-py-txn-{run}"
    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": CLIENT})
    create_topics(admin, [input_topic, output_topic])
    produce_input(bootstrap, input_topic)

    proc = Processor(bootstrap, input_topic, output_topic, f"e2e-py-txn-group-{run}", txn_id)
    try:
        process_through_a_kill(cluster, admin, proc, [input_topic, output_topic], txn_id)
    finally:
        proc.close()
    print(f"{proc.txn_no} transactions: {len(proc.committed_tags)} committed, "
          f"{len(proc.aborted_on_purpose)} aborted on purpose, {proc.forced_aborts} aborted on errors, "
          f"{proc.recreated} producers re-created")

    committed = read_all(bootstrap, output_topic, "read_committed")
    seen = {}
    for v in committed:
        value, tag = v.split(" ")
        assert tag in proc.committed_tags, f"read_committed returned {v!r}, of a transaction that did not commit"
        assert value not in seen, f"read_committed returned {value} twice: {seen[value]!r} and {v!r}"
        seen[value] = v
    missing = [f"in-{i:06d}" for i in range(RECORDS) if f"in-{i:06d}" not in seen]
    assert not missing, f"{len(missing)} inputs missing from the committed output, first {missing[:5]}"
    assert len(seen) == RECORDS

    # The aborted records are in the log: only the transaction markers hide them.
    aborted_acked = {v for values in proc.aborted_on_purpose.values() for v in values}
    assert aborted_acked, "no transaction aborted on purpose had its records acknowledged"
    uncommitted = set(read_all(bootstrap, output_topic, "read_uncommitted"))
    not_there = aborted_acked - uncommitted
    assert not not_there, (f"{len(not_there)} acknowledged records of aborted transactions missing from "
                           f"read_uncommitted, first {sorted(not_there)[:5]}")
    assert set(committed) <= uncommitted
