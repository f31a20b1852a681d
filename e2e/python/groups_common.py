"""Consumer-group helpers shared by the kafka-python and confluent-kafka group suites.

A group member polls on its own thread (a consumer belongs to one thread, and a member
that stops polling cannot take part in a rebalance), appends what it reads to a sink the
test shares, and exposes the partitions the group gave it."""

import threading
import uuid

from conftest import wait_until

# Short enough that a member gone without leaving is noticed within a test's deadline; the
# broker's minimum (group.min.session.timeout.ms) is 6000.
SESSION_TIMEOUT_MS = 10000
HEARTBEAT_INTERVAL_MS = 1000


def unique_group(what):
    return f"e2e-py-group-{what}-{uuid.uuid4().hex[:8]}"


class Member:
    """Subclasses open(), poll() -> [(partition, offset, value)], commit() and
    close_consumer(), all called on the member's thread, and call assigned()/revoked()
    from their rebalance callbacks."""

    def __init__(self, name, sink, commit_each_batch=True):
        self.name = name
        self.sink = sink
        self.commit_each_batch = commit_each_batch
        self.assignment = frozenset()
        self.revocations = 0
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"member-{name}", daemon=True)
        self._thread.start()

    def assigned(self, partitions):
        self.assignment = frozenset(partitions)

    def revoked(self, partitions):
        if partitions:
            self.revocations += 1
        self.assignment = frozenset()

    def _run(self):
        try:
            self.open()
            while not self._stop.is_set():
                got = self.poll()
                for partition, offset, value in got:
                    self.sink.append((self.name, partition, offset, value))
                if got and self.commit_each_batch:
                    self.commit()
        except Exception as e:  # reported to the test by check_alive / close
            self.error = e
        finally:
            try:
                self.close_consumer()
            except Exception as e:
                self.error = self.error or e
            self.assignment = frozenset()

    def check_alive(self):
        if self.error is not None:
            raise AssertionError(f"member {self.name} failed: {self.error!r}") from self.error
        assert self._thread.is_alive(), f"member {self.name} stopped"

    def close(self):
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), f"member {self.name} did not close within 60 s"
        if self.error is not None:
            raise AssertionError(f"member {self.name} failed: {self.error!r}") from self.error


def close_all(members):
    errors = []
    for m in members:
        try:
            m.close()
        except AssertionError as e:
            errors.append(e)
    if errors:
        raise errors[0]


def wait_for_balance(members, partitions, each=None, deadline_s=None):
    """Until the members hold every partition exactly once between them, each holding
    `each` partitions (or at least one)."""
    def balanced():
        for m in members:
            m.check_alive()
        sizes = [len(m.assignment) for m in members]
        wanted = (lambda s: s == each) if each is not None else (lambda s: s > 0)
        if not all(wanted(s) for s in sizes):
            return False
        union = set().union(*(m.assignment for m in members))
        return sum(sizes) == partitions and union == set(range(partitions))
    what = f"{len(members)} members share {partitions} partitions"
    if deadline_s is None:
        wait_until(what, balanced)
    else:
        wait_until(what, balanced, deadline_s)


def wait_for_values(sink, values, members):
    def all_read():
        for m in members:
            m.check_alive()
        return set(values) <= {v for _, _, _, v in list(sink)}
    wait_until(f"all {len(values)} records read", all_read)


def check_genuine(sent, got):
    """sent: {value: (partition, offset)}; got: [(member, partition, offset, value)]. Every
    record read was sent, and read at the place it was written to."""
    for member, partition, offset, value in got:
        assert value in sent, f"{member} read a record that was never sent: {value!r}"
        assert sent[value] == (partition, offset), (
            f"{member} read {value!r} at {(partition, offset)}, it was written at {sent[value]}")


def check_exactly_once(sent, got):
    check_genuine(sent, got)
    counts = {}
    for _, _, _, value in got:
        counts[value] = counts.get(value, 0) + 1
    twice = [v for v, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} records read more than once, e.g. {twice[:5]}"
    missing = set(sent) - set(counts)
    assert not missing, f"{len(missing)} records never read, e.g. {sorted(missing)[:5]}"


def check_read_by_owner(got, owners):
    """owners: {member name: set of partitions}; each record was read by its partition's owner."""
    for member, partition, offset, value in got:
        assert member in owners, f"record read by unexpected member {member}"
        assert partition in owners[member], (
            f"{member} read partition {partition} it does not hold ({sorted(owners[member])}): {value}")


def ends(sent):
    """Per partition, one past the highest offset the producer was told about."""
    out = {}
    for partition, offset in sent.values():
        out[partition] = max(out.get(partition, 0), offset + 1)
    return out


def owners(members):
    return {m.name: set(m.assignment) for m in members}


def partitions_read_by(got, member):
    return {p for m, p, _, _ in got if m == member}
