// @openfeature/web-sdk + @openfeature/flagd-web-provider, unchanged, under Node's fetch: the
// Connect protocol (HTTP/1.1 + JSON) on the relay's flagd listener, v1 ResolveAll and the
// EventStream server stream. The provider's interceptors option carries the API key.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { FlagdWebProvider } from '@openfeature/flagd-web-provider';
import { KEYS, sleep, startRelay } from '../lib/relay.mjs';

describe('flagd web provider (Connect) against the flagd listener', () => {
  let relay;
  let client;
  const keyHeader = (next) => async (req) => {
    req.header.set('x-api-key', KEYS.eval);
    return await next(req);
  };

  before(async () => {
    relay = await startRelay({ secured: true, flagd: '' });
    await OpenFeature.setContext({ targetingKey: 'user-1' });
    const provider = new FlagdWebProvider({
      host: '127.0.0.1',
      port: relay.flagdPort,
      tls: false,
      maxRetries: 3,
      interceptors: [keyHeader],
    });
    await OpenFeature.setProviderAndWait('web-flagd', provider);
    client = OpenFeature.getClient('web-flagd');
  });

  after(async () => {
    await OpenFeature.close();
    await relay?.stop();
  });

  test('one flag of each type', () => {
    const b = client.getBooleanDetails('bool-flag', false);
    assert.equal(b.errorCode, undefined, b.errorMessage);
    assert.deepEqual([b.value, b.variant, b.reason], [true, 'on', 'STATIC']);
    assert.equal(client.getStringValue('string-flag', 'x'), 'transformer-v3');
    assert.equal(client.getNumberValue('int-flag', 0), 1000);
    assert.equal(client.getNumberValue('float-flag', 0), 0.75);
    assert.deepEqual(client.getObjectValue('object-flag', {}), {
      theme: 'compact',
      density: 2,
      sidebar: false,
      tags: ['a', 'b'],
    });
    const u = client.getBooleanDetails('no-such-flag', true);
    assert.deepEqual([u.value, u.errorCode], [true, 'FLAG_NOT_FOUND']);
  });

  test('a change reaches the app as PROVIDER_CONFIGURATION_CHANGED with the new value', async () => {
    assert.equal(client.getStringValue('live-flag', 'default'), 'v1');
    let changed = false;
    const handler = () => (changed = true);
    client.addHandler(ProviderEvents.ConfigurationChanged, handler);
    try {
      relay.setLiveValue('v2');
      const deadline = Date.now() + 10000;
      while (!changed && Date.now() < deadline) await sleep(20);
      assert.ok(changed, 'no PROVIDER_CONFIGURATION_CHANGED event');
      assert.equal(client.getStringValue('live-flag', 'default'), 'v2');
    } finally {
      client.removeHandler(ProviderEvents.ConfigurationChanged, handler);
    }
  });
});
