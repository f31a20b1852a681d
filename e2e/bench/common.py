"""What every part of the bench shares: the log, the list of failed workloads, and the
per-process figures read from /proc."""
import os
import socket
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The same java the Kafka launcher picks.
JAVA = os.environ.get("JAVA") or (os.path.join(os.environ["JAVA_HOME"], "bin", "java")
                                  if os.environ.get("JAVA_HOME") else "java")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False



FAILURES = []
# The errors of failed steps, by (system, setup, step key): a row whose figure is missing
# for a system names the error that left it so. The key "*" stands for the whole setup
# (the system did not start).
STEP_ERRORS = {}
# Steps made to fail on purpose, to check that a failure stays within its own rows:
# BENCH_FAIL_STEPS=cold_start_s,kafka:rp1k_3p (the keys of run figures, as in table.py,
# for both systems or, prefixed, for one).
FORCED_FAILURES = {k.strip() for k in os.environ.get("BENCH_FAIL_STEPS", "").split(",")
                   if k.strip()}


def fail(msg):
    """A workload that failed: logged now, listed again under the table and in
    results.json, and its figure left null."""
    FAILURES.append(msg)
    log(f"FAILED: {msg}")


class Steps:
    """The steps of one system in one setup, each filling its own key of `figures`. A step
    that raises or gives nothing fails its own rows only, with the error it logged; the
    setup's other steps still run."""

    def __init__(self, system, setup, figures):
        self.system, self.setup, self.figures = system, setup, figures

    def __call__(self, key, fn):
        logged = len(FAILURES)
        try:
            if key in FORCED_FAILURES or f"{self.system}:{key}" in FORCED_FAILURES:
                raise RuntimeError(f"step {key} forced to fail by BENCH_FAIL_STEPS")
            value = fn()
        except Exception as e:  # a figure, never a failure of the run
            fail(f"{self.system} [{self.setup}] {key}: {e!r}")
            value = None
        if value is None:
            errors = FAILURES[logged:] or [f"{self.system} [{self.setup}] {key}: no figure"]
            STEP_ERRORS.setdefault((self.system, self.setup, key), []).extend(errors)
        self.figures[key] = value
        return value


def setup_failed(system, setup, msg):
    """The whole setup of a system failed (it did not start): every row of it says so."""
    fail(msg)
    STEP_ERRORS.setdefault((system, setup, "*"), []).append(msg)


# ---------------------------------------------------------------- /proc

def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is state (field 3); utime, stime are fields 14, 15
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def proc_hwm_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cpu_seconds_of(pids):
    """The CPU seconds of one process, or the sum over a list of them (a cluster); None if
    any cannot be read."""
    cpus = [proc_cpu_seconds(p) for p in (pids if isinstance(pids, (list, tuple)) else [pids])]
    return None if not cpus or None in cpus else sum(cpus)


def measured(broker_pid, fn):
    """Runs one workload; adds the broker's CPU seconds across it to the result
    (`broker_pid`: one process, or a list of them whose CPU seconds are summed)."""
    cpu0 = cpu_seconds_of(broker_pid)
    r = fn()
    cpu1 = cpu_seconds_of(broker_pid)
    if r is not None and cpu0 is not None and cpu1 is not None:
        r["broker_cpu_s"] = cpu1 - cpu0
    return r
