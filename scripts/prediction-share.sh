#!/bin/bash
# Issue 33's measurement: on a fresh data directory, the default calibration (one layers campaign on
# the local emulated device), then 3 consecutive plans campaigns of each shipped model. Each plans
# campaign prints the share of predictions within ±10 % (device segments, edge segments, end to end)
# beside its test–retest ceiling. Usage: bash scripts/prediction-share.sh [data dir] [http port] [mqtt port]
set -u
cd "$(dirname "$0")/.."
D=${1:-$(mktemp -d /tmp/edgent-share-XXXX)}
HTTP=${2:-18480}
MQTT=${3:-18483}
npx edgent serve --data-dir "$D" --http-port "$HTTP" --mqtt-port "$MQTT" --no-mqtts --log-level warn > "$D.serve.log" 2>&1 &
trap 'pkill -f "edgent serve --data-dir $D"' EXIT
for _ in $(seq 1 60); do npx edgent devices --data-dir "$D" 2>/dev/null | grep -q "local-pi.*online" && break; sleep 2; done
echo "== layers campaign $(date -u +%FT%TZ)"
npx edgent campaign run --agent local-pi --kind layers --data-dir "$D" | tail -8
for model in branchy-alexnet branchy-resnet96; do
  [ "$model" = branchy-alexnet ] || { npx edgent model use "$model" --agent local-pi --data-dir "$D"; sleep 20; }
  for run in 1 2 3; do
    echo "== $model: plans campaign $run $(date -u +%FT%TZ)"
    npx edgent campaign run --agent local-pi --kind plans --data-dir "$D" | grep -E "plans +within|pairs +within|^the profile|^test–retest|^without the|^the machine.s speed"
  done
done
