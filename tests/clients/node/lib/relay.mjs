// Starts a real flagrelay binary on loopback for one test file: a free port, a temporary
// config and a temporary copy of tests/clients/fixtures/flags.yaml. Also the test-side
// FNV-1a bucket (shared/spec/evaluation.md), so rollout assertions do not trust the relay.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../../..');
export const fixtureFlags = path.join(repoRoot, 'tests/clients/fixtures/flags.yaml');

export const POLL_MS = 200;
export const SALT = 'e2e-salt';
export const KEYS = {
  eval: 'e2e-eval-key',
  staging: 'e2e-staging-key', // bound to env "staging"
  hashed: 'e2e-hashed-key', // configured as sha256:<hex>
  admin: 'e2e-admin-key',
  wrong: 'not-a-configured-key',
};

export function relayBinary() {
  const bin = process.env.FLAGRELAY_BIN || path.join(repoRoot, 'target/release/flagrelay');
  if (!fs.existsSync(bin)) {
    throw new Error(`relay binary ${bin} not found: build it (cargo build --release) or set FLAGRELAY_BIN`);
  }
  return bin;
}

// Ports handed out in this process: the kernel may give a port just closed to the next caller,
// and a relay given the same port for `server.port` and `flagd.port` refuses to start (a CI run
// failed that way).
const handedOut = new Set();

export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.on('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address();
        srv.close(() => resolve(port));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @param {{secured?: boolean, flagd?: string, extra?: string[]}} opts secured: configure evaluation
 *   and admin keys (else evaluation is open); flagd: also serve the flagd protocol on
 *   `relay.flagdPort`, with these extra `flagd:` settings (e.g. '' or ', allowUnauthenticated:
 *   true'); extra: more config lines
 */
export async function startRelay(opts = {}) {
  // Between freePort() and the relay's bind the port can go to someone else (another test
  // file's relay, an outgoing connection's source port): such a start is retried on new ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRelayOnce(opts);
    } catch (e) {
      if (attempt >= 5 || !String(e.message).includes('Address already in use')) throw e;
    }
  }
}

async function startRelayOnce({ secured = true, flagd = undefined, extra = [] } = {}) {
  const bin = relayBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flagrelay-node-'));
  const flagsPath = path.join(dir, 'flags.yaml');
  fs.copyFileSync(fixtureFlags, flagsPath);
  const lines = [
    // No drain delay: a stop here is the end of a test, not a rolling update (5 s each).
    'server: {host: 127.0.0.1, shutdownDelay: 0}',
    `pollingInterval: ${POLL_MS}`,
    'logFormat: json',
    `rolloutSalt: "${SALT}"`,
    'retrievers:',
    `  - {kind: file, path: ${JSON.stringify(flagsPath)}}`,
  ];
  if (secured) {
    const hashed = createHash('sha256').update(KEYS.hashed).digest('hex');
    lines.push(
      'authorizedKeys:',
      `  evaluation: ["${KEYS.eval}", {key: "${KEYS.staging}", env: staging}, "sha256:${hashed}"]`,
      `  admin: ["${KEYS.admin}"]`,
    );
  }
  lines.push(...extra);
  const flagdPort = flagd === undefined ? undefined : await freePort();
  if (flagdPort !== undefined) lines.push(`flagd: {host: 127.0.0.1, port: ${flagdPort}${flagd}}`);
  const configPath = path.join(dir, 'config.yaml');
  fs.writeFileSync(configPath, lines.join('\n') + '\n');

  const logPath = path.join(dir, 'relay.log');
  const log = fs.openSync(logPath, 'w');
  const port = await freePort();
  const child = spawn(bin, ['--config', configPath, '--port', String(port)], {
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  let exited = null;
  child.on('exit', (code, signal) => {
    exited = { code, signal };
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  const relay = {
    baseUrl,
    port,
    flagdPort,
    dir,
    flagsPath,
    logPath,
    child,
    /** Atomically replaces the flag file (write + rename), as a deploy would. */
    writeFlags(text) {
      const tmp = path.join(dir, `flags.${process.hrtime.bigint()}.tmp`);
      fs.writeFileSync(tmp, text);
      fs.renameSync(tmp, flagsPath);
    },
    readFlags() {
      return fs.readFileSync(flagsPath, 'utf8');
    },
    /** Sets live-flag's "on" value. */
    setLiveValue(v) {
      const text = relay.readFlags().replace(/(live-flag:[\s\S]*?value: \{on: )"[^"]*"/, `$1"${v}"`);
      if (!text.includes(`"${v}"`)) throw new Error('live-flag not found in the flag file');
      relay.writeFlags(text);
    },
    logTail(n = 40) {
      try {
        return fs.readFileSync(logPath, 'utf8').split('\n').slice(-n).join('\n');
      } catch {
        return '';
      }
    },
    async stop() {
      if (exited === null) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await done;
        clearTimeout(t);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 20000;
  for (;;) {
    if (exited !== null) {
      const tail = relay.logTail();
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`relay exited during start (${JSON.stringify(exited)}):\n${tail}`);
    }
    try {
      const res = await fetch(`${baseUrl}/ready`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await relay.stop().catch(() => {});
      throw new Error(`relay not ready within 20 s:\n${relay.logTail()}`);
    }
    await sleep(50);
  }
  return relay;
}

/** FNV-1a, 32 bit, over bytes. */
export function fnv1a32(bytes) {
  let h = 0x811c9dc5;
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The rollout bucket of evaluation.md: FNV-1a-32(salt 0x00 key 0x00 subject) mod 100. */
export function bucket(flagKey, subject, salt = SALT) {
  const enc = new TextEncoder();
  const parts = [];
  if (salt) parts.push(...enc.encode(salt), 0);
  parts.push(...enc.encode(flagKey), 0, ...enc.encode(subject));
  return fnv1a32(parts) % 100;
}

/** Expected variant of a flag at partial rollout `rollout` for `subject`. */
export function expectedVariant(flagKey, subject, rollout) {
  return bucket(flagKey, subject) < rollout ? 'on' : 'off';
}

export { sleep };
