// edgehub protocol v1 end-to-end tests with Node's `ws` package.
// Run: EDGEHUB_URL=http://127.0.0.1:PORT node --test scripts/e2e/
// The server runs with -insecure -api-key testkey -heartbeat 2s.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { Client, Pool, API_KEY, httpJSON, reqId, uniqueRoom, sleep } from './lib.mjs';

const HEARTBEAT_MS = Number(process.env.EDGEHUB_HEARTBEAT_MS || 2000);
const MAX_MESSAGE = Number(process.env.EDGEHUB_MAX_MESSAGE || 65536);

/** Runs fn with a fresh pool of clients, closing every socket afterwards. */
function withPool(fn) {
  return async (t) => {
    const pool = new Pool();
    try { await fn(pool, t); } finally { await pool.closeAll(); }
  };
}

const inRoom = (room) => (f) => f.type === 'message' && f.room === room;

async function collectAnswer(c, job, { timeout = 15000 } = {}) {
  const chunks = [];
  for (;;) {
    const f = await c.next((x) => (x.type === 'ai-chunk' || x.type === 'ai-error') && x.job === job,
      { timeout, what: `ai-chunk of job ${job} after seq ${chunks.length - 1}` });
    if (f.type === 'ai-error') throw new Error(`ai-error for job ${job}: ${JSON.stringify(f)}`);
    chunks.push(f);
    if (f.done) return chunks;
    assert.ok(chunks.length < 10000, 'runaway answer');
  }
}

function assertAnswer(chunks, words, job) {
  assert.deepEqual(chunks.map((c) => c.seq), words.map((_, i) => i), 'chunk seqs are 0, 1, 2, ... one per word');
  assert.deepEqual(chunks.map((c) => c.content), words, 'the echo backend answers with the words, one per chunk');
  chunks.forEach((c, i) => {
    assert.equal(c.job, job);
    assert.equal(c.done, i === chunks.length - 1, `done only on the last chunk (seq ${c.seq})`);
  });
}

describe('connection', () => {
  test('welcome carries conn, node and heartbeatMs', withPool(async (pool) => {
    const a = await pool.connect();
    const b = await pool.connect();
    for (const c of [a, b]) {
      assert.equal(c.welcome.type, 'welcome');
      assert.equal(typeof c.welcome.conn, 'string');
      assert.ok(c.welcome.conn.length >= 16, `conn id should be unguessable, got ${JSON.stringify(c.welcome.conn)}`);
      assert.equal(typeof c.welcome.node, 'string');
      assert.ok(c.welcome.node.length > 0, 'node id is set');
      assert.equal(c.welcome.heartbeatMs, HEARTBEAT_MS);
    }
    assert.notEqual(a.welcome.conn, b.welcome.conn, 'every connection has its own id');
    assert.equal(a.welcome.node, b.welcome.node);
  }));

  test('ping is answered with pong echoing id', withPool(async (pool) => {
    const c = await pool.connect();
    const id = reqId('ping');
    c.send({ type: 'ping', id });
    const pong = await c.next((f) => f.type === 'pong', { what: 'pong' });
    assert.equal(pong.id, id);
  }));

  test('unknown type gets error bad_request and the connection is kept', withPool(async (pool) => {
    const c = await pool.connect();
    const err = await c.request({ type: 'no-such-type' });
    assert.equal(err.type, 'error');
    assert.equal(err.code, 'bad_request');
    assert.equal(typeof err.error, 'string');
    const pong = await c.request({ type: 'ping' });
    assert.equal(pong.type, 'pong', 'the connection still answers after the error');
    assert.equal(c.closeInfo, null);
  }));

  test('a silent connection is closed with 1000 "idle" after 2 heartbeats; a ponging one is kept',
    withPool(async (pool) => {
      const silent = await pool.connect({ wsOptions: { autoPong: false } });
      const alive = await pool.connect(); // ws answers pings with pongs by itself
      const { code, reason } = await silent.closed(HEARTBEAT_MS * 4 + 2000);
      assert.equal(code, 1000);
      assert.equal(reason, 'idle');
      assert.equal(alive.closeInfo, null, 'a connection that pongs is not idle');
      const pong = await alive.request({ type: 'ping' });
      assert.equal(pong.type, 'pong');
    }));
});

