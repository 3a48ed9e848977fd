// k6 script for edgehub's chat path (docs/PROTOCOL.md): each iteration
// connects to /ws, joins a room, publishes a stamped message and checks
// that it comes back as a `message` in the room, then closes. Any failed
// check fails the run (the `checks` threshold), so k6 exits non-zero.
//
// The iteration starts on `open`, not on `welcome`: k6 v1.8's k6/websockets
// starts its read pump before it queues the "connected" task, and drops a
// message that overtakes it (websockets.go queueMessage: `if w.readyState
// != OPEN { return nil }`). edgehub sends `welcome` right behind the 101,
// often in the same segment, so under CPU load k6 loses it now and then.
// A welcome that does arrive is checked; the ones k6 dropped are counted in
// edgehub_welcomes_dropped_by_k6.
//
//   k6 run -e EDGEHUB_URL=ws://127.0.0.1:8080/ws -e VUS=20 -e DURATION=30s bench/k6/chat.js
import { WebSocket } from 'k6/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import exec from 'k6/execution';

const url = __ENV.EDGEHUB_URL || 'ws://127.0.0.1:8080/ws';
const rooms = parseInt(__ENV.ROOMS || '5', 10);
// How long one iteration may wait for its own message before it fails.
const timeoutMs = parseInt(__ENV.TIMEOUT_MS || '5000', 10);

const delivery = new Trend('edgehub_delivery_ms', true);
const delivered = new Counter('edgehub_own_messages');
const welcomesDropped = new Counter('edgehub_welcomes_dropped_by_k6');

export const options = {
  scenarios: {
    chat: {
      executor: 'constant-vus',
      vus: parseInt(__ENV.VUS || '10', 10),
      duration: __ENV.DURATION || '10s',
      gracefulStop: '10s',
    },
  },
  thresholds: {
    checks: ['rate==1.0'],
    edgehub_own_messages: ['count>0'],
    edgehub_delivery_ms: ['p(99)<1000'],
  },
};

export default function () {
  const room = `k6-${exec.vu.idInTest % rooms}`;
  const nonce = `${exec.vu.idInTest}-${exec.vu.iterationInScenario}`;
  const ws = new WebSocket(url);
  let welcomed = false;
  let sentAt = 0;
  const timer = setTimeout(() => {
    check(null, { 'own message arrives in time': () => false });
    ws.close();
  }, timeoutMs);

  ws.onopen = () => {
    ws.send(JSON.stringify({ type: 'join', room, id: 'j' }));
  };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    switch (m.type) {
      case 'welcome':
        welcomed = true;
        check(m, { 'welcome has conn and heartbeat': (w) => !!w.conn && w.heartbeatMs > 0 });
        break;
      case 'joined':
        check(m, { 'joined echoes room and id': (j) => j.room === room && j.id === 'j' && typeof j.offset === 'number' });
        sentAt = Date.now();
        ws.send(JSON.stringify({ type: 'publish', room, id: 'p', data: { nonce, ts: sentAt } }));
        break;
      case 'ack':
        check(m, { 'ack has an offset': (a) => a.offset > 0 });
        break;
      case 'message':
        // Other VUs share the room: only this iteration's nonce ends it.
        if (m.data && m.data.nonce === nonce) {
          check(m, { 'own message arrives intact': (x) => x.room === room && x.offset > 0 && x.data.ts === sentAt });
          delivery.add(Date.now() - sentAt);
          delivered.add(1);
          clearTimeout(timer);
          ws.close();
        }
        break;
      case 'error':
        check(m, { 'no error replies': () => false });
        break;
    }
  };
  ws.onerror = (e) => {
    check(e, { 'no socket errors': () => false });
    clearTimeout(timer);
  };
  ws.onclose = () => {
    if (!welcomed) {
      welcomesDropped.add(1);
    }
  };
}
