"""The group suites' checkers must be able to fail: a record lost, read twice, read at the
wrong place, never sent, or read by a member that does not hold its partition is caught;
wait_for_balance does not accept an overlapping or incomplete assignment. Pure: no broker."""

import pytest

from groups_common import check_exactly_once, check_read_by_owner, wait_for_balance


def group_read():
    """(sent, got, owners) as a correct group gives them: 2 members, 4 partitions."""
    owners = {"a": {0, 1}, "b": {2, 3}}
    sent, got = {}, []
    for p in range(4):
        for o in range(5):
            value = f"v-p{p}-{o}"
            sent[value] = (p, o)
            got.append(("a" if p < 2 else "b", p, o, value))
    return sent, got, owners


def test_group_checkers_accept_a_correct_read():
    sent, got, owners = group_read()
    check_exactly_once(sent, got)
    check_read_by_owner(got, owners)


@pytest.mark.parametrize("damage", ["lost", "read twice", "wrong offset", "never sent", "not the owner"])
def test_group_checkers_catch(damage):
    sent, got, owners = group_read()
    if damage == "lost":
        del got[7]
    elif damage == "read twice":
        got.append(got[3])
    elif damage == "wrong offset":
        m, p, o, v = got[3]
        got[3] = (m, p, o + 1, v)
    elif damage == "never sent":
        got.append(("a", 0, 99, "v-p0-99"))
    elif damage == "not the owner":
        m, p, o, v = got[0]
        got[0] = ("b", p, o, v)
    with pytest.raises(AssertionError):
        check_exactly_once(sent, got)
        check_read_by_owner(got, owners)


class FakeMember:
    def __init__(self, name, assignment):
        self.name, self.assignment = name, frozenset(assignment)

    def check_alive(self):
        pass


@pytest.mark.parametrize("assignments", [
    [{0, 1}, {1, 2}],        # partition 1 held twice
    [{0, 1}, {2}],           # partition 3 held by nobody
    [{0, 1, 2, 3}, set()],   # a member without partitions
])
def test_balance_wait_rejects(assignments):
    members = [FakeMember(f"m{i}", a) for i, a in enumerate(assignments)]
    with pytest.raises(pytest.fail.Exception):
        wait_for_balance(members, 4, deadline_s=0.3)


def test_balance_wait_accepts_a_balanced_group():
    wait_for_balance([FakeMember("a", {0, 1}), FakeMember("b", {2, 3})], 4, each=2, deadline_s=0.3)
