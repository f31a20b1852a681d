#!/usr/bin/env python3
"""Topic-creation latency as a cluster fills up: creates topics one at a time through
confluent-kafka's AdminClient (one partition, replication factor 1) and prints the
median and maximum latency of a first batch, the time to create `bulk` more, and the
latency of a last batch.

    python3 e2e/bench/topic_create_latency.py BOOTSTRAP [BULK] [SAMPLE]

Run it with the Python venv `e2e/compat.sh` creates (it has confluent-kafka), against
for example `fjord dev --brokers 3`. A figure, not a test.
"""
import sys
import time
import uuid

from confluent_kafka.admin import AdminClient, NewTopic


def create(admin, names):
    for f in admin.create_topics([NewTopic(n, 1, 1) for n in names], operation_timeout=30).values():
        f.result()


def sample(admin, prefix, n):
    took = []
    for i in range(n):
        t0 = time.monotonic()
        create(admin, [f"{prefix}-{i}"])
        took.append(time.monotonic() - t0)
    took.sort()
    return f"p50 {took[len(took) // 2] * 1000:.1f} ms, max {took[-1] * 1000:.1f} ms"


def main():
    bootstrap = sys.argv[1]
    bulk = int(sys.argv[2]) if len(sys.argv) > 2 else 1600
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    run = uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    print(f"first {n} creates: {sample(admin, f'lat-{run}-first', n)}")
    t0 = time.monotonic()
    # Requests in flight together, one topic each, as an operator reconciling many
    # Topic resources sends them.
    futures = {}
    for i in range(bulk):
        futures.update(admin.create_topics([NewTopic(f"lat-{run}-bulk-{i}", 1, 1)], operation_timeout=30))
    for f in futures.values():
        f.result()
    print(f"{bulk} more topics created in {time.monotonic() - t0:.1f} s")
    print(f"last {n} creates: {sample(admin, f'lat-{run}-last', n)}")


if __name__ == "__main__":
    main()
