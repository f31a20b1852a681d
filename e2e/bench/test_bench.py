"""Tests of the benchmark's bookkeeping (no broker): a failed step fails its own rows
only, with its error, and the generated README sections. Run with
`python3 -m unittest discover -s e2e/bench -p 'test_*.py'`."""
import os
import tempfile
import unittest

import common
import scaling
import security
import table
import txn
import txn_client


def reset():
    common.FAILURES.clear()
    common.STEP_ERRORS.clear()
    common.FORCED_FAILURES.clear()


class StepsTest(unittest.TestCase):
    def setUp(self):
        reset()

    def test_a_raising_step_fails_only_its_own_key(self):
        r = {}
        step = common.Steps("kafka", "default", r)
        step("cold_start_s", lambda: (_ for _ in ()).throw(FileNotFoundError("kcat")))
        step("p1k", lambda: {"MBps": 300.0})
        self.assertIsNone(r["cold_start_s"])
        self.assertEqual(r["p1k"], {"MBps": 300.0})
        errs = common.STEP_ERRORS[("kafka", "default", "cold_start_s")]
        self.assertIn("FileNotFoundError", errs[0])
        self.assertNotIn(("kafka", "default", "p1k"), common.STEP_ERRORS)

    def test_a_step_without_figure_keeps_the_error_its_client_logged(self):
        r = {}
        step = common.Steps("fjord", "default", r)
        step("acksall", lambda: common.fail("fjord-bench produce exited 1: timed out"))
        self.assertEqual(common.STEP_ERRORS[("fjord", "default", "acksall")],
                         ["fjord-bench produce exited 1: timed out"])

    def test_a_forced_failure_fails_that_step(self):
        common.FORCED_FAILURES.add("p1k")
        r = {}
        ran = []
        common.Steps("fjord", "default", r)("p1k", lambda: ran.append(1) or {"MBps": 1.0})
        self.assertEqual(ran, [])
        self.assertIsNone(r["p1k"])
        self.assertIn("BENCH_FAIL_STEPS", common.STEP_ERRORS[("fjord", "default", "p1k")][0])

    def test_a_forced_failure_names_its_system(self):
        common.FORCED_FAILURES.add("kafka:cold_start_s")
        k, f = {}, {}
        common.Steps("kafka", "default", k)("cold_start_s", lambda: 4.0)
        common.Steps("fjord", "default", f)("cold_start_s", lambda: 0.1)
        self.assertEqual((k["cold_start_s"], f["cold_start_s"]), (None, 0.1))


class CpuTest(unittest.TestCase):
    def test_a_cluster_cpu_figure_is_the_sum_or_nothing(self):
        me = common.proc_cpu_seconds(os.getpid())
        self.assertGreaterEqual(common.cpu_seconds_of([os.getpid(), os.getpid()]), 2 * me)
        # A process that is gone leaves no figure rather than a part of one.
        self.assertIsNone(common.cpu_seconds_of([os.getpid(), None]))
        self.assertIsNone(common.cpu_seconds_of([]))


class RowsTest(unittest.TestCase):
    def setUp(self):
        reset()

    def test_a_failed_step_marks_its_rows_and_keeps_the_others(self):
        kafka, fjord = {}, {}
        common.Steps("kafka", "default", kafka)("cold_start_s", lambda: None)
        kafka["p1k"] = {"MBps": 250.0, "msgs": 1.0}
        fjord.update({"cold_start_s": 0.1, "p1k": {"MBps": 600.0, "msgs": 2.0}})
        res = {"kafka": {"default": [kafka]}, "fjord": {"default": [fjord]}}
        rows = {(r["name"], r["unit"]): r for r in table.build_rows(res, table.ROWS)}
        cold = rows[("cold start", "s")]
        self.assertIsNone(cold["kafka"])
        self.assertIn("no figure", cold["kafka_error"])
        self.assertEqual(table.cell(cold, "kafka"), "FAILED")
        self.assertEqual(cold["fjord"], 0.1)
        p1k = rows[("produce 1KB acks=1 1 broker", "MB/s")]
        self.assertEqual((p1k["kafka"], p1k["fjord"]), (250.0, 600.0))
        self.assertNotIn("kafka_error", p1k)

    def test_a_setup_that_did_not_start_names_its_error_in_every_row(self):
        common.setup_failed("kafka", "default", "kafka [default] did not start")
        res = {"kafka": {"default": [None]}, "fjord": {"default": [{"cold_start_s": 0.1}]}}
        rows = table.build_rows(res, table.ROWS)
        self.assertTrue(all(r.get("kafka_error") == "kafka [default] did not start"
                            for r in rows if r.get("note") is None))

    def test_cpu_seconds_of_partition_rows_are_per_gb(self):
        res = {"kafka": {"default": [{"rp1k_3p": {"MBps": 1.0, "broker_cpu_s": 1.5}}]},
               "fjord": {"default": [{"rp1k_3p": {"MBps": 2.0, "broker_cpu_s": 0.3}}]}}
        rows = table.build_rows(res, table.ROWS, gb_of_parts=0.3)
        r = next(r for r in rows if r["name"].startswith("broker CPU seconds per GB, produce "
                                                          "1KB, 3 partitions"))
        self.assertEqual((r["kafka"], r["fjord"]), (5.0, 1.0))


