// MQTT.js interoperability check for the Tern MQTT broker.
//
// Usage: node interop.mjs URL [TIMEOUT_MS]
//   URL is mqtt://127.0.0.1:PORT or ws://127.0.0.1:PORT/mqtt.
//
// It connects with MQTT 3.1.1 (protocol level 4), subscribes at QoS 0, 1 and
// 2, publishes at each QoS to each subscription and checks that every message
// arrives once with the minimum of the two QoS levels, then publishes a
// retained message and checks that a new client subscribing afterwards gets
// it with the retain flag set. It prints "ok" and exits 0 on success; on any
// failure or when TIMEOUT_MS (default 20000) passes, it prints the reason to
// stderr and exits 1. mqttjs_test.go runs it against a Tern broker.

import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';

const url = process.argv[2];
const timeoutMs = Number(process.argv[3] ?? 20000);
if (!url || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
  console.error('usage: node interop.mjs URL [TIMEOUT_MS]');
  process.exit(2);
}

function fail(msg) {
  console.error(`mqttjs interop against ${url}: FAIL: ${msg}`);
  process.exit(1);
}

const overall = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);

const run = randomBytes(4).toString('hex');
const prefix = `tern/mqttjs/${run}`;

// connect opens an MQTT 3.1.1 client that never reconnects on its own, so
// that a broker that drops it makes the check fail instead of retrying.
async function connect(name) {
  const client = await mqtt.connectAsync(url, {
    protocolVersion: 4,
    clientId: `mqttjs-${name}-${run}`,
    clean: true,
    keepalive: 30,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  client.on('error', (err) => fail(`${name}: client error: ${err.message}`));
  client.on('close', () => {
    if (!client.disconnecting) fail(`${name}: connection closed by the broker`);
  });
  return client;
}

// inbox collects a client's messages and lets the check wait for the next.
function inbox(client) {
  const queue = [];
  const waiters = [];
  client.on('message', (topic, payload, packet) => {
    const m = { topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain };
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  return {
    next(what, ms = 5000) {
      if (queue.length > 0) return Promise.resolve(queue.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no message within ${ms} ms: ${what}`)), ms);
        waiters.push((m) => {
          clearTimeout(timer);
          resolve(m);
        });
      });
    },
    pending: () => queue.length,
  };
}

function expectMessage(m, want, what) {
  for (const k of Object.keys(want)) {
    if (m[k] !== want[k]) {
      fail(`${what}: got ${JSON.stringify(m)}, want ${JSON.stringify(want)}`);
    }
  }
}

async function main() {
  const sub = await connect('sub');
  const subInbox = inbox(sub);
  const pub = await connect('pub');

  // One subscription per QoS level; the broker must grant what was asked.
  for (const qos of [0, 1, 2]) {
    const granted = await sub.subscribeAsync(`${prefix}/sub${qos}`, { qos });
    if (granted.length !== 1 || granted[0].qos !== qos) {
      fail(`SUBACK for QoS ${qos}: got ${JSON.stringify(granted)}`);
    }
  }

  // Every publish QoS to every subscription QoS: delivered once, at the
  // minimum of the two.
  for (const subQoS of [0, 1, 2]) {
    for (const pubQoS of [0, 1, 2]) {
      const topic = `${prefix}/sub${subQoS}`;
      const payload = `sub ${subQoS} pub ${pubQoS}`;
      await pub.publishAsync(topic, payload, { qos: pubQoS, retain: false });
      const what = `publish QoS ${pubQoS} to a QoS ${subQoS} subscription`;
      const m = await subInbox.next(what);
      expectMessage(m, { topic, payload, qos: Math.min(subQoS, pubQoS), retain: false }, what);
    }
  }

  // A retained message reaches a client that subscribes after it was sent.
  const retainedTopic = `${prefix}/retained`;
  await pub.publishAsync(retainedTopic, 'kept', { qos: 1, retain: true });
  const late = await connect('late');
  const lateInbox = inbox(late);
  await late.subscribeAsync(retainedTopic, { qos: 1 });
  const what = 'retained message for a new subscriber';
  expectMessage(await lateInbox.next(what), { topic: retainedTopic, payload: 'kept', qos: 1, retain: true }, what);

  // Clear the retained message, then check nothing else arrived anywhere.
  await pub.publishAsync(retainedTopic, '', { qos: 1, retain: true });
  await lateInbox.next('the empty message that clears the retained one');
  if (subInbox.pending() !== 0 || lateInbox.pending() !== 0) {
    fail('unexpected extra messages were delivered');
  }

  for (const c of [sub, pub, late]) {
    await c.endAsync();
  }
}

main().then(
  () => {
    clearTimeout(overall);
    console.log(`mqttjs interop against ${url}: ok`);
    process.exit(0);
  },
  (err) => fail(err && err.stack ? err.stack : String(err)),
);
