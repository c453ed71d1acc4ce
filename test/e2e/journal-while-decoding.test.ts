/**
 * A body's journal write starts when the body has been received and runs while it is decoded,
 * instead of after. So batches can reach the queue out of journal order (a small body decoded
 * before a large one received earlier), and bodies that turn out not to decode are in the journal
 * too. A checkpoint must then never say the engine has seen a batch still being decoded (a crash
 * right after would skip it on replay though it was answered 200), and a refused body must not
 * keep the journal from being pruned. The whole service in this process, on a real SQLite store.
 */
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SubmittedBatch } from '../../src/ingest/decode-body.js';
import { allRecords } from '../../src/ingest/packed-records.js';
import { SEED_OODM_RECORD } from '../helpers/seed-lines.js';
import { startLeakwatch, type RunningLeakwatch } from '../helpers/in-process.js';

let running: RunningLeakwatch | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await running?.close();
  running = undefined;
});

function post(base: string, body: string, contentType = 'text/plain'): Promise<{ status: number; body: unknown }> {
  return request(`${base}/ingest`, { method: 'POST', headers: { 'content-type': contentType }, body }).then(async (answer) => ({ status: answer.statusCode, body: await answer.body.json() }));
}

describe('the journal write beside the decoding', () => {
  it('a checkpoint taken while an earlier body is still being decoded does not count that body as seen', async () => {
    running = await startLeakwatch('journal-while-decoding');
    const { service, base } = running;
    const journal = service.store;
    const appended = vi.spyOn(journal, 'appendJournal');

    // The first body is held between its decoding and its submission (as a 10 MB body would be,
    // still decoding), while a second, small one goes all the way through.
    const pipeline = service.pipeline;
    const submit = pipeline.submit.bind(pipeline);
    let letFirstGo: () => void = () => undefined;
    const firstHeld = new Promise<void>((resolve) => (letFirstGo = resolve));
    let firstArrived: () => void = () => undefined;
    const firstWaiting = new Promise<void>((resolve) => (firstArrived = resolve));
    vi.spyOn(pipeline, 'submit').mockImplementation((batch: SubmittedBatch) => {
      if (!allRecords(batch.records).some((record) => record.host === 'web-1')) return submit(batch);
      // Its journal write started before its decoding ended.
      expect(appended).toHaveBeenCalledTimes(1);
      firstArrived();
      return firstHeld.then(() => submit(batch));
    });

    const first = post(base, SEED_OODM_RECORD);
    await firstWaiting;
    const second = await post(base, SEED_OODM_RECORD.replaceAll('web-1', 'web-2'));
    expect(second.status).toBe(200);
    await pipeline.whenIdle();
    const [firstWrite, secondWrite] = await Promise.all(appended.mock.results.map((result) => result.value as Promise<number>));
    expect(secondWrite).toBeGreaterThan(firstWrite as number);

    pipeline.checkpoint();
    const meanwhile = journal.journalCheckpoint();
    // Let the first go whatever the verdict, so that a failure does not leave its request hanging.
    letFirstGo();
    // The second batch went through the engine, the first did not: the checkpoint must stop before it.
    expect(meanwhile?.pushedThrough).toBeLessThan(firstWrite as number);

    expect((await first).status).toBe(200);
    await pipeline.whenIdle();
    pipeline.checkpoint();
    expect(journal.journalCheckpoint()?.pushedThrough).toBe(secondWrite);
    pipeline.closeOpenGroups();
    await pipeline.whenIdle();
    const { incidents } = (await (await request(`${base}/incidents?status=all`)).body.json()) as { incidents: Array<{ host: string }> };
    expect(new Set(incidents.map((incident) => incident.host))).toEqual(new Set(['web-1', 'web-2']));
  });

  it('a body that does not decode is answered 400, and its journaled copy does not hold the journal back', async () => {
    running = await startLeakwatch('journal-refused-body');
    const { service, base } = running;
    const journal = service.store;
    const appended = vi.spyOn(journal, 'appendJournal');

    const refused = await post(base, '[{"message": "cut short', 'application/json');
    expect(refused.status).toBe(400);
    // It was written while it was being decoded.
    expect(appended).toHaveBeenCalledTimes(1);
    const refusedSeq = await (appended.mock.results[0]?.value as Promise<number>);

    const accepted = await post(base, SEED_OODM_RECORD);
    expect(accepted.status).toBe(200);
    service.pipeline.closeOpenGroups();
    await service.pipeline.whenIdle();
    service.pipeline.checkpoint();
    // Nothing is pending: both batches are pruned, the refused one as the accepted one after it.
    expect(journal.journalCheckpoint()?.pushedThrough).toBeGreaterThan(refusedSeq);
    expect(journal.journalAfter(0, 10)).toEqual([]);
  });
});
