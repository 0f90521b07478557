"""Cluster mode as it is deployed: the compose profile `cluster` checked
structurally without Docker (six Redis nodes with their own volumes, the
one-shot cluster create, three brokers on the Redis Cluster, workers that list
every broker, nginx in front, a Prometheus scraping every broker), the Redis
node configuration and the cluster-create script run against real Redis
nodes, and nginx from Debian, configured from the same template as in
compose, in front of two real brokers on a real Redis Cluster: WebSocket and
SSE streams pass through it live and resume with Last-Event-ID intact."""
import http.client
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import types
import unittest

import yaml

from harness import ClusterTestCase, free_port, metric, sim_text, wait_until
from test_streaming import follow_ws

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import redis_cluster  # noqa: E402

COMPOSE = os.path.join(ROOT, "compose.yaml")
NGINX_TEMPLATE = os.path.join(ROOT, "deploy/nginx/templates/default.conf.template")
REDIS_CONF = os.path.join(ROOT, "deploy/redis/redis.conf")
CREATE_CLUSTER = os.path.join(ROOT, "deploy/redis/create-cluster.sh")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK)
                                  else None)
ENVSUBST = shutil.which("envsubst")  # gettext-base, as in the nginx image

REDIS_NODES = [f"redis-{i}" for i in range(1, 7)]
# Loopback nodes that announce a hostname, as the compose nodes do: clients
# find them by name in CLUSTER SHARDS and in redirects.
BY_HOSTNAME = ["--cluster-announce-hostname", "localhost",
               "--cluster-preferred-endpoint-type", "hostname"]
BROKERS = ["broker-1", "broker-2", "broker-3"]


def load_compose():
    with open(COMPOSE) as f:
        return yaml.safe_load(f)


def flag(command, name):
    """The value of --name=VALUE in a command list (None when absent)."""
    values = [a.split("=", 1)[1] for a in command if a.startswith(f"--{name}=")]
    return values[0] if values else None


def volumes(service):
    """(source, target) of a service's volumes, short or long form; a
    relative source is made absolute from the repository's root."""
    for v in service.get("volumes", []):
        source, target = (v.split(":")[:2] if isinstance(v, str)
                          else (v.get("source"), v["target"]))
        if source.startswith("./"):
            source = os.path.join(ROOT, source[2:])
        yield source, target


def host_ports(service):
    return [str(p).split(":")[0] for p in service.get("ports", [])]


def nginx_config(template, listen, upstreams):
    """The template filled in as the nginx image does it: envsubst with
    every variable of the environment (nginx's own $variables must not
    collide with one), JOBCAST_LISTEN and JOBCAST_UPSTREAM among them."""
    env = dict(os.environ, JOBCAST_LISTEN=listen,
               JOBCAST_UPSTREAM=" ".join(f"server {u};" for u in upstreams))
    with open(template) as f:
        filled = subprocess.run([ENVSUBST, " ".join("${%s}" % name for name in env)], stdin=f,
                                capture_output=True, text=True, env=env, timeout=30,
                                check=True).stdout
    assert "${JOBCAST_" not in filled, "a variable is left"
    return filled

