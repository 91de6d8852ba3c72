// MQTT.js interoperability check for the Tern MQTT broker.
//
// Usage: node interop.mjs URL [TIMEOUT_MS [MODE [ARGS...]]]
//   URL is mqtt://127.0.0.1:PORT or ws://127.0.0.1:PORT/mqtt.
//
// MODE v311 (the default) connects with MQTT 3.1.1 (protocol level 4),
// subscribes at QoS 0, 1 and 2, publishes at each QoS to each subscription
// and checks that every message arrives once with the minimum of the two QoS
// levels, then publishes a retained message and checks that a new client
// subscribing afterwards gets it with the retain flag set.
//
// MODE v5 connects with MQTT 5 (protocol level 5) and checks that the
// properties of a message round trip (user properties in order, response
// topic, correlation data, content type, payload format, message expiry,
// the subscriber's subscription identifier), that a shared subscription
// gives each message to one member, that a topic alias set by the client
// stands for its topic, that a QoS 1 and a QoS 2 PUBLISH no one subscribed
// to are answered with Reason Code 0x10, and that No Local keeps a client's
// own messages from it.
//
// MODE sub5 TOPIC: an MQTT 5 client subscribes to TOPIC at QoS 1, prints
// "READY", then prints "MSG <payload> qos=<qos> user=<k>:<v>,..." for the
// first message and exits. MODE pub5 TOPIC PAYLOAD: an MQTT 5 client
// publishes PAYLOAD to TOPIC at QoS 1 with user properties, a response
// topic, correlation data and a message expiry, and exits. run.sh uses
// these two to send messages between MQTT 3.1.1 and MQTT 5 clients.
//
// It prints "ok" (or, for sub5, the message) and exits 0 on success; on any
// failure or when TIMEOUT_MS (default 20000) passes, it prints the reason to
// stderr and exits 1. mqttjs_test.go runs the v311 mode against a Tern
// broker, testdata/interop/run.sh every mode against cmd/tern.

import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';

const url = process.argv[2];
const timeoutMs = Number(process.argv[3] ?? 20000);
const mode = process.argv[4] ?? 'v311';
const args = process.argv.slice(5);
const modes = { v311: 0, v5: 0, sub5: 1, pub5: 2 };
if (!url || !Number.isFinite(timeoutMs) || timeoutMs <= 0 || modes[mode] !== args.length) {
  console.error('usage: node interop.mjs URL [TIMEOUT_MS [v311 | v5 | sub5 TOPIC | pub5 TOPIC PAYLOAD]]');
  process.exit(2);
}

function fail(msg) {
  console.error(`mqttjs interop against ${url}: FAIL: ${msg}`);
  process.exit(1);
}

const overall = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);

const run = randomBytes(4).toString('hex');
const prefix = `tern/mqttjs/${run}`;

