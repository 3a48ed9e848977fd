// Shared helpers for edgehub's JS end-to-end tests (not a test file itself).
// The server under test is started by the Go harness; its base URL comes from
// EDGEHUB_URL, e.g. http://127.0.0.1:8080.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

export const BASE_URL = (process.env.EDGEHUB_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const WS_URL = BASE_URL.replace(/^http/, 'ws') + '/ws';
export const API_KEY = process.env.EDGEHUB_API_KEY || 'testkey';
export const DEFAULT_TIMEOUT = Number(process.env.E2E_TIMEOUT_MS || 5000);

export function uniqueRoom(prefix = 'e2e') {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(5).toString('hex')}`;
}

let idSeq = 0;
export function reqId(prefix = 'q') {
  return `${prefix}${++idSeq}-${randomBytes(3).toString('hex')}`;
}

/**
 * A protocol client over `ws` that records every frame it receives so tests
 * can wait for a frame matching a predicate, with a timeout, without racing.
 */
export class Client {
  constructor(ws) {
    this.ws = ws;
    this.frames = [];     // parsed JSON frames not yet consumed
    this.raw = [];        // every raw text frame, in order
    this.waiters = [];
    this.closeInfo = null;
    this.closeWaiters = [];
    this.welcome = null;
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? null : data.toString('utf8');
      let frame;
      if (text === null) frame = { type: '__binary__', length: data.length };
      else {
        this.raw.push(text);
        try { frame = JSON.parse(text); } catch { frame = { type: '__invalid_json__', text }; }
      }
      this.frames.push(frame);
      this._pump();
    });
    ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString('utf8') };
      for (const w of this.closeWaiters.splice(0)) w.resolve(this.closeInfo);
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error(`connection closed (code ${code}, reason ${JSON.stringify(this.closeInfo.reason)}) while waiting for ${w.what}`));
      }
    });
    ws.on('error', () => { /* surfaced through close */ });
  }

  static async connect(opts = {}) {
    const { url = WS_URL, timeout = DEFAULT_TIMEOUT, wsOptions = {}, expectWelcome = true } = opts;
    const ws = new WebSocket(url, { handshakeTimeout: timeout, ...wsOptions });
    const c = new Client(ws);
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => { ws.terminate(); reject(new Error(`connect to ${url} timed out`)); }, timeout);
      ws.once('open', () => { clearTimeout(t); resolve(); });
      ws.once('unexpected-response', (_req, res) => {
        clearTimeout(t);
        reject(Object.assign(new Error(`upgrade refused: HTTP ${res.statusCode}`), { statusCode: res.statusCode }));
      });
      ws.once('error', (err) => { clearTimeout(t); reject(err); });
    });
    if (expectWelcome) c.welcome = await c.next((f) => f.type === 'welcome', { timeout, what: 'welcome' });
    return c;
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  /** Sends a request with a fresh id and waits for the reply carrying that id. */
  async request(obj, opts = {}) {
    const id = obj.id || reqId();
    this.send({ ...obj, id });
    return this.next((f) => f.id === id && (!opts.types || opts.types.includes(f.type)), {
      what: `reply to ${obj.type} id ${id}`, ...opts,
    });
  }

  /** Waits for (and consumes) the first frame, in arrival order, that matches. */
  next(pred = () => true, { timeout = DEFAULT_TIMEOUT, what = 'a frame' } = {}) {
    const i = this.frames.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.frames.splice(i, 1)[0]);
    if (this.closeInfo) {
      return Promise.reject(new Error(`connection already closed (code ${this.closeInfo.code}) while waiting for ${what}`));
    }
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject, what };
      w.timer = setTimeout(() => {
        const wi = this.waiters.indexOf(w);
        if (wi >= 0) this.waiters.splice(wi, 1);
        const seen = this.frames.slice(-5).map((f) => JSON.stringify(f).slice(0, 200)).join('\n  ');
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}; unconsumed frames (last 5):\n  ${seen || '(none)'}`));
      }, timeout);
      this.waiters.push(w);
    });
  }

  /** Collects n frames matching pred, in order. */
  async take(n, pred, opts = {}) {
    const out = [];
    for (let i = 0; i < n; i++) out.push(await this.next(pred, { ...opts, what: `${opts.what || 'frame'} #${i + 1} of ${n}` }));
    return out;
  }

  /** Waits until no frame matching pred arrives for `ms` (returns what did arrive). */
  async quiet(pred, ms = 300) {
    await new Promise((r) => setTimeout(r, ms));
    return this.frames.filter(pred);
  }

  _pump() {
    for (let wi = 0; wi < this.waiters.length; wi++) {
      const w = this.waiters[wi];
      const i = this.frames.findIndex(w.pred);
      if (i >= 0) {
        const [f] = this.frames.splice(i, 1);
        clearTimeout(w.timer);
        this.waiters.splice(wi, 1);
        wi--;
        w.resolve(f);
      }
    }
  }

  /** Resolves with {code, reason} when the socket closes; rejects after timeout. */
  closed(timeout = DEFAULT_TIMEOUT) {
    if (this.closeInfo) return Promise.resolve(this.closeInfo);
    return new Promise((resolve, reject) => {
      const w = { resolve };
      const t = setTimeout(() => reject(new Error(`socket not closed by the server within ${timeout} ms`)), timeout);
      w.resolve = (info) => { clearTimeout(t); resolve(info); };
      this.closeWaiters.push(w);
    });
  }

  async join(room, extra = {}, opts = {}) {
    return this.request({ type: 'join', room, ...extra }, { types: ['joined', 'error'], ...opts });
  }

  /** Closes politely, and terminates if the server does not answer quickly. */
  async close() {
    if (this.closeInfo) return;
    const done = this.closed(1500).catch(() => this.ws.terminate());
    try { this.ws.close(1000); } catch { this.ws.terminate(); }
    await done;
  }
}

/** Tracks clients so every test can close all of its sockets in a finally/after hook. */
export class Pool {
  constructor() { this.clients = []; }
  async connect(opts) {
    const c = await Client.connect(opts);
    this.clients.push(c);
    return c;
  }
  async closeAll() {
    await Promise.all(this.clients.splice(0).map((c) => c.close()));
  }
}

export async function httpJSON(path, { method = 'GET', body, headers = {}, timeout = DEFAULT_TIMEOUT } = {}) {
  const res = await fetch(BASE_URL + path, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
    signal: AbortSignal.timeout(timeout),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, text, json, headers: res.headers };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