class SecurityStepsTest(unittest.TestCase):
    """run_security with stand-ins for the broker and clients: a failing SSL produce fails
    the SSL rows that depend on it, and the SASL_SSL rows still get their figures."""

    def setUp(self):
        reset()
        self.negotiated = security.negotiated
        security.negotiated = lambda port, ca: "TLSv1.3"

    def tearDown(self):
        security.negotiated = self.negotiated

    def test_a_failed_produce_fails_its_own_rows_only(self):
        class Certs:
            ca = "ca.pem"

            def librdkafka(self, proto):
                return [proto]

        class Broker:
            name, certs, tls_ports = "fjord", Certs(), {"SSL": 1, "SASL_SSL": 2}

            def launch(self):
                return True

            def wait_ready(self, _started):
                return True

            def pid(self):
                return os.getpid()

            def bootstrap_for(self, proto):
                return proto

            def stop(self):
                pass

        class Rd:
            def create_topic(self, *_a, **_k):
                return True

            def produce(self, bootstrap, topic, *_a, **_k):
                if topic == "ssl-p1k":
                    raise ConnectionError("handshake refused")
                return {"MBps": 100.0}

            def consume(self, *_a, **_k):
                return {"MBps": 200.0}

        sizes = {"java_rounds": 0, "n_tls1k": 1000, "n_jtls1k": 0, "n_warm": 10}
        r = security.run_security(Broker(), Rd(), None, sizes, 0)
        self.assertIsNone(r["ssl_p1k"])
        self.assertIsNone(r["ssl_consume"])
        self.assertIn("handshake refused",
                      common.STEP_ERRORS[("fjord", "security", "ssl_p1k")][0])
        self.assertEqual(r["sasl_ssl_p1k"]["MBps"], 100.0)
        self.assertEqual(r["sasl_ssl_consume"]["MBps"], 200.0)
        res = {"kafka": {}, "fjord": {"security": [r]}}
        rows = {row["name"]: row for row in table.build_rows(res, security.rows())}
        self.assertEqual(table.cell(rows["produce 1KB acks=1 1 broker SSL"], "fjord"), "FAILED")
        self.assertEqual(rows["produce 1KB acks=1 1 broker SASL_SSL"]["fjord"], 100.0)


class ScalingRowsTest(unittest.TestCase):
    def setUp(self):
        reset()

    def test_a_point_that_fell_over_is_a_failed_row_and_the_others_stay(self):
        common.setup_failed("fjord", "scaling-10000", "fjord [scaling 10000]: TimeoutError()")
        res = {"kafka": {"scaling": [{"partitions": 100, "idle_cpu_pct": 8.0},
                                     {"partitions": 10000, "idle_cpu_pct": 20.0}]},
               "fjord": {"scaling": [{"partitions": 100, "idle_cpu_pct": 1.0},
                                     {"partitions": 10000}]}}
        rows = scaling.scaling_rows(res, [100, 10000])
        idle = {r["partitions"]: r for r in rows if r["figure"].startswith("idle CPU")}
        self.assertEqual((idle[100]["kafka"], idle[100]["fjord"]), (8.0, 1.0))
        self.assertEqual(idle[10000]["kafka"], 20.0)
        self.assertIsNone(idle[10000]["fjord"])
        self.assertIn("TimeoutError", idle[10000]["fjord_error"])
        self.assertIn("FAILED", table.scaling_table(rows))


