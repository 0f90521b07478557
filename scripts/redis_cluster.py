#!/usr/bin/env python3
"""A Redis Cluster on loopback from Debian's redis-tools, for cluster mode's
tests, chaos runs and the local cluster a user tries (CLUSTER.md §5.8, §6).

The server binary is /usr/bin/redis-check-rdb, which runs as a server when
started under the name redis-server (a symlink in the cluster's bin/): no
daemon, no system service. Every node gets a port below 55536 whose cluster
bus port (+10000) is free too, the strict configuration of CLUSTER.md §5.8
(AOF, min-replicas-to-write 1, noeviction), and its own directory.

    python3 scripts/redis_cluster.py [--dir D] [--primaries 3] [--replicas 1]
        starts a cluster, prints its --store URL and its shards, and runs
        until Ctrl-C or SIGTERM. A node that dies (kill -9 $(cat
        D/node-PORT/redis.pid)) is started again once the others have
        marked it failed and the cluster serves every slot without it: a
        killed primary is failed over to its replica, as if its machine
        were gone, rather than restarted in place before anyone noticed.

    from redis_cluster import RedisCluster
    with RedisCluster(tmpdir, primaries=3, replicas=1) as cluster:
        cluster.seeds()                  # "127.0.0.1:P1,127.0.0.1:P2,..."
        node = cluster.primary_of(slot)  # a Node; node.kill(), node.restart()
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

SERVER = "/usr/bin/redis-check-rdb"
CLI = "/usr/bin/redis-cli"


def available():
    return os.access(SERVER, os.X_OK) and os.access(CLI, os.X_OK)


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_node_port(taken):
    """A free port below 55536 whose bus port (+10000) is free as well."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 55536 and port not in taken and port + 10000 not in taken \
                and _port_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis node")


class Node:
    def __init__(self, cluster, port):
        self.cluster = cluster
        self.port = port
        self.dir = os.path.join(cluster.dir, f"node-{port}")
        os.makedirs(self.dir, exist_ok=True)
        self.process = None
        self.stopped = False

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pidfile(self):
        return os.path.join(self.dir, "redis.pid")

    def start(self):
        c = self.cluster
        argv = [c.server, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(c.node_timeout_ms),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                "--min-replicas-to-write", "1" if c.replicas else "0",
                "--min-replicas-max-lag", "5",
                "--maxmemory", c.maxmemory, "--maxmemory-policy", "noeviction",
                "--cluster-replica-validity-factor", "0",
                "--cluster-allow-pubsubshard-when-down", "yes",
                "--client-output-buffer-limit", "pubsub 64mb 16mb 60",
                "--repl-diskless-sync-delay", "0",
                "--logfile", os.path.join(self.dir, "redis.log"),
                "--pidfile", self.pidfile, *c.node_args]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.stopped = False
        wait_until(lambda: self.ping(), 10, f"redis node {self.address} to answer")
        return self

    def cli(self, *args, timeout=5):
        """One command through redis-cli; its stdout (JSON with json=True)."""
        result = subprocess.run([CLI, "-h", "127.0.0.1", "-p", str(self.port), *args],
                                capture_output=True, text=True, timeout=timeout)
        return result.stdout.strip()

    def command(self, *args):
        """A command's reply decoded from redis-cli --json (RESP2)."""
        out = self.cli("-2", "--json", *args)
        return json.loads(out) if out else None

    def ping(self):
        if self.process is None or self.process.poll() is not None:
            return False
        try:
            return self.cli("PING", timeout=1) == "PONG"
        except subprocess.TimeoutExpired:
            return False

    def info(self, section):
        fields = {}
        for line in self.cli("INFO", section).splitlines():
            if ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        return fields

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            self.process.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.process.wait(10)

    def stop(self):
        """SIGSTOP: the node hangs, its peers time it out."""
        self.kill(signal.SIGSTOP)
        self.stopped = True

    def cont(self):
        self.kill(signal.SIGCONT)
        self.stopped = False

    def restart(self):
        """Starts the node again on its port and directory (AOF and nodes.conf)."""
        if self.alive():
            self.kill()
        return self.start()


