// The harness itself: what a relay start depends on.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { freePort } from '../lib/relay.mjs';

test('freePort never hands out a port twice', async () => {
  // A relay gets two of them (server and flagd); the kernel may give a port just closed to
  // the next bind, and a relay given one port twice refuses to start.
  const ports = [];
  for (let i = 0; i < 300; i++) ports.push(await freePort());
  assert.equal(new Set(ports).size, ports.length);
});
