#!/usr/bin/env bash
# benchpair.sh - compare two broker builds scenario by scenario, each run
# on a fresh broker, the two builds alternating (A B, then B A), broker
# pinned to core 0 and load generator to core 1.
#
# compare.sh runs every scenario on one broker process per repetition,
# so a repetition of one build and the next of the other are a minute
# apart, and on a shared machine its paired ratios move by more than the
# few percent two builds of one broker differ by. Here the two runs of a
# pair are seconds apart.
#
# Usage: scripts/benchpair.sh K OLD_BINARY NEW_BINARY > runs.txt
#        awk -f scripts/benchpair.awk runs.txt
# with MQLOAD set to the load generator of ../shared/bench (bin/mqload,
# built by its compare.sh). Each binary is started as BINARY -tcp ADDR.
set -u
K=$1; OLD=$2; NEW=$3
MQLOAD=${MQLOAD:-../shared/bench/bin/mqload}
scenarios=(
  "fanin_q0|msgs_per_s|-scenario fanin -qos 0 -pubs 4 -size 64 -n 1000000"
  "fanin_q1|msgs_per_s|-scenario fanin -qos 1 -pubs 4 -size 64 -n 200000"
  "fanin_q2|msgs_per_s|-scenario fanin -qos 2 -pubs 4 -size 64 -n 100000"
  "fanout_q0|deliveries_per_s|-scenario fanout -qos 0 -subs 100 -size 64 -n 20000"
  "latency_q0|p50_us|-scenario latency -qos 0 -rate 5000 -dur 3s"
  "latency_q1|p50_us|-scenario latency -qos 1 -rate 5000 -dur 3s"
  "retained|msgs_per_s|-scenario retained -k 100000 -idle 2s"
  "conns|conns_per_s|-scenario conns -conns 5000"
)

# run BINARY METRIC ARGS... prints the metric and the broker's CPU seconds.
run() {
  local bin=$1 metric=$2; shift 2
  local port pid line
  port=$("$MQLOAD" -scenario freeport)
  taskset -c 0 "$bin" -tcp "127.0.0.1:$port" >/dev/null 2>&1 &
  pid=$!
  taskset -c 1 "$MQLOAD" -scenario probe -addr "127.0.0.1:$port" -timeout 10s >/dev/null 2>&1
  line=$(taskset -c 1 "$MQLOAD" -addr "127.0.0.1:$port" -pid "$pid" "$@" 2>/dev/null | grep '^RESULT')
  kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  echo "$(echo "$line" | grep -o " $metric=[0-9.]*" | cut -d= -f2) $(echo "$line" | grep -o " broker_cpu_s=[0-9.]*" | cut -d= -f2)"
}

for s in "${scenarios[@]}"; do
  IFS='|' read -r label metric args <<<"$s"
  for i in $(seq "$K"); do
    # shellcheck disable=SC2086
    if [ $((i % 2)) = 0 ]; then
      a=$(run "$OLD" "$metric" $args); b=$(run "$NEW" "$metric" $args)
    else
      b=$(run "$NEW" "$metric" $args); a=$(run "$OLD" "$metric" $args)
    fi
    echo "$label $metric $a $b"
  done
done
