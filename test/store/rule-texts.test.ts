import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { LeakEvent } from '../../src/engine/event.js';
import { IncidentService } from '../../src/incidents/service.js';
import { loadRuleSet, type RuleSet } from '../../src/rules/index.js';
import { DB_FILE_NAME, SqliteStore } from '../../src/store/sqlite-store.js';
import { DIRECT_MEMORY_TRACE, TAIL_RESET_TRACE, groupOf, rulesDir } from '../rules/helpers.js';

const SHIPPED_RULES = fileURLToPath(new URL('../../rules/', import.meta.url));

let shipped: RuleSet;
let dir: string;

beforeAll(async () => {
  const loaded = await loadRuleSet(SHIPPED_RULES, { checkRegexSafety: false });
  shipped = loaded.ruleSet!;
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'leakwatch-rule-texts-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The shipped rules' event for a trace of the linkerd forum thread, at a given minute. */
function eventOf(ruleSet: RuleSet, lines: string[], minute: number): LeakEvent {
  const event = ruleSet.classifier.classify(groupOf(lines, { time: Date.UTC(2017, 10, 1, 16, minute, 32, 962) }));
  if (event === null) throw new Error('the rules did not classify the trace');
  return event;
}

function rows(): Array<{ body: string }> {
  const raw = new Database(join(dir, DB_FILE_NAME), { readonly: true });
  try {
    return raw.prepare('SELECT body FROM events ORDER BY time').all() as Array<{ body: string }>;
  } finally {
    raw.close();
  }
}

describe('fixed rule texts are stored once', () => {
  it('an event reads back as it was stored, while its row names the fixed texts and its first line', () => {
    expect(shipped.fixedTexts.size).toBeGreaterThan(5);
    const store = new SqliteStore(dir, { fixedTexts: () => shipped.fixedTexts });
    const incidents = new IncidentService(store);
    const sent = [eventOf(shipped, DIRECT_MEMORY_TRACE, 1), eventOf(shipped, DIRECT_MEMORY_TRACE, 2), eventOf(shipped, TAIL_RESET_TRACE, 3)];
    expect(sent[0]!.annotations.hint).toBeDefined();
    expect(shipped.fixedTexts.has(sent[0]!.annotations.hint!)).toBe(true);
    const stored = incidents.ingest(sent).events;
    for (const event of stored) expect(incidents.get(event.incident_id!, 10)!.events).toContainEqual(event);
    const view = incidents.get(stored[2]!.incident_id!)!;
    expect(view.last_event).toEqual(stored[2]);
    store.close();

    const kept = rows().map((row) => JSON.parse(row.body) as Record<string, unknown> & { annotations: Record<string, unknown> });
    for (const [index, row] of kept.entries()) {
      expect(typeof row.annotations.hint).toBe('number');
      expect(row.annotations.summary).toBe(stored[index]!.annotations.summary);
      expect(row.message).toBe(0);
      expect(row.rule).toBe(stored[index]!.rule);
    }
    // One row of rule_texts per text, whatever the number of events carrying it.
    const raw = new Database(join(dir, DB_FILE_NAME), { readonly: true });
    try {
      expect(raw.prepare('SELECT COUNT(*) FROM rule_texts').pluck().get()).toBe(shipped.fixedTexts.size);
      expect(rows()[0]!.body.length).toBeLessThan(JSON.stringify(stored[0]).length - stored[0]!.annotations.hint!.length);
    } finally {
      raw.close();
    }
    // Another process (no rules at hand) reads the texts back from the file.
    const reader = new SqliteStore(dir);
    expect(new IncidentService(reader).get(stored[0]!.incident_id!, 10)!.events).toContainEqual(stored[0]);
    reader.close();
  });

  it('a rule text edited without a new version: old events keep the text they were stored with', async () => {
    const rule = (hint: string) => `rules:
  - id: tail-reset
    version: 1
    title: exception at the pipeline tail
    match:
      literals: [reached at the tail of the pipeline]
    classify: { category: tail-reset, severity: warning }
    annotations:
      summary: '{{host}}: unhandled exception at the tail of the pipeline'
      hint: '${hint}'
`;
    const before = await rulesDir({ 'rules.yaml': rule('Look for the handler that should have caught it; the first hint, long enough to be kept once.') });
    const after = await rulesDir({ 'rules.yaml': rule('A second hint for the same rule and version, also long enough to be kept once.') });
    try {
      const first = (await loadRuleSet(before.dir, { checkRegexSafety: false })).ruleSet!;
      const second = (await loadRuleSet(after.dir, { checkRegexSafety: false })).ruleSet!;
      let inForce = first;
      const store = new SqliteStore(dir, { fixedTexts: () => inForce.fixedTexts });
      const incidents = new IncidentService(store);
      const old = incidents.ingest([eventOf(first, TAIL_RESET_TRACE, 1)]).events[0]!;
      inForce = second;
      const edited = incidents.ingest([eventOf(second, TAIL_RESET_TRACE, 2)]).events[0]!;
      expect(old.annotations.hint).not.toBe(edited.annotations.hint);
      expect(incidents.get(old.incident_id!, 10)!.events).toEqual([edited, old]);
      store.close();
    } finally {
      await before.cleanup();
      await after.cleanup();
    }
  });

  it('a batch that rolls back takes its new rule texts with it, and the next batch stores them again', () => {
    const store = new SqliteStore(dir, { fixedTexts: () => shipped.fixedTexts });
    const incidents = new IncidentService(store);
    const event = eventOf(shipped, DIRECT_MEMORY_TRACE, 1);
    // The forwarding outbox runs inside the batch's transaction; failing there rolls the batch back.
    expect(() =>
      incidents.ingest([event], () => {
        throw new Error('outbox full');
      }),
    ).toThrow('outbox full');
    const raw = new Database(join(dir, DB_FILE_NAME), { readonly: true });
    try {
      expect(raw.prepare('SELECT COUNT(*) FROM rule_texts').pluck().get()).toBe(0);
      const stored = incidents.ingest([event]).events[0]!;
      expect(raw.prepare('SELECT COUNT(*) FROM rule_texts').pluck().get()).toBe(shipped.fixedTexts.size);
      store.close();
      const reader = new SqliteStore(dir);
      expect(new IncidentService(reader).get(stored.incident_id!, 10)!.events).toEqual([stored]);
      reader.close();
    } finally {
      raw.close();
    }
  });

  it('rows written whole (before this change, or without rules) read back as they are', () => {
    const event = eventOf(shipped, DIRECT_MEMORY_TRACE, 1);
    const whole = new SqliteStore(dir);
    const stored = new IncidentService(whole).ingest([{ ...event, message: 'a message that is not the first line of the text' }]).events[0]!;
    whole.close();
    expect(JSON.parse(rows()[0]!.body)).toEqual(stored);
    const reader = new SqliteStore(dir, { fixedTexts: () => shipped.fixedTexts });
    expect(new IncidentService(reader).get(stored.incident_id!, 10)!.events).toEqual([stored]);
    reader.close();
  });
});
