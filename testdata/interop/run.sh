#!/usr/bin/env bash
# Interoperability of the Tern server (cmd/tern) with MQTT clients
# written elsewhere.
#
# It builds cmd/tern, runs it on loopback with a TCP and a WebSocket
# listener on free ports, and checks it with:
#   - mosquitto_pub and mosquitto_sub (Debian package mosquitto-clients):
#     QoS 0, 1 and 2, a retained message, a will, a persistent session
#     across a reconnect; over TCP only, as these clients have no WebSocket
#     support;
#   - the Eclipse Paho Go client (testdata/interop/pahoclient): the same
#     checks, over TCP and over WebSocket;
#   - MQTT.js (testdata/mqttjs/interop.mjs): every QoS to every QoS and a
#     retained message, over TCP and over WebSocket;
# and that the server exits cleanly on SIGTERM; then it runs it again with
# tern -c on a mosquitto.conf, a password file written by tern passwd and
# an ACL file, and checks with mosquitto_pub and mosquitto_sub that the
# files decide who connects, reads and writes.
#
# It prints PASS or FAIL for each check and exits 1 if any failed. Every
# client call has a time limit of INTEROP_TIMEOUT seconds (default 20).
#
# Needs go, mosquitto_pub and mosquitto_sub, node and npm (MQTT.js is
# installed with npm ci into testdata/mqttjs/node_modules when missing).
# Run it from anywhere: testdata/interop/run.sh

set -u -o pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
T=${INTEROP_TIMEOUT:-20}
work=$(mktemp -d "${TMPDIR:-/tmp}/tern-interop.XXXXXX")
run="$$-$RANDOM"
server_pid=""
pids=()

