/**
 * Real PostgreSQL and NATS servers for the scale-out tests and bench/scale.js, each on a free loopback port in a
 * temporary folder of its own, started and stopped by the tests (Debian's `postgresql` and
 * `nats-server` packages, which .ci/run installs). PostgreSQL refuses to run as root: as root
 * (CI) its folder belongs to the `postgres` user and its commands run as that user.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Debian installs PostgreSQL's server programs outside PATH, one folder per major version. */
function postgresBin(program) {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
    for (const version of versions) {
      const candidate = join(root, version, 'bin', program);
      if (existsSync(candidate)) return candidate;
    }
  }
  return program;
}

const asRoot = userInfo().uid === 0;

function runAsOwner(program, args) {
  const [command, commandArgs] = asRoot ? ['runuser', ['-u', 'postgres', '--', postgresBin(program), ...args]] : [postgresBin(program), args];
  const result = spawnSync(command, commandArgs, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${program} ${args.join(' ')} failed (${result.status}):\n${result.stdout}${result.stderr}${result.error?.message ?? ''}`);
}

export async function startPostgres() {
  const dir = mkdtempSync(join(tmpdir(), 'leakwatch-pg-'));
  const data = join(dir, 'data');
  let port;
  const start = () => {
    // fsync off: the tests kill processes, not the machine; listen on loopback only, socket in the test folder.
    runAsOwner('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`, 'start']);
  };
  try {
    if (asRoot) chownSync(dir, ...postgresIds());
    runAsOwner('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']);
    port = await freePort();
    start();
    runAsOwner('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-c', 'CREATE DATABASE leakwatch']);
  } catch (error) {
    // A server that started and a folder made for it are not left behind by a start that failed.
    if (existsSync(join(data, 'postmaster.pid'))) {
      try {
        runAsOwner('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // Not running after all: nothing to stop.
      }
    }
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  let running = true;
  const stop = (mode = 'fast') => {
    if (!running) return;
    runAsOwner('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop']);
    running = false;
  };
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/leakwatch`,
    port,
    stop,
    processIds() {
      const main = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      const children = readdirSync('/proc')
        .filter((entry) => /^\d+$/.test(entry))
        .filter((entry) => {
          try {
            return Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1].split(' ')[1]) === main;
          } catch {
            return false;
          }
        })
        .map(Number);
      return [main, ...children];
    },
    createDatabase(name) {
      runAsOwner('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-c', `CREATE DATABASE ${name}`]);
    },
    start() {
      if (running) return;
      start();
      running = true;
    },
    remove() {
      try {
        stop('immediate');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

function postgresIds() {
  const result = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const group = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (result.status !== 0 || group.status !== 0) throw new Error('there is no postgres user: apt-get install postgresql');
  return [Number(result.stdout.trim()), Number(group.stdout.trim())];
}

export async function startNats() {
  const dir = mkdtempSync(join(tmpdir(), 'leakwatch-nats-'));
  const port = await freePort();
  let child;
  const start = async () => {
    const started = spawn('nats-server', ['-js', '-sd', dir, '-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    let log = '';
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not start:\n${log}`)), 30_000);
      const onData = (chunk) => {
        log += chunk.toString('utf8');
        if (log.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      };
      started.stdout.on('data', onData);
      started.stderr.on('data', onData);
      started.once('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`nats-server cannot be run (apt-get install nats-server): ${error.message}`));
      });
      started.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited with ${code}:\n${log}`));
      });
    });
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGTERM');
    await exited;
  };
  try {
    await start();
  } catch (error) {
    await stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return child?.pid;
    },
    stop,
    start,
    async remove() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
