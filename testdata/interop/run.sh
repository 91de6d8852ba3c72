#!/usr/bin/env bash
# Interoperability of the Tern server (cmd/tern) with MQTT clients
# written elsewhere.
#
# It builds cmd/tern, runs it on loopback with a TCP and a WebSocket
# listener on free ports, and checks it with:
#   - mosquitto_pub and mosquitto_sub (Debian package mosquitto-clients):
#     QoS 0, 1 and 2, a retained message, a will, a persistent session
#     across a reconnect; with -V mqttv5, message properties (user
#     properties, response topic, correlation data, content type, payload
#     format), message expiry, a shared subscription, a will with a Will
#     Delay Interval (and one cancelled by a reconnection), session expiry
#     with -x and -c; over TCP only, as these clients have no WebSocket
#     support;
#   - the Eclipse Paho Go clients: MQTT 3.1.1 (testdata/interop/pahoclient,
#     the same checks as mosquitto's) and MQTT 5 (testdata/interop/
#     paho5client, paho.golang: properties, a shared subscription, reason
#     code 0x10, a topic alias, session expiry, a will delay), over TCP and
#     over WebSocket;
#   - MQTT.js (testdata/mqttjs/interop.mjs): every QoS to every QoS and a
#     retained message with MQTT 3.1.1, and with MQTT 5 properties, a shared
#     subscription, a topic alias, reason code 0x10 and No Local, over TCP
#     and over WebSocket;
#   - messages between protocol levels: mosquitto_pub (MQTT 3.1.1) to an
#     MQTT.js MQTT 5 subscriber, and MQTT.js (MQTT 5, with properties) to
#     mosquitto_sub (MQTT 3.1.1);
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
		timeout 600 go build -o "$work/pahoclient" ./testdata/interop/pahoclient &&
		timeout 600 go build -o "$work/paho5client" ./testdata/interop/paho5client
}
check "build cmd/tern, testdata/interop/pahoclient and paho5client" build
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

# --- MQTT 5: mosquitto_pub and mosquitto_sub -V mqttv5 (TCP) ----------------

# MQTT 5 properties of a message reach an MQTT 5 subscriber.
mosquitto5_properties() {
	local topic="interop/mosquitto5/$run/props" out="$work/mosquitto5-props.out"
	msub "$out" -V mqttv5 -q 1 -t "$topic" -C 1 -W "$T" -F "MSG %q %p user=%P resp=%R corr=%D ct=%C fmt=%F"
	wait_for "$out" "received SUBACK" || return 1
	mpub -V mqttv5 -q 1 -t "$topic" -m "with properties" \
		-D publish user-property k v -D publish user-property k2 v2 \
		-D publish response-topic "$topic/reply" -D publish correlation-data c-123 \
		-D publish content-type text/plain -D publish payload-format-indicator 1 || return 1
	wait_sub "$out" && expect_line "$out" "MSG 1 with properties user=k:v k2:v2 resp=$topic/reply corr=c-123 ct=text/plain fmt=1"
}

# A retained message past its Message Expiry Interval is gone; one within
# it arrives with the time it has left.
mosquitto5_expiry() {
	local topic="interop/mosquitto5/$run/expiry" out="$work/mosquitto5-expiry.out" rc
	mpub -V mqttv5 -q 1 -r -t "$topic/short" -m short -D publish message-expiry-interval 1 &&
		mpub -V mqttv5 -q 1 -r -t "$topic/long" -m long -D publish message-expiry-interval 60 || return 1
	sleep 2.2 # the short one's interval passes
	timeout "$T" mosquitto_sub -V mqttv5 -h "$host" -p "$port" -q 1 -t "$topic/#" -W 2 -F "MSG %t %p exp=%E" >"$out" 2>&1
	rc=$?
	mpub -r -n -t "$topic/long" # clear it
	if [ "$rc" -ne 27 ]; then # 27: -W ended it, as it waits for more
		echo "mosquitto_sub exited with $rc (want 27, time out):"
		cat "$out"
		return 1
	fi
	if grep -q short "$out" || [ "$(grep -c '^MSG' "$out")" -ne 1 ] ||
		! grep -Eq "^MSG $topic/long long exp=([1-9]|[1-5][0-9])$" "$out"; then
		echo "want only the long-lived message, with less than 60 s left:"
		cat "$out"
		return 1
	fi
}