// connect opens an MQTT 3.1.1 client (or, with protocolVersion 5 in
// extra, an MQTT 5 one) that never reconnects on its own, so that a broker
// that drops it makes the check fail instead of retrying.
async function connect(name, extra = {}) {
  const client = await mqtt.connectAsync(url, {
    protocolVersion: 4,
    clientId: `mqttjs-${name}-${run}`,
    clean: true,
    keepalive: 30,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...extra,
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
    const m = { topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain, properties: packet.properties };
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

async function main311() {
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

// connect5 opens an MQTT 5 client.
const connect5 = (name, extra = {}) => connect(name, { protocolVersion: 5, ...extra });

// reasonCodes records the Reason Code of every PUBACK and PUBREC a client
// receives, by packet identifier (publishAsync hides a code below 0x80).
function reasonCodes(client) {
  const codes = new Map();
  client.on('packetreceive', (packet) => {
    if (packet.cmd === 'puback' || packet.cmd === 'pubrec') codes.set(`${packet.cmd} ${packet.messageId}`, packet.reasonCode ?? 0);
  });
  return codes;
}

// until waits for cond to hold, checking every 20 ms, for at most 5 s.
async function until(cond, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// sameJSON compares two values by their JSON form.
const sameJSON = (a, b) => JSON.stringify(a) === JSON.stringify(b);

async function main5() {
  const sub = await connect5('sub5');
  const subInbox = inbox(sub);
  const pub = await connect5('pub5');
  const pubCodes = reasonCodes(pub);

  // Properties round trip, with the subscriber's subscription identifier.
  const propsTopic = `${prefix}/v5/props`;
  await sub.subscribeAsync(propsTopic, { qos: 1, properties: { subscriptionIdentifier: 42 } });
  const sent = {
    payloadFormatIndicator: true,
    messageExpiryInterval: 60,
    contentType: 'text/plain; charset=utf-8',
    responseTopic: `${prefix}/v5/reply`,
    correlationData: Buffer.from([0, 1, 2, 0xff]),
    userProperties: { k: ['1', '2'], other: 'x' },
  };
  await pub.publishAsync(propsTopic, 'with properties', { qos: 1, properties: sent });
  let what = 'a message with properties';
  const m = await subInbox.next(what);
  expectMessage(m, { topic: propsTopic, payload: 'with properties', qos: 1 }, what);
  const got = m.properties ?? {};
  for (const k of ['payloadFormatIndicator', 'contentType', 'responseTopic', 'userProperties']) {
    if (!sameJSON(got[k], sent[k])) fail(`${what}: ${k} is ${JSON.stringify(got[k])}, want ${JSON.stringify(sent[k])}`);
  }
  if (!Buffer.isBuffer(got.correlationData) || !got.correlationData.equals(sent.correlationData)) {
    fail(`${what}: correlation data ${JSON.stringify(got.correlationData)}`);
  }
  if (!(got.messageExpiryInterval > 0 && got.messageExpiryInterval <= 60)) {
    fail(`${what}: message expiry ${got.messageExpiryInterval}, want 1 to 60`);
  }
  if (!sameJSON(got.subscriptionIdentifier, 42) && !sameJSON(got.subscriptionIdentifier, [42])) {
    fail(`${what}: subscription identifier ${JSON.stringify(got.subscriptionIdentifier)}, want 42`);
  }

  // A topic alias set with the topic, then used alone.
  const aliasTopic = `${prefix}/v5/alias`;
  await sub.subscribeAsync(aliasTopic, { qos: 1 });
  await pub.publishAsync(aliasTopic, 'a0', { qos: 1, properties: { topicAlias: 1 } });
  await pub.publishAsync('', 'a1', { qos: 1, properties: { topicAlias: 1 } });
  for (const payload of ['a0', 'a1']) {
    what = `message ${payload} published with topic alias 1`;
    expectMessage(await subInbox.next(what), { topic: aliasTopic, payload, qos: 1 }, what);
  }

  // No subscribers: PUBACK and PUBREC say 0x10.
  const nobody = `${prefix}/v5/nobody`;
  await pub.publishAsync(nobody, 'q1', { qos: 1 });
  await pub.publishAsync(nobody, 'q2', { qos: 2 });
  const codes = [...pubCodes.entries()].filter(([k]) => k.startsWith('puback') || k.startsWith('pubrec'));
  const last = (cmd) => codes.filter(([k]) => k.startsWith(cmd)).at(-1)?.[1];
  if (last('puback') !== 0x10 || last('pubrec') !== 0x10) {
    fail(`a PUBLISH no one subscribed to: PUBACK ${last('puback')}, PUBREC ${last('pubrec')}, want 16 (0x10) for both`);
  }

  // No Local: a client does not get its own messages back.
  const nlTopic = `${prefix}/v5/nolocal`;
  await sub.subscribeAsync(nlTopic, { qos: 1, nl: true });
  await sub.publishAsync(nlTopic, 'own', { qos: 1 });
  await pub.publishAsync(nlTopic, 'theirs', { qos: 1 });
  what = 'the other client\'s message on a No Local subscription';
  expectMessage(await subInbox.next(what), { topic: nlTopic, payload: 'theirs' }, what);

  // A shared subscription: each message to exactly one member.
  const sharedTopic = `${prefix}/v5/shared`;
  const members = [await connect5('member0'), await connect5('member1')];
  const seen = [];
  const per = [0, 0];
  members.forEach((c, i) =>
    c.on('message', (_topic, payload) => {
      seen.push(payload.toString());
      per[i]++;
    }),
  );
  for (const c of members) await c.subscribeAsync(`$share/g/${sharedTopic}`, { qos: 1 });
  const n = 6;
  for (let i = 0; i < n; i++) await pub.publishAsync(sharedTopic, `m${i}`, { qos: 1 });
  await until(() => seen.length >= n, `${n} messages to the shared subscription`);
  // A round trip through each member: anything still in flight to them
  // (a second copy) arrives before the answer.
  for (const c of members) await c.publishAsync(`${prefix}/v5/flush`, '', { qos: 1 });
  if (seen.length !== n || new Set(seen).size !== n) {
    fail(`shared subscription: got ${JSON.stringify(seen)}, want each of m0..m${n - 1} once`);
  }
  console.log(`shared subscription: ${per[0]} and ${per[1]} messages`);

  if (subInbox.pending() !== 0) fail('unexpected extra messages were delivered');
  for (const c of [sub, pub, ...members]) await c.endAsync();
}

async function sub5(topic) {
  const client = await connect5('cross-sub');
  const box = inbox(client);
  await client.subscribeAsync(topic, { qos: 1 });
  console.log('READY');
  const m = await box.next(`a message on ${topic}`, timeoutMs);
  const user = Object.entries(m.properties?.userProperties ?? {}).map(([k, v]) => `${k}:${v}`).join(',');
  console.log(`MSG ${m.payload} qos=${m.qos} user=${user}`);
  await client.endAsync();
}

async function pub5(topic, payload) {
  const client = await connect5('cross-pub');
  await client.publishAsync(topic, payload, {
    qos: 1,
    properties: {
      userProperties: { from: 'mqttjs' },
      responseTopic: `${topic}/reply`,
      correlationData: Buffer.from('c1'),
      messageExpiryInterval: 60,
      contentType: 'text/plain',
    },
  });
  await client.endAsync();
}

const mains = { v311: main311, v5: main5, sub5, pub5 };
mains[mode](...args).then(
  () => {
    clearTimeout(overall);
    if (mode !== 'sub5') console.log(`mqttjs interop against ${url}: ${mode}: ok`);
    process.exit(0);
  },
  (err) => fail(err && err.stack ? err.stack : String(err)),
);
