#!/usr/bin/env python3
"""The include graph runs one way (DESIGN.md, "Layout"; README, "Layout").

Reads every `#include "module/..."` of the C++ sources and fails, naming the
file and the line, when
  - a module includes a module it may not depend on (the arrows below),
  - web includes the store's writer (web writes through the JobCommands port),
  - the files of one module include each other in a loop.

    python3 tests/layout/check_layout.py [REPO_ROOT]
"""
import os
import re
import sys

# module -> the modules it may include (besides itself). The order of the
# house: common <- protocol <- domain <- persistence <- live <- broker/web <- the
# broker binary; cluster (the Redis engine, on redis) sits beside broker and web
# under the binary; workers and cli are clients and see protocol and common only.
ALLOWED = {
    "common": set(),
    "protocol": {"common"},
    "domain": {"protocol", "common"},
    "persistence": {"domain", "protocol", "common"},
    "redis": {"common"},
    "live": {"persistence", "protocol", "common"},
    "cluster": {"live", "persistence", "domain", "redis", "protocol", "common"},
    "auth": {"protocol", "common"},
    "web": {"live", "persistence", "auth", "protocol", "common"},
    "broker": {"live", "persistence", "domain", "redis", "auth", "protocol", "common"},
    "workers": {"protocol", "common"},
    "cli": {"protocol", "common", "auth"},
}
# The broker's composition root (target jobcast_broker_app and the binary) may
# wire every module together: the flags of every module, metrics over all of
# them, and main.
COMPOSITION = {
    f"broker/{name}"
    for name in (
        "main.cpp", "broker.cpp", "broker.hpp", "broker_config.cpp", "broker_config.hpp",
        "config.cpp", "config.hpp", "metrics.cpp", "metrics.hpp", "security_config.cpp",
        "security_config.hpp", "security_metrics.cpp", "security_metrics.hpp",
    )
}
FORBIDDEN_FILES = {"web": {"persistence/writer.hpp"}}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([^"]+)"')


def sources(root):
    for module in ALLOWED:
        base = os.path.join(root, module)
        for folder, _, files in os.walk(base):
            for name in sorted(files):
                if name.endswith((".cpp", ".hpp")):
                    path = os.path.join(folder, name)
                    yield module, os.path.relpath(path, root).replace(os.sep, "/")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    root = os.path.abspath(root)
    errors = []
    edges = {}  # file -> files of the same module it includes
    count = 0
    for module, rel in sources(root):
        count += 1
        edges.setdefault(rel, [])
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target_module, target = m.group(1), m.group(1) + "/" + m.group(2)
                if target_module not in ALLOWED:
                    continue  # a generated or third-party header
                if target_module == module:
                    edges[rel].append(target)
                elif target_module not in ALLOWED[module] and rel not in COMPOSITION:
                    errors.append(f"{rel}:{number}: {module}/ may not include {target}")
                if target in FORBIDDEN_FILES.get(module, ()):
                    errors.append(f"{rel}:{number}: {module}/ may not include {target}")

    # Loops between the components of one module: a header, its .cpp and its
    # private `<name>_impl.hpp` are one node.
    def node(path):
        base = os.path.splitext(path)[0]
        return base[: -len("_impl")] if base.endswith("_impl") else base

    graph = {}
    for src, targets in edges.items():
        graph.setdefault(node(src), set()).update(node(t) for t in targets if node(t) != node(src))
    state = {}
    stack = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                loop = stack[stack.index(m):] + [m]
                errors.append("include loop: " + " -> ".join(loop))
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)

    for e in errors:
        print(e)
    print(f"{count} files checked, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
