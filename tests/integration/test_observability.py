"""Observability as an operator meets it: a real Prometheus (Debian's package)
scrapes a real broker and worker, and every PromQL expression of the Grafana
dashboard and of the alert rules must parse and return data (those of the
Cluster row and the cluster rules against brokers in cluster mode on a real
Redis Cluster); the compose file and the Dockerfile are checked; logs come
out as JSON lines when asked.
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.parse
import urllib.request

import yaml

from harness import JobcastTest, Process, free_port, metric, sim_text, wait_until
import test_cluster
import test_streaming as streaming

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
import redis_cluster  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
DASHBOARD = os.path.join(ROOT, "grafana/dashboards/jobcast.json")
DATASOURCES = os.path.join(ROOT, "grafana/provisioning/datasources/prometheus.yml")
ALERTS = os.path.join(ROOT, "prometheus/alerts.yml")

# What Grafana substitutes before sending a query; the test scrapes every
# second, so 30 s windows hold plenty of samples.
GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$__interval": "5s", "$__range": "5m"}


# The dashboard row and the alert group whose series exist in cluster mode only.
CLUSTER_ROW = "Cluster"
CLUSTER_GROUP = "jobcast-cluster"


def dashboard_queries(cluster=False):
    """(panel title, PromQL) of every panel, those of the Cluster row when
    `cluster`, of the other rows otherwise."""
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    queries = []
    row = None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        if (row == CLUSTER_ROW) != cluster:
            continue
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((panel["title"], expr))
    return dashboard, queries


def alert_rules(cluster=None):
    """The alert rules: of the cluster group when `cluster`, of the others
    when False, all when None."""
    with open(ALERTS) as f:
        groups = yaml.safe_load(f)["groups"]
    return [rule for group in groups for rule in group["rules"]
            if cluster is None or (group["name"] == CLUSTER_GROUP) == cluster]


def split_threshold(expr):
    """`<measure> > <limit>` -> (measure, limit)."""
    m = re.match(r"^(.*\S)\s*>\s*([0-9.]+)\s*$", expr.strip(), re.S)
    return (m.group(1), float(m.group(2))) if m else (None, None)


class Prometheus(Process):
    def __init__(self, config_path, data_dir):
        self.port = free_port()
        super().__init__([
            shutil.which("prometheus"), f"--config.file={config_path}",
            f"--storage.tsdb.path={data_dir}", f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn"], name="prometheus")

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            try:  # 400 with a JSON error for a query that does not parse
                return json.loads(body)
            except ValueError:  # 503 "Service Unavailable" in plain text while starting
                return {"status": "unavailable", "code": e.code, "body": body[:200]}
        except (urllib.error.URLError, ConnectionError):  # not listening yet
            return {"status": "unavailable"}

    def query(self, expr):
        return self.api("/api/v1/query", query=expr)


@unittest.skipUnless(shutil.which("prometheus"), "Debian's prometheus package is not installed")
class PrometheusDashboardTest(JobcastTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        self.api_client = self.client(self.broker)
        self.worker = self.start_worker(self.broker, ["llm.generate", "exec"],
                                        args=["--metrics-port", "0"])
        self.worker_metrics = int(self.worker.wait_for_line(r"metrics listening port=(\d+)").group(1))

    def run_traffic(self):
        """Jobs of every outcome, a live subscriber, a resume and a rejected request."""
        api = self.api_client
        params = {"prompt": "metrics", "max_tokens": 200, "tokens_per_second": 2000, "seed": 3}
        jobs = [api.submit("llm.generate", params) for _ in range(3)]
        live = streaming.follow_ws(self.broker, jobs[0]["id"])
        self.assertEqual("".join(e["data"]["text"] for e in live if e["kind"] == "token"),
                         sim_text("metrics", 3, 200))
        streaming.follow_ws(self.broker, jobs[1]["id"], after=50)  # a resume
        failing = api.submit("exec", {"command": "not-allowed"}, max_attempts=1)
        slow = api.submit("llm.generate", {"prompt": "x", "max_tokens": 100000,
                                           "tokens_per_second": 10})
        api.wait_state(slow["id"], "running")
        self.assertEqual(api.request("POST", f"/v1/jobs/{slow['id']}/cancel")[0], 202)
        for job in jobs:
            api.wait_state(job["id"], "succeeded")
        api.wait_state(failing["id"], "failed")
        api.wait_state(slow["id"], "cancelled")
        self.assertEqual(api.request("GET", "/v1/jobs/nope")[0], 404)

    def test_every_dashboard_and_alert_query_returns_data(self):
        # The figures a user opens /metrics for, live.
        self.run_traffic()
        api = self.api_client
        self.assertGreaterEqual(metric(api, "jobcast_job_queue_wait_seconds_count"), 5)
        self.assertEqual(metric(api, "jobcast_job_duration_seconds_count",
                                {"outcome": "failed"}), 1)
        self.assertEqual(metric(api, "jobcast_job_duration_seconds_count",
                                {"outcome": "cancelled"}), 1)
        self.assertGreater(metric(api, "process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(metric(api, "process_open_fds"), 3)
        self.assertGreater(metric(api, "process_cpu_seconds_total"), 0)

        prom = start_prometheus(self, {
            "jobcast-broker": [self.broker.http],
            "jobcast-worker": [f"127.0.0.1:{self.worker_metrics}"]})
        # More traffic while Prometheus watches, so that rates see changes.
        self.run_traffic()

        dashboard, queries = dashboard_queries()
        self.assertGreaterEqual(len(queries), 25)

        def returns_data(expr):
            reply = prom.query(expr)
            self.assertEqual(reply["status"], "success", f"{expr}: {reply}")
            return reply["data"]["result"]

        for title, expr in queries:
            wait_until(lambda: returns_data(expr), timeout=45, interval=0.5,
                       what=f"data for panel '{title}': {expr}")

        rules = alert_rules(cluster=False)
        self.assertGreaterEqual(len(rules), 5)
        for rule in rules:
            measure, limit = split_threshold(rule["expr"])
            self.assertIsNotNone(measure, f"{rule['alert']}: expr must be '<measure> > <limit>'")
            returns_data(rule["expr"])  # parses (it may or may not fire)
            wait_until(lambda: returns_data(measure), timeout=45, interval=0.5,
                       what=f"data for alert {rule['alert']}: {measure}")
        # Prometheus itself loaded and evaluated every rule without error.
        loaded = wait_until(lambda: [r for g in prom.api("/api/v1/rules")["data"]["groups"]
                                     for r in g["rules"] if r.get("lastEvaluation", "").startswith("2")
                                     and r["health"] == "ok"] or None,
                            timeout=30, what="rules evaluated")
        self.assertEqual(sorted(r["name"] for r in loaded), sorted(r["alert"] for r in alert_rules()))

        # The worker's own metrics reached Prometheus.
        emitted = returns_data('jobcast_worker_events_emitted_total{job="jobcast-worker"}')
        self.assertGreater(float(emitted[0]["value"][1]), 400)

        # An alert that matters most: jobs wait and no worker is there.
        self.worker.kill()
        self.api_client.submit("llm.generate", {"prompt": "stranded", "max_tokens": 5})
        wait_until(lambda: any(a["labels"]["alertname"] == "JobcastNoWorkersForQueuedJobs"
                               for a in prom.api("/api/v1/alerts")["data"]["alerts"]),
                   timeout=30, interval=0.5, what="the no-workers alert to become pending")

    def test_dashboard_structure(self):
        dashboard, _ = dashboard_queries()
        with open(DATASOURCES) as f:
            uid = yaml.safe_load(f)["datasources"][0]["uid"]
        ids = [p["id"] for p in dashboard["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            self.assertEqual(panel["datasource"]["uid"], uid, panel["title"])
            self.assertTrue(panel["targets"], panel["title"])
            for target in panel["targets"]:
                self.assertEqual(target["datasource"]["uid"], uid, panel["title"])
        text = json.dumps(dashboard)
        for name in ["jobcast_events_ingested_total", "jobcast_events_delivered_total",
                     "jobcast_event_delivery_latency_seconds", "jobcast_connections",
                     "jobcast_subscriptions", "jobcast_queue_depth",
                     "jobcast_job_queue_wait_seconds", "jobcast_jobs",
                     "jobcast_jobs_finished_total", "jobcast_workers",
                     "jobcast_store_commit_seconds", "jobcast_store_batch_events",
                     "jobcast_event_stage_seconds", "jobcast_resumes_total", "jobcast_slow_consumer_catchups_total",
                     "jobcast_rejected_messages_total", "jobcast_http_requests_total",
                     "jobcast_cluster_round_seconds", "jobcast_cluster_wait_timeouts_total",
                     "jobcast_cluster_shard_degraded", "jobcast_cluster_retries_total",
                     "jobcast_cluster_remote_events_total", "jobcast_cluster_brokers"]:
            self.assertIn(name, text, f"the dashboard shows {name}")


def start_prometheus(test, targets):
    """A real Prometheus scraping `targets` ({job name: [host:port]}) every
    second with the alert rules loaded."""
    tmp = tempfile.mkdtemp(prefix="jobcast-prom-")
    test.addCleanup(shutil.rmtree, tmp, True)
    config = os.path.join(tmp, "prometheus.yml")
    with open(config, "w") as f:
        yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [ALERTS],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": hosts}]}
                               for job, hosts in targets.items()]}, f)
    prom = Prometheus(config, os.path.join(tmp, "data"))
    test.addCleanup(prom.kill)
    count = sum(len(hosts) for hosts in targets.values())
    wait_until(lambda: len([s for s in prom.query("up").get("data", {}).get("result", [])
                            if s["value"][1] == "1"]) == count,
               timeout=60, interval=0.2, what="Prometheus to scrape every target")
    return prom


@unittest.skipUnless(shutil.which("prometheus"), "Debian's prometheus package is not installed")
@unittest.skipUnless(redis_cluster.available(), "redis-tools is not installed")
class PrometheusClusterDashboardTest(JobcastTest):
    """The Cluster row and the cluster alerts against two brokers in cluster
    mode: a worker on one, subscribers on the other (remote deliveries)."""

    def setUp(self):
        super().setUp()
        self.cluster = redis_cluster.RedisCluster(primaries=3, replicas=1)
        self.cluster.start()
        self.addCleanup(self.cluster.close)
        args = ["--store", f"redis-cluster://{self.cluster.seeds()}?partitions=16",
                "--retention", "1h"]
        self.a = self.start_broker(args=args)
        self.b = self.start_broker(args=args, db=os.path.join(self.tmp.name, "b.db"))
        self.start_worker(self.a, ["llm.generate"])

    def run_traffic(self):
        """Jobs run on A, each read live on B."""
        api = self.client(self.a)
        params = {"prompt": "cluster metrics", "max_tokens": 200, "tokens_per_second": 400,
                  "seed": 4}
        for _ in range(2):
            job = api.submit("llm.generate", params)
            seen = {}
            reader = threading.Thread(target=lambda: seen.setdefault(
                "events", test_cluster.sse_events(self.b, job["id"])))
            reader.start()
            api.wait_state(job["id"], "succeeded")
            reader.join(60)
            self.assertEqual(len(seen["events"]), len(api.events(job["id"])))

    def test_every_cluster_panel_and_alert_query_returns_data(self):
        self.run_traffic()
        b = self.client(self.b)
        self.assertGreater(metric(b, "jobcast_cluster_remote_events_total"), 0)
        self.assertGreater(metric(self.client(self.a), "jobcast_cluster_round_seconds_count"), 0)
        wait_until(lambda: metric(b, "jobcast_cluster_brokers") == 2, timeout=15,
                   what="each broker to see both heartbeats")

        prom = start_prometheus(self, {"jobcast-broker": [self.a.http, self.b.http]})
        self.run_traffic()

        def returns_data(expr):
            reply = prom.query(expr)
            self.assertEqual(reply["status"], "success", f"{expr}: {reply}")
            return reply["data"]["result"]

        _, queries = dashboard_queries(cluster=True)
        self.assertGreaterEqual(len(queries), 6)
        for title, expr in queries:
            wait_until(lambda: returns_data(expr), timeout=45, interval=0.5,
                       what=f"data for panel '{title}': {expr}")
        # Values, not only series: rounds were timed, events crossed brokers,
        # both brokers are seen, every shard is whole, the engine is up.
        p99 = returns_data("histogram_quantile(0.99, sum by (le) "
                           "(rate(jobcast_cluster_round_seconds_bucket[30s])))")
        self.assertGreater(float(p99[0]["value"][1]), 0)
        self.assertEqual(returns_data("max(jobcast_cluster_brokers)")[0]["value"][1], "2")
        shards = returns_data("max by (shard) (jobcast_cluster_shard_degraded)")
        self.assertEqual(len(shards), 3)
        self.assertTrue(all(s["value"][1] == "0" for s in shards), shards)
        self.assertEqual(returns_data("min(jobcast_cluster_engine_up)")[0]["value"][1], "1")
        remote = returns_data("sum(increase(jobcast_cluster_remote_events_total[1m]))")
        self.assertGreater(float(remote[0]["value"][1]), 0)

        rules = alert_rules(cluster=True)
        self.assertEqual(len(rules), 2)
        for rule in rules:
            measure, limit = split_threshold(rule["expr"])
            self.assertIsNotNone(measure, f"{rule['alert']}: expr must be '<measure> > <limit>'")
            self.assertEqual(returns_data(rule["expr"]), [], f"{rule['alert']} fires")
            wait_until(lambda: returns_data(measure), timeout=45, interval=0.5,
                       what=f"data for alert {rule['alert']}: {measure}")

        # A shard loses its replica: its alert's measure says which.
        replica = self.cluster.shards()[0]["replicas"][0]
        replica.kill()
        degraded = wait_until(
            lambda: returns_data("max by (shard) (jobcast_cluster_shard_degraded) > 0"),
            timeout=30, interval=0.5, what="the degraded shard to show in Prometheus")
        self.assertEqual(len(degraded), 1)


class DeploymentFilesTest(unittest.TestCase):
    @unittest.skipUnless(shutil.which("docker-compose"), "Debian's docker-compose is not installed")
    def test_compose_file_validates(self):
        def config(secret):
            env = {k: v for k, v in os.environ.items() if k != "JOBCAST_JWT_SECRET"}
            if secret:
                env["JOBCAST_JWT_SECRET"] = secret
            return subprocess.run(
                ["docker-compose", "-f", os.path.join(ROOT, "compose.yaml"), "config"],
                capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)

        # Secure by default: no JWT secret, no stack.
        out = config(None)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("JOBCAST_JWT_SECRET", out.stderr)
        out = config("0123456789abcdef0123456789abcdef")
        self.assertEqual(out.returncode, 0, out.stderr)
        # The default stack: the services outside every profile (the
        # `cluster` profile is checked in test_cluster_deploy).
        services = {name: service for name, service in yaml.safe_load(out.stdout)["services"].items()
                    if not service.get("profiles")}
        self.assertEqual(set(services), {"keys", "broker", "worker", "prometheus", "grafana"})
        for name, service in services.items():
            if name == "keys":  # one-shot: makes the CURVE keys, then exits
                continue
            self.assertIn("healthcheck", service, name)
            self.assertIn(service.get("restart"), ("unless-stopped", "always"), name)
        # Workers reach the broker with CURVE keys from the keys service.
        self.assertIn("--curve-secret-key-file=/keys/broker/broker.key",
                      services["broker"]["command"])
        self.assertIn("--curve-server-key=/keys/broker/broker.pub",
                      services["worker"]["command"])
        def volumes(service):  # "source:target[:mode]" (docker-compose 1.x) or long form
            for v in services[service].get("volumes", []):
                if isinstance(v, str):
                    source, target = v.split(":")[:2]
                    yield source, target
                else:
                    yield v.get("source"), v["target"]
        self.assertIn("/var/lib/jobcast", [t for _, t in volumes("broker")],
                      "the SQLite file lives on a volume")
        self.assertNotIn("ports", services["worker"], "workers scale: no fixed host port")
        for service in ("prometheus", "grafana"):
            for source, _ in volumes(service):
                if source.startswith("/"):  # a file or folder of this repository
                    self.assertTrue(os.path.exists(source), source)

    def test_dockerfile_is_multi_stage_and_non_root(self):
        with open(os.path.join(ROOT, "Dockerfile")) as f:
            lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
        stages = [line for line in lines if line.startswith("FROM ")]
        self.assertGreaterEqual(len(stages), 2)
        self.assertTrue(all("debian:12" in s for s in stages), stages)
        users = [line.split()[1] for line in lines if line.startswith("USER ")]
        self.assertTrue(users and users[-1] not in ("root", "0"), users)


class DurableStreamMetricsTest(JobcastTest):
    """/v1/streams/ in /metrics: streams created (new and forks) and deleted,
    appends by result and their bytes, and the live readers by mode."""

    def test_stream_metrics_count_what_the_streams_did(self):
        broker = self.start_broker()
        api = self.client(broker)
        plain = {"Content-Type": "text/plain"}

        def producer(epoch, seq):
            return {**plain, "Producer-Id": "p", "Producer-Epoch": str(epoch),
                    "Producer-Seq": str(seq)}

        def post(headers, data=b"12345"):
            return api.request("POST", "/v1/streams/s", raw=data, headers=headers)[0]

        self.assertEqual(api.request("PUT", "/v1/streams/s", raw=b"", headers=plain)[0], 201)
        self.assertEqual(api.request("PUT", "/v1/streams/s", raw=b"", headers=plain)[0], 200)
        self.assertEqual(post(plain), 204)
        self.assertEqual(post(producer(1, 0)), 200)
        self.assertEqual(post(producer(1, 0)), 204)  # a retry
        self.assertEqual(post(producer(1, 5)), 409)  # a gap
        self.assertEqual(post(producer(0, 0)), 403)  # a zombie
        self.assertEqual(api.request("PUT", "/v1/streams/f", raw=b"", headers={
            **plain, "Stream-Forked-From": "/v1/streams/s"})[0], 201)
        self.assertEqual(post({"Stream-Closed": "true"}, b""), 204)
        self.assertEqual(post(plain), 409)  # closed
        self.assertEqual(api.request("DELETE", "/v1/streams/f")[0], 204)

        def value(name, **labels):
            return metric(api, name, labels)

        self.assertEqual(value("jobcast_streams_created_total", kind="new"), 1)
        self.assertEqual(value("jobcast_streams_created_total", kind="fork"), 1)
        self.assertEqual(value("jobcast_streams_deleted_total", cause="delete"), 1)
        for result, count in [("ok", 3), ("duplicate", 1), ("gap", 1), ("stale_epoch", 1),
                              ("closed", 1)]:
            self.assertEqual(value("jobcast_stream_appends_total", result=result), count, result)
        self.assertEqual(value("jobcast_stream_appended_bytes_total"), 10)

        # An SSE reader counts while it is open.
        self.assertEqual(api.request("PUT", "/v1/streams/t", raw=b"", headers=plain)[0], 201)
        conn = http.client.HTTPConnection(broker.host, broker.port, timeout=10)
        conn.request("GET", "/v1/streams/t?offset=-1&live=sse")
        response = conn.getresponse()  # held: it is the open stream
        self.assertEqual(response.status, 200)
        wait_until(lambda: value("jobcast_stream_live_readers", mode="sse") == 1,
                   what="the SSE reader counted")
        response.close()
        conn.close()
        wait_until(lambda: value("jobcast_stream_live_readers", mode="sse") == 0,
                   what="the SSE reader gone")


class EventStageMetricsTest(JobcastTest):
    """jobcast_event_stage_seconds after a job ran with a live subscriber: each
    stage of an event's path is timed, as often as the path was taken."""

    def test_every_stage_of_a_live_event_is_timed(self):
        broker = self.start_broker()
        api = self.client(broker)
        job = api.submit("llm.generate", {"prompt": "stages", "max_tokens": 60,
                                          "tokens_per_second": 600, "seed": 5})["id"]
        client = streaming.WsClient(broker)
        got = []
        try:
            client.send({"op": "subscribe", "job": job, "after": 0})
            frames = client.frames()
            for frame_job, item in frames:  # the queued state: the subscription is open
                if frame_job is not None:
                    got.append(item)
                    break
            self.start_worker(broker, ["llm.generate"])
            for frame_job, item in frames:
                if frame_job is None:
                    continue
                got.append(item)
                if streaming.is_terminal(item):
                    break
        finally:
            client.close()
        self.assertTrue(got and streaming.is_terminal(got[-1]), got[-1:])

        def stage(name, suffix="count"):
            return metric(api, f"jobcast_event_stage_seconds_{suffix}", {"stage": name})

        # Every event the worker sent crossed ZeroMQ, once.
        from_worker = [e for e in got if e["kind"] not in ("state", "result", "error")]
        self.assertGreaterEqual(len(from_worker), 60)
        self.assertEqual(stage("transport"), len(from_worker))
        # Every op was decoded, queued and committed once (the job's lease and
        # finish too); each events-bearing op is in all three.
        self.assertGreaterEqual(stage("decode"), len(from_worker) + 1)
        self.assertEqual(stage("queue"), stage("commit"))
        self.assertGreaterEqual(stage("commit"), stage("decode"))
        # The events written live (not replayed from the store) went through
        # the fan-out and a socket write once each.
        live = len(got) - metric(api, "jobcast_replayed_events_total")
        self.assertGreater(live, 60)
        wait_until(lambda: stage("write") == live, timeout=10,
                   what=f"{live} live events timed as written")
        self.assertEqual(stage("fanout"), live)
        for name in ("transport", "decode", "queue", "commit", "fanout", "write"):
            self.assertGreater(stage(name, "sum"), 0, name)
            self.assertEqual(metric(api, "jobcast_event_stage_seconds_bucket",
                                    {"stage": name, "le": "+Inf"}), stage(name), name)


class JsonLogsTest(JobcastTest):
    def test_json_log_lines_one_logger_per_module(self):
        broker = self.start_broker(args=["--log-format", "json"])
        api = self.client(broker)
        worker = self.start_worker(broker, ["llm.generate"], args=["--log-format", "json"])
        job = api.submit("llm.generate", {"prompt": "logs", "max_tokens": 20})
        api.wait_state(job["id"], "succeeded")
        broker.proc.terminate()
        self.assertEqual(broker.proc.wait(timeout=30), 0)
        worker.proc.terminate()
        worker.proc.wait(timeout=30)
        loggers = set()
        for process in (broker, worker):
            process._reader.join(timeout=5)
            self.assertTrue(process.lines)
            for line in process.lines:
                record = json.loads(line)  # every line is one JSON object
                self.assertEqual(set(record), {"ts", "level", "logger", "msg"}, line)
                loggers.add(record["logger"])
        self.assertTrue({"broker", "gateway", "store"} <= loggers, loggers)
        # No per-event logging at info: 20 tokens did not make 20 lines.
        self.assertLess(len(broker.lines), 20)


if __name__ == "__main__":
    unittest.main()