describe('rooms', () => {
  test('join a new room -> joined with offset 0; leave -> left', withPool(async (pool) => {
    const c = await pool.connect();
    const room = uniqueRoom('join');
    const id = reqId();
    const joined = await c.join(room, { id });
    assert.equal(joined.type, 'joined', JSON.stringify(joined));
    assert.equal(joined.id, id);
    assert.equal(joined.room, room);
    assert.equal(typeof joined.epoch, 'string');
    assert.ok(joined.epoch.length > 0, 'epoch is set');
    assert.equal(joined.offset, 0);
    assert.equal(joined.recovered, false);
    const left = await c.request({ type: 'leave', room }, { types: ['left', 'error'] });
    assert.equal(left.type, 'left');
    assert.equal(left.room, room);
  }));

  test('two members both get a publish with data intact; from is anon:<public id>; offsets +1; ack',
    withPool(async (pool) => {
      const a = await pool.connect();
      const b = await pool.connect();
      const room = uniqueRoom('pub');
      assert.equal((await a.join(room)).offset, 0);
      assert.equal((await b.join(room)).type, 'joined');

      const dataJSON = '{"x":[1,2,{"y":"é"}]}';
      const data = JSON.parse(dataJSON);
      const id = reqId('pub');
      a.send(`{"type":"publish","id":"${id}","room":"${room}","data":${dataJSON}}`);
      const ack = await a.next((f) => f.type === 'ack' || (f.type === 'error' && f.id === id), { what: 'ack' });
      assert.equal(ack.type, 'ack', JSON.stringify(ack));
      assert.equal(ack.id, id);
      assert.equal(ack.room, room);
      assert.equal(ack.offset, 1);

      const [ma] = await a.take(1, inRoom(room), { what: 'message at publisher' });
      const [mb] = await b.take(1, inRoom(room), { what: 'message at the other member' });
      for (const m of [ma, mb]) {
        assert.deepEqual(m.data, data);
        assert.equal(m.offset, 1);
        assert.equal(m.room, room);
        assert.match(m.from, /^anon:.+/);
      }
      assert.equal(ma.from, mb.from, 'both members see the same publisher');
      assert.notEqual(ma.from, `anon:${a.welcome.conn}`, 'from must not reveal the secret conn id');
      assert.ok(!ma.from.includes(a.welcome.conn), 'from must not contain the secret conn id');
      // data is kept byte-for-byte
      assert.ok(b.raw.some((r) => r.includes(dataJSON)), `raw message frame should hold ${dataJSON} verbatim; got ${b.raw.at(-1)}`);

      // More publishes: offsets go up by exactly 1; b's from differs from a's.
      const acks = [];
      for (let i = 0; i < 3; i++) {
        acks.push(await a.request({ type: 'publish', room, data: { i } }, { types: ['ack', 'error'] }));
      }
      assert.deepEqual(acks.map((x) => x.offset), [2, 3, 4]);
      const bm = await b.take(3, inRoom(room), { what: 'message' });
      assert.deepEqual(bm.map((m) => m.offset), [2, 3, 4]);
      assert.deepEqual(bm.map((m) => m.data), [{ i: 0 }, { i: 1 }, { i: 2 }]);
      await a.take(3, inRoom(room), { what: 'own message' });

      const backAck = await b.request({ type: 'publish', room, data: 'from b' }, { types: ['ack', 'error'] });
      assert.equal(backAck.offset, 5);
      const [fromB] = await a.take(1, inRoom(room), { what: "b's message" });
      assert.match(fromB.from, /^anon:.+/);
      assert.notEqual(fromB.from, ma.from, 'each connection has its own public id');
      assert.ok(!fromB.from.includes(b.welcome.conn));
      await b.take(1, inRoom(room), { what: "b's own message" });

      // Exactly once per connection: nothing else arrives.
      assert.deepEqual(await a.quiet(inRoom(room)), []);
      assert.deepEqual(await b.quiet(inRoom(room), 0), []);
    }));

  test('publish needs no membership and is not delivered to non-members', withPool(async (pool) => {
    const pub = await pool.connect();
    const member = await pool.connect();
    const room = uniqueRoom('nomember');
    await member.join(room);
    const ack = await pub.request({ type: 'publish', room, data: { hi: 1 } }, { types: ['ack', 'error'] });
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    const [m] = await member.take(1, inRoom(room));
    assert.deepEqual(m.data, { hi: 1 });
    assert.deepEqual(await pub.quiet(inRoom(room)), [], 'the publisher is not a member');
  }));

  test('200 messages arrive in publish order with consecutive offsets', withPool(async (pool) => {
    const a = await pool.connect();
    const b = await pool.connect();
    const room = uniqueRoom('order');
    await b.join(room);
    const N = 200;
    for (let n = 0; n < N; n++) a.send({ type: 'publish', id: `o${n}`, room, data: { n } });
    const acks = await a.take(N, (f) => f.type === 'ack' || f.type === 'error', { what: 'ack', timeout: 10000 });
    const errs = acks.filter((f) => f.type === 'error');
    assert.deepEqual(errs, [], 'no publish should fail');
    const msgs = await b.take(N, inRoom(room), { what: 'message', timeout: 10000 });
    assert.deepEqual(msgs.map((m) => m.data.n), [...Array(N).keys()]);
    const first = msgs[0].offset;
    assert.equal(first, 1);
    msgs.forEach((m, i) => assert.equal(m.offset, first + i));
    assert.deepEqual([...acks.map((x) => x.offset)].sort((x, y) => x - y), msgs.map((m) => m.offset));
  }));

  test('recovery: missed messages arrive before joined with recovered:true', withPool(async (pool) => {
    const room = uniqueRoom('recover');
    const pub = await pool.connect();
    const c1 = await pool.connect();
    const j1 = await c1.join(room);
    assert.equal(j1.offset, 0);
    for (let i = 0; i < 2; i++) await pub.request({ type: 'publish', room, data: { i } }, { types: ['ack'] });
    const seen = await c1.take(2, inRoom(room));
    const last = seen.at(-1);
    assert.equal(last.offset, 2);
    await c1.close(); // the client goes away ...

    for (let i = 2; i < 7; i++) await pub.request({ type: 'publish', room, data: { i } }, { types: ['ack'] });

    const c2 = await pool.connect(); // ... and comes back
    const id = reqId('rejoin');
    c2.send({ type: 'join', id, room, since: { epoch: j1.epoch, offset: last.offset } });
    const got = [];
    for (;;) {
      const f = await c2.next((x) => inRoom(room)(x) || x.id === id, { what: 'recovered message or joined' });
      got.push(f);
      if (f.type !== 'message') break;
    }
    const joined = got.pop();
    assert.equal(joined.type, 'joined', JSON.stringify(joined));
    assert.equal(joined.recovered, true);
    assert.equal(joined.epoch, j1.epoch);
    assert.equal(joined.offset, 7);
    assert.deepEqual(got.map((m) => m.offset), [3, 4, 5, 6, 7], 'the 5 missed messages, in order, before joined');
    assert.deepEqual(got.map((m) => m.data.i), [2, 3, 4, 5, 6]);

    // Live messages keep flowing after recovery.
    await pub.request({ type: 'publish', room, data: { i: 7 } }, { types: ['ack'] });
    const [live] = await c2.take(1, inRoom(room));
    assert.equal(live.offset, 8);
  }));

  test('recovery with an unknown epoch -> recovered:false and no replay', withPool(async (pool) => {
    const room = uniqueRoom('recover-bad');
    const pub = await pool.connect();
    for (let i = 0; i < 3; i++) await pub.request({ type: 'publish', room, data: { i } }, { types: ['ack'] });
    const c = await pool.connect();
    const joined = await c.join(room, { since: { epoch: 'not-the-epoch', offset: 1 } });
    assert.equal(joined.type, 'joined');
    assert.equal(joined.recovered, false);
    assert.equal(joined.offset, 3);
    assert.deepEqual(await c.quiet(inRoom(room), 200), [], 'nothing is replayed when recovery fails');
  }));
});