cleanup() {
	for p in "${pids[@]}"; do
		kill -9 "$p" 2>/dev/null
	done
	if [ -n "$server_pid" ]; then
		kill -9 "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0

# check NAME FUNCTION [ARGS...] runs a check and reports it; on failure it
# shows what the check printed.
check() {
	local name=$1
	shift
	if "$@" >"$work/check.log" 2>&1; then
		echo "PASS $name"
		passed=$((passed + 1))
	else
		echo "FAIL $name"
		sed 's/^/    | /' "$work/check.log" | tail -n 40
		failed=$((failed + 1))
	fi
}

# wait_for FILE PATTERN waits until a line of FILE matches PATTERN.
wait_for() {
	local i
	for ((i = 0; i < T * 10; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "timed out waiting for \"$2\" in $(basename "$1"):"
	cat "$1" 2>/dev/null
	return 1
}

# expect_line FILE LINE requires LINE among FILE's lines.
expect_line() {
	grep -qxF -- "$2" "$1" && return 0
	echo "want the line \"$2\" in $(basename "$1"), got:"
	cat "$1"
	return 1
}

# --- build and start the server ---------------------------------------------

build() {
	timeout 600 go build -o "$work/server" ./cmd/tern &&
		timeout 600 go build -o "$work/pahoclient" ./testdata/interop/pahoclient
}
check "build cmd/tern and testdata/interop/pahoclient" build
[ "$failed" -eq 0 ] || exit 1

start_server() {
	"$work/server" -tcp 127.0.0.1:0 -ws 127.0.0.1:0 2>"$work/server.log" &
	server_pid=$!
	wait_for "$work/server.log" "transport=tcp addr=" &&
		wait_for "$work/server.log" "transport=ws addr=" || return 1
	tcp=$(grep -o 'transport=tcp addr=[^ ]*' "$work/server.log" | head -n 1 | sed 's/.*addr=//')
	ws=$(grep -o 'transport=ws addr=[^ ]*' "$work/server.log" | head -n 1 | sed 's/.*addr=//')
	echo "tcp $tcp, websocket $ws"
	[ -n "$tcp" ] && [ -n "$ws" ]
}
tcp=""
ws=""
check "start cmd/tern" start_server
[ "$failed" -eq 0 ] || exit 1
tcp=$(grep -o 'transport=tcp addr=[^ ]*' "$work/server.log" | head -n 1 | sed 's/.*addr=//')
ws=$(grep -o 'transport=ws addr=[^ ]*' "$work/server.log" | head -n 1 | sed 's/.*addr=//')
host=${tcp%:*}
port=${tcp##*:}
echo "server: mqtt://$tcp and $ws"

# --- mosquitto_pub and mosquitto_sub (TCP) ----------------------------------

# msub OUT ARGS... starts mosquitto_sub in the background, its debug output
# in OUT, line-buffered (stdbuf) so that "received SUBACK" shows at once;
# sub_pid is its process.
msub() {
	local out=$1
	shift
	timeout "$T" stdbuf -oL mosquitto_sub -h "$host" -p "$port" -d "$@" >"$out" 2>&1 &
	sub_pid=$!
	pids+=("$sub_pid")
}

mpub() {
	timeout "$T" mosquitto_pub -h "$host" -p "$port" "$@"
}

# wait_sub waits for the background mosquitto_sub to exit successfully.
wait_sub() {
	local out=$1 rc
	wait "$sub_pid"
	rc=$?
	[ "$rc" -eq 0 ] && return 0
	echo "mosquitto_sub exited with $rc:"
	cat "$out"
	return 1
}

mosquitto_qos() {
	local q=$1 topic="interop/mosquitto/$run/qos$1" out="$work/mosquitto-qos$1.out"
	msub "$out" -q "$q" -t "$topic" -C 1 -W "$T" -F "MSG %q %r %p"
	wait_for "$out" "received SUBACK" || return 1
	mpub -q "$q" -t "$topic" -m "hello at QoS $q" || return 1
	wait_sub "$out" && expect_line "$out" "MSG $q 0 hello at QoS $q"
}

mosquitto_retained() {
	local topic="interop/mosquitto/$run/retained" out="$work/mosquitto-retained.out"
	mpub -q 1 -r -t "$topic" -m "kept" || return 1
	timeout "$T" mosquitto_sub -h "$host" -p "$port" -q 1 -t "$topic" -C 1 -W "$T" -F "MSG %q %r %p" >"$out" 2>&1 || {
		cat "$out"
		return 1
	}
	expect_line "$out" "MSG 1 1 kept" || return 1
	# An empty retained message clears it: a new subscriber gets nothing
	# (mosquitto_sub -W exits with 27 when no message came).
	mpub -q 1 -r -n -t "$topic" || return 1
	timeout "$T" mosquitto_sub -h "$host" -p "$port" -q 1 -t "$topic" -C 1 -W 1 -F "MSG %q %r %p" >"$out" 2>&1
	local rc=$?
	[ "$rc" -eq 27 ] && return 0
	echo "after clearing, mosquitto_sub exited with $rc (want 27, no message):"
	cat "$out"
	return 1
}

mosquitto_will() {
	local topic="interop/mosquitto/$run/will" out="$work/mosquitto-will.out" vout="$work/mosquitto-victim.out"
	msub "$out" -q 1 -t "$topic" -C 1 -W "$T" -F "MSG %q %p"
	wait_for "$out" "received SUBACK" || return 1
	# The victim is killed, so its connection ends without DISCONNECT.
	stdbuf -oL mosquitto_sub -h "$host" -p "$port" -d -t "interop/mosquitto/$run/quiet" \
		--will-topic "$topic" --will-payload "gone" --will-qos 1 >"$vout" 2>&1 &
	local victim=$!
	pids+=("$victim")
	wait_for "$vout" "received SUBACK" || return 1
	kill -9 "$victim"
	wait "$victim" 2>/dev/null # reports the kill, which is the point
	wait_sub "$out" && expect_line "$out" "MSG 1 gone"
}

mosquitto_persistent() {
	local topic="interop/mosquitto/$run/persistent" id="mosquitto-durable-$run" out="$work/mosquitto-persistent.out"
	# -c: clean session 0; -E: exit once subscribed.
	timeout "$T" mosquitto_sub -h "$host" -p "$port" -c -i "$id" -q 1 -t "$topic" -E || return 1
	mpub -q 1 -t "$topic" -m "kept for you" || return 1
	timeout "$T" mosquitto_sub -h "$host" -p "$port" -c -i "$id" -q 1 -t "$topic" -C 1 -W "$T" -F "MSG %q %p" >"$out" 2>&1 || {
		cat "$out"
		return 1
	}
	expect_line "$out" "MSG 1 kept for you" || return 1
	# A clean session ends the persistent one.
	timeout "$T" mosquitto_sub -h "$host" -p "$port" -i "$id" -t "$topic" -E
}

if command -v mosquitto_sub >/dev/null && command -v mosquitto_pub >/dev/null; then
	for q in 0 1 2; do
		check "mosquitto tcp: QoS $q" mosquitto_qos "$q"
	done
	check "mosquitto tcp: retained message" mosquitto_retained
	check "mosquitto tcp: will on a dropped connection" mosquitto_will
	check "mosquitto tcp: persistent session across a reconnect" mosquitto_persistent
	echo "NOTE mosquitto: no WebSocket checks (mosquitto_pub and mosquitto_sub do not speak WebSocket)"
else
	check "mosquitto: mosquitto_pub and mosquitto_sub installed (apt-get install mosquitto-clients)" false
fi

# --- Eclipse Paho Go client (TCP and WebSocket) -----------------------------

# paho URL runs pahoclient, which prints a PASS or FAIL line per check.
paho() {
	local out="$work/paho.out" rc line
	timeout $((T * 20)) "$work/pahoclient" -url "$1" -timeout "${T}s" >"$out" 2>&1
	rc=$?
	while IFS= read -r line; do
		case $line in
		PASS*)
			echo "$line"
			passed=$((passed + 1))
			;;
		FAIL*)
			echo "$line"
			failed=$((failed + 1))
			;;
		*) echo "    | $line" ;;
		esac
	done <"$out"
	if [ "$rc" -ne 0 ] && ! grep -q '^FAIL' "$out"; then
		echo "FAIL paho $1: exited with $rc"
		failed=$((failed + 1))
	fi
}
paho "tcp://$tcp"
paho "$ws"

# --- MQTT.js (TCP and WebSocket) --------------------------------------------

mqttjs_install() {
	[ -f testdata/mqttjs/node_modules/mqtt/package.json ] && return 0
	(cd testdata/mqttjs && timeout 300 npm ci --no-audit --no-fund)
}

mqttjs() {
	timeout $((T * 3)) node testdata/mqttjs/interop.mjs "$1" $((T * 2000))
}

if [ -f testdata/mqttjs/interop.mjs ] && command -v node >/dev/null; then
	check "mqttjs: npm ci in testdata/mqttjs" mqttjs_install
	check "mqttjs tcp: every QoS to every QoS, retained message" mqttjs "mqtt://$tcp"
	check "mqttjs ws: every QoS to every QoS, retained message" mqttjs "$ws"
else
	check "mqttjs: node and testdata/mqttjs/interop.mjs present" false
fi

# --- the server is still up, and stops cleanly ------------------------------

stop_server() {
	kill -0 "$server_pid" || {
		echo "the server died:"
		cat "$work/server.log"
		return 1
	}
	kill -TERM "$server_pid"
	local i
	for ((i = 0; i < T * 10; i++)); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$server_pid" 2>/dev/null; then
		echo "the server did not exit within ${T}s of SIGTERM"
		return 1
	fi
	wait "$server_pid"
	local rc=$?
	server_pid=""
	[ "$rc" -eq 0 ] && return 0
	echo "the server exited with $rc:"
	tail -n 20 "$work/server.log"
	return 1
}
check "server exits cleanly on SIGTERM" stop_server

# --- a Mosquitto configuration, password file and ACL file ------------------

# The same binary with tern -c on a mosquitto.conf whose password file is
# written by tern passwd (mosquitto_passwd's format) and whose ACL file
# lets alice write a/ and bob read it. Its own listener is a unix socket;
# -tcp adds a TCP one on a free port for the clients.
start_mosquitto_conf() {
	"$work/server" passwd -c -b "$work/passwd" alice alice-pw &&
		"$work/server" passwd -b "$work/passwd" bob bob-pw || return 1
	printf 'user alice\ntopic write a/#\nuser bob\ntopic read a/#\n' >"$work/acl"
	cat >"$work/mosquitto.conf" <<CONF
allow_anonymous false
password_file $work/passwd
acl_file $work/acl
listener 0 $work/tern.sock
CONF
	"$work/server" -c "$work/mosquitto.conf" -tcp 127.0.0.1:0 2>"$work/server.log" &
	server_pid=$!
	wait_for "$work/server.log" "transport=tcp addr=" || return 1
	tcp=$(grep -o 'transport=tcp addr=[^ ]*' "$work/server.log" | head -n 1 | sed 's/.*addr=//')
	host=${tcp%:*}
	port=${tcp##*:}
}

mosquitto_conf_acl() {
	local out="$work/mosquitto-conf.out"
	msub "$out" -u bob -P bob-pw -q 1 -t 'a/#' -C 1 -W "$T" -F "MSG %t %p"
	wait_for "$out" "received SUBACK" || return 1
	mpub -u bob -P bob-pw -q 1 -t a/from-bob -m refused || return 1 # acknowledged, dropped by the ACL
	mpub -u alice -P alice-pw -q 1 -t a/from-alice -m allowed || return 1
	wait_sub "$out" && expect_line "$out" "MSG a/from-alice allowed"
}

mosquitto_conf_refused() {
	local out="$work/mosquitto-conf-refused.out"
	if mpub -u alice -P wrong -t a/x -m x >"$out" 2>&1; then
		echo "a wrong password was accepted"
		return 1
	fi
	grep -q "bad user name or password" "$out" || {
		cat "$out"
		return 1
	}
	if mpub -t a/x -m x >"$out" 2>&1; then
		echo "an anonymous client was accepted"
		return 1
	fi
	grep -q "not authorised" "$out" || {
		cat "$out"
		return 1
	}
}

if command -v mosquitto_sub >/dev/null && command -v mosquitto_pub >/dev/null; then
	check "mosquitto.conf: start with tern -c" start_mosquitto_conf
	check "mosquitto.conf: the ACL file decides who reads and writes" mosquitto_conf_acl
	check "mosquitto.conf: wrong password and anonymous refused" mosquitto_conf_refused
	check "mosquitto.conf: server exits cleanly on SIGTERM" stop_server
fi

echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
