// edgehub demo page: rooms and streamed AI answers over one WebSocket,
// speaking the client protocol v1 (docs: PROTOCOL.md). No framework, no build.
(function () {
  'use strict';

  var DEFAULT_ROOM = 'lobby';
  var PING_EVERY_MS = 20000;
  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 15000;
  var MAX_MESSAGES_PER_ROOM = 500;

  // ---- DOM ---------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  var el = {
    status: $('status'), statusText: $('status-text'), notice: $('notice'),
    joinForm: $('join-form'), roomInput: $('room-input'), joinBtn: $('join-btn'),
    roomList: $('room-list'), currentRoom: $('current-room'), roomMeta: $('room-meta'),
    messages: $('messages'), empty: $('messages-empty'),
    sendForm: $('send-form'), messageInput: $('message-input'), sendBtn: $('send-btn'),
    aiForm: $('ai-form'), aiInput: $('ai-input'), aiBtn: $('ai-btn'), aiCancel: $('ai-cancel-btn'),
    aiRoomCheck: $('ai-room-check'), aiStatus: $('ai-status'), aiAnswer: $('ai-answer'),
    nodeInfo: $('node-info')
  };

  // ---- state -------------------------------------------------------------
  var params = new URLSearchParams(location.search);
  var token = params.get('token');

  var ws = null;
  var connected = false;       // welcome received on the current socket
  var nodeId = null;
  var attempt = 0;             // reconnect attempts since the last welcome
  var drainDelay = null;       // retryAfterMs from a drain frame
  var reconnectTimer = null;
  var pingTimer = null;
  var nextId = 1;
  var pending = {};            // request id -> {type, ...}

  // room name -> {name, joined, joining, epoch, offset, messages: [], unread}
  var rooms = new Map();
  var activeRoom = null;
  var myFrom = null;           // our public `from`, learnt by matching an ack with a message
  var ownOffsets = new Set();  // "room\u0000offset" of our acked publishes

  // The AI job this page asked for.
  var ai = null;               // {job, reqId, chunks: [], lastSeq, done, room}
  // Jobs streamed into rooms by others: job -> {room, chunks, li}
  var roomJobs = new Map();

  // ---- helpers -----------------------------------------------------------
  function reqId() { return 'r' + (nextId++); }

  function send(obj, meta) {
    if (!ws || ws.readyState !== WebSocket.OPEN || !connected) return null;
    if (!obj.id) obj.id = reqId();
    if (meta) pending[obj.id] = meta;
    ws.send(JSON.stringify(obj));
    return obj.id;
  }

  function setStatus(state, text) {
    el.status.dataset.state = state;
    el.statusText.textContent = text;
    document.body.dataset.conn = state;
    var offline = state !== 'connected';
    el.sendBtn.disabled = offline;
    el.joinBtn.disabled = offline;
    el.aiBtn.disabled = offline || !!(ai && !ai.done);
  }

  var noticeTimer = null;
  function notify(text, kind) {
    el.notice.textContent = text;
    el.notice.dataset.kind = kind || 'error';
    el.notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () { el.notice.hidden = true; }, 6000);
  }

  var ERROR_TEXT = {
    bad_request: 'That request was not understood',
    unauthorized: 'You are not signed in (or your token expired)',
    forbidden: 'You are not allowed to do that',
    rate_limited: 'Slow down a little — too many requests',
    too_large: 'That message is too large',
    not_found: 'Not found',
    unavailable: 'The service is busy right now, please try again',
    internal: 'Something went wrong on the server'
  };
  function politeError(code, detail) {
    var base = ERROR_TEXT[code] || 'Something went wrong';
    return detail ? base + ' (' + detail + ')' : base;
  }

  function dataText(data) {
    if (data && typeof data === 'object' && !Array.isArray(data) && typeof data.text === 'string') {
      return data.text;
    }
    try { return JSON.stringify(data); } catch (e) { return String(data); }
  }

  function shortFrom(from) {
    if (!from) return '?';
    return from;
  }

  // ---- rooms -------------------------------------------------------------
  function roomState(name) {
    var r = rooms.get(name);
    if (!r) {
      r = { name: name, joined: false, joining: false, epoch: null, offset: 0, messages: [], unread: 0 };
      rooms.set(name, r);
    }
    return r;
  }

  function joinRoom(name) {
    name = name.trim();
    if (!name) return;
    var r = roomState(name);
    setActive(name);
    if (r.joined || r.joining) return;
    r.joining = true;
    renderRooms();
    sendJoin(r);
  }

  function sendJoin(r) {
    var msg = { type: 'join', room: r.name };
    if (r.epoch !== null) msg.since = { epoch: r.epoch, offset: r.offset };
    send(msg, { type: 'join', room: r.name });
  }

  function leaveRoom(name) {
    var r = rooms.get(name);
    if (!r) return;
    if (connected && r.joined) send({ type: 'leave', room: name }, { type: 'leave', room: name });
    rooms.delete(name);
    if (activeRoom === name) {
      var first = rooms.keys().next();
      setActive(first.done ? null : first.value);
    }
    renderRooms();
  }

  function setActive(name) {
    activeRoom = name;
    var r = name ? rooms.get(name) : null;
    if (r) r.unread = 0;
    el.currentRoom.textContent = name || '–';
    renderRooms();
    renderMessages();
  }

  function renderRooms() {
    el.roomList.textContent = '';
    rooms.forEach(function (r) {
      var li = document.createElement('li');
      li.className = 'room' + (r.name === activeRoom ? ' active' : '');
      li.dataset.room = r.name;
      li.dataset.joined = r.joined ? 'true' : 'false';
      var b = document.createElement('button');
      b.type = 'button';
      b.className = 'room-name';
      b.textContent = '# ' + r.name;
      b.title = r.name;
      if (r.name === activeRoom) b.setAttribute('aria-current', 'true');
      b.addEventListener('click', function () { setActive(r.name); });
      li.appendChild(b);
      if (!r.joined) {
        var s = document.createElement('span');
        s.className = 'badge muted';
        s.textContent = r.joining ? 'joining…' : 'offline';
        li.appendChild(s);
      } else if (r.unread) {
        var u = document.createElement('span');
        u.className = 'badge';
        u.textContent = String(r.unread);
        u.setAttribute('aria-label', r.unread + ' unread');
        li.appendChild(u);
      }
      var x = document.createElement('button');
      x.type = 'button';
      x.className = 'leave';
      x.textContent = '×';
      x.title = 'Leave ' + r.name;
      x.setAttribute('aria-label', 'Leave room ' + r.name);
      x.addEventListener('click', function () { leaveRoom(r.name); });
      li.appendChild(x);
      el.roomList.appendChild(li);
    });
    var r = activeRoom && rooms.get(activeRoom);
    el.roomMeta.textContent = r && r.joined ? 'offset ' + r.offset : '';
  }

  // ---- messages ----------------------------------------------------------
  function messageNode(m) {
    var li = document.createElement('li');
    li.className = 'msg' + (m.mine ? ' mine' : '') + (m.ai ? ' ai-msg' : '');
    li.setAttribute('data-testid', 'message');
    li.dataset.room = m.room;
    if (m.offset != null) li.dataset.offset = String(m.offset);
    var from = document.createElement('span');
    from.className = 'from';
    from.textContent = m.mine ? shortFrom(m.from) + ' (you)' : shortFrom(m.from);
    var text = document.createElement('span');
    text.className = 'text';
    text.textContent = m.text;
    li.appendChild(from);
    li.appendChild(text);
    m.li = li;
    return li;
  }

  function nearBottom() {
    return el.messages.scrollHeight - el.messages.scrollTop - el.messages.clientHeight < 80;
  }
  function scrollDown() { el.messages.scrollTop = el.messages.scrollHeight; }

  function renderMessages() {
    el.messages.textContent = '';
    var r = activeRoom && rooms.get(activeRoom);
    var list = r ? r.messages : [];
    var frag = document.createDocumentFragment();
    list.forEach(function (m) { frag.appendChild(messageNode(m)); });
    el.messages.appendChild(frag);
    el.empty.hidden = list.length > 0;
    scrollDown();
  }

  function addMessage(r, m) {
    r.messages.push(m);
    var dropped = null;
    if (r.messages.length > MAX_MESSAGES_PER_ROOM) dropped = r.messages.shift();
    if (r.name === activeRoom) {
      var stick = nearBottom();
      if (dropped && dropped.li && dropped.li.parentNode === el.messages) el.messages.removeChild(dropped.li);
      el.messages.appendChild(messageNode(m));
      el.empty.hidden = true;
      if (stick || m.mine) scrollDown();
    } else {
      r.unread++;
      renderRooms();
    }
  }

  function onMessage(f) {
    var r = rooms.get(f.room);
    if (!r) return; // a room we left meanwhile
    if (typeof f.offset === 'number') {
      if (f.offset <= r.offset && r.epoch !== null) return; // duplicate after recovery
      r.offset = f.offset;
    }
    var key = f.room + '\u0000' + f.offset;
    var mine = (myFrom !== null && f.from === myFrom) || ownOffsets.has(key);
    if (ownOffsets.has(key)) { myFrom = f.from; ownOffsets.delete(key); }
    addMessage(r, { room: f.room, offset: f.offset, from: f.from, text: dataText(f.data), mine: mine });
    if (r.name === activeRoom) el.roomMeta.textContent = 'offset ' + r.offset;
  }

  function onAck(f) {
    var r = rooms.get(f.room);
    if (r) {
      // Our own message may already be here (it can arrive before the ack).
      for (var i = r.messages.length - 1; i >= 0; i--) {
        var m = r.messages[i];
        if (m.offset === f.offset) {
          m.mine = true;
          myFrom = m.from;
          if (m.li) { m.li.classList.add('mine'); m.li.querySelector('.from').textContent = shortFrom(m.from) + ' (you)'; }
          return;
        }
      }
    }
    ownOffsets.add(f.room + '\u0000' + f.offset);
  }

  function onJoined(f) {
    var r = rooms.get(f.room);
    if (!r) { // left while the join was in flight
      send({ type: 'leave', room: f.room });
      return;
    }
    var hadState = r.epoch !== null;
    if (hadState && !f.recovered) {
      // History lost (or too old): start this room afresh.
      r.messages = [];
      if (r.name === activeRoom) renderMessages();
      notify('Could not recover the missed messages in “' + r.name + '”; showing new messages from now on.', 'info');
    }
    r.joined = true;
    r.joining = false;
    r.epoch = f.epoch;
    if (typeof f.offset === 'number') r.offset = f.recovered ? Math.max(r.offset, f.offset) : f.offset;
    renderRooms();
  }

  // ---- AI ----------------------------------------------------------------
  function renderAnswer() {
    if (!ai) { el.aiAnswer.textContent = ''; return; }
    var parts = [];
    for (var i = 0; i < ai.chunks.length; i++) if (ai.chunks[i] !== undefined) parts.push(ai.chunks[i]);
    el.aiAnswer.textContent = parts.join(' ');
  }

  function setAiStatus(text, state) {
    el.aiStatus.textContent = text;
    el.aiStatus.dataset.state = state || '';
    var busy = !!(ai && !ai.done);
    el.aiCancel.disabled = !busy || !ai.job;
    el.aiBtn.disabled = busy || !connected;
    el.aiAnswer.setAttribute('aria-busy', busy ? 'true' : 'false');
  }

  function askAI(question) {
    question = question.trim();
    if (!question || (ai && !ai.done)) return;
    var msg = { type: 'ai-query', message: question };
    if (el.aiRoomCheck.checked && activeRoom) msg.room = activeRoom;
    ai = { job: null, reqId: null, chunks: [], lastSeq: -1, done: false, room: msg.room || null };
    renderAnswer();
    ai.reqId = send(msg, { type: 'ai-query' });
    if (!ai.reqId) { ai.done = true; setAiStatus('Not connected — try again in a moment', 'error'); return; }
    setAiStatus('Sending…', 'busy');
  }

  function onQueued(f) {
    if (!ai || (f.id && f.id !== ai.reqId) || (ai.job && ai.job !== f.job)) return;
    ai.job = f.job;
    var wait = typeof f.estimatedWaitMs === 'number' && f.estimatedWaitMs > 0
      ? ' · about ' + Math.max(1, Math.round(f.estimatedWaitMs / 1000)) + ' s' : '';
    if (ai.lastSeq < 0) setAiStatus('Queued — position ' + f.position + (f.queue ? ' in ' + f.queue : '') + wait, 'queued');
    else setAiStatus('Answering…', 'busy');
  }

  function onChunk(f) {
    if (ai && ai.job && f.job === ai.job) {
      if (f.reset) { ai.chunks = []; ai.lastSeq = -1; } // a retried attempt starts the answer over
      if (f.seq <= ai.lastSeq && !(f.done && !ai.done)) return;
      ai.chunks[f.seq] = f.content;
      if (f.seq > ai.lastSeq) ai.lastSeq = f.seq;
      renderAnswer();
      if (f.done) { ai.done = true; setAiStatus('Done', 'done'); }
      else setAiStatus('Answering…', 'busy');
      return;
    }
    if (f.room) onRoomChunk(f);
  }

  // Someone else's AI answer streamed into a room we are in.
  function onRoomChunk(f) {
    var r = rooms.get(f.room);
    if (!r) return;
    var j = roomJobs.get(f.job);
    if (!j) {
      j = { chunks: [], msg: null };
      roomJobs.set(f.job, j);
      j.msg = { room: f.room, offset: null, from: 'AI', text: '', ai: true };
      addMessage(r, j.msg);
    }
    if (f.reset) j.chunks = []; // a retried attempt starts the answer over
    j.chunks[f.seq] = f.content;
    j.msg.text = j.chunks.filter(function (c) { return c !== undefined; }).join(' ');
    if (j.msg.li) j.msg.li.querySelector('.text').textContent = j.msg.text + (f.done ? '' : ' …');
    if (f.done) roomJobs.delete(f.job);
  }

  function onAiError(f) {
    if (ai && f.job === ai.job) {
      ai.done = true;
      setAiStatus(f.error === 'cancelled' ? 'Cancelled' : 'The answer failed: ' + f.error, f.error === 'cancelled' ? 'cancelled' : 'error');
    }
  }

  // ---- frames ------------------------------------------------------------
  function onFrame(f) {
    var meta = f.id ? pending[f.id] : undefined;
    if (f.id && f.type !== 'ai-chunk') delete pending[f.id];
    switch (f.type) {
      case 'welcome': onWelcome(f); break;
      case 'joined': onJoined(f); break;
      case 'left': break;
      case 'message': onMessage(f); break;
      case 'ack': onAck(f); break;
      case 'queued': onQueued(f); break;
      case 'ai-chunk': onChunk(f); break;
      case 'ai-error': onAiError(f); break;
      case 'pong': break;
      case 'drain':
        drainDelay = typeof f.retryAfterMs === 'number' ? f.retryAfterMs : 1000;
        setStatus('draining', 'Server restarting — reconnecting in ' + Math.ceil(drainDelay / 1000) + ' s');
        break;
      case 'error': onError(f, meta); break;
      default: break; // newer server, unknown frame: ignore
    }
  }

  function onError(f, meta) {
    var msg = politeError(f.code, f.error);
    if (meta && meta.type === 'join') {
      var r = rooms.get(meta.room);
      if (r) { r.joining = false; if (!r.joined) rooms.delete(meta.room); }
      if (activeRoom === meta.room && !rooms.has(meta.room)) {
        var first = rooms.keys().next();
        setActive(first.done ? null : first.value);
      }
      renderRooms();
      notify('Could not join “' + meta.room + '”: ' + msg);
    } else if (meta && meta.type === 'publish') {
      if (!el.messageInput.value) el.messageInput.value = meta.text || '';
      notify('Your message was not sent: ' + msg);
    } else if (meta && meta.type === 'ai-query') {
      if (ai && ai.reqId === f.id) { ai.done = true; setAiStatus('Could not ask: ' + msg, 'error'); }
    } else if (meta && meta.type === 'ai-cancel') {
      if (ai && !ai.done && f.code === 'not_found') { /* finished meanwhile */ }
    } else if (meta && meta.type === 'ai-resume') {
      if (ai && !ai.done) { ai.done = true; setAiStatus('The answer was lost while reconnecting', 'error'); }
    } else {
      notify(msg);
    }
  }

  function onWelcome(f) {
    connected = true;
    attempt = 0;
    drainDelay = null;
    nodeId = f.node;
    setStatus('connected', 'Connected · node ' + f.node);
    el.nodeInfo.textContent = 'node ' + f.node + (f.heartbeatMs ? ' · heartbeat ' + Math.round(f.heartbeatMs / 1000) + ' s' : '');
    // (Re)join every room, asking for what we missed.
    rooms.forEach(function (r) { r.joined = false; r.joining = true; sendJoin(r); });
    renderRooms();
    // Pick up an AI answer that was streaming when the connection dropped.
    if (ai && !ai.done) {
      if (ai.job) {
        send({ type: 'ai-resume', job: ai.job, seq: ai.lastSeq }, { type: 'ai-resume' });
        setAiStatus('Resuming the answer…', 'busy');
      } else {
        ai.done = true;
        setAiStatus('Connection lost before the question was queued — please ask again', 'error');
      }
    } else {
      setAiStatus(el.aiStatus.textContent, el.aiStatus.dataset.state);
    }
    clearInterval(pingTimer);
    pingTimer = setInterval(function () { send({ type: 'ping' }); }, PING_EVERY_MS);
  }

  // ---- connection --------------------------------------------------------
  function wsURL() {
    var u = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
    if (token) u += '?token=' + encodeURIComponent(token);
    return u;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    setStatus(attempt ? 'reconnecting' : 'connecting', attempt ? 'Reconnecting…' : 'Connecting…');
    var sock;
    try { sock = new WebSocket(wsURL()); } catch (e) { scheduleReconnect(); return; }
    ws = sock;
    sock.onmessage = function (ev) {
      if (typeof ev.data !== 'string') return;
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (f && typeof f === 'object') onFrame(f);
    };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      connected = false;
      ws = null;
      pending = {};
      clearInterval(pingTimer);
      rooms.forEach(function (r) { r.joined = false; r.joining = false; });
      renderRooms();
      if (ev.code === 1008) notify('The server closed the connection (policy violation).');
      else if (ev.code === 1009) notify('The connection was closed: a message was too large.');
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    var delay, secs;
    if (drainDelay !== null) {
      // The node is shutting down and told us when to come back (to any node).
      delay = drainDelay;
      drainDelay = null;
      secs = Math.max(1, Math.round(delay / 1000));
      setStatus('draining', 'Server restarting — reconnecting in ' + secs + ' s');
    } else {
      var cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, attempt));
      delay = cap / 2 + Math.random() * cap / 2; // jittered exponential backoff
      secs = Math.max(1, Math.round(delay / 1000));
      setStatus('reconnecting', 'Disconnected — retrying in ' + secs + ' s');
    }
    attempt++;
    reconnectTimer = setTimeout(connect, delay);
  }

  // ---- UI events ---------------------------------------------------------
  el.joinForm.addEventListener('submit', function (e) {
    e.preventDefault();
    var name = el.roomInput.value.trim();
    if (!name) return;
    joinRoom(name);
    el.roomInput.value = '';
  });

  el.sendForm.addEventListener('submit', function (e) {
    e.preventDefault();
    var text = el.messageInput.value;
    if (!text.trim()) return;
    if (!activeRoom) { notify('Join a room first.', 'info'); return; }
    var id = send({ type: 'publish', room: activeRoom, data: { text: text } }, { type: 'publish', room: activeRoom, text: text });
    if (!id) { notify('Not connected — your message was not sent.'); return; }
    el.messageInput.value = '';
    el.messageInput.focus();
  });

  el.aiForm.addEventListener('submit', function (e) {
    e.preventDefault();
    askAI(el.aiInput.value);
  });
  el.aiInput.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); askAI(el.aiInput.value); }
  });

  el.aiCancel.addEventListener('click', function () {
    if (ai && ai.job && !ai.done) {
      send({ type: 'ai-cancel', job: ai.job }, { type: 'ai-cancel' });
      setAiStatus('Cancelling…', 'busy');
    }
  });

  window.addEventListener('online', function () {
    if (!ws && reconnectTimer) { attempt = 0; connect(); }
  });

  // ---- start -------------------------------------------------------------
  roomState(DEFAULT_ROOM).joining = true;
  setActive(DEFAULT_ROOM);
  setAiStatus('Idle', '');
  connect();
})();
