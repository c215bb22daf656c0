// @openfeature/web-sdk + @openfeature/ofrep-web-provider, unchanged, run under Node with its
// global fetch and the `eventsource` package as globalThis.EventSource (what a browser has).
// The provider's default pollInterval is 0, so any re-fetch after start comes from the SSE
// stream announced in the bulk response's eventStreams, never from polling.
//
// A browser's EventSource cannot send headers: against an open relay the eventStreams entry is
// a path; against a relay with keys it is a URL with a short-lived stream ticket (never the
// key), which the provider opens as it is, and which changes, with the bulk body, once per
// ticket window.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import { ClientProviderEvents, ClientProviderStatus, OpenFeature, StandardResolutionReasons } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
import { KEYS, expectedVariant, sleep, startRelay } from '../lib/relay.mjs';

// What a browser has. The subclass only records what the provider opens, for diagnostics.
const eventSources = [];
globalThis.EventSource = class RecordingEventSource extends EventSource {
  constructor(url, init) {
    super(url, init);
    const rec = { url: String(url), es: this, opens: 0, errors: [] };
    eventSources.push(rec);
    this.addEventListener('open', () => rec.opens++);
    this.addEventListener('error', (e) => rec.errors.push(e.message ?? String(e.code ?? 'error')));
  }
};

/** A fetch that records what the provider sends and what it gets back, then passes it on. */
function recordingFetch() {
  const calls = [];
  const impl = async (input, init) => {
    const req = new Request(input, init);
    const res = await fetch(req);
    calls.push({
      method: req.method,
      url: new URL(req.url),
      ifNoneMatch: req.headers.get('if-none-match'),
      apiKey: req.headers.get('x-api-key'),
      status: res.status,
      etag: res.headers.get('etag'),
    });
    return res;
  };
  return { impl, calls };
}

const bulkCalls = (calls) => calls.filter((c) => c.method === 'POST' && c.url.pathname === '/ofrep/v1/evaluate/flags');

/** Waits for `pred()` to be true, checking every 20 ms, for at most `ms`. */
async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