class ReadmeTest(unittest.TestCase):
    def setUp(self):
        reset()

    def test_only_the_generated_sections_are_rewritten(self):
        res = {"kafka": {"scaling": [{"partitions": 100, "idle_cpu_pct": 8.0}]},
               "fjord": {"scaling": [{"partitions": 100, "idle_cpu_pct": 1.0}]}}
        scale = scaling.scaling_rows(res, [100])
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "README.md")
            with open(path, "w") as f:
                f.write("head\n<!-- bench:scaling -->\nold\n<!-- /bench:scaling -->\ntail\n"
                        "<!-- bench:partitions -->\nkept\n<!-- /bench:partitions -->\n")
            done = table.write_readme(path, [], scale, {"cores": 2, "date": "today",
                                                        "loadavg_at_start": (3.0, 0, 0),
                                                        "loadavg_at_end": (4.5, 0, 0)})
            with open(path) as f:
                text = f.read()
        self.assertEqual(done, ["scaling"])
        self.assertNotIn("old", text)
        self.assertIn("| 8 / 1 ", text)
        self.assertIn("load average 3.0 at the start and 4.5 at the end", text)
        self.assertIn("kept", text)
        self.assertTrue(text.startswith("head\n") and "tail\n" in text)


    def test_headline_partition_and_tls_rows_go_to_their_own_sections(self):
        res = {"kafka": {"default": [{"p1k": {"MBps": 300.0}, "rp1k_3p": {"MBps": 500.0}}],
                         "security": [{"ssl_p1k": {"MBps": 150.0}}]},
               "fjord": {"default": [{"p1k": {"MBps": 600.0}, "rp1k_3p": {"MBps": 900.0}}],
                         "security": [{"ssl_p1k": {"MBps": 310.0}}]}}
        rows = table.build_rows(res, table.ROWS + security.rows())
        sections = "".join(f"<!-- bench:{n} -->\nSTALE\n<!-- /bench:{n} -->\n"
                           for n in ("main", "partitions", "tls"))
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "README.md")
            with open(path, "w") as f:
                f.write(sections)
            done = table.write_readme(path, rows, [], {"cores": 2, "date": "today"})
            with open(path) as f:
                text = f.read()
        self.assertEqual(done, ["main", "partitions", "tls"])
        main, parts, tls = (text.split(f"<!-- bench:{n} -->")[1].split("<!-- /bench")[0]
                            for n in ("main", "partitions", "tls"))
        self.assertIn("| produce 1KB acks=1 1 broker ", main)
        self.assertIn("n/a (full run only)", main)
        self.assertNotIn("partitions", main)
        self.assertNotIn("SSL", main)
        self.assertIn("3 partitions", parts)
        self.assertIn("| produce 1KB acks=1 1 broker SSL ", tls)
        self.assertNotIn("STALE", text)


class TxnClientTest(unittest.TestCase):
    def test_transactions_hold_exactly_per_txn_records_and_the_last_the_rest(self):
        self.assertEqual(txn_client.transaction_sizes(250, 100), [100, 100, 50])
        self.assertEqual(txn_client.transaction_sizes(200, 100), [100, 100])
        self.assertEqual(txn_client.transaction_sizes(1, 100), [1])
        with self.assertRaises(ValueError):
            txn_client.transaction_sizes(0, 100)
        with self.assertRaises(ValueError):
            txn_client.transaction_sizes(100, 0)

    def test_summary_counts_megabytes_transactions_and_commit_times(self):
        s = txn_client.summary(1000, 1000, 2.0, [10.0, 30.0, 20.0, 40.0, 50.0,
                                                 60.0, 70.0, 80.0, 90.0, 100.0])
        self.assertEqual((s["MBps"], s["msgs_per_s"], s["txns_per_s"]), (0.5, 500.0, 5.0))
        self.assertEqual((s["transactions"], s["commit_ms_p50"], s["commit_ms_max"]),
                         (10, 60.0, 100.0))
        with self.assertRaises(txn_client.TxnRunError):
            txn_client.summary(1000, 1000, 0.0, [1.0])

    def test_bad_arguments_exit_non_zero_without_a_report(self):
        self.assertEqual(txn_client.main(["--bootstrap", "b", "--topic", "t",
                                          "--count", "0"]), 1)


