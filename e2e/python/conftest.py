"""Shared fixtures: the broker under test is only a bootstrap address (FJORD_BOOTSTRAP)."""

import os
import time
import uuid

import pytest

DEADLINE_S = 60.0
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
KEYS = 8
# Replication factor of the topics the suites create: 1 against one broker, 3 against a
# 3-broker cluster (FJORD_REPLICATION_FACTOR).
REPLICATION_FACTOR = int(os.environ.get("FJORD_REPLICATION_FACTOR", "1"))


@pytest.fixture(scope="session")
def bootstrap():
    b = os.environ.get("FJORD_BOOTSTRAP", "").strip()
    if not b:
        pytest.fail("set FJORD_BOOTSTRAP to the broker's host:port")
    return b


def unique_topic(what):
    """Topic names are unique per run, so the suite can run again against the same broker."""
    return f"e2e-py-{what}-{uuid.uuid4().hex[:8]}"


def wait_until(what, condition, deadline_s=DEADLINE_S):
    """Polls a condition until it holds; fails the test at the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            if condition():
                return
        except Exception as e:  # a condition may raise until the broker catches up
            last = e
        else:
            last = None
        if time.monotonic() > end:
            pytest.fail(f"not true within {deadline_s}s: {what} (last error: {last!r})")
        time.sleep(0.1)  # poll interval, not a synchronisation


def check_round_trip(sent, got):
    """sent: {value: (key, partition, offset)} as the producer was told; got: consumed
    (key, value, partition, offset) in the order read. Every record exactly once, at its
    offset, and per key in the order sent (values end in their sequence number)."""
    seen = set()
    last_seq = {}
    for key, value, partition, offset in got:
        assert value in sent, f"read a record that was never sent: {value!r}"
        assert value not in seen, f"read twice: {value!r}"
        seen.add(value)
        assert sent[value] == (key, partition, offset), (
            f"{value!r}: read as (key, partition, offset) {(key, partition, offset)}, "
            f"producer was told {sent[value]}")
        seq = int(value.rsplit("-", 1)[1])
        assert last_seq.get(key, -1) < seq, f"key {key}: {seq} read after {last_seq[key]}"
        last_seq[key] = seq
    assert len(seen) == len(sent), f"read {len(seen)} distinct records of {len(sent)}"
    assert len(last_seq) == KEYS


def check_dense_offsets(sent):
    """A fresh topic's partitions get offsets 0.. with no gaps."""
    by_partition = {}
    for _key, partition, offset in sent.values():
        by_partition.setdefault(partition, []).append(offset)
    for p, offsets in by_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {p} offsets not dense from 0"
    assert len(by_partition) > 1, f"all records went to partitions {list(by_partition)}"
