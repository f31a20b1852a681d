"""The partition scaling curve (issue 16): each system as three brokers with replication
factor 3, on a fresh cluster per point, at 100, 1,000, 3,000 and 10,000 partitions
(topics of 10 partitions each). Per point:

- creation time: CreateTopics in requests of 50 topics (500 partitions), one after the
  other, from the first request to every partition having a leader and a full ISR;
- idle CPU: the three brokers' utime+stime over a fixed window after settling, in % of
  one core, and the ISR shrinks in that window (there should be none);
- RSS: the brokers' resident memory after the idle window (mean of the three);
- produce 1 KB acks=all spread over every partition (confluent-kafka, round-robin over
  the partitions), MB/s, and the ISR shrinks during it (Fjord: fjord_isr_shrinks_total
  from each broker's /metrics; Kafka: its "Shrinking ISR from" log lines);
- end-to-end p99 at a fixed rate: fjord-bench end-to-end on one more topic, acks=all.

A point that fails (a system that falls over at 10,000 partitions, a step past its
deadline) is listed as failed with its error; the other points and the other system go on.
"""
import os
import re
import time
import urllib.request

from brokers import FjordCluster, KafkaCluster
from common import STEP_ERRORS, Steps, log, proc_cpu_seconds, setup_failed

POINTS = (100, 1_000, 3_000, 10_000)
PARTITIONS_PER_TOPIC = 10
TOPICS_PER_REQUEST = 50
# The bounds of one point: past them a step fails its row rather than hang the run.
CREATE_DEADLINE_S = 600
READY_DEADLINE_S = 300


def admin(bootstrap):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 120_000})


