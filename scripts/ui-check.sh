#!/usr/bin/env bash
# The MLflow UI as the comparison screen: start `mlflow server`, run a tiny `seqq compare`,
# open the addresses it prints (the children's loss curves against step and against time) in
# headless Chromium, check the charts are on the page, and save them as one screenshot.
#   usage: scripts/ui-check.sh [OUTPUT_PNG]      (make ui-check)
set -euo pipefail
VENV_BIN="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin"
OUT="${1:-docs/mlflow-compare.png}"
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true

if ! command -v chromium >/dev/null; then
  echo "installing Debian's chromium (headless browser for the screenshot)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2
fi

tmp=$(mktemp -d)
port=$("$VENV_BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false "$VENV_BIN/mlflow" server --host 127.0.0.1 --port "$port" --workers 1 \
  --backend-store-uri "sqlite:///$tmp/mlflow.db" --serve-artifacts --artifacts-destination "$tmp/artifacts" \
  >"$tmp/mlflow.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.5
done

SEQQ_HOME="$tmp/home" SEQQ_MLFLOW_URI="http://127.0.0.1:$port" "$VENV_BIN/seqq" compare --local \
  --models lstm,rnn --hidden-size 64 --num-layers 1 --seq-len 64 --batch-size 32 --max-steps 300 \
  --eval-every 25 --sample-every 150 --checkpoint-every 1000 --experiment ui-check --json >"$tmp/compare.json"

# The addresses `seqq compare` printed for this server, exactly as a user gets them.
mapfile -t urls < <("$VENV_BIN/python" -c '
import json, sys
urls = json.load(open(sys.argv[1]))["urls"]
print(urls["loss_vs_step"]); print(urls["loss_vs_time"])' "$tmp/compare.json")
# Fails (exit 1, no picture written) when a page lacks the overlaid val_loss/train_loss curves.
"$VENV_BIN/python" "$(dirname "$0")/ui_check.py" "$OUT" "${urls[@]}"
