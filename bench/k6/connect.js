// k6 script for edgehub's connection path: ramps to CONNS WebSocket
// connections over RAMP, holds them all for HOLD, then closes them. Each
// connection joins one of ROOMS rooms, so the node holds real members.
// It measures the connect time (new WebSocket to open, which includes the
// TLS handshake behind wss://), the time to `joined`, and the connections
// that failed: refused, errored, or closed by the node before the end.
// Any failure fails the run (thresholds), so k6 exits non-zero. With
// METRICS_URL (the node's /metrics), one probe halfway through the hold
// reads edgehub_connections_active: the node must hold every connection.
//
//   k6 run -e EDGEHUB_URL=ws://127.0.0.1:8080/ws -e CONNS=5000 -e RAMP=30s -e HOLD=60s \
//     -e METRICS_URL=http://127.0.0.1:8080/metrics bench/k6/connect.js
//
// One k6 process holds at most its open-file limit of sockets (ulimit -n);
// run several for more. Behind a balancer with a self-signed certificate,
// give k6 the certificate: SSL_CERT_FILE=cert.pem k6 run -e EDGEHUB_URL=wss://...
import { WebSocket } from 'k6/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';
import { check, sleep } from 'k6';
import { Counter, Gauge, Rate, Trend } from 'k6/metrics';
import http from 'k6/http';
import exec from 'k6/execution';

const url = __ENV.EDGEHUB_URL || 'ws://127.0.0.1:8080/ws';
const conns = parseInt(__ENV.CONNS || '1000', 10);
const rooms = parseInt(__ENV.ROOMS || '100', 10);
const ramp = __ENV.RAMP || '10s';
const hold = __ENV.HOLD || '20s';
// Longest a connection may take to open and be joined before it counts as failed.
const timeoutMs = parseInt(__ENV.TIMEOUT_MS || '10000', 10);

const connectTime = new Trend('edgehub_connect_ms', true);
const joinTime = new Trend('edgehub_join_ms', true);
const joined = new Counter('edgehub_joined');
const failed = new Rate('edgehub_connection_failed');
const nodeHeld = new Gauge('edgehub_node_connections_active');
const metricsURL = __ENV.METRICS_URL || '';

function seconds(d) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(d);
  if (!m) throw new Error(`duration ${d}: use ms, s or m`);
  return parseFloat(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2]];
}
const endMs = (seconds(ramp) + seconds(hold)) * 1000;

export const options = {
  scenarios: {
    connect: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: ramp, target: conns },
        { duration: hold, target: conns },
      ],
      gracefulRampDown: '0s',
      gracefulStop: '15s',
    },
    ...(metricsURL && {
      probe: {
        executor: 'shared-iterations',
        exec: 'probe',
        vus: 1,
        iterations: 1,
        startTime: `${seconds(ramp) + seconds(hold) / 2}s`,
      },
    }),
  },
  thresholds: {
    ...(metricsURL && { edgehub_node_connections_active: [`value>=${conns}`] }),
    edgehub_connection_failed: ['rate==0'],
    edgehub_joined: [`count>=${conns}`],
    edgehub_connect_ms: [`p(95)<${__ENV.CONNECT_P95_MS || '1000'}`],
    checks: ['rate==1.0'],
  },
};

export default function () {
  // One connection per VU, open until the hold ends: a VU that comes back
  // here after that has nothing left to do.
  const left = endMs - exec.instance.currentTestRunDuration;
  if (exec.vu.iterationInScenario > 0) {
    sleep(Math.max(left, 0) / 1000);
    return;
  }
  const room = `k6-connect-${exec.vu.idInTest % rooms}`;
  const start = Date.now();
  let opened = 0;
  let done = false;
  const ws = new WebSocket(url);
  const fail = (why) => {
    if (!done) {
      done = true;
      failed.add(true);
      check(null, { [why]: () => false });
    }
  };
  const joinTimer = setTimeout(() => { fail('open and joined in time'); ws.close(); }, timeoutMs);
  const endTimer = setTimeout(() => {
    if (!done) {
      done = true;
      failed.add(false);
    }
    ws.close();
  }, left);

  ws.onopen = () => {
    opened = Date.now();
    connectTime.add(opened - start);
    ws.send(JSON.stringify({ type: 'join', room, id: 'j' }));
  };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === 'joined') {
      clearTimeout(joinTimer);
      joinTime.add(Date.now() - opened);
      joined.add(1);
      check(m, { 'joined echoes room and id': (j) => j.room === room && j.id === 'j' });
    } else if (m.type === 'error') {
      fail('no error replies');
    }
  };
  ws.onerror = () => {
    clearTimeout(joinTimer);
    clearTimeout(endTimer);
    fail('no socket errors');
  };
  ws.onclose = () => {
    clearTimeout(joinTimer);
    clearTimeout(endTimer);
    fail('held until the end');
  };
}

// probe reads how many connections the node holds, halfway through the hold.
export function probe() {
  const res = http.get(metricsURL);
  const m = /^edgehub_connections_active (\d+)/m.exec(res.body || '');
  check(res, { 'node /metrics answers': (r) => r.status === 200 && m !== null });
  if (m) {
    nodeHeld.add(parseInt(m[1], 10));
  }
}
