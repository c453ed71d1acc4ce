/**
 * The timer's journal checkpoint is gathered in one event-loop turn and written in the next, so
 * that neither holds the loop for long. A checkpoint written in between (stop() at shutdown) is
 * newer than the one gathered: the later write must not put the older one back, or the next start
 * would replay records the shutdown had already finished. The whole service in this process, on a
 * real SQLite store.
 */
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SEED_OODM_RECORD } from '../helpers/seed-lines.js';
import { startLeakwatch, type RunningLeakwatch } from '../helpers/in-process.js';

let running: RunningLeakwatch | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await running?.close();
  running = undefined;
});

describe('the timer\'s journal checkpoint', () => {
  it('records the open group as pending, and a stop() between its gathering and its write stays the stored one', async () => {
    running = await startLeakwatch('checkpoint-turns');
    const { service, base } = running;
    const answer = await request(`${base}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: SEED_OODM_RECORD,
    });
    expect(answer.statusCode).toBe(200);
    await answer.body.dump();

    // The timer gathers what is pending: an open group (or a record in the reorder window).
    const journal = service.store;
    const written = vi.spyOn(journal, 'checkpointJournal');
    await vi.waitFor(() => expect(written).toHaveBeenCalled(), { timeout: 5_000 });
    expect(journal.journalCheckpoint()?.pending.length).toBeGreaterThan(0);

    // Next time, stop() runs after the gathering turn and before the write's turn.
    const { engine } = service.pipeline;
    const gather = engine.pendingJournalPositions.bind(engine);
    let stopQueued = false;
    vi.spyOn(engine, 'pendingJournalPositions').mockImplementation(() => {
      if (!stopQueued) {
        stopQueued = true;
        setImmediate(() => service.pipeline.stop());
      }
      return gather();
    });
    const calls = written.mock.calls.length;
    await vi.waitFor(() => expect(written.mock.calls.length).toBeGreaterThan(calls), { timeout: 5_000 });
    // Give the gathered checkpoint's turn the chance to run.
    await new Promise((resolve) => setTimeout(resolve, 50));

    // stop() closed every group: nothing is pending, and that is what stays stored.
    expect(journal.journalCheckpoint()?.pending).toEqual([]);
    expect(written.mock.calls.at(-1)?.[1].pending.length).toBe(0);
  });
});
