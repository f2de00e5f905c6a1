#!/usr/bin/env bash
# Starts or stops this checkout's own redis-server and moto servers on free loopback ports, with
# their data under .local/. `start` is idempotent (reuses running ones) and writes .local/env,
# which exports FLASHSTOCK_REDIS_URL, the AWS endpoints, region and test credentials.
# DynamoDB runs on its own moto served one request at a time (see infra/moto_serial.py for why),
# with DynamoDB's transaction conflicts at 10 ms per request (FLASHSTOCK_DYNAMODB_CONFLICTS=0 turns
# them off, FLASHSTOCK_DYNAMODB_LATENCY_MS sets the latency);
# SQS runs on a threaded moto without its O(queue length) send path (infra/moto_sqs.py).
#   infra/services.sh start | stop | env
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state="$root/.local"
mkdir -p "$state/redis"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# A port whose cluster-bus port (port + 10000) is free too.
cluster_port() {
  python3 -c '
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    p = random.randint(20000, 29999)
    if free(p) and free(p + 10000):
        print(p); break'
}

start() {
  if alive "$state/redis.pid" && alive "$state/moto.pid" && alive "$state/dynamo.pid" \
    && alive "$state/cluster-1.pid" && alive "$state/tls.pid" && [ -f "$state/env" ]; then
    return 0
  fi
  stop >/dev/null 2>&1 || true
  local rport mport
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --dir "$state/redis" --save "" --appendonly no \
    --daemonize yes --pidfile "$state/redis.pid" --logfile "$state/redis.log" --maxmemory-policy noeviction
  # A three-node Redis Cluster (as ElastiCache Serverless presents), for the cluster-mode tests.
  local nodes=() cport
  for i in 1 2 3; do
    cport=$(cluster_port)
    mkdir -p "$state/cluster-$i"
    rm -f "$state/cluster-$i/nodes.conf"
    redis-server --port "$cport" --bind 127.0.0.1 --dir "$state/cluster-$i" --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file nodes.conf \
      --daemonize yes --pidfile "$state/cluster-$i.pid" --logfile "$state/cluster-$i.log"
    nodes+=("127.0.0.1:$cport")
  done
  for n in "${nodes[@]}"; do
    for _ in $(seq 1 50); do redis-cli -p "${n#*:}" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$state/cluster-create.log" 2>&1
  for _ in $(seq 1 100); do
    redis-cli -p "${nodes[0]#*:}" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
  # A TLS + AUTH instance (self-signed certificate), for the rediss:// tests.
  local tport
  tport=$(free_port)
  mkdir -p "$state/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
    -keyout "$state/tls/key.pem" -out "$state/tls/cert.pem" >/dev/null 2>&1
  redis-server --port 0 --tls-port "$tport" --bind 127.0.0.1 --dir "$state/tls" --save "" --appendonly no \
    --tls-cert-file "$state/tls/cert.pem" --tls-key-file "$state/tls/key.pem" \
    --tls-ca-cert-file "$state/tls/cert.pem" --tls-auth-clients no --requirepass flashstock-test \
    --daemonize yes --pidfile "$state/tls.pid" --logfile "$state/tls.log"
  mport=$(free_port)
  nohup "$root/.venv/bin/python" "$root/infra/moto_sqs.py" 127.0.0.1 "$mport" >"$state/moto.log" 2>&1 &
  echo $! >"$state/moto.pid"
  dport=$(free_port)
  FLASHSTOCK_DYNAMODB_CONFLICTS="${FLASHSTOCK_DYNAMODB_CONFLICTS:-1}" \
    nohup "$root/.venv/bin/python" "$root/infra/moto_serial.py" 127.0.0.1 "$dport" >"$state/dynamo.log" 2>&1 &
  echo $! >"$state/dynamo.pid"
  up() { python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "http://127.0.0.1:$1/moto-api/" >/dev/null 2>&1; }
  for _ in $(seq 1 150); do
    if redis-cli -p "$rport" ping >/dev/null 2>&1 && up "$mport" && up "$dport"; then
      break
    fi
    sleep 0.1
  done
  # redis writes its pid file a moment after daemonizing
  for _ in $(seq 1 50); do [ -f "$state/redis.pid" ] && break; sleep 0.1; done
  cat >"$state/env" <<ENV
export FLASHSTOCK_REDIS_URL=redis://127.0.0.1:$rport
export FLASHSTOCK_TEST_REDIS_CLUSTER_URL=redis://${nodes[0]}
export FLASHSTOCK_TEST_REDIS_TLS_URL=rediss://:flashstock-test@127.0.0.1:$tport/#insecure
export AWS_ENDPOINT_URL=http://127.0.0.1:$mport
export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$mport
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$dport
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
ENV
  echo "services: redis-server on 127.0.0.1:$rport, TLS+AUTH redis on 127.0.0.1:$tport, Redis Cluster on ${nodes[*]}, moto SQS on 127.0.0.1:$mport, moto DynamoDB on 127.0.0.1:$dport"
}

stop() {
  for svc in redis moto dynamo cluster-1 cluster-2 cluster-3 tls; do
    if alive "$state/$svc.pid"; then kill "$(cat "$state/$svc.pid")" 2>/dev/null || true; fi
    rm -f "$state/$svc.pid"
  done
  rm -f "$state/env"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) cat "$state/env" ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
