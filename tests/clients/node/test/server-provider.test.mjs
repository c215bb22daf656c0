// @openfeature/server-sdk + @openfeature/ofrep-provider, unchanged, against a real relay whose
// evaluation needs an API key. The key travels through the provider's own header options.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ErrorCode, OpenFeature, StandardResolutionReasons } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { KEYS, bucket, expectedVariant, fnv1a32, startRelay } from '../lib/relay.mjs';

let relay;
let client; // X-API-Key through `headers`

before(async () => {
  relay = await startRelay({ secured: true });
  await OpenFeature.setProviderAndWait(
    'keyed',
    new OFREPProvider({ baseUrl: relay.baseUrl, headers: [['X-API-Key', KEYS.eval]] }),
  );
  client = OpenFeature.getClient('keyed');
});

after(async () => {
  await OpenFeature.close();
  await relay?.stop();
});

const ctx = { targetingKey: 'user-1' };

describe('flag types', () => {
  test('boolean', async () => {
    const d = await client.getBooleanDetails('bool-flag', false, ctx);
    assert.equal(d.errorCode, undefined, d.errorMessage);
    assert.equal(d.value, true);
    assert.equal(d.variant, 'on');
    assert.equal(d.reason, StandardResolutionReasons.STATIC);
    assert.equal(d.flagMetadata.team, 'qa');
    assert.equal(d.flagMetadata.tier, 3);
    assert.equal(d.flagMetadata.beta, true);
    assert.equal(d.flagMetadata.description, 'Boolean flag, on for everyone');
  });

  test('string', async () => {
    const d = await client.getStringDetails('string-flag', 'default', ctx);
    assert.equal(d.errorCode, undefined, d.errorMessage);
    assert.equal(d.value, 'transformer-v3');
    assert.equal(d.variant, 'on');
  });

  test('number (integer)', async () => {
    const d = await client.getNumberDetails('int-flag', 0, ctx);
    assert.equal(d.errorCode, undefined, d.errorMessage);
    assert.equal(d.value, 1000);
    assert.ok(Number.isInteger(d.value));
  });

  test('number (float)', async () => {
    const d = await client.getNumberDetails('float-flag', 0, ctx);
    assert.equal(d.errorCode, undefined, d.errorMessage);
    assert.equal(d.value, 0.75);
    const whole = await client.getNumberValue('float-whole-flag', 0, ctx);
    assert.equal(whole, 2);
  });

  test('object', async () => {
    const d = await client.getObjectDetails('object-flag', {}, ctx);
    assert.equal(d.errorCode, undefined, d.errorMessage);
    assert.deepEqual(d.value, { theme: 'compact', density: 2, sidebar: false, tags: ['a', 'b'] });
    assert.equal(d.variant, 'on');
  });

  test('type mismatch is the client default with TYPE_MISMATCH', async () => {
    const d = await client.getNumberDetails('string-flag', 7, ctx);
    assert.equal(d.value, 7);
    assert.equal(d.errorCode, ErrorCode.TYPE_MISMATCH);
  });
});

describe('errors and rules', () => {
  test('missing flag: default value with FLAG_NOT_FOUND', async () => {
    const d = await client.getBooleanDetails('no-such-flag', true, ctx);
    assert.equal(d.value, true);
    assert.equal(d.errorCode, ErrorCode.FLAG_NOT_FOUND);
    assert.equal(d.reason, StandardResolutionReasons.ERROR);
  });

  test('disabled flag: off value, reason DISABLED', async () => {
    const d = await client.getStringDetails('disabled-flag', 'default', ctx);
    assert.equal(d.errorCode, undefined, d.errorMessage);
    assert.equal(d.value, 'no-banner');
    assert.equal(d.variant, 'off');
    assert.equal(d.reason, StandardResolutionReasons.DISABLED);
  });

  test('allow lists: TARGETING_MATCH for a listed user or tenant, DEFAULT otherwise', async () => {
    const alice = await client.getBooleanDetails('allow-list-flag', false, { targetingKey: 'alice' });
    assert.deepEqual([alice.value, alice.reason], [true, StandardResolutionReasons.TARGETING_MATCH]);
    const acme = await client.getBooleanDetails('allow-list-flag', false, { targetingKey: 'zed', tenantId: 'acme' });
    assert.deepEqual([acme.value, acme.reason], [true, StandardResolutionReasons.TARGETING_MATCH]);
    const bob = await client.getBooleanDetails('allow-list-flag', true, { targetingKey: 'bob' });
    assert.deepEqual([bob.value, bob.variant, bob.reason], [false, 'off', StandardResolutionReasons.DEFAULT]);
  });

  test('FNV-1a implementation of the test matches the reference vectors', () => {
    const enc = (s) => new TextEncoder().encode(s);
    assert.equal(fnv1a32(enc('')), 0x811c9dc5);
    assert.equal(fnv1a32(enc('a')), 0xe40c292c);
    assert.equal(fnv1a32(enc('foobar')), 0xbf9cf968);
  });

  test('split rollout: variant follows the FNV-1a bucket for each targeting key', async () => {
    const users = Array.from({ length: 8 }, (_, i) => `user-${i}`);
    const seen = new Set();
    for (const [flag, rollout, on, off] of [
      ['split-flag', 50, true, false],
      ['split-string-flag', 30, 'variant-b', 'variant-a'],
    ]) {
      for (const u of users) {
        const want = expectedVariant(flag, u, rollout);
        seen.add(want);
        const d =
          typeof on === 'boolean'
            ? await client.getBooleanDetails(flag, !on, { targetingKey: u })
            : await client.getStringDetails(flag, 'default', { targetingKey: u });
        assert.equal(d.errorCode, undefined, d.errorMessage);
        assert.equal(d.variant, want, `${flag} for ${u} (bucket ${bucket(flag, u)}, rollout ${rollout})`);
        assert.equal(d.value, want === 'on' ? on : off);
        assert.equal(d.reason, StandardResolutionReasons.SPLIT);
      }
    }
    assert.deepEqual([...seen].sort(), ['off', 'on'], 'the chosen keys should cover both variants');
  });

  test('split rollout on the tenant when there is no targeting key', async () => {
    for (const tenant of ['tenant-only', 'globex', 'initech']) {
      const want = expectedVariant('split-flag', tenant, 50);
      const d = await client.getBooleanDetails('split-flag', false, { tenantId: tenant });
      assert.equal(d.variant, want, `split-flag for tenant ${tenant} (bucket ${bucket('split-flag', tenant)})`);
    }
  });
});