class RedisCluster:
    def __init__(self, directory=None, primaries=3, replicas=1, node_timeout_ms=1500,
                 maxmemory="256mb", node_args=()):
        if not available():
            raise RuntimeError(f"redis-tools is not installed ({SERVER}, {CLI})")
        self._own_dir = directory is None
        # Absolute: each node runs in its own directory (--dir) and opens its
        # log and pid files after changing into it.
        self.dir = os.path.abspath(directory or tempfile.mkdtemp(prefix="jobcast-redis-"))
        self.primaries = primaries
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.maxmemory = maxmemory
        # More configuration for every node, e.g. how it announces itself.
        self.node_args = list(node_args)
        bindir = os.path.join(self.dir, "bin")
        os.makedirs(bindir, exist_ok=True)
        self.server = os.path.join(bindir, "redis-server")
        if not os.path.exists(self.server):
            os.symlink(SERVER, self.server)
        self.nodes = []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        """Starts the nodes and joins them into one cluster."""
        self.start_nodes()
        try:
            subprocess.run([CLI, "--cluster", "create",
                            *[n.address for n in self.nodes],
                            "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                           check=True, capture_output=True, text=True, timeout=60)
            self.wait_complete()
        except BaseException:
            self.close()
            raise
        return self

    def start_nodes(self):
        """Starts the nodes, each alone: the cluster is yet to be created."""
        taken = set()
        count = self.primaries * (1 + self.replicas)
        try:
            for _ in range(count):
                port = free_node_port(taken)
                taken.update((port, port + 10000))
                self.nodes.append(Node(self, port).start())
        except BaseException:
            self.close()
            raise
        return self

    def wait_complete(self):
        self.wait_healthy()
        wait_until(self.complete, 30, "every node to see every replica")

    def seeds(self):
        return ",".join(n.address for n in self.nodes)

    def node(self, port):
        return next(n for n in self.nodes if n.port == int(port))

    def healthy(self):
        """Every live node says cluster_state:ok, every slot is served, and
        every live replica's link to its primary is up."""
        live = [n for n in self.nodes if n.alive() and not n.stopped]
        for n in live:
            state = n.cli("CLUSTER", "INFO")
            if "cluster_state:ok" not in state or "cluster_slots_ok:16384" not in state:
                return False
            repl = n.info("replication")
            if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                return False
        return True

    def complete(self):
        """Every node is up and every node's CLUSTER SHARDS lists every
        primary with all its replicas online."""
        if not all(n.alive() and not n.stopped for n in self.nodes):
            return False
        for n in self.nodes:
            shards = self.shards(via=n)
            if len(shards) != self.primaries or any(
                    s["primary"] is None or len(s["replicas"]) != self.replicas for s in shards):
                return False
        return True

    def wait_healthy(self, timeout=30):
        wait_until(self.healthy, timeout, "the Redis cluster to be healthy")

    def shards(self, via=None):
        """CLUSTER SHARDS as seen by a live node (or by `via`): a list of
        {"slots": [(lo, hi), ...], "primary": Node, "replicas": [Node]}."""
        for n in [via] if via else self.nodes:
            if not n.alive() or n.stopped:
                continue
            try:
                reply = n.command("CLUSTER", "SHARDS")
            except (ValueError, subprocess.TimeoutExpired):
                continue
            if not reply:
                continue
            shards = []
            for entry in reply:
                fields = dict(zip(entry[::2], entry[1::2]))
                slots = fields.get("slots", [])
                shard = {"slots": list(zip(slots[::2], slots[1::2])), "primary": None,
                         "replicas": []}
                for node_entry in fields.get("nodes", []):
                    info = dict(zip(node_entry[::2], node_entry[1::2]))
                    if info.get("health") != "online":
                        continue
                    node = next((x for x in self.nodes if x.port == info.get("port")), None)
                    if node is None:
                        continue
                    if info.get("role") == "master":
                        shard["primary"] = node
                    else:
                        shard["replicas"].append(node)
                shards.append(shard)
            return shards
        return []

    def marked_failed(self, node):
        """Some live node's CLUSTER NODES flags `node` as failed (not just
        suspected: fail?)."""
        for n in self.nodes:
            if n is node or not n.alive() or n.stopped:
                continue
            try:
                listing = n.cli("CLUSTER", "NODES", timeout=2)
            except subprocess.TimeoutExpired:
                continue
            for line in listing.splitlines():
                fields = line.split()
                if len(fields) > 2 and fields[1].split("@")[0].endswith(f":{node.port}"):
                    return "fail" in fields[2].split(",")
        return False

    def supervise(self, out=sys.stdout, interval=0.5):
        """Runs forever: starts again every node that died, once the rest
        of the cluster marked it failed and either serves every slot
        without it or has waited two node timeouts (a whole shard lost)."""
        dead_since = {}
        while True:
            for node in self.nodes:
                if node.alive() or node.stopped:
                    dead_since.pop(node.port, None)
                    continue
                if node.port not in dead_since:
                    dead_since[node.port] = time.monotonic()
                    print(f"redis {node.address} exited; it starts again once the cluster "
                          "has marked it failed", file=out, flush=True)
                waited = time.monotonic() - dead_since[node.port]
                if self.marked_failed(node) and (
                        self.healthy() or waited > 2 * self.node_timeout_ms / 1000):
                    node.start()
                    print(f"redis {node.address} started again (pid {node.process.pid})",
                          file=out, flush=True)
            time.sleep(interval)

    def describe(self):
        """One line per shard: its slots, its primary and replicas with pids."""
        lines = []
        for shard in self.shards():
            slots = " ".join(f"{lo}-{hi}" for lo, hi in shard["slots"])
            members = [("primary", shard["primary"])] + [("replica", r) for r in shard["replicas"]]
            lines.append(f"slots {slots}: " + ", ".join(
                f"{role} {n.address} (pid {n.process.pid})" for role, n in members if n))
        return lines

    def primary_of(self, slot):
        for shard in self.shards():
            if any(lo <= slot <= hi for lo, hi in shard["slots"]) and shard["primary"]:
                return shard["primary"]
        return None

    def close(self):
        for n in self.nodes:
            if n.stopped:
                n.cont()
            n.kill()
        if self._own_dir:
            subprocess.run(["rm", "-rf", self.dir], check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", help="where the nodes keep their data (default: a temp dir)")
    parser.add_argument("--primaries", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--node-timeout-ms", type=int, default=5000)
    args = parser.parse_args()
    # SIGTERM (and SIGINT, even when started in the background) stops the
    # nodes on the way out of the with block.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    cluster = RedisCluster(args.dir, args.primaries, args.replicas, args.node_timeout_ms)
    with cluster:
        print(f"redis-cluster://{cluster.seeds()}", flush=True)
        for line in cluster.describe():
            print(line, flush=True)
        cluster.supervise()


if __name__ == "__main__":
    sys.exit(main())
