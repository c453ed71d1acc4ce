import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import type { GroupedRecord } from '../../src/engine/grouped-record.js';
import { LeakwatchMetrics } from '../../src/metrics.js';
import { storeOutputs } from '../../src/server.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { StoredSample } from '../../src/store/store.js';
import { tempDirs } from '../helpers/temp-dirs.js';
import { makeEvent } from './fixtures.js';

const MIN = 60_000;
// The seed thread's OODM: Nov 01 2017 11:59:32.962 CDT.
const T0 = Date.parse('2017-11-01T16:59:32.962Z');
const tempDir = tempDirs();

/**
 * What the server does with a grouped batch (storeOutputs), on a real SQLite file whose writes of
 * memory samples fail once, as on a full disk: the batch's events and samples are one transaction.
 */
describe('a grouped batch in the store', () => {
  let store: SqliteStore | undefined;
  afterEach(() => store?.close());

  it('keeps its events and the memory samples they carry together: a batch whose samples fail is stored whole when sent again', () => {
    const dataDir = tempDir('store-outputs');
    store = new SqliteStore(dataDir);
    const open = store;
    let failures = 1;
    const insertSamples = open.insertSamples.bind(open);
    open.insertSamples = (samples: readonly StoredSample[]): void => {
      if (failures-- > 0) throw new Error('SQLITE_FULL: database or disk is full');
      insertSamples(samples);
    };
    const enqueued: GroupedRecord[] = [];
    const metrics = new LeakwatchMetrics();
    const { incidents, outputs } = storeOutputs(resolveConfig({ dataDir, rulesDir: 'rules' }, {}), open, metrics, (records) => enqueued.push(...records));
    const batch = [
      makeEvent('oodm', { time: T0, pid: '5699', used_bytes: 900_000_000 }),
      makeEvent('oodm', { time: T0 + MIN, pid: '5699', used_bytes: 950_000_000 }),
      makeEvent('tail', { time: T0 + 2 * MIN, pid: '5699' }),
    ];

    expect(() => outputs.grouped(batch)).toThrow('database or disk is full');
    expect(incidents.list({ status: 'all', limit: 10 }).incidents).toEqual([]);
    expect(open.samplesOf({ host: 'lb-1', service: 'linkerd', pid: '5699' }, 10)).toEqual([]);
    expect(incidents.eventTimeWatermark).toBeNull();

    // The pipeline sends a batch the store refused again (the outbox's rows of the first try were rolled back with it).
    enqueued.length = 0;
    outputs.grouped(batch);
    expect(incidents.list({ status: 'all', limit: 10 }).incidents.map((incident) => incident.count).sort()).toEqual([1, 2]);
    expect(open.samplesOf({ host: 'lb-1', service: 'linkerd', pid: '5699' }, 10).map((sample) => sample.used_bytes)).toEqual([950_000_000, 900_000_000]);
    expect(enqueued.map((record) => record.id)).toEqual(batch.map((event) => event.id));
    expect(incidents.eventTimeWatermark).toBe(T0 + 2 * MIN);
  });
});
