// The demo page in headless Chromium (Debian's chromium, driven by playwright-core).
// Run: EDGEHUB_URL=http://127.0.0.1:PORT node --test scripts/e2e/
// Optional env: CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (saves demo.png there).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { BASE_URL, Pool, uniqueRoom } from './lib.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || '';
const UI_TIMEOUT = 10000;
const FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

describe('demo page in headless Chromium', () => {
  let userDataDir;
  let context;
  let page;
  const pool = new Pool();
  const pageErrors = [];
  let room;
  let peer; // a ws client in the same room

  before(async () => {
    userDataDir = await mkdtemp(path.join(tmpdir(), 'edgehub-chromium-'));
    // A persistent context gives Chromium the fresh, empty --user-data-dir.
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      chromiumSandbox: false,
      args: FLAGS,
      viewport: { width: 1280, height: 800 },
      timeout: 30000,
    });
    context.setDefaultTimeout(UI_TIMEOUT);
    page = context.pages()[0] || await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !/^Failed to load resource/.test(msg.text())) pageErrors.push(msg.text());
    });
    page.on('response', (res) => { if (res.status() >= 400) pageErrors.push(`HTTP ${res.status()} for ${res.url()}`); });
    await page.goto(BASE_URL + '/', { waitUntil: 'load' });
    await page.waitForSelector('#status[data-state="connected"]');
  });

  after(async () => {
    await pool.closeAll();
    if (context) await context.close();
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
  });

  test('connects, shows the node id and joins the lobby', async () => {
    const status = await page.textContent('#status');
    assert.match(status, /connected/i);
    assert.match(status, /node \S+/);
    await page.waitForSelector('#room-list li[data-room="lobby"][data-joined="true"]');
  });

  test('join a room and see a ws client\'s message appear', async () => {
    room = uniqueRoom('demo');
    await page.fill('#room-input', room);
    await page.click('#join-btn');
    await page.waitForSelector(`#room-list li[data-room="${room}"][data-joined="true"]`);

    peer = await pool.connect();
    const joined = await peer.join(room);
    assert.equal(joined.type, 'joined');
    const ack = await peer.request({ type: 'publish', room, data: { text: 'hello from ws' } }, { types: ['ack', 'error'] });
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    await peer.next((f) => f.type === 'message' && f.room === room, { what: 'own message' });

    const msg = page.locator('#messages [data-testid="message"]', { hasText: 'hello from ws' });
    await msg.waitFor();
    assert.match(await msg.locator('.from').textContent(), /^anon:/);
    // Non-text data is shown as JSON.
    await peer.request({ type: 'publish', room, data: { n: 42 } }, { types: ['ack'] });
    await page.locator('#messages [data-testid="message"]', { hasText: '{"n":42}' }).waitFor();
  });

  test('typing into the composer delivers the message to the ws client', async () => {
    assert.ok(room && peer, 'needs the room joined by the previous test');
    await page.fill('#message-input', 'hello from the page');
    await page.click('#send-btn');
    const m = await peer.next((f) => f.type === 'message' && f.room === room && f.data?.text === 'hello from the page',
      { what: 'the page\'s message', timeout: UI_TIMEOUT });
    assert.deepEqual(m.data, { text: 'hello from the page' });
    await page.locator('#messages [data-testid="message"].mine', { hasText: 'hello from the page' }).waitFor();
    assert.equal(await page.inputValue('#message-input'), '');
  });

  test('asking the AI streams the answer into #ai-answer', async () => {
    await page.fill('#ai-input', 'hello from the browser');
    await page.click('#ai-btn');
    await page.waitForFunction(
      () => document.querySelector('#ai-answer').textContent === 'hello from the browser',
      null, { timeout: UI_TIMEOUT });
    await page.waitForFunction(() => /done/i.test(document.querySelector('#ai-status').textContent));
    assert.equal(await page.textContent('#ai-answer'), 'hello from the browser');

    if (SCREENSHOT_DIR) {
      await mkdir(SCREENSHOT_DIR, { recursive: true });
      await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'demo.png'), fullPage: true });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'demo-narrow.png'), fullPage: true });
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });

  test('no script errors on the page', () => {
    assert.deepEqual(pageErrors, []);
  });
});
