/**
 * Real PostgreSQL and NATS servers for the scale-out tests: bench/scale-servers.js, shared with
 * the scale-out benchmark.
 */
export { freePort, startNats, startPostgres, type NatsServer, type PostgresServer } from '../../bench/scale-servers.js';