# Two members of a shared subscription: each message goes to exactly one.
mosquitto5_shared() {
	local topic="interop/mosquitto5/$run/shared" a="$work/mosquitto5-shared-a.out" b="$work/mosquitto5-shared-b.out" pa pb i
	msub "$a" -V mqttv5 -q 1 -t "\$share/g/$topic" -W "$T" -F "MSG %p"
	pa=$sub_pid
	msub "$b" -V mqttv5 -q 1 -t "\$share/g/$topic" -W "$T" -F "MSG %p"
	pb=$sub_pid
	wait_for "$a" "received SUBACK" && wait_for "$b" "received SUBACK" || return 1
	printf 'm%s\n' 1 2 3 4 5 6 | mpub -V mqttv5 -q 1 -t "$topic" -l || return 1
	for ((i = 0; i < T * 10; i++)); do
		[ "$(cat "$a" "$b" | grep -c '^MSG')" -ge 6 ] && break
		sleep 0.1
	done
	# One more message through each member's subscription would come after
	# any second copy; the members stop here.
	kill "$pa" "$pb" 2>/dev/null
	wait "$pa" "$pb" 2>/dev/null
	echo "member a: $(grep -c '^MSG' "$a") messages, member b: $(grep -c '^MSG' "$b")"
	local got
	got=$(cat "$a" "$b" | grep '^MSG' | sort | tr '\n' ' ')
	[ "$got" = "MSG m1 MSG m2 MSG m3 MSG m4 MSG m5 MSG m6 " ] && return 0
	echo "got: $got; want each of m1 to m6 once"
	return 1
}

# mosquitto5_victim ID TOPIC DELAY OUT starts an MQTT 5 client with a will
# on TOPIC delayed by DELAY seconds and a session of 10 s; victim is its
# process.
mosquitto5_victim() {
	stdbuf -oL mosquitto_sub -V mqttv5 -h "$host" -p "$port" -d -c -i "$1" -x 10 -t "interop/mosquitto5/$run/quiet" \
		--will-topic "$2" --will-payload "gone" --will-qos 1 -D will will-delay-interval "$3" >"$4" 2>&1 &
	victim=$!
	pids+=("$victim")
	wait_for "$4" "received SUBACK"
}

# A will with a Will Delay Interval of 2 s is published 2 s after the
# connection drops, not at once.
mosquitto5_will_delay() {
	local topic="interop/mosquitto5/$run/will" out="$work/mosquitto5-will.out" victim start end ms
	msub "$out" -V mqttv5 -q 1 -t "$topic" -C 1 -W "$T" -F "MSG %q %p"
	wait_for "$out" "received SUBACK" || return 1
	mosquitto5_victim "mosquitto5-mortal-$run" "$topic" 2 "$work/mosquitto5-victim.out" || return 1
	start=$(date +%s%N)
	kill -9 "$victim"
	wait "$victim" 2>/dev/null
	wait_sub "$out" || return 1
	end=$(date +%s%N)
	ms=$(((end - start) / 1000000))
	echo "will published ${ms} ms after the connection dropped"
	expect_line "$out" "MSG 1 gone" || return 1
	[ "$ms" -ge 1800 ] && return 0
	echo "the will came before its 2 s delay"
	return 1
}

