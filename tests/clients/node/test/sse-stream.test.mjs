// The OFREP change stream read by a plain EventSource (the `eventsource` package): what it
// announces, its credential on the query string, and how soon a change reaches it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EventSource } from 'eventsource';
import { KEYS, POLL_MS, sleep, startRelay } from '../lib/relay.mjs';

// The contract is one poll interval + 100 ms; the slack is for a shared 2-core CI machine.
const SLACK_MS = 900;

let relay;
before(async () => {
  relay = await startRelay({ secured: true });
});
after(async () => {
  await relay?.stop();
});

function openStream(url) {
  const events = [];
  const waiters = [];
  const es = new EventSource(url);
  es.addEventListener('message', (e) => {
    const ev = { at: Date.now(), id: e.lastEventId, data: JSON.parse(e.data) };
    events.push(ev);
    for (const w of waiters.splice(0)) w();
  });
  const opened = new Promise((resolve, reject) => {
    es.addEventListener('open', resolve, { once: true });
    es.addEventListener('error', (e) => reject(new Error(`SSE error: ${e.message ?? e.code ?? 'unknown'}`)), { once: true });
  });
  const next = async (ms) => {
    const start = events.length;
    const deadline = Date.now() + ms;
    while (events.length === start) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no SSE event within ${ms} ms`);
      await Promise.race([new Promise((r) => waiters.push(r)), sleep(left)]);
    }
    return events[start];
  };
  return { es, events, opened, next };
}

test('bulk response announces the SSE stream in eventStreams', async () => {
  const res = await fetch(`${relay.baseUrl}/ofrep/v1/evaluate/flags`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': KEYS.eval },
    body: '{"context":{"targetingKey":"user-1"}}',
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  // With a key, the stream is a URL with a stream ticket (an EventSource cannot send headers).
  assert.equal(body.eventStreams.length, 1);
  const [stream] = body.eventStreams;
  assert.equal(stream.type, 'sse');
  assert.equal(stream.inactivityDelaySec, 120);
  assert.match(stream.url, new RegExp(`^${relay.baseUrl}/ofrep/v1/sse\\?ticket=[^&]+$`));
  assert.ok(!stream.url.includes(KEYS.eval));
});

test('SSE needs a credential; ?apiKey= is accepted', async () => {
  const none = await fetch(`${relay.baseUrl}/ofrep/v1/sse`);
  assert.equal(none.status, 401);
  await none.body?.cancel();
  const wrong = await fetch(`${relay.baseUrl}/ofrep/v1/sse?apiKey=${KEYS.wrong}`);
  assert.equal(wrong.status, 401);
  await wrong.body?.cancel();
  const ac = new AbortController();
  const ok = await fetch(`${relay.baseUrl}/ofrep/v1/sse?apiKey=${KEYS.eval}`, { signal: ac.signal });
  assert.equal(ok.status, 200);
  assert.match(ok.headers.get('content-type') ?? '', /^text\/event-stream/);
  ac.abort();
});

test(`a change reaches an SSE client within one poll (${POLL_MS} ms) + 100 ms`, async () => {
  const s = openStream(`${relay.baseUrl}/ofrep/v1/sse?apiKey=${KEYS.eval}`);
  try {
    await s.opened;
    await sleep(50);
    const latencies = [];
    for (const v of ['v2', 'v3', 'v4']) {
      const t0 = Date.now();
      relay.setLiveValue(v);
      const ev = await s.next(5000);
      latencies.push(ev.at - t0);
      assert.equal(ev.data.type, 'refetchEvaluation');
      assert.ok(ev.id, 'event has an id');
      assert.ok(Number.isInteger(ev.data.lastModified), `lastModified: ${ev.data.lastModified}`);
      assert.ok(Math.abs(ev.data.lastModified - Date.now() / 1000) < 120, 'lastModified is unix seconds, about now');
      const info = await (await fetch(`${relay.baseUrl}/info`)).json();
      assert.equal(ev.data.etag, info.etag, 'event etag is the new flag-set etag');
      // The new value is served.
      const res = await fetch(`${relay.baseUrl}/ofrep/v1/evaluate/flags/live-flag`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': KEYS.eval },
        body: '{"context":{"targetingKey":"user-1"}}',
      });
      assert.equal((await res.json()).value, v);
      await sleep(POLL_MS * 2);
    }
    console.log(`# SSE change latency (ms): ${latencies.join(', ')}; contract ${POLL_MS + 100}`);
    for (const l of latencies) assert.ok(l <= POLL_MS + 100 + SLACK_MS, `latency ${l} ms`);
    // One event per change, nothing when nothing changes.
    const count = s.events.length;
    await sleep(POLL_MS * 4);
    assert.equal(s.events.length, count, 'no event without a change');
    assert.equal(new Set(s.events.map((e) => e.data.etag)).size, s.events.length, 'distinct etags');
  } finally {
    s.es.close();
  }
});