def topic_names(n_partitions):
    return [f"s{i:05d}" for i in range(n_partitions // PARTITIONS_PER_TOPIC)]


def create_topics(bootstrap, names):
    """CreateTopics in requests of TOPICS_PER_REQUEST topics, then waits until every
    partition has a leader and three in-sync replicas; seconds from the first request."""
    from confluent_kafka.admin import NewTopic
    a = admin(bootstrap)
    t0 = time.monotonic()
    for i in range(0, len(names), TOPICS_PER_REQUEST):
        batch = [NewTopic(t, num_partitions=PARTITIONS_PER_TOPIC, replication_factor=3)
                 for t in names[i:i + TOPICS_PER_REQUEST]]
        left = CREATE_DEADLINE_S - (time.monotonic() - t0)
        if left <= 0:
            raise TimeoutError(f"{i} of {len(names)} topics created in {CREATE_DEADLINE_S}s")
        futures = a.create_topics(batch, request_timeout=min(left, 120),
                                  operation_timeout=min(left, 120))
        for t, f in futures.items():
            f.result(timeout=left)
    wait_ready(a, set(names), t0 + CREATE_DEADLINE_S)
    return time.monotonic() - t0


def wait_ready(a, names, deadline):
    missing = None
    while time.monotonic() < deadline:
        md = a.list_topics(timeout=30)
        missing = [t for t in names
                   if t not in md.topics or md.topics[t].error is not None
                   or len(md.topics[t].partitions) != PARTITIONS_PER_TOPIC
                   or any(p.leader < 0 or len(p.isrs) < 3
                          for p in md.topics[t].partitions.values())]
        if not missing:
            return
        time.sleep(0.5)  # metadata poll interval
    raise TimeoutError(f"{len(missing)} topics without a leader and full ISR by the deadline")


def produce_spread(bootstrap, names, records, size, timeout):
    """Records of `size` bytes at acks=all, round-robin over every partition of `names`;
    MB/s from the first send to the last acknowledgement."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000})
    errors = []

    def delivered(err, _msg):
        if err is not None and len(errors) < 5:
            errors.append(str(err))

    value = b"x" * size
    targets = [(t, q) for t in names for q in range(PARTITIONS_PER_TOPIC)]
    t0 = time.monotonic()
    for i in range(records):
        t, q = targets[i % len(targets)]
        while True:
            try:
                p.produce(t, value, partition=q, on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(max(1.0, timeout - (time.monotonic() - t0)))
    elapsed = time.monotonic() - t0
    if left or errors:
        raise RuntimeError(f"{left} records undelivered, errors: {errors}")
    return {"MBps": records * size / elapsed / 1e6, "msgs": records / elapsed,
            "elapsed_s": elapsed}


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cpu_sum(pids):
    vals = [proc_cpu_seconds(p) for p in pids]
    if any(v is None for v in vals):
        raise RuntimeError(f"a broker exited (pids {pids})")
    return sum(vals)


class FjordShrinks:
    """ISR shrinks of a Fjord cluster: the sum of fjord_isr_shrinks_total of its brokers."""

    def __init__(self, cluster):
        self.ports = [n["http"] for n in cluster.nodes]

    def count(self):
        total = 0
        for port in self.ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            total += sum(float(m.group(1)) for m in
                         re.finditer(r"^fjord_isr_shrinks_total(?:\{[^}]*\})? (\S+)$", text,
                                     re.M))
        return int(total)


class KafkaShrinks:
    """ISR shrinks of a Kafka cluster: its leaders' "Shrinking ISR from" log lines."""

    def __init__(self, cluster):
        self.logs = [os.path.join(cluster.dir, f"node-{i + 1}", "server.log")
                     for i in range(len(cluster.pids()))]

    def count(self):
        n = 0
        for path in self.logs:
            try:
                with open(path, errors="replace") as f:
                    n += sum(1 for line in f if "Shrinking ISR from" in line)
            except OSError:
                pass
        return n


def run_point(cluster, shrinks_of, rd, sizes, n_partitions):
    """One point of the curve for one system; returns its figures (None if the cluster did
    not start)."""
    setup = f"scaling-{n_partitions}"
    log(f"{cluster.name} [scaling] {n_partitions} partitions: fresh 3-broker cluster")
    if not cluster.start():
        setup_failed(cluster.name, setup, f"{cluster.name} [scaling {n_partitions}] did not start")
        return None
    r = {}
    step = Steps(cluster.name, setup, r)
    b = cluster.bootstrap
    pids = cluster.pids()
    names = topic_names(n_partitions)
    shrinks = shrinks_of(cluster)
    log(f"{cluster.name} [scaling]: creating {len(names)} topics x {PARTITIONS_PER_TOPIC} "
        f"partitions, RF 3, {TOPICS_PER_REQUEST} topics a request")
    created = step("create_s", lambda: create_topics(b, names))
    if created is None:
        # Without its partitions the point has nothing more to measure.
        cluster.stop()
        return r
    log(f"{cluster.name} [scaling]: settling {sizes['scale_settle_s']} s, then idle CPU over "
        f"{sizes['scale_idle_s']} s")
    time.sleep(sizes["scale_settle_s"])  # the benchmark's settling time, not a wait for state

    def idle():
        s0, c0 = shrinks.count(), cpu_sum(pids)
        time.sleep(sizes["scale_idle_s"])  # the measurement window
        c1, s1 = cpu_sum(pids), shrinks.count()
        r["idle_isr_shrinks"] = s1 - s0
        return (c1 - c0) / sizes["scale_idle_s"] * 100

    step("idle_cpu_pct", idle)
    rss = [rss_mb(p) for p in pids]
    r["rss_mb"] = sum(rss) / len(rss) if all(v is not None for v in rss) else None
    n = sizes["n_scale"]
    log(f"{cluster.name} [scaling]: produce {n} x 1KB acks=all over {n_partitions} partitions")

    def produce():
        s0 = shrinks.count()
        out = produce_spread(b, names, n, 1024, timeout=600)
        out["isr_shrinks"] = shrinks.count() - s0
        return out

    step("produce", produce)
    rate, n_lat = sizes["scale_lat_rate"], sizes["n_scale_lat"]
    log(f"{cluster.name} [scaling]: end-to-end latency at {rate}/s x 1KB acks=all")

    def e2e():
        if not rd.create_topic(b, "scale-lat", [], replication_factor=3):
            raise RuntimeError("could not create topic scale-lat")
        return rd.at_rate(b, "scale-lat", n_lat, 1024, "all", rate, True)

    step("e2e", e2e)
    cluster.stop()
    return r


def run_scaling(root, fjord_bin, work, rd, sizes, one):
    """Both systems, point by point (Kafka then Fjord at each partition count), through
    bench.py's `one` (fresh directory, stop on any exit); results under the setup key
    "scaling" as {"partitions": N, ...figures}."""
    for n in sizes["scale_points"]:
        one(lambda: KafkaCluster(root, work, f"kafka-scale-{n}"),
            lambda c: point(c, KafkaShrinks, rd, sizes, n), "scaling")
        one(lambda: FjordCluster(fjord_bin, work, f"fjord-scale-{n}"),
            lambda c: point(c, FjordShrinks, rd, sizes, n), "scaling")


def point(cluster, shrinks_of, rd, sizes, n):
    try:
        r = run_point(cluster, shrinks_of, rd, sizes, n)
    except Exception as e:  # the point fails, the curve goes on
        setup_failed(cluster.name, f"scaling-{n}", f"{cluster.name} [scaling {n}]: {e!r}")
        r = None
    return {"partitions": n, **(r or {})}


# (name, unit, path into one point's figures, higher_is_better)
SCALING_ROWS = [
    ("idle CPU, 3 brokers", "% of a core", ("idle_cpu_pct",), False),
    ("ISR shrinks while idle", "count", ("idle_isr_shrinks",), False),
    ("broker RSS (mean of 3)", "MB", ("rss_mb",), False),
    ("creation time, 50 topics a request", "s", ("create_s",), False),
    ("produce 1KB acks=all over all partitions", "MB/s", ("produce", "MBps"), True),
    ("ISR shrinks during the produce", "count", ("produce", "isr_shrinks"), False),
    ("end-to-end p99 at fixed rate, acks=all", "ms", ("e2e", "e2e_p99"), False),
]


def scaling_rows(res, points):
    """One row per figure and partition count; a system's missing figure names the error
    of its step (or of its whole point)."""
    rows = []
    by = {s: {p.get("partitions"): p for p in res[s].get("scaling", []) if p}
          for s in ("kafka", "fjord")}
    for n in points:
        for name, unit, path, hib in SCALING_ROWS:
            row = {"name": f"{name}, {n:,} partitions", "unit": unit, "partitions": n,
                   "figure": name, "client": "confluent-kafka" if path[0] == "produce"
                   else ("librdkafka" if path[0] == "e2e" else "-"),
                   "higher_is_better": hib}
            for s in ("kafka", "fjord"):
                v = by[s].get(n, {})
                for k in path:
                    v = v.get(k) if isinstance(v, dict) else None
                row[s] = round(v, 3) if isinstance(v, float) else v
                row[f"{s}_runs"] = [row[s]]
                if v is None:
                    errs = (STEP_ERRORS.get((s, f"scaling-{n}", path[0]))
                            or STEP_ERRORS.get((s, f"scaling-{n}", "*"))
                            or STEP_ERRORS.get((s, "scaling", "*")))
                    if errs:
                        row[f"{s}_error"] = errs[0]
            rows.append(row)
    return rows
