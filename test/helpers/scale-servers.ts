/**
 * Real PostgreSQL and NATS servers for the scale-out tests: bench/scale-servers.js, shared with
 * the scale-out benchmark.
 */
import { startNats, startPostgres, type NatsServer, type PostgresServer } from '../../bench/scale-servers.js';

export { freePort } from '../../bench/scale-servers.js';
export { startNats, startPostgres, type NatsServer, type PostgresServer };

/**
 * Both servers, started side by side. When one cannot start, the other is stopped before the
 * error is thrown: a test's `afterAll` never sees a server that was started for it, and a
 * PostgreSQL left by a failed start outlived the test run.
 */
export async function startPostgresAndNats(): Promise<{ postgres: PostgresServer; nats: NatsServer }> {
  const [postgres, nats] = await Promise.allSettled([startPostgres(), startNats()]);
  if (postgres.status === 'fulfilled' && nats.status === 'fulfilled') return { postgres: postgres.value, nats: nats.value };
  if (postgres.status === 'fulfilled') postgres.value.remove();
  if (nats.status === 'fulfilled') await nats.value.remove();
  throw postgres.status === 'rejected' ? postgres.reason : (nats as PromiseRejectedResult).reason;
}
