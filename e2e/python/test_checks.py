"""The checkers the suites rely on must be able to fail: each kind of damage a broker could
do to a round trip (loss, duplication, reordering, a wrong offset or key) is caught.
Pure: needs no broker."""

import os
import subprocess

import pytest

from conftest import KEYS, check_round_trip

KCAT_CHECK = os.path.join(os.path.dirname(__file__), "..", "kcat-check.awk")


def round_trip(n=64):
    """(sent, got) as a correct broker gives them: 2 partitions, keys k0..k7."""
    sent, got, next_off = {}, [], {0: 0, 1: 0}
    for i in range(n):
        key = f"k{i % KEYS}"
        p = 0 if i % KEYS < 4 else 1
        sent[f"{key}-{i}"] = (key, p, next_off[p])
        got.append((key, f"{key}-{i}", p, next_off[p]))
        next_off[p] += 1
    return sent, got


def test_round_trip_checker_accepts_a_correct_read():
    check_round_trip(*round_trip())


@pytest.mark.parametrize("damage", ["lost", "duplicated", "reordered", "wrong offset", "wrong key"])
def test_round_trip_checker_catches(damage):
    sent, got = round_trip()
    if damage == "lost":
        del got[10]
    elif damage == "duplicated":
        got.insert(11, got[10])
    elif damage == "reordered":
        got[8], got[16] = got[16], got[8]  # same key k0, swapped
    elif damage == "wrong offset":
        k, v, p, o = got[5]
        got[5] = (k, v, p, o + 1)
    elif damage == "wrong key":
        k, v, p, o = got[5]
        got[5] = ("k7", v, p, o)
    with pytest.raises(AssertionError):
        check_round_trip(sent, got)


def kcat_lines(n=64, keys=4):
    lines, next_off = [], {0: 0, 1: 0}
    for i in range(n):
        p = 0 if i % keys < 2 else 1
        lines.append(f"k{i % keys} {i} {p} {next_off[p]}")
        next_off[p] += 1
    return lines


def run_kcat_check(lines, n=64, keys=4):
    return subprocess.run(["awk", "-v", f"n={n}", "-v", f"k={keys}", "-f", KCAT_CHECK],
                          input="\n".join(lines) + "\n", capture_output=True, text=True)


def test_kcat_checker_accepts_a_correct_read():
    r = run_kcat_check(kcat_lines())
    assert r.returncode == 0, r.stdout


@pytest.mark.parametrize("damage", ["lost", "duplicated", "reordered", "wrong offset",
                                    "wrong key", "one partition"])
def test_kcat_checker_catches(damage):
    lines = kcat_lines()
    if damage == "lost":
        del lines[10]
    elif damage == "duplicated":
        lines.insert(11, lines[10])
    elif damage == "reordered":
        lines[8], lines[12] = lines[12], lines[8]
    elif damage == "wrong offset":
        k, v, p, o = lines[5].split()
        lines[5] = f"{k} {v} {p} {int(o) + 1}"
    elif damage == "wrong key":
        k, v, p, o = lines[5].split()
        lines[5] = f"k3 {v} {p} {o}"
    elif damage == "one partition":
        lines = [f"k{i % 4} {i} 0 {i}" for i in range(64)]
    r = run_kcat_check(lines)
    assert r.returncode != 0, f"{damage} not caught: {r.stdout}"