# A reconnection to the session within the Will Delay Interval cancels the
# will [v5 MQTT-3.1.3-9].
mosquitto5_will_cancelled() {
	local topic="interop/mosquitto5/$run/cancelled" id="mosquitto5-back-$run" out="$work/mosquitto5-cancelled.out" victim rc
	msub "$out" -V mqttv5 -q 1 -t "$topic" -C 1 -W 4 -F "MSG %q %p"
	wait_for "$out" "received SUBACK" || return 1
	mosquitto5_victim "$id" "$topic" 2 "$work/mosquitto5-victim2.out" || return 1
	kill -9 "$victim"
	wait "$victim" 2>/dev/null
	# Back at once, resuming the session (-c), then gone with DISCONNECT
	# and a Session Expiry Interval of 0 (-x 0), which ends the session.
	timeout "$T" mosquitto_sub -V mqttv5 -h "$host" -p "$port" -c -i "$id" -x 0 -t "interop/mosquitto5/$run/quiet" -E || return 1
	wait "$sub_pid"
	rc=$?
	[ "$rc" -eq 27 ] && return 0 # 27: no message within -W 4
	echo "the watcher exited with $rc, want 27 (no will):"
	cat "$out"
	return 1
}

# A session with a Session Expiry Interval (-x) outlives its connection and
# is resumed without Clean Start (-c); one whose interval passed is gone.
mosquitto5_session() {
	local topic="interop/mosquitto5/$run/session" id="mosquitto5-durable-$run" out="$work/mosquitto5-session.out" rc
	timeout "$T" mosquitto_sub -V mqttv5 -h "$host" -p "$port" -c -i "$id" -x 60 -q 1 -t "$topic" -E || return 1
	mpub -V mqttv5 -q 1 -t "$topic" -m "kept for you" || return 1
	timeout "$T" mosquitto_sub -V mqttv5 -h "$host" -p "$port" -c -i "$id" -x 1 -q 1 -t "$topic" -C 1 -W "$T" -F "MSG %q %p" >"$out" 2>&1 || {
		cat "$out"
		return 1
	}
	expect_line "$out" "MSG 1 kept for you" || return 1
	# That connection set the interval to 1 s: once it has passed, the
	# session and its subscription are gone.
	sleep 2
	mpub -V mqttv5 -q 1 -t "$topic" -m "nobody keeps this" || return 1
	timeout "$T" mosquitto_sub -V mqttv5 -h "$host" -p "$port" -c -i "$id" -x 0 -q 1 -t "$topic/none" -W 1 -F "MSG %q %p" >"$out" 2>&1
	rc=$?
	[ "$rc" -eq 27 ] && return 0
	echo "after the session expired, mosquitto_sub exited with $rc (want 27, no message):"
	cat "$out"
	return 1
}

if command -v mosquitto_sub >/dev/null && command -v mosquitto_pub >/dev/null; then
	check "mosquitto v5 tcp: user properties, response topic, correlation data, content type, payload format" mosquitto5_properties
	check "mosquitto v5 tcp: message expiry of a retained message" mosquitto5_expiry
	check "mosquitto v5 tcp: shared subscription, each message to one member" mosquitto5_shared
	check "mosquitto v5 tcp: will with a Will Delay Interval" mosquitto5_will_delay
	check "mosquitto v5 tcp: reconnection within the Will Delay Interval cancels the will" mosquitto5_will_cancelled
	check "mosquitto v5 tcp: session expiry with -x and -c" mosquitto5_session
fi

# Messages between protocol levels, with MQTT.js as the MQTT 5 side.
cross_311_to_5() {
	local topic="interop/levels/$run/up" out="$work/cross-up.out" node_pid rc
	timeout $((T * 2)) node testdata/mqttjs/interop.mjs "mqtt://$tcp" $((T * 1000)) sub5 "$topic" >"$out" 2>&1 &
	node_pid=$!
	pids+=("$node_pid")
	wait_for "$out" "READY" || return 1
	mpub -V mqttv311 -q 1 -t "$topic" -m "from 3.1.1" || return 1
	wait "$node_pid"
	rc=$?
	[ "$rc" -eq 0 ] || {
		echo "the MQTT.js subscriber exited with $rc:"
		cat "$out"
		return 1
	}
	expect_line "$out" "MSG from 3.1.1 qos=1 user="
}