describe('web provider against an open relay', () => {
  let relay;
  let rec;
  let client;
  const domain = 'web-open';

  before(async () => {
    relay = await startRelay({ secured: false });
    rec = recordingFetch();
    const provider = new OFREPWebProvider({
      baseUrl: relay.baseUrl,
      fetchImplementation: rec.impl,
      cacheMode: 'disabled', // no localStorage under Node
    });
    await OpenFeature.setProviderAndWait(domain, provider, { targetingKey: 'user-1' });
    client = OpenFeature.getClient(domain);
  });

  after(async () => {
    await OpenFeature.clearProviders();
    await relay?.stop();
  });

  test('initialises from the bulk endpoint', () => {
    assert.equal(client.providerStatus, ClientProviderStatus.READY);
    const bulk = bulkCalls(rec.calls);
    assert.equal(bulk.length, 1, 'one bulk request at start');
    assert.equal(bulk[0].status, 200);
    assert.match(bulk[0].etag ?? '', /^(W\/)?"[^"]+"$/, 'bulk response carries an ETag');
    // No single-flag requests: the web provider evaluates from its cache.
    assert.equal(rec.calls.filter((c) => c.url.pathname.startsWith('/ofrep/v1/evaluate/flags/')).length, 0);
  });

  test('evaluates every type from the bulk cache', () => {
    const b = client.getBooleanDetails('bool-flag', false);
    assert.deepEqual([b.value, b.variant, b.reason], [true, 'on', StandardResolutionReasons.STATIC]);
    assert.equal(b.flagMetadata.team, 'qa');
    assert.equal(client.getStringValue('string-flag', 'default'), 'transformer-v3');
    assert.equal(client.getNumberValue('int-flag', 0), 1000);
    assert.equal(client.getNumberValue('float-flag', 0), 0.75);
    assert.deepEqual(client.getObjectValue('object-flag', {}), {
      theme: 'compact',
      density: 2,
      sidebar: false,
      tags: ['a', 'b'],
    });
    const missing = client.getBooleanDetails('no-such-flag', true);
    assert.deepEqual([missing.value, missing.errorCode], [true, 'FLAG_NOT_FOUND']);
    const disabled = client.getStringDetails('disabled-flag', 'default');
    assert.deepEqual([disabled.value, disabled.reason], ['no-banner', StandardResolutionReasons.DISABLED]);
    const split = client.getBooleanDetails('split-flag', false);
    assert.equal(split.variant, expectedVariant('split-flag', 'user-1', 50));
    assert.equal(split.reason, StandardResolutionReasons.SPLIT);
  });

  test('honours ETag: a re-fetch of unchanged flags sends If-None-Match and gets 304', async () => {
    const before = bulkCalls(rec.calls).length;
    const etag = bulkCalls(rec.calls).at(-1).etag;
    // Same targeting key, an attribute the rule chain ignores: same answer, so same ETag.
    await OpenFeature.setContext(domain, { targetingKey: 'user-1', plan: 'pro' });
    const bulk = bulkCalls(rec.calls);
    assert.equal(bulk.length, before + 1, 'context change re-fetches');
    const last = bulk.at(-1);
    assert.equal(last.ifNoneMatch, etag, 'provider sent the last ETag');
    assert.equal(last.status, 304, 'relay answered 304 Not Modified');
    assert.equal(client.getStringValue('string-flag', 'default'), 'transformer-v3', 'cache kept after 304');
  });

  test('a new targeting key re-evaluates the split rollout', async () => {
    for (const u of ['user-2', 'user-4']) {
      await OpenFeature.setContext(domain, { targetingKey: u });
      assert.equal(bulkCalls(rec.calls).at(-1).status, 200);
      assert.equal(client.getBooleanDetails('split-flag', false).variant, expectedVariant('split-flag', u, 50), u);
    }
    await OpenFeature.setContext(domain, { targetingKey: 'user-1' });
  });

  test('picks up a flag change through the SSE stream, without polling', async () => {
    assert.equal(client.getStringValue('live-flag', 'default'), 'v1');
    const changed = [];
    const handler = (e) => changed.push(e);
    client.addHandler(ClientProviderEvents.ConfigurationChanged, handler);
    try {
      // The provider connected its EventSource to the stream announced by the first bulk answer.
      const sseUrl = `${relay.baseUrl}/ofrep/v1/sse`;
      await waitFor(() => eventSources.some((r) => r.url === sseUrl && r.es.readyState === 1), 2000, 'the SSE stream to open').catch(
        () => assert.fail(`no open EventSource on ${sseUrl}: ${JSON.stringify(eventSources.slice(-3).map((r) => ({ url: r.url, state: r.es.readyState, errors: r.errors })))}`),
      );
      await sleep(100);
      const before = bulkCalls(rec.calls).length;
      const t0 = Date.now();
      relay.setLiveValue('v2');
      await waitFor(() => client.getStringValue('live-flag', 'default') === 'v2', 5000, 'live-flag to become v2');
      const elapsed = Date.now() - t0;
      console.log(`# web provider saw the change after ${elapsed} ms`);
      const refetch = bulkCalls(rec.calls).slice(before);
      assert.ok(refetch.length >= 1);
      // The SSE-triggered re-fetch carries the event's etag as flagConfigEtag and gets 200.
      const viaSse = refetch.filter((c) => c.url.searchParams.has('flagConfigEtag'));
      assert.ok(viaSse.length >= 1, `re-fetch came from an SSE event: ${JSON.stringify(refetch.map((c) => c.url.search))}`);
      assert.equal(viaSse.at(-1).status, 200);
      await waitFor(() => changed.length > 0, 1000, 'ConfigurationChanged');
      assert.ok(changed.some((e) => (e.flagsChanged ?? []).includes('live-flag')), JSON.stringify(changed));
    } finally {
      client.removeHandler(ClientProviderEvents.ConfigurationChanged, handler);
    }
  });

  test('no polling: nothing is fetched while the flags do not change', async () => {
    const before = bulkCalls(rec.calls).length;
    await sleep(1500);
    assert.equal(bulkCalls(rec.calls).length, before);
  });
});

