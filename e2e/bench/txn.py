"""The transaction setup (issue 19): each system as the same three-broker cluster as the
RF=3 rows (replication factor 3, min.insync.replicas 2), a transactional producer writing
1 KB records acks=all with idempotence, then a read_committed consumer reading what it
wrote.

Two producers, each to a one-partition topic of its own:
- txn_client.py (confluent-kafka, librdkafka): exactly 100 records a transaction.
- Kafka's ProducerPerformance in its transaction mode, which commits when a transaction
  has lasted --transaction-duration-ms; at 1 ms its transactions hold about 100 records on
  this machine, and the run measures how many they held: each committed transaction leaves
  one commit marker in the partition, so transactions = log end offset - records.
Two read_committed consumers: rdkafka_performance (-X isolation.level=read_committed) reads
txn_client's topic and ConsumerPerformance (a client config with the same setting) reads
ProducerPerformance's; each must see every committed record.
"""
import json
import os
import subprocess
import sys

from common import Steps, fail, log, measured, setup_failed
from clients import child_cpu_seconds

HERE = os.path.dirname(os.path.abspath(__file__))
# The librdkafka setting of the consume rows; librdkafka's default, set so it is explicit.
READ_COMMITTED = ("-X", "isolation.level=read_committed")


class TxnClient:
    """txn_client.py in a process of its own (this Python, the bench venv's
    confluent-kafka), so that its CPU is its own and a stuck client is killed at its
    deadline."""

    def __init__(self, python=sys.executable):
        self.python = python
        self.script = os.path.join(HERE, "txn_client.py")

    def produce(self, bootstrap, topic, records, size, per_txn, timeout=600):
        cmd = [self.python, self.script, "--bootstrap", bootstrap, "--topic", topic,
               "--count", str(records), "--size", str(size), "--per-txn", str(per_txn),
               "--timeout-s", str(timeout)]
        cpu0 = child_cpu_seconds()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
        except subprocess.TimeoutExpired:
            fail(f"txn_client to {topic}: no answer within {timeout + 60}s")
            return None
        report = parse_report(r.stdout)
        if r.returncode != 0 or report is None:
            fail(f"txn_client to {topic} exited {r.returncode}: {r.stderr.strip()[-800:]}")
            return None
        return {"MBps": report["MBps"], "msgs": report["msgs_per_s"],
                "txns_per_s": report["txns_per_s"], "transactions": report["transactions"],
                "records_per_txn": records / report["transactions"],
                "commit_ms_p50": report["commit_ms_p50"], "elapsed_s": report["elapsed_s"],
                "client_cpu_s": child_cpu_seconds() - cpu0}