class ComposeClusterProfileTest(unittest.TestCase):
    """compose.yaml read as YAML: no Docker needed."""

    def setUp(self):
        self.compose = load_compose()
        self.services = self.compose["services"]
        self.cluster = {name: s for name, s in self.services.items()
                        if "cluster" in s.get("profiles", [])}

    def test_the_default_stack_is_unchanged_and_has_no_profile(self):
        default = {name for name, s in self.services.items() if not s.get("profiles")}
        self.assertEqual(default, {"keys", "broker", "worker", "prometheus", "grafana"})
        self.assertEqual(set(self.cluster), {*REDIS_NODES, "redis-cluster-create", *BROKERS,
                                             "cluster-worker", "nginx", "cluster-prometheus"})
        self.assertEqual(set(self.cluster) | default, set(self.services))

    def test_every_long_running_service_has_a_healthcheck_and_restarts(self):
        for name, service in self.cluster.items():
            if name == "redis-cluster-create":
                self.assertEqual(service["restart"], "no")
                continue
            self.assertIn("healthcheck", service, name)
            self.assertEqual(service.get("restart"), "unless-stopped", name)

    def test_no_host_port_is_taken_twice_with_both_stacks_up(self):
        # `--profile cluster up` starts the default stack too.
        ports = [p for s in self.services.values() for p in host_ports(s)]
        self.assertEqual(len(ports), len(set(ports)), ports)
        for name in (*REDIS_NODES, *BROKERS, "cluster-worker"):
            self.assertNotIn("ports", self.cluster[name], f"{name} is reached inside only")

    def test_six_redis_nodes_each_with_its_volume_and_the_strict_config(self):
        data_volumes = []
        for name in REDIS_NODES:
            node = self.cluster[name]
            self.assertTrue(node["image"].startswith("redis:7.0"), node["image"])
            mounts = dict((t, s) for s, t in volumes(node))
            self.assertEqual(mounts["/usr/local/etc/redis/redis.conf"], REDIS_CONF)
            data_volumes.append(mounts["/data"])
            command = node["command"]
            self.assertEqual(command[:2], ["redis-server", "/usr/local/etc/redis/redis.conf"])
            # Clients reach each node by the name it announces: its service name.
            self.assertEqual(command[command.index("--cluster-announce-hostname") + 1], name)
        self.assertEqual(len(set(data_volumes)), 6, "one data volume per node")
        self.assertLessEqual(set(data_volumes), set(self.compose["volumes"]))

    def test_the_one_shot_creates_the_cluster_from_every_healthy_node(self):
        create = self.cluster["redis-cluster-create"]
        self.assertEqual(create["command"][:2], ["sh", "/deploy/create-cluster.sh"])
        self.assertEqual(create["command"][2:], [f"{n}:6379" for n in REDIS_NODES])
        self.assertEqual({n: d["condition"] for n, d in create["depends_on"].items()},
                         {n: "service_healthy" for n in REDIS_NODES})
        self.assertIn((CREATE_CLUSTER, "/deploy/create-cluster.sh"), list(volumes(create)))

    def test_three_brokers_on_the_redis_cluster_with_shared_keys(self):
        for name in BROKERS:
            broker = self.cluster[name]
            command = broker["command"]
            self.assertEqual(command[0], "jobcast-broker")
            store = flag(command, "store")
            self.assertTrue(store.startswith("redis-cluster://"), store)
            self.assertEqual(store[len("redis-cluster://"):].split("?")[0].split(","),
                             [f"{n}:6379" for n in REDIS_NODES])
            self.assertIsNotNone(flag(command, "retention"), "retention is required in cluster mode")
            self.assertIsNone(flag(command, "db"))
            self.assertEqual(flag(command, "http"), "0.0.0.0:8080")
            self.assertEqual(flag(command, "zmq"), "tcp://0.0.0.0:5555")
            # The workers know one server key: every broker has the same one.
            self.assertEqual(flag(command, "curve-secret-key-file"), "/keys/broker/broker.key")
            self.assertEqual(broker["depends_on"]["redis-cluster-create"]["condition"],
                             "service_completed_successfully")
            self.assertEqual(broker["depends_on"]["keys"]["condition"],
                             "service_completed_successfully")
            self.assertIn("JOBCAST_JWT_SECRET", broker["environment"])
            self.assertNotIn("/var/lib/jobcast", [t for _, t in volumes(broker)],
                             "no SQLite file in cluster mode")

    def test_workers_list_every_broker(self):
        worker = self.cluster["cluster-worker"]
        self.assertEqual(flag(worker["command"], "broker").split(","),
                         [f"tcp://{b}:5555" for b in BROKERS])
        self.assertEqual(flag(worker["command"], "curve-server-key"), "/keys/broker/broker.pub")
        self.assertEqual({b: worker["depends_on"][b]["condition"] for b in BROKERS},
                         {b: "service_healthy" for b in BROKERS})

    def test_nginx_fronts_every_broker_from_the_template(self):
        nginx = self.cluster["nginx"]
        self.assertIn((os.path.dirname(NGINX_TEMPLATE), "/etc/nginx/templates"),
                      list(volumes(nginx)))
        env = nginx["environment"]
        self.assertEqual(re.findall(r"server ([\w-]+:\d+);", env["JOBCAST_UPSTREAM"]),
                         [f"{b}:8080" for b in BROKERS])
        self.assertEqual(host_ports(nginx), ["8081"])
        self.assertTrue(any(p.endswith(f":{env['JOBCAST_LISTEN']}") for p in nginx["ports"]))
        with open(NGINX_TEMPLATE) as f:
            template = f.read()
        for directive in ("proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;",
                          "proxy_buffering off;", "proxy_read_timeout 5m;",
                          "so_keepalive=45s:15s:3;"):
            self.assertIn(directive, template)

    def test_prometheus_scrapes_every_broker(self):
        prometheus = self.cluster["cluster-prometheus"]
        mounts = dict((t, s) for s, t in volumes(prometheus))
        config_file = mounts["/etc/prometheus/prometheus.yml"]
        self.assertEqual(config_file, os.path.join(ROOT, "prometheus/cluster.yml"))
        self.assertTrue(os.path.exists(mounts["/etc/prometheus/alerts.yml"]))
        with open(config_file) as f:
            config = yaml.safe_load(f)
        jobs = {j["job_name"]: j for j in config["scrape_configs"]}
        targets = [t for c in jobs["jobcast-broker"]["static_configs"] for t in c["targets"]]
        self.assertEqual(targets, [f"{b}:8080" for b in BROKERS])
        self.assertEqual(jobs["jobcast-worker"]["dns_sd_configs"][0]["names"], ["cluster-worker"])
        if shutil.which("promtool"):
            with tempfile.TemporaryDirectory() as tmp:
                local = os.path.join(tmp, "prometheus.yml")
                with open(config_file) as f, open(local, "w") as out:
                    out.write(f.read().replace("/etc/prometheus/alerts.yml",
                                               os.path.join(ROOT, "prometheus/alerts.yml")))
                result = subprocess.run(["promtool", "check", "config", local],
                                        capture_output=True, text=True, timeout=60)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    @unittest.skipUnless(shutil.which("docker-compose"), "Debian's docker-compose is not installed")
    def test_docker_compose_accepts_the_cluster_profile(self):
        env = dict(os.environ, JOBCAST_JWT_SECRET="0123456789abcdef0123456789abcdef")
        result = subprocess.run(["docker-compose", "-f", COMPOSE, "--profile", "cluster", "config"],
                                capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        services = yaml.safe_load(result.stdout)["services"]
        self.assertTrue(set(self.cluster) <= set(services))


@unittest.skipUnless(redis_cluster.available(), "redis-tools is not installed")
class RedisDeployFilesTest(unittest.TestCase):
    def test_a_node_runs_the_strict_config_file(self):
        with tempfile.TemporaryDirectory(prefix="jobcast-redis-conf-") as tmp:
            server = os.path.join(tmp, "redis-server")
            os.symlink(redis_cluster.SERVER, server)
            port = redis_cluster.free_node_port(set())
            process = subprocess.Popen(
                [server, REDIS_CONF, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
                 "--cluster-announce-hostname", "localhost"],
                cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                def get(name):
                    out = subprocess.run([redis_cluster.CLI, "-p", str(port), "CONFIG", "GET",
                                          name], capture_output=True, text=True, timeout=5)
                    lines = out.stdout.splitlines()
                    return lines[1] if len(lines) == 2 else None
                wait_until(lambda: get("port") == str(port), 10, what="redis to answer")
                for name, value in {"cluster-enabled": "yes", "appendonly": "yes",
                                    "appendfsync": "everysec", "save": "",
                                    "min-replicas-to-write": "1",
                                    "maxmemory-policy": "noeviction",
                                    "cluster-replica-validity-factor": "0",
                                    "cluster-allow-pubsubshard-when-down": "yes",
                                    "cluster-preferred-endpoint-type": "hostname",
                                    "cluster-node-timeout": "5000"}.items():
                    self.assertEqual(get(name), value, name)
            finally:
                process.kill()
                process.wait(10)

    def test_the_create_script_makes_the_cluster_once(self):
        cluster = redis_cluster.RedisCluster(primaries=3, replicas=1, node_args=BY_HOSTNAME)
        self.addCleanup(cluster.close)
        cluster.start_nodes()
        # Names, as in compose: the script resolves them for CLUSTER MEET.
        nodes = [f"localhost:{n.port}" for n in cluster.nodes]
        first = subprocess.run(["sh", CREATE_CLUSTER, *nodes], capture_output=True, text=True,
                               timeout=180)
        self.assertEqual(first.returncode, 0, first.stdout + first.stderr)
        cluster.wait_complete()
        shards = cluster.shards()
        self.assertEqual(len(shards), 3)
        self.assertTrue(all(len(s["replicas"]) == 1 for s in shards), shards)
        # A restart of the stack runs it again: it finds the cluster made.
        again = subprocess.run(["sh", CREATE_CLUSTER, *nodes], capture_output=True, text=True,
                               timeout=60)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("already has its 6 nodes", again.stdout)


def sse_events(proxy, job_id, last_event_id=None, stop_after=None):
    """The job's SSE events through nginx until the response ends (or
    `stop_after` events). nginx sends the broker's close-delimited stream
    to an HTTP/1.1 client chunked: http.client reads the chunks."""
    conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=20)
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    try:
        conn.request("GET", f"/v1/jobs/{job_id}/events", headers=headers)
        response = conn.getresponse()
        assert response.status == 200, (response.status, response.read())
        assert response.getheader("Content-Type").startswith("text/event-stream")
        got, fields = [], {}
        while True:
            line = response.readline()
            if not line:
                return got
            line = line.decode().rstrip("\n")
            if line == "":
                if "data" in fields:
                    event = json.loads(fields["data"])
                    assert str(event["seq"]) == fields["id"]
                    got.append(event)
                    if stop_after is not None and len(got) >= stop_after:
                        return got
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value
    finally:
        conn.close()


class Proxy(types.SimpleNamespace):
    """nginx as the streaming helpers see a broker: host, port, http."""


@unittest.skipUnless(NGINX and ENVSUBST, "Debian's nginx or gettext-base is not installed")
class NginxInFrontOfTheClusterTest(ClusterTestCase):
    node_args = BY_HOSTNAME

    def setUp(self):
        super().setUp()
        self.brokers = [self.start_cluster_broker() for _ in range(2)]
        # A worker on each broker, each listing both: round robin may hand a
        # submission to either broker.
        zmq = [b.zmq for b in self.brokers]
        for i in range(2):
            self.start_worker(",".join(zmq[i:] + zmq[:i]), ["llm.generate"], name=f"w{i}")
        self.proxy = self.start_nginx([b.http for b in self.brokers])
        self.api = self.client(self.proxy)

    def start_nginx(self, upstreams):
        port = free_port()
        prefix = os.path.join(self.tmp.name, "nginx")
        os.makedirs(prefix)
        site = os.path.join(prefix, "jobcast.conf")
        with open(site, "w") as f:
            f.write(nginx_config(NGINX_TEMPLATE, f"127.0.0.1:{port}", upstreams))
        # The image's nginx.conf around it: events, http and the site.
        user = f"user {pwd.getpwuid(os.getuid()).pw_name};\n" if os.getuid() == 0 else ""
        main = os.path.join(prefix, "nginx.conf")
        with open(main, "w") as f:
            f.write(f"""{user}daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site};
}}
""")
        argv = [NGINX, "-p", prefix, "-e", os.path.join(prefix, "error.log"), "-c", main]
        check = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertIn("syntax is ok", check.stderr)
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)

        def stop():
            process.terminate()
            process.wait(15)
        self.addCleanup(stop)
        proxy = Proxy(host="127.0.0.1", port=port, http=f"127.0.0.1:{port}", tls=None)
        wait_until(lambda: self.request_ok(proxy), 15, what="nginx to answer")
        return proxy

    def request_ok(self, proxy):
        try:
            status, _, _ = self.client(proxy).request("GET", "/readyz", timeout=2)
            return status == 200
        except OSError:
            return False

    def llm_job(self, n, tps, seed):
        prompt = "through nginx"
        job = self.api.submit("llm.generate", {"prompt": prompt, "max_tokens": n,
                                               "tokens_per_second": tps, "seed": seed})
        return job, sim_text(prompt, seed, n)

    def assert_running(self, job_id):
        # Asked of a broker directly: the job is still producing tokens.
        self.assertEqual(self.client(self.brokers[0]).job(job_id)["state"], "running")

    def assert_whole_log(self, job_id, got, text):
        done = self.api.wait_state(job_id, ["succeeded"], timeout=60)
        self.assertEqual(done["result"]["text"], text)
        stored = self.client(self.brokers[1]).events(job_id)
        self.assertEqual([e["seq"] for e in stored], list(range(1, len(stored) + 1)))
        self.assertEqual(got, stored)

    def test_the_brokers_reach_the_nodes_by_the_names_they_announce(self):
        shards = self.cluster.nodes[0].command("CLUSTER", "SHARDS")
        endpoints = {dict(zip(n[::2], n[1::2]))["endpoint"]
                     for shard in shards for n in dict(zip(shard[::2], shard[1::2]))["nodes"]}
        self.assertEqual(endpoints, {"localhost"})
        job, text = self.llm_job(n=20, tps=0, seed=5)
        self.assertEqual(self.api.wait_state(job["id"], ["succeeded"])["result"]["text"], text)

    def test_sse_streams_live_through_nginx_and_resumes_with_last_event_id(self):
        job, text = self.llm_job(n=300, tps=100, seed=3)
        # No buffering: the first events arrive while the job runs (3 s).
        first = sse_events(self.proxy, job["id"], stop_after=10)
        self.assert_running(job["id"])
        # The next connection goes to the other broker: Last-Event-ID passes
        # through nginx and the stream goes on from there, on either broker.
        second = sse_events(self.proxy, job["id"], last_event_id=first[-1]["seq"], stop_after=10)
        self.assert_running(job["id"])
        rest = sse_events(self.proxy, job["id"], last_event_id=second[-1]["seq"])
        self.assert_whole_log(job["id"], first + second + rest, text)
        # Round robin handed the two resumes to different brokers.
        for broker in self.brokers:
            self.assertGreaterEqual(metric(self.client(broker), "jobcast_resumes_total"), 1)

    def test_websocket_streams_live_through_nginx_and_resumes(self):
        job, text = self.llm_job(n=300, tps=100, seed=4)
        first = follow_ws(self.proxy, job["id"], stop_after=10)
        self.assert_running(job["id"])
        second = follow_ws(self.proxy, job["id"], after=first[-1]["seq"], stop_after=10)
        self.assert_running(job["id"])
        rest = follow_ws(self.proxy, job["id"], after=second[-1]["seq"])
        self.assert_whole_log(job["id"], first + second + rest, text)


if __name__ == "__main__":
    unittest.main()
