// k6 script for edgehub's AI path (docs/PROTOCOL.md, ai-query): ramps to
// VUS virtual users over RAMP and keeps them for HOLD; each iteration
// connects, asks a question, and waits for its answer to end (`done`).
// It measures the time from the question to `queued`, to the first
// `ai-chunk` and to the last, and fails the run on any failed answer:
// an `ai-error`, an `error`, a gap or repeat in `seq`, a socket error, no
// `done` within TIMEOUT_MS. With the `echo` backend (the embedded node's,
// or a worker's -backend echo) the answer must be the question's words,
// one per chunk, which is checked too (ECHO=0 turns that off for a real
// LLM).
//
//   k6 run -e EDGEHUB_URL=ws://127.0.0.1:8080/ws -e VUS=100 -e RAMP=10s -e HOLD=20s bench/k6/ai.js
//
// A node answers with its in-process workers (-ai-workers, 4 by default):
// for 100 VUs give it more (-ai-workers 100), or run workers with
// -concurrency; otherwise the questions queue and the times measure the
// queue. Behind a balancer with a self-signed certificate:
// SSL_CERT_FILE=cert.pem k6 run -e EDGEHUB_URL=wss://...
import { WebSocket } from 'k6/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import exec from 'k6/execution';

const url = __ENV.EDGEHUB_URL || 'ws://127.0.0.1:8080/ws';
const echo = (__ENV.ECHO || '1') !== '0';
const timeoutMs = parseInt(__ENV.TIMEOUT_MS || '30000', 10);

const queuedTime = new Trend('edgehub_ai_queued_ms', true);
const firstChunk = new Trend('edgehub_ai_first_chunk_ms', true);
const doneTime = new Trend('edgehub_ai_done_ms', true);
const answers = new Counter('edgehub_ai_answers');
const failed = new Rate('edgehub_ai_failed');

export const options = {
  scenarios: {
    ai: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: __ENV.RAMP || '10s', target: parseInt(__ENV.VUS || '100', 10) },
        { duration: __ENV.HOLD || '20s', target: parseInt(__ENV.VUS || '100', 10) },
      ],
      gracefulRampDown: '30s',
      gracefulStop: '30s',
    },
  },
  thresholds: {
    edgehub_ai_failed: ['rate==0'],
    edgehub_ai_answers: ['count>0'],
    checks: ['rate==1.0'],
    edgehub_ai_first_chunk_ms: [`p(95)<${__ENV.FIRST_CHUNK_P95_MS || '5000'}`],
  },
};

export default function () {
  const words = ['k6', `vu${exec.vu.idInTest}`, `it${exec.vu.iterationInScenario}`, 'asks', 'edgehub', 'for', 'an', 'answer'];
  const ws = new WebSocket(url);
  let sentAt = 0;
  let job = '';
  let got = []; // the current attempt's chunks
  let finished = false;
  const finish = (ok, why) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    failed.add(!ok);
    if (!ok) {
      check(null, { [why]: () => false });
    }
    ws.close();
  };
  const timer = setTimeout(() => finish(false, 'answer done in time'), timeoutMs);

  ws.onopen = () => {
    sentAt = Date.now();
    ws.send(JSON.stringify({ type: 'ai-query', id: 'q', message: words.join(' ') }));
  };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    switch (m.type) {
      case 'queued':
        job = m.job;
        queuedTime.add(Date.now() - sentAt);
        check(m, { 'queued has job and queue': (q) => !!q.job && !!q.queue && q.id === 'q' && q.position >= 0 });
        break;
      case 'ai-chunk':
        if (m.job !== job) {
          finish(false, 'chunks of my job only');
          return;
        }
        if (m.reset) {
          got = []; // a retried attempt starts over
        }
        if (m.seq !== got.length) {
          finish(false, 'seq without gaps or repeats');
          return;
        }
        if (got.length === 0) {
          firstChunk.add(Date.now() - sentAt);
        }
        got.push(m.content);
        if (m.done) {
          doneTime.add(Date.now() - sentAt);
          answers.add(1);
          if (echo && got.join(' ') !== words.join(' ')) {
            finish(false, 'echo answer is the question');
            return;
          }
          finish(true);
        }
        break;
      case 'ai-error':
        finish(false, 'no ai-error');
        break;
      case 'error':
        finish(false, 'no error replies');
        break;
    }
  };
  ws.onerror = () => finish(false, 'no socket errors');
  ws.onclose = () => finish(false, 'socket open until done');
}