def parse_report(stdout):
    """The last JSON object line of a client's stdout (librdkafka may log before it), or
    None."""
    for line in reversed((stdout or "").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def committed_transactions(end_offset, records):
    """The transactions committed to a one-partition topic written only by one
    transactional producer: every record takes one offset and every committed
    transaction one more, for its commit marker."""
    txns = end_offset - records
    if txns < 1:
        raise ValueError(f"log end offset {end_offset} leaves no commit marker after "
                         f"{records} records")
    return txns


def end_offset(bootstrap, topic, timeout_s=30):
    """Partition 0's high watermark (its log end offset once the producer has finished)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets",
                  "enable.auto.commit": False})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)[1]
    finally:
        c.close()


def with_transactions(run, records, end):
    """ProducerPerformance's figures plus the transactions it committed, per second of
    its run, and their mean size; `end` gives the partition's log end offset."""
    if run is None:
        return None
    txns = committed_transactions(end(), records)
    elapsed = records / run["msgs"]
    log(f"ProducerPerformance: {txns} transactions of {records / txns:.0f} records on "
        "average")
    return {**run, "transactions": txns, "txns_per_s": txns / elapsed,
            "records_per_txn": records / txns}


def median_run(runs, key="MBps"):
    """Of several runs of one workload, the one with the median `key` (the lower middle of
    an even count), with every run's figure under `<key>_runs`; None if any run failed,
    as the failed run has logged."""
    if not runs or any(r is None for r in runs):
        return None
    ordered = sorted(runs, key=lambda r: r[key])
    return {**ordered[(len(ordered) - 1) // 2], f"{key}_runs": [r[key] for r in runs]}


def read_committed_config(work):
    """A Java consumer properties file (--command-config) for read_committed fetches."""
    path = os.path.join(work, "read-committed.properties")
    with open(path, "w") as f:
        f.write("isolation.level=read_committed\n")
    return path


def run_txn(cluster, rd, java, rdperf, txn, sizes, rnd, work, end=end_offset):
    """Figures for one system as a three-broker cluster in round `rnd`: transactional
    produce (txn_client, and ProducerPerformance in the first `java_rounds` rounds) and
    read_committed consume of what each wrote. Each figure is one step (Steps): a step that
    fails leaves its own rows empty with its error, and the rest still run."""
    log(f"{cluster.name} [txn] round {rnd + 1}: fresh start")
    if not cluster.start():
        setup_failed(cluster.name, "txn", f"{cluster.name} [txn, 3 brokers] did not start")
        return None
    r = {}
    step = Steps(cluster.name, "txn", r)
    b = cluster.bootstrap
    with_java = rnd < sizes["java_rounds"]
    topics = ["warm", "txnwarm", "txn1k"] + (["jtxn1k"] if with_java else [])
    for t in topics:
        if not rd.create_topic(b, t, [], replication_factor=3):
            fail(f"{cluster.name}: could not create topic {t}")
    # The RF=3 rows' warm-up, then a short transactional one: a JVM runs the coordinator's
    # first requests interpreted.
    log(f"{cluster.name} [txn]: warm-up, {sizes['n_warm'] // 2} x 1KB acks=all, "
        f"{sizes['n_txn_warm']} x 1KB in transactions")
    rd.produce(b, "warm", sizes["n_warm"] // 2, 1024, "all")
    txn.produce(b, "txnwarm", sizes["n_txn_warm"], 1024, sizes["txn_records"], timeout=300)
    n, per = sizes["n_txn"], sizes["txn_records"]
    log(f"{cluster.name} [txn]: {n} x 1KB in transactions of {per}, acks=all RF=3 "
        "(txn_client)")
    # The three brokers' CPU seconds across the produce, summed: a transaction's work is
    # spread over its coordinator, the partition's leader and the followers.
    pids = cluster.pids()
    p = step("txn_p1k", lambda: measured(pids, lambda: txn.produce(b, "txn1k", n, 1024, per)))
    if p and "broker_cpu_s" in p:
        r["txn_cpu_s_per_gb"] = p["broker_cpu_s"] / (n * 1024 / 1e9)
    reads = sizes["txn_consume_reads"]
    log(f"{cluster.name} [txn]: read_committed consume of {n} x 1KB, {reads} times "
        "(rdkafka_performance)")
    # The log is small (the producer is bound by its commits), so one read lasts well under
    # a second; the median of several reads, each by a new group, steadies the figure.
    step("txn_consume", lambda: median_run(
        [rdperf.consume(b, "txn1k", n, extra=READ_COMMITTED) for _ in range(reads)])
         if p else None)
    if with_java:
        nj, ms = sizes["n_jtxn"], sizes["jtxn_duration_ms"]
        log(f"{cluster.name} [txn]: {nj} x 1KB in transactions of {ms} ms, acks=all RF=3 "
            "(Java)")
        jp = step("jtxn_p1k", lambda: with_transactions(java.produce(
            b, "jtxn1k", nj, 1024, "all", props=["enable.idempotence=true"],
            args=["--transactional-id", f"bench-jtxn-{rnd}",
                  "--transaction-duration-ms", str(ms)]), nj, lambda: end(b, "jtxn1k")))
        cfg = read_committed_config(work)
        log(f"{cluster.name} [txn]: read_committed consume of {nj} x 1KB (Java)")
        step("jtxn_consume", lambda: java.consume(b, "jtxn1k", nj, config=cfg) if jp else None)
    cluster.stop()
    return r


def rows():
    """The transaction rows, in table.ROWS's form."""
    name = "transactional produce 1KB, 100 records a transaction, acks=all RF=3"
    jname = "transactional produce 1KB, 1 ms transactions, acks=all RF=3 [Java]"
    return [
        (name, "MB/s", "txn", ("txn_p1k", "MBps"), True, "confluent-kafka"),
        (name, "txns/s", "txn", ("txn_p1k", "txns_per_s"), True, "confluent-kafka"),
        ("broker CPU seconds per GB, transactional produce 1KB (3 brokers)", "s/GB", "txn",
         ("txn_cpu_s_per_gb",), False, "confluent-kafka"),
        ("read_committed consume 1KB of the transactional produce [rdkafka_performance]",
         "MB/s", "txn", ("txn_consume", "MBps"), True, "rdkafka_performance"),
        (jname, "MB/s", "txn", ("jtxn_p1k", "MBps"), True, "java"),
        (jname, "txns/s", "txn", ("jtxn_p1k", "txns_per_s"), True, "java"),
        (jname, "records/txn", "txn", ("jtxn_p1k", "records_per_txn"), True, "java"),
        ("read_committed consume 1KB of the transactional produce [Java]", "MB/s", "txn",
         ("jtxn_consume", "fetch_MBps"), True, "java"),
    ]