cross_5_to_311() {
	local topic="interop/levels/$run/down" out="$work/cross-down.out"
	msub "$out" -V mqttv311 -q 1 -t "$topic" -C 1 -W "$T" -F "MSG %q %p"
	wait_for "$out" "received SUBACK" || return 1
	mqttjs "mqtt://$tcp" pub5 "$topic" "from MQTT 5" || return 1
	wait_sub "$out" && expect_line "$out" "MSG 1 from MQTT 5"
}

# --- Eclipse Paho Go clients, MQTT 3.1.1 and 5 (TCP and WebSocket) ----------

# paho PROGRAM URL runs pahoclient or paho5client, which print a PASS or
# FAIL line per check.
paho() {
	local out="$work/paho.out" rc line
	timeout $((T * 20)) "$work/$1" -url "$2" -timeout "${T}s" >"$out" 2>&1
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
		echo "FAIL $1 $2: exited with $rc"
		failed=$((failed + 1))
	fi
}
paho pahoclient "tcp://$tcp"
paho pahoclient "$ws"
paho paho5client "mqtt://$tcp"
paho paho5client "$ws"

# --- MQTT.js (TCP and WebSocket) --------------------------------------------

mqttjs_install() {
	[ -f testdata/mqttjs/node_modules/mqtt/package.json ] && return 0
	(cd testdata/mqttjs && timeout 300 npm ci --no-audit --no-fund)
}

# mqttjs URL [MODE [ARGS...]] runs testdata/mqttjs/interop.mjs.
mqttjs() {
	timeout $((T * 3)) node testdata/mqttjs/interop.mjs "$1" $((T * 2000)) "${@:2}"
}

if [ -f testdata/mqttjs/interop.mjs ] && command -v node >/dev/null; then
	check "mqttjs: npm ci in testdata/mqttjs" mqttjs_install
	check "mqttjs tcp: every QoS to every QoS, retained message" mqttjs "mqtt://$tcp"
	check "mqttjs ws: every QoS to every QoS, retained message" mqttjs "$ws"
	check "mqttjs tcp: MQTT 5 properties, shared subscription, topic alias, reason code 0x10, No Local" mqttjs "mqtt://$tcp" v5
	check "mqttjs ws: MQTT 5 properties, shared subscription, topic alias, reason code 0x10, No Local" mqttjs "$ws" v5
	if command -v mosquitto_sub >/dev/null && command -v mosquitto_pub >/dev/null; then
		check "levels: mosquitto_pub MQTT 3.1.1 to an MQTT.js MQTT 5 subscriber" cross_311_to_5
		check "levels: MQTT.js MQTT 5 with properties to mosquitto_sub MQTT 3.1.1" cross_5_to_311
	fi
else
	check "mqttjs: node and testdata/mqttjs/interop.mjs present" false
fi

# --- the server is still up, and stops cleanly ------------------------------

stop_server() {
	kill -0 "$server_pid" || {
		echo "the server died:"
		cat "${log:-$work/server.log}"
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
	tail -n 20 "${log:-$work/server.log}"
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
	# A log of its own: the first server's, and anything it wrote late,
	# stay out of what is read here.
	log="$work/server-conf.log"
	"$work/server" -c "$work/mosquitto.conf" -tcp 127.0.0.1:0 2>"$log" &
	server_pid=$!
	wait_for "$log" "transport=tcp addr=" || return 1
	tcp=$(grep -a -o 'transport=tcp addr=[^ ]*' "$log" | head -n 1 | sed 's/.*addr=//')
	host=${tcp%:*}
	port=${tcp##*:}
	if [ "$host" != 127.0.0.1 ] || ! [[ "$port" =~ ^[0-9]+$ ]]; then
		echo "no TCP address in the server's log (host \"$host\", port \"$port\"):"
		cat "$log"
		return 1
	fi
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