describe('AI', () => {
  test('ai-query -> queued, then one ai-chunk per word, the last done:true', withPool(async (pool) => {
    const c = await pool.connect();
    const words = ['the', 'quick', 'brown', 'fox', 'jumps'];
    const q = await c.request({ type: 'ai-query', message: words.join(' ') }, { types: ['queued', 'error', 'ai-error'] });
    assert.equal(q.type, 'queued', JSON.stringify(q));
    assert.equal(typeof q.job, 'string');
    assert.ok(q.job.length >= 16, 'job ids are unguessable');
    assert.equal(typeof q.queue, 'string');
    assert.equal(typeof q.position, 'number');
    assert.equal(typeof q.estimatedWaitMs, 'number');
    const chunks = await collectAnswer(c, q.job);
    assertAnswer(chunks, words, q.job);
    chunks.forEach((ch) => assert.equal(ch.room, undefined, 'no room on a private answer'));
  }));

  test('ai-query with room streams the answer to every member', withPool(async (pool) => {
    const asker = await pool.connect();
    const member = await pool.connect();
    const room = uniqueRoom('ai-room');
    await asker.join(room);
    await member.join(room);
    const words = ['shared', 'with', 'the', 'room'];
    const q = await asker.request({ type: 'ai-query', message: words.join(' '), room }, { types: ['queued', 'error'] });
    assert.equal(q.type, 'queued', JSON.stringify(q));
    for (const c of [asker, member]) {
      const chunks = await collectAnswer(c, q.job);
      assertAnswer(chunks, words, q.job);
      chunks.forEach((ch) => assert.equal(ch.room, room));
    }
    assert.deepEqual(await asker.quiet((f) => f.type === 'ai-chunk'), [], 'the asker gets each chunk once');
  }));

  test('ai-cancel of a long answer -> ai-error cancelled; cancelling again -> not_found', withPool(async (pool) => {
    const c = await pool.connect();
    const long = Array.from({ length: 400 }, (_, i) => `word${i}`).join(' ');
    const q = await c.request({ type: 'ai-query', message: long }, { types: ['queued', 'error'] });
    assert.equal(q.type, 'queued', JSON.stringify(q));
    await c.next((f) => f.type === 'ai-chunk' && f.job === q.job, { what: 'first chunk', timeout: 10000 });
    c.send({ type: 'ai-cancel', job: q.job, id: reqId('cancel') });
    const e = await c.next((f) => f.type === 'ai-error' || (f.type === 'ai-chunk' && f.done) || f.type === 'error',
      { what: 'ai-error cancelled', timeout: 10000 });
    assert.equal(e.type, 'ai-error', `expected ai-error, got ${JSON.stringify(e)}`);
    assert.equal(e.job, q.job);
    assert.equal(e.error, 'cancelled');
    const again = await c.request({ type: 'ai-cancel', job: q.job }, { types: ['error', 'ai-error'] });
    assert.equal(again.type, 'error');
    assert.equal(again.code, 'not_found');
    await sleep(300);
    assert.ok(!c.frames.some((f) => f.type === 'ai-chunk' && f.done), 'a cancelled answer never completes');
  }));

  test('ai-resume with seq -1 after a reconnect yields every chunk; at the end, the final chunk again',
    withPool(async (pool) => {
      const words = ['resume', 'me', 'after', 'a', 'dropped', 'connection'];
      const c1 = await pool.connect();
      const q = await c1.request({ type: 'ai-query', message: words.join(' ') }, { types: ['queued', 'error'] });
      assert.equal(q.type, 'queued', JSON.stringify(q));
      c1.ws.terminate(); // the network drops
      await c1.closed();

      const c2 = await pool.connect();
      c2.send({ type: 'ai-resume', job: q.job, seq: -1, id: reqId('resume') });
      const chunks = await collectAnswer(c2, q.job);
      assertAnswer(chunks, words, q.job);

      // Holding the last chunk already: it is sent again.
      const lastSeq = words.length - 1;
      c2.send({ type: 'ai-resume', job: q.job, seq: lastSeq });
      const again = await c2.next((f) => (f.type === 'ai-chunk' && f.job === q.job) || f.type === 'error', { what: 'final chunk again' });
      assert.equal(again.type, 'ai-chunk', JSON.stringify(again));
      assert.equal(again.seq, lastSeq);
      assert.equal(again.done, true);
      assert.equal(again.content, words.at(-1));

      // From the middle: only what comes after seq.
      c2.send({ type: 'ai-resume', job: q.job, seq: 2 });
      const rest = await collectAnswer(c2, q.job);
      assert.deepEqual(rest.map((x) => x.seq), [3, 4, 5]);

      const nf = await c2.request({ type: 'ai-resume', job: 'no-such-job-0000000000', seq: -1 }, { types: ['error'] });
      assert.equal(nf.code, 'not_found');
    }));
});