class TxnRowsTest(unittest.TestCase):
    def setUp(self):
        reset()

    def test_the_report_is_the_last_json_line_after_librdkafka_logs(self):
        out = ('%4|1796500601.383|GETPID|rdkafka#producer-1| retrying\n'
               '{"MBps": 2.0, "transactions": 3}\n')
        self.assertEqual(txn.parse_report(out), {"MBps": 2.0, "transactions": 3})
        self.assertIsNone(txn.parse_report("% no report\n"))
        self.assertIsNone(txn.parse_report('{"truncated": \n'))

    def test_transactions_are_the_commit_markers_past_the_records(self):
        self.assertEqual(txn.committed_transactions(50_029, 50_000), 29)
        # No marker: the producer committed nothing, which is no figure.
        with self.assertRaises(ValueError):
            txn.committed_transactions(50_000, 50_000)
        r = txn.with_transactions({"MBps": 2.5, "msgs": 2_500.0}, 30_000, lambda: 30_300)
        self.assertEqual((r["transactions"], r["records_per_txn"]), (300, 100.0))
        self.assertAlmostEqual(r["txns_per_s"], 25.0)
        self.assertIsNone(txn.with_transactions(None, 30_000, lambda: 1 / 0))

    def test_several_reads_give_the_median_one_and_a_failed_read_gives_none(self):
        runs = [{"MBps": 900.0}, {"MBps": 300.0}, {"MBps": 600.0}]
        self.assertEqual(txn.median_run(runs), {"MBps": 600.0,
                                                "MBps_runs": [900.0, 300.0, 600.0]})
        self.assertEqual(txn.median_run(runs[:2])["MBps"], 300.0)
        self.assertIsNone(txn.median_run([{"MBps": 1.0}, None]))
        self.assertIsNone(txn.median_run([]))

    def test_a_client_that_fails_gives_no_figure_and_names_its_error(self):
        with tempfile.TemporaryDirectory() as d:
            script = os.path.join(d, "client.py")
            with open(script, "w") as f:
                f.write("import sys\nprint('{\"MBps\": 1}')\n"
                        "sys.exit('txn_client: transaction failed: fenced')\n")
            client = txn.TxnClient()
            client.script = script
            self.assertIsNone(client.produce("b", "txn1k", 100, 1024, 100, timeout=30))
        self.assertIn("fenced", common.FAILURES[-1])

    def test_a_client_report_becomes_the_rows_figures(self):
        with tempfile.TemporaryDirectory() as d:
            script = os.path.join(d, "client.py")
            with open(script, "w") as f:
                f.write("print('%4|log line')\nprint('{\"MBps\": 2.0, \"msgs_per_s\": "
                        "2000.0, \"txns_per_s\": 20.0, \"transactions\": 10, "
                        "\"commit_ms_p50\": 40.0, \"elapsed_s\": 0.5}')\n")
            client = txn.TxnClient()
            client.script = script
            r = client.produce("b", "txn1k", 1000, 1024, 100, timeout=30)
        self.assertEqual((r["MBps"], r["txns_per_s"], r["records_per_txn"]), (2.0, 20.0, 100.0))

    def run_with(self, fail_txn_produce):
        class Cluster:
            name, bootstrap = "fjord", "b"

            def pids(self):
                return [os.getpid(), os.getpid()]

            def start(self):
                return True

            def stop(self):
                pass

        class Rd:
            def create_topic(self, *_a, **_k):
                return True

            def produce(self, *_a, **_k):
                return {"MBps": 10.0}

        class Txn:
            def produce(self, bootstrap, topic, records, size, per_txn, timeout=600):
                if topic == "txn1k" and fail_txn_produce:
                    common.fail("txn_client to txn1k exited 1: COORDINATOR_NOT_AVAILABLE")
                    return None
                return {"MBps": 2.0, "msgs": 2000.0, "txns_per_s": 20.0}

        class RdPerf:
            def __init__(self):
                self.extra = None

            def consume(self, bootstrap, topic, records, timeout=300, extra=()):
                self.extra = extra
                return {"MBps": 500.0}

        class Java:
            def produce(self, bootstrap, topic, records, size, acks, **k):
                self.args = k["args"]
                return {"MBps": 2.4, "msgs": 2400.0}

            def consume(self, bootstrap, topic, records, config=None):
                with open(config) as f:
                    self.config = f.read()
                return {"fetch_MBps": 80.0}

        sizes = {"java_rounds": 1, "n_warm": 10, "n_txn_warm": 10, "n_txn": 1000,
                 "txn_records": 100, "n_jtxn": 1000, "jtxn_duration_ms": 1,
                 "txn_consume_reads": 3}
        rdperf, java = RdPerf(), Java()
        with tempfile.TemporaryDirectory() as d:
            r = txn.run_txn(Cluster(), Rd(), java, rdperf, Txn(), sizes, 0, d,
                            end=lambda b, t: 1010)
        return r, rdperf, java

    def test_every_consumer_reads_committed_and_the_java_producer_is_transactional(self):
        r, rdperf, java = self.run_with(fail_txn_produce=False)
        self.assertIn("isolation.level=read_committed", rdperf.extra)
        self.assertEqual(len(r["txn_consume"]["MBps_runs"]), 3)
        self.assertIn("isolation.level=read_committed", java.config)
        self.assertIn("--transaction-duration-ms", java.args)
        self.assertIn("--transactional-id", java.args)
        self.assertEqual(r["jtxn_p1k"]["records_per_txn"], 100.0)
        # Summed over the cluster's processes (here this one, twice).
        self.assertGreaterEqual(r["txn_p1k"]["broker_cpu_s"], 0.0)
        self.assertIn("txn_cpu_s_per_gb", r)

    def test_a_failed_transactional_produce_fails_its_rows_only(self):
        r, _, _ = self.run_with(fail_txn_produce=True)
        self.assertIsNone(r["txn_p1k"])
        self.assertIsNone(r["txn_consume"])
        self.assertEqual(r["jtxn_consume"], {"fetch_MBps": 80.0})
        res = {"kafka": {}, "fjord": {"txn": [r]}}
        rows = {(row["name"], row["unit"]): row for row in table.build_rows(res, txn.rows())}
        name = "transactional produce 1KB, 100 records a transaction, acks=all RF=3"
        self.assertEqual(table.cell(rows[(name, "MB/s")], "fjord"), "FAILED")
        self.assertIn("COORDINATOR_NOT_AVAILABLE", rows[(name, "txns/s")]["fjord_error"])
        self.assertEqual(rows[("read_committed consume 1KB of the transactional produce "
                               "[Java]", "MB/s")]["fjord"], 80.0)

    def test_transaction_rows_have_a_readme_section_of_their_own(self):
        r, _, _ = self.run_with(fail_txn_produce=False)
        res = {"kafka": {"default": [{"p1k": {"MBps": 300.0}, "rp1k_3p": {"MBps": 500.0}}],
                         "txn": [r]},
               "fjord": {"default": [{"p1k": {"MBps": 600.0}, "rp1k_3p": {"MBps": 900.0}}],
                         "txn": [r]}}
        rows = table.build_rows(res, table.ROWS + txn.rows())
        sections = "".join(f"<!-- bench:{n} -->\nSTALE\n<!-- /bench:{n} -->\n"
                           for n in ("main", "partitions", "txn"))
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "README.md")
            with open(path, "w") as f:
                f.write(sections)
            done = table.write_readme(path, rows, [], {"cores": 2, "date": "today"})
            with open(path) as f:
                text = f.read()
        self.assertEqual(done, ["main", "partitions", "txn"])
        main, parts, txns = (text.split(f"<!-- bench:{n} -->")[1].split("<!-- /bench")[0]
                             for n in ("main", "partitions", "txn"))
        self.assertNotIn("transaction", main)
        self.assertNotIn("read_committed", parts)
        self.assertIn("| transactional produce 1KB, 100 records a transaction", txns)
        self.assertIn("| read_committed consume 1KB of the transactional produce "
                      "[rdkafka_performance] ", txns)
        self.assertNotIn("3 partitions", txns)


if __name__ == "__main__":
    unittest.main()
