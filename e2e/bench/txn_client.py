#!/usr/bin/env python3
"""A transactional load generator on confluent-kafka (librdkafka): COUNT records of SIZE
bytes to one topic, exactly PER_TXN records in each transaction (the last one may hold
fewer), acks=all with idempotence as transactions require, and the producer settings of
the other librdkafka rows (linger.ms 5, batch.size 1 MB). Kafka's ProducerPerformance can
only end a transaction on a timer, so its transactions grow with the broker's speed; this
one holds their size fixed, which is what the transactional rows compare.

    txn_client.py --bootstrap B --topic T --count N --size S --per-txn 100 [--timeout-s 600]

Prints one JSON object on stdout: {"records", "bytes", "transactions", "elapsed_s",
"MBps", "msgs_per_s", "txns_per_s", "commit_ms_p50", "commit_ms_max"}. Any delivery error
or transaction error ends the run with exit status 1 and the error on stderr: no figure is
reported from a failed run.
"""
import argparse
import json
import sys
import time

# How long init_transactions may take: a broker without a transaction coordinator answers
# FindCoordinator with a retriable error for ever, and the run must fail, not wait out its
# whole deadline (Java's producer bounds it by max.block.ms, 60 s by default).
INIT_TIMEOUT_S = 60.0
# The bound of the producer's local queue, as librdkafka's default; a full queue is
# drained by poll() before the record is offered again.
QUEUE_POLL_S = 0.05


class TxnRunError(Exception):
    """A run that cannot give a figure: a delivery failed, a transaction call failed, or
    the deadline passed."""


def summary(records, size, elapsed_s, commits_ms):
    """The run's figures from its record count, record size, elapsed seconds and the
    duration of each commit (ms); MB are 10^6 bytes, as every other row's."""
    if elapsed_s <= 0:
        raise TxnRunError(f"elapsed time {elapsed_s} s is not positive")
    txns = len(commits_ms)
    ordered = sorted(commits_ms)
    return {"records": records, "bytes": records * size, "transactions": txns,
            "elapsed_s": round(elapsed_s, 3),
            "MBps": round(records * size / elapsed_s / 1e6, 2),
            "msgs_per_s": round(records / elapsed_s, 1),
            "txns_per_s": round(txns / elapsed_s, 2),
            "commit_ms_p50": round(ordered[len(ordered) // 2], 2) if ordered else None,
            "commit_ms_max": round(ordered[-1], 2) if ordered else None}


def transaction_sizes(count, per_txn):
    """The record count of each transaction: full ones of `per_txn`, then the rest."""
    if count < 1 or per_txn < 1:
        raise ValueError(f"count {count} and per-txn {per_txn} must both be at least 1")
    full, rest = divmod(count, per_txn)
    return [per_txn] * full + ([rest] if rest else [])


def run(bootstrap, topic, count, size, per_txn, timeout_s):
    # The arguments are checked before any connection is made.
    sizes = transaction_sizes(count, per_txn)
    if size < 1 or timeout_s <= 0:
        raise ValueError(f"record size {size} and timeout {timeout_s} s must be positive")
    from confluent_kafka import KafkaException, Producer

    deadline = time.monotonic() + timeout_s
    errors = []

    def delivered(err, _msg):
        if err is not None and not errors:
            errors.append(str(err))

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-txn-{topic}",
                  "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                  "batch.size": 1_000_000, "transaction.timeout.ms": 60_000,
                  "message.timeout.ms": 60_000})
    payload = b"x" * size
    stage = "init_transactions"
    try:
        p.init_transactions(min(INIT_TIMEOUT_S, max(1.0, deadline - time.monotonic())))
        commits = []
        start = time.monotonic()
        for n in sizes:
            stage = f"transaction {len(commits) + 1}"
            p.begin_transaction()
            for _ in range(n):
                while True:
                    try:
                        p.produce(topic, payload, on_delivery=delivered)
                        break
                    except BufferError:
                        p.poll(QUEUE_POLL_S)
                p.poll(0)
            c0 = time.monotonic()
            if c0 > deadline:
                raise TxnRunError(f"deadline of {timeout_s} s passed after "
                                  f"{len(commits)} transactions")
            # commit_transaction flushes the transaction's records first: its time is the
            # last batch's acknowledgement plus EndTxn.
            p.commit_transaction(max(1.0, deadline - c0))
            commits.append((time.monotonic() - c0) * 1000)
            if errors:
                raise TxnRunError(f"delivery failed: {errors[0]}")
        elapsed = time.monotonic() - start
    except KafkaException as e:
        raise TxnRunError(f"{stage} failed: {e}") from e
    return summary(count, size, elapsed, commits)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--per-txn", type=int, default=100)
    ap.add_argument("--timeout-s", type=float, default=600)
    a = ap.parse_args(argv)
    try:
        report = run(a.bootstrap, a.topic, a.count, a.size, a.per_txn, a.timeout_s)
    except (TxnRunError, ValueError) as e:
        print(f"txn_client: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
