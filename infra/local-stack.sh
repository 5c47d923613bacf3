#!/usr/bin/env bash
# Installs (pinned) and runs the local stack the integration tests talk to:
#   moto (DynamoDB + S3)  on 127.0.0.1:${MOTO_PORT:-5000}
#   aws-ses-v2-local      on 127.0.0.1:${SES_PORT:-8005}
# Usage: infra/local-stack.sh install|start|stop|env|status
# State (venv, node_modules, PID files, logs) lives in .local-stack/ at the repo root.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE="$ROOT/.local-stack"
MOTO_PORT=${MOTO_PORT:-5000}
SES_PORT=${SES_PORT:-8005}

MOTO_VERSION=5.2.5
FLASK_VERSION=3.1.3
FLASK_CORS_VERSION=6.0.2
SES_LOCAL_VERSION=2.10.2
# The reference implementations the interop tests talk to: an A2A agent
# (a2a-sdk) and an MCP client (mcp), in a venv of their own.
A2A_SDK_VERSION=1.3.0
MCP_VERSION=2.3.0
# For the TypeScript verifier of agent signatures (examples/verifiers), compiled by the tests.
TYPESCRIPT_VERSION=5.9.3
TYPES_NODE_VERSION=20.19.8

install() {
  mkdir -p "$STATE"
  if [ ! -x "$STATE/venv/bin/moto_server" ] || ! grep -q "$MOTO_VERSION" "$STATE/venv/.moto-version" 2>/dev/null; then
    python3 -m venv "$STATE/venv"
    "$STATE/venv/bin/pip" install --quiet --disable-pip-version-check \
      "moto[dynamodb,s3,server]==$MOTO_VERSION" "flask==$FLASK_VERSION" "flask-cors==$FLASK_CORS_VERSION"
    echo "$MOTO_VERSION" > "$STATE/venv/.moto-version"
  fi
  if [ ! -x "$STATE/interop/bin/python" ] || ! grep -qx "$A2A_SDK_VERSION $MCP_VERSION" "$STATE/interop/.versions" 2>/dev/null; then
    python3 -m venv "$STATE/interop"
    "$STATE/interop/bin/pip" install --quiet --disable-pip-version-check \
      "a2a-sdk[http-server]==$A2A_SDK_VERSION" "mcp==$MCP_VERSION"
    echo "$A2A_SDK_VERSION $MCP_VERSION" > "$STATE/interop/.versions"
  fi
  if [ ! -x "$STATE/node/node_modules/.bin/aws-ses-v2-local" ] || [ ! -x "$STATE/node/node_modules/.bin/tsc" ] \
    || ! grep -q "\"$TYPESCRIPT_VERSION\"" "$STATE/node/node_modules/typescript/package.json" 2>/dev/null; then
    mkdir -p "$STATE/node"
    (cd "$STATE/node" && npm install --silent --no-audit --no-fund --prefix . "aws-ses-v2-local@$SES_LOCAL_VERSION" \
      "typescript@$TYPESCRIPT_VERSION" "@types/node@$TYPES_NODE_VERSION" >/dev/null)
  fi
}

wait_for() { # url name pidfile
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    if ! kill -0 "$(cat "$3")" 2>/dev/null; then echo "$2 exited; see $STATE/$2.log" >&2; cat "$STATE/$2.log" >&2; return 1; fi
    sleep 0.2
  done
  echo "$2 did not become ready at $1" >&2; return 1
}

start() {
  install
  stop quiet
  # Serialised moto: conditional writes are atomic, as in DynamoDB (see infra/moto_serial.py).
  MOTO_PORT="$MOTO_PORT" "$STATE/venv/bin/python" "$ROOT/infra/moto_serial.py" 127.0.0.1 "$MOTO_PORT" > "$STATE/moto.log" 2>&1 &
  echo $! > "$STATE/moto.pid"
  "$STATE/node/node_modules/.bin/aws-ses-v2-local" --host 127.0.0.1 --port "$SES_PORT" > "$STATE/ses.log" 2>&1 &
  echo $! > "$STATE/ses.pid"
  wait_for "http://127.0.0.1:$MOTO_PORT/moto-api/" moto "$STATE/moto.pid"
  wait_for "http://127.0.0.1:$SES_PORT/store" ses "$STATE/ses.pid"
  echo "local stack up: moto :$MOTO_PORT (pid $(cat "$STATE/moto.pid")), aws-ses-v2-local :$SES_PORT (pid $(cat "$STATE/ses.pid"))"
}

stop() {
  for name in moto ses; do
    pidfile="$STATE/$name.pid"
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
  [ "${1:-}" = quiet ] || echo "local stack stopped"
}

env_vars() {
  cat <<VARS
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$MOTO_PORT
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$MOTO_PORT
export AWS_ENDPOINT_URL_SESV2=http://127.0.0.1:$SES_PORT
export AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:$MOTO_PORT
export CASEBRIDGE_SES_LOCAL_URL=http://127.0.0.1:$SES_PORT
export CASEBRIDGE_MOTO_URL=http://127.0.0.1:$MOTO_PORT
export CASEBRIDGE_TSC=$STATE/node/node_modules/.bin/tsc
export CASEBRIDGE_INTEROP_PYTHON=$STATE/interop/bin/python
VARS
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  env) env_vars ;;
  status) for n in moto ses; do f="$STATE/$n.pid"; if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then echo "$n running (pid $(cat "$f"))"; else echo "$n stopped"; fi; done ;;
  *) echo "usage: $0 install|start|stop|env|status" >&2; exit 2 ;;
esac
