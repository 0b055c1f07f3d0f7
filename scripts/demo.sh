#!/usr/bin/env bash
# The demo: an LSTM and a simple RNN trained on the built-in corpus (no download), compared.
set -euo pipefail
SEQQ="${1:-seqq}"
BUDGET="${DEMO_BUDGET:-2m}"
exec "$SEQQ" compare --local --models lstm,rnn --time-budget "$BUDGET" --experiment seqq-demo
