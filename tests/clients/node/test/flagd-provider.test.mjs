// @openfeature/server-sdk + @openfeature/flagd-provider (RPC resolver, gRPC
// flagd.evaluation.v2.Service), unchanged, against the relay's flagd listener. The Node provider
// cannot send gRPC metadata, so the relay opts out of keys on that listener with
// flagd.allowUnauthenticated, bound to an environment the context cannot override.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { OpenFeature, ProviderEvents, StandardResolutionReasons } from '@openfeature/server-sdk';
import { FlagdProvider } from '@openfeature/flagd-provider';
import { POLL_MS, sleep, startRelay } from '../lib/relay.mjs';

const CTX = { targetingKey: 'user-1' };

describe('flagd provider (RPC) against the flagd listener', () => {
  let relay;
  let client;

  before(async () => {
    relay = await startRelay({ secured: true, flagd: ', allowUnauthenticated: true, environment: staging' });
    const provider = new FlagdProvider({ host: '127.0.0.1', port: relay.flagdPort, tls: false, resolverType: 'rpc' });
    await OpenFeature.setProviderAndWait('node-flagd', provider);
    client = OpenFeature.getClient('node-flagd');
  });

  after(async () => {
    await OpenFeature.close();
    await relay?.stop();
  });

  test('every value type', async () => {
    const b = await client.getBooleanDetails('bool-flag', false, CTX);
    assert.equal(b.errorCode, undefined, b.errorMessage);
    assert.deepEqual([b.value, b.variant, b.reason], [true, 'on', StandardResolutionReasons.STATIC]);
    assert.equal((await client.getStringDetails('string-flag', 'x', CTX)).value, 'transformer-v3');
    // Every number goes through ResolveFloat: an integer flag answers it.
    const i = await client.getNumberDetails('int-flag', 0, CTX);
    assert.equal(i.errorCode, undefined, i.errorMessage);
    assert.equal(i.value, 1000);
    assert.equal((await client.getNumberDetails('float-flag', 0, CTX)).value, 0.75);
    const o = await client.getObjectDetails('object-flag', {}, CTX);
    assert.deepEqual(o.value, { theme: 'compact', density: 2, sidebar: false, tags: ['a', 'b'] });
  });

  test('unknown flag and type mismatch', async () => {
    const u = await client.getBooleanDetails('no-such-flag', true, CTX);
    assert.deepEqual([u.value, u.reason, u.errorCode], [true, 'ERROR', 'FLAG_NOT_FOUND']);
    // A flag with no cached answer: the provider caches STATIC answers by key, whatever the type.
    const m = await client.getBooleanDetails('split-string-flag', false, CTX);
    assert.deepEqual([m.value, m.errorCode], [false, 'TYPE_MISMATCH']);
  });

  test("the opt-out's environment is one the context cannot override", async () => {
    for (const env of [undefined, 'production', 'staging']) {
      const ctx = env ? { ...CTX, env } : CTX;
      const d = await client.getStringDetails('staging-only-flag', 'default', ctx);
      assert.equal(d.value, 'staging-feature', `context env ${env}`);
    }
  });

  test('PROVIDER_CONFIGURATION_CHANGED within one poll interval + 200 ms, cache dropped', async () => {
    const first = await client.getStringDetails('live-flag', 'default', CTX);
    assert.deepEqual([first.value, first.reason], ['v1', StandardResolutionReasons.STATIC]);
    const cached = await client.getStringDetails('live-flag', 'default', CTX);
    assert.equal(cached.reason, StandardResolutionReasons.CACHED);
    let resolveEvent;
    const event = new Promise((r) => (resolveEvent = r));
    const handler = (details) => resolveEvent({ at: performance.now(), details });
    client.addHandler(ProviderEvents.ConfigurationChanged, handler);
    try {
      const written = performance.now();
      relay.setLiveValue('v2');
      const timeout = sleep(10000).then(() => null);
      const got = await Promise.race([event, timeout]);
      assert.ok(got, 'no PROVIDER_CONFIGURATION_CHANGED event');
      assert.ok(got.details.flagsChanged.includes('live-flag'), JSON.stringify(got.details));
      const took = got.at - written;
      assert.ok(took <= POLL_MS + 200, `event after ${took.toFixed(0)} ms`);
      const after = await client.getStringDetails('live-flag', 'default', CTX);
      assert.deepEqual([after.value, after.reason], ['v2', StandardResolutionReasons.STATIC]);
    } finally {
      client.removeHandler(ProviderEvents.ConfigurationChanged, handler);
    }
  });
});
