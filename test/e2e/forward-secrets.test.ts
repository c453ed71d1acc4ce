/**
 * A target's credentials go to the target as Basic auth and nowhere else: not in the log of a
 * real `leakwatch serve` (start-up, failures), not in /readyz, not in /metrics.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { shippedRulesWith } from '../helpers/rules-dir.js';
import { eventually, startServe, type ServeProcess } from '../helpers/serve-process.js';
import { SEED_OODM_RECORD } from '../helpers/seed-lines.js';

const PASSWORD = 'hunter2-Zq9';

describe('forwarding credentials', () => {
  const work = mkdtempSync(join(tmpdir(), 'leakwatch-forward-secrets-'));
  const rules = shippedRulesWith({ expire_after: '2s', reorder_window: '0s' });
  let receiver: Receiver | undefined;
  let server: ServeProcess | undefined;

  afterAll(async () => {
    await server?.stop('SIGKILL');
    await receiver?.close();
    rules.remove();
    rmSync(work, { recursive: true, force: true });
  });

  it('reach the target as Basic auth and show nowhere else', async () => {
    receiver = await startReceiver(() => ({ status: 503, body: 'try later' }));
    const { host } = new URL(receiver.url);
    server = await startServe(['--data-dir', join(work, 'data'), '--rules', rules.dir], { LEAKWATCH_FORWARD_URL: `http://shipper:${PASSWORD}@${host}/in?tenant=1#max-wait=10ms&backoff=50ms` });
    const response = await request(`${server.url}/ingest`, { method: 'POST', body: `${SEED_OODM_RECORD}\n`, headers: { 'content-type': 'text/plain' } });
    expect(response.statusCode).toBe(200);
    await response.body.dump();
    await eventually(async () => (server!.output().includes('delivery to http://') ? true : undefined));

    expect(receiver.requests[0]!.headers['authorization']).toBe(`Basic ${Buffer.from(`shipper:${PASSWORD}`).toString('base64')}`);
    const readyz = await (await request(`${server.url}/readyz`)).body.text();
    const metrics = await (await request(`${server.url}/metrics`)).body.text();
    expect(readyz).toContain(`"target":"http://${host}/in"`);
    expect(metrics).toContain(`leakwatch_forward_target_up{target="http://${host}/in"} 0`);
    for (const [where, text] of [['log', server.output()], ['/readyz', readyz], ['/metrics', metrics]] as const) {
      expect(text, where).not.toContain(PASSWORD);
      expect(text, where).not.toContain('shipper:');
      expect(text, where).not.toContain(Buffer.from(`shipper:${PASSWORD}`).toString('base64'));
    }
  });
});