describe('web provider against a relay with API keys', () => {
  let relay;

  before(async () => {
    relay = await startRelay({ secured: true });
  });

  after(async () => {
    await OpenFeature.clearProviders();
    await relay?.stop();
  });

  test('the key in `headers` reaches the bulk endpoint', async () => {
    const rec = recordingFetch();
    const provider = new OFREPWebProvider({
      baseUrl: relay.baseUrl,
      headers: [['X-API-Key', KEYS.eval]],
      fetchImplementation: rec.impl,
      cacheMode: 'disabled',
      changeDetection: 'none', // SSE needs a credential an EventSource cannot send
    });
    await OpenFeature.setProviderAndWait('web-keyed', provider, { targetingKey: 'user-1' });
    const client = OpenFeature.getClient('web-keyed');
    assert.equal(client.providerStatus, ClientProviderStatus.READY);
    assert.equal(bulkCalls(rec.calls)[0].apiKey, KEYS.eval);
    assert.equal(bulkCalls(rec.calls)[0].status, 200);
    assert.equal(client.getStringValue('string-flag', 'default'), 'transformer-v3');
  });

  test('follows changes through a ticketed stream, across ticket windows, with no key in any URL', async () => {
    // A second relay with 4 s tickets (windows of 2 s), so the test crosses windows quickly.
    const short = await startRelay({ secured: true, extra: ['streams: {ticketTtl: 4s}'] });
    try {
      const rec = recordingFetch();
      const provider = new OFREPWebProvider({
        baseUrl: short.baseUrl,
        headers: [['X-API-Key', KEYS.eval]],
        fetchImplementation: rec.impl,
        cacheMode: 'disabled',
      });
      await OpenFeature.setProviderAndWait('web-ticket', provider, { targetingKey: 'user-1' });
      const client = OpenFeature.getClient('web-ticket');
      const mine = () => eventSources.filter((r) => r.url.startsWith(`${short.baseUrl}/ofrep/v1/sse?ticket=`));
      await waitFor(() => mine().some((r) => r.es.readyState === 1), 3000, 'a ticketed stream to open');
      for (const [round, value] of ['t1', 't2', 't3'].entries()) {
        if (round > 0) await sleep(4500); // past at least one window boundary
        short.setLiveValue(value);
        await waitFor(() => client.getStringValue('live-flag', 'default') === value, 8000, `live-flag to become ${value}`);
      }
      // The open stream outlives its ticket (tickets are checked when a stream opens). A
      // re-fetch for a new context gets the current window's ticket, and the provider moves to it.
      const first = mine()[0].url;
      await OpenFeature.setContext('web-ticket', { targetingKey: 'user-2' });
      await waitFor(() => mine().some((r) => r.url !== first && r.es.readyState === 1), 3000, 'a stream on a new ticket');
      short.setLiveValue('t4');
      await waitFor(() => client.getStringValue('live-flag', 'default') === 't4', 8000, 'live-flag to become t4');
      for (const u of eventSources.map((r) => r.url)) {
        assert.ok(!u.includes(KEYS.eval), `no key in ${u}`);
      }
      // No polling: every re-fetch after start followed a stream event or a new ticket.
      assert.ok(bulkCalls(rec.calls).every((c) => c.status === 200 || c.status === 304));
    } finally {
      await short.stop();
    }
  });

  test('a wrong key fails initialisation (401) and evaluation returns the default', async () => {
    const rec = recordingFetch();
    const provider = new OFREPWebProvider({
      baseUrl: relay.baseUrl,
      headersFactory: () => [['X-API-Key', KEYS.wrong]],
      fetchImplementation: rec.impl,
      cacheMode: 'disabled',
    });
    await assert.rejects(OpenFeature.setProviderAndWait('web-wrong', provider, { targetingKey: 'user-1' }));
    assert.equal(bulkCalls(rec.calls)[0].status, 401);
    const client = OpenFeature.getClient('web-wrong');
    assert.notEqual(client.providerStatus, ClientProviderStatus.READY);
    const d = client.getBooleanDetails('bool-flag', false);
    assert.equal(d.value, false);
    assert.ok(d.errorCode, 'an error code is set');
  });
});