describe('frames and limits', () => {
  test('a binary frame gets close 1003', withPool(async (pool) => {
    const c = await pool.connect();
    c.ws.send(Buffer.from('{"type":"ping"}'), { binary: true });
    const { code } = await c.closed();
    assert.equal(code, 1003);
  }));

  test('a text frame with invalid UTF-8 gets close 1007', withPool(async (pool) => {
    const c = await pool.connect();
    // '{"type":"ping","id":"' + 0xff 0xfe + '"}' sent as a text frame, unvalidated by ws
    const bad = Buffer.concat([Buffer.from('{"type":"ping","id":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    c.ws.send(bad, { binary: false });
    const { code } = await c.closed();
    assert.equal(code, 1007);
  }));

  /** A publish request of exactly `size` bytes (string data padded to fit). */
  function publishOfSize(room, size, id) {
    const head = `{"type":"publish","id":"${id}","room":"${room}","data":"`;
    const tail = '"}';
    const pad = size - Buffer.byteLength(head) - Buffer.byteLength(tail);
    const s = head + 'a'.repeat(pad) + tail;
    assert.equal(Buffer.byteLength(s), size);
    JSON.parse(s);
    return s;
  }

  test(`a ${MAX_MESSAGE}-byte message is accepted, ${MAX_MESSAGE + 1} bytes gets close 1009`, withPool(async (pool) => {
    const room = uniqueRoom('big');
    const member = await pool.connect();
    await member.join(room);

    const ok = await pool.connect();
    ok.send(publishOfSize(room, MAX_MESSAGE, 'big-ok'));
    const ack = await ok.next((f) => f.id === 'big-ok', { what: 'ack of the max-size publish' });
    assert.equal(ack.type, 'ack', JSON.stringify(ack).slice(0, 300));
    const [m] = await member.take(1, inRoom(room));
    assert.equal(m.data.length, MAX_MESSAGE - Buffer.byteLength(`{"type":"publish","id":"big-ok","room":"${room}","data":""}`));

    const big = await pool.connect();
    big.send(publishOfSize(room, MAX_MESSAGE + 1, 'big-no'));
    const { code } = await big.closed();
    assert.equal(code, 1009);
    assert.deepEqual(await member.quiet(inRoom(room), 200), [], 'the oversized publish is not delivered');
  }));
});

describe('HTTP API', () => {
  test('POST /api/publish with the api key reaches a member; without it 401', withPool(async (pool) => {
    const room = uniqueRoom('api');
    const m = await pool.connect();
    await m.join(room);
    const data = { hello: 'from the api', n: [1, 2, 3] };

    const res = await httpJSON('/api/publish', { method: 'POST', body: { room, data }, headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json?.offset, 1);
    const [msg] = await m.take(1, inRoom(room));
    assert.equal(msg.from, 'api');
    assert.equal(msg.offset, 1);
    assert.deepEqual(msg.data, data);

    const none = await httpJSON('/api/publish', { method: 'POST', body: { room, data } });
    assert.equal(none.status, 401, none.text);
    const wrong = await httpJSON('/api/publish', { method: 'POST', body: { room, data }, headers: { authorization: 'Bearer not-the-key' } });
    assert.equal(wrong.status, 401, wrong.text);
    const badJSON = await httpJSON('/api/publish', { method: 'POST', body: '{"room":', headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(badJSON.status, 400, badJSON.text);
    assert.deepEqual(await m.quiet(inRoom(room), 200), [], 'refused publishes are not delivered');
  }));

  test('GET /healthz is 200 and / serves the demo page', async () => {
    const h = await httpJSON('/healthz');
    assert.equal(h.status, 200);
    const page = await httpJSON('/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') || '', /text\/html/);
    assert.match(page.text, /id="messages"/);
  });
});