describe('credentials', () => {
  test('Authorization: Bearer from headersFactory succeeds', async () => {
    await OpenFeature.setProviderAndWait(
      'bearer',
      new OFREPProvider({
        baseUrl: relay.baseUrl,
        headersFactory: () => ({ Authorization: `Bearer ${KEYS.eval}` }),
      }),
    );
    const d = await OpenFeature.getClient('bearer').getStringDetails('string-flag', 'default', ctx);
    assert.equal(d.errorCode, undefined, d.errorMessage);
    assert.equal(d.value, 'transformer-v3');
  });

  test('a key configured as sha256:<hex> succeeds', async () => {
    await OpenFeature.setProviderAndWait(
      'hashed',
      new OFREPProvider({ baseUrl: relay.baseUrl, headers: { 'X-API-Key': KEYS.hashed } }),
    );
    const d = await OpenFeature.getClient('hashed').getBooleanDetails('bool-flag', false, ctx);
    assert.equal(d.errorCode, undefined, d.errorMessage);
    assert.equal(d.value, true);
  });

  test('wrong key: default value and an error (relay answers 401)', async () => {
    const raw = await fetch(`${relay.baseUrl}/ofrep/v1/evaluate/flags/bool-flag`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': KEYS.wrong },
      body: '{"context":{"targetingKey":"user-1"}}',
    });
    assert.equal(raw.status, 401);
    assert.ok(!(await raw.text()).includes(KEYS.wrong), '401 body must not repeat the credential');

    await OpenFeature.setProviderAndWait(
      'wrong',
      new OFREPProvider({ baseUrl: relay.baseUrl, headers: [['X-API-Key', KEYS.wrong]] }),
    );
    const d = await OpenFeature.getClient('wrong').getBooleanDetails('bool-flag', false, ctx);
    assert.equal(d.value, false);
    assert.equal(d.reason, StandardResolutionReasons.ERROR);
    assert.ok(d.errorCode, 'an error code is set');
  });

  test('no key at all: default value and an error', async () => {
    await OpenFeature.setProviderAndWait('nokey', new OFREPProvider({ baseUrl: relay.baseUrl }));
    const d = await OpenFeature.getClient('nokey').getStringDetails('string-flag', 'default', ctx);
    assert.equal(d.value, 'default');
    assert.ok(d.errorCode);
  });

  test('a key bound to an environment fixes env; the context cannot override it', async () => {
    await OpenFeature.setProviderAndWait(
      'staging',
      new OFREPProvider({ baseUrl: relay.baseUrl, headers: [['X-API-Key', KEYS.staging]] }),
    );
    const staging = OpenFeature.getClient('staging');
    for (const env of [undefined, 'production', 'staging']) {
      const d = await staging.getStringDetails('staging-only-flag', 'default', { ...ctx, ...(env && { env }) });
      assert.equal(d.errorCode, undefined, d.errorMessage);
      assert.equal(d.value, 'staging-feature', `bound key with context env=${env}`);
    }
    // An unbound key takes env from the context.
    const prod = await client.getStringDetails('staging-only-flag', 'default', { ...ctx, env: 'production' });
    assert.deepEqual([prod.value, prod.variant], ['hidden', 'off']);
    const stg = await client.getStringDetails('staging-only-flag', 'default', { ...ctx, env: 'staging' });
    assert.equal(stg.value, 'staging-feature');
    // A bound key's environment wins over the claimed one the other way round too.
    const lying = await staging.getStringDetails('staging-only-flag', 'default', { ...ctx, environment: 'production' });
    assert.equal(lying.value, 'staging-feature');
  });
});
