#!/bin/sh
# One-shot: joins the Redis nodes given as HOST:PORT arguments into one
# cluster, one replica per primary (CLUSTER.md: 3 primaries x 1 replica), and
# waits until every slot is served. Does nothing when the first node already
# knows all the others (a restart of the stack with its volumes).
#   create-cluster.sh redis-1:6379 redis-2:6379 ... redis-6:6379
# CLUSTER MEET takes IP addresses only in Redis 7.0, so the names are
# resolved first; clients reach the nodes by the hostname each announces.
set -eu

[ $# -ge 2 ] || { echo "usage: $0 HOST:PORT HOST:PORT ..." >&2; exit 2; }
first_host=${1%:*}
first_port=${1##*:}

known=$(redis-cli -h "$first_host" -p "$first_port" CLUSTER INFO |
        sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')
if [ "${known:-0}" -ge $# ]; then
  echo "the cluster already has its $known nodes"
else
  addresses=
  for node in "$@"; do
    host=${node%:*}
    ip=$(getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }')
    [ -n "$ip" ] || { echo "cannot resolve $host" >&2; exit 1; }
    addresses="$addresses $ip:${node##*:}"
  done
  # shellcheck disable=SC2086  # one word per node
  redis-cli --cluster create $addresses --cluster-replicas 1 --cluster-yes
fi

for _ in $(seq 1 120); do
  if redis-cli -h "$first_host" -p "$first_port" CLUSTER INFO | grep -q '^cluster_state:ok'; then
    echo "cluster_state:ok"
    exit 0
  fi
  sleep 1
done
echo "the cluster did not reach cluster_state:ok in 120 s" >&2
exit 1
