import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRuleSet, type RuleSet } from '../../src/rules/index.js';
import { DIRECT_MEMORY_TRACE, TAIL_RESET_TRACE, groupOf, rulesDir } from './helpers.js';

// Rules written for these tests; the log lines are from the linkerd forum thread in the seed (see helpers.ts).
const RULES = `
rules:
  - id: direct-memory
    version: 3
    title: Netty direct memory exhausted
    priority: 100
    match:
      literals: [OutOfDirectMemoryError]
      all:
        - exception.class|equals: io.netty.util.internal.OutOfDirectMemoryError
    extract:
      - regex: 'failed to allocate (?<requested_bytes>\\d+) byte\\(s\\) of direct memory \\(used: (?<used_bytes>\\d+), max: (?<max_bytes>\\d+)\\)'
        types: { requested_bytes: bytes, used_bytes: bytes, max_bytes: bytes }
      - from: first_line
        regex: '(?<thread>finagle/netty4-\\d+)'
        optional: true
    derive:
      ratio: used_bytes / max_bytes
      free_mib: (max_bytes - used_bytes) / 1024 / 1024
    classify: { category: direct-memory-exhausted, severity: warning }
    thresholds:
      - if: { field: ratio, gte: 0.9 }
        severity: error
      - if: { count: 3, within: 10m }
        severity: critical
    annotations:
      summary: '{{host}} {{service}}: direct memory {{ratio|percent}} used ({{used_bytes|bytes}} of {{max_bytes|bytes}}) on {{thread|default:no thread}}'
      hint: 'thread {{thread|default:n/a}}'
  - id: channel-init
    version: 1
    title: channel init failed
    priority: 50
    match:
      literals: [Failed to initialize a channel]
      all:
        - level|in: [WARN, ERROR]
    extract:
      - from: first_line
        regex: '\\[id: (?<channel>0x[0-9a-f]+)'
    classify: { category: channel-init-failed, severity: warning }
  - id: channel-init-dup
    version: 1
    title: same category twice
    priority: 10
    match:
      literals: [Failed to initialize]
    extract:
      - from: first_line
        regex: 'Closing: \\[id: (?<channel>\\w+)'
    classify: { category: channel-init-failed, severity: info }
  - id: tail-reset
    version: 1
    title: exception at the tail
    priority: 80
    match:
      literals: [reached at the tail of the pipeline]
      any:
        - text|contains: Connection reset by peer
        - cause.message|endswith: Connection reset by peer
      none:
        - host|startswith: test-
    classify: { category: exception-caught-at-tail, severity: info }
    incident: { key: [rule, host, pid] }
  - id: disabled
    version: 1
    enabled: false
    title: disabled rule
    priority: 1000
    match: { literals: [WARN] }
    classify: { category: jvm-exception, severity: critical }
`;

let ruleSet: RuleSet;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  const created = await rulesDir({ 'rules.yaml': RULES });
  cleanup = created.cleanup;
  const result = await loadRuleSet(created.dir, { checkRegexSafety: false });
  expect(result.errors).toEqual([]);
  ruleSet = result.ruleSet as RuleSet;
});
afterAll(() => cleanup());

describe('RuleClassifier', () => {
  it('gives the category of the highest-priority rule and the others as sorted, deduped tags', async () => {
    const event = ruleSet.classifier.classify(groupOf(DIRECT_MEMORY_TRACE, { host: 'web-2' }));
    expect(event).toMatchObject({
      rule: 'direct-memory',
      rule_version: 3,
      category: 'direct-memory-exhausted',
      tags: ['channel-init-failed'],
      exception: { class: 'io.netty.util.internal.OutOfDirectMemoryError' },
      line_count: 4,
      message: DIRECT_MEMORY_TRACE[0],
      text: DIRECT_MEMORY_TRACE.join('\n'),
      incident_key: 'direct-memory|web-2|linkerd',
      incident_id: null,
    });
    // fields merged: the winner's own plus the other matching rules' (channel from the higher-priority channel-init).
    expect(event?.fields).toEqual({
      requested_bytes: 1048576,
      used_bytes: 1037041958,
      max_bytes: 1037959168,
      thread: 'finagle/netty4-103',
      ratio: 1037041958 / 1037959168,
      free_mib: (1037959168 - 1037041958) / 1024 / 1024,
      channel: '0xda8ab2a4',
    });
  });

  it('raises severity with a field threshold and renders annotations with filters', () => {
    const event = ruleSet.classifier.classify(groupOf(DIRECT_MEMORY_TRACE, { host: 'web-3' }));
    expect(event?.severity).toBe('error');
    expect(event?.annotations).toEqual({
      summary: 'web-3 linkerd: direct memory 99.9% used (989.0 MiB of 989.9 MiB) on finagle/netty4-103',
      hint: 'thread finagle/netty4-103',
    });
  });

  it('does not raise a field threshold that does not hold', () => {
    const half = DIRECT_MEMORY_TRACE.map((line) => line.replace('used: 1037041958', 'used: 518979584').replace('finagle/netty4-103', 'main'));
    const event = ruleSet.classifier.classify(groupOf(half, { host: 'web-4' }));
    expect(event?.fields.ratio).toBeCloseTo(0.5, 6);
    expect(event?.severity).toBe('warning');
    expect(event?.annotations.hint).toBe('thread n/a');
  });

  it('raises to critical on the 3rd event of one incident key within the window, by event time', () => {
    const at = (minute: number, host = 'web-5') => groupOf(DIRECT_MEMORY_TRACE, { host, time: Date.UTC(2017, 10, 1, 17, minute) });
    const classifier = ruleSet.classifier;
    expect(classifier.classify(at(0))?.severity).toBe('error');
    expect(classifier.classify(at(4))?.severity).toBe('error');
    expect(classifier.classify(at(0, 'web-6'))?.severity).toBe('error'); // another key has its own window
    expect(classifier.classify(at(8))?.severity).toBe('critical');
    // 25 min later: the earlier ones are out of the 10-minute window again.
    expect(classifier.classify(at(33))?.severity).toBe('error');
  });

  it('evaluates any/none predicates and cause chains, with a custom incident key', () => {
    const event = ruleSet.classifier.classify(groupOf(TAIL_RESET_TRACE));
    expect(event).toMatchObject({ rule: 'tail-reset', category: 'exception-caught-at-tail', severity: 'info', tags: [], incident_key: 'tail-reset|web-1|5699' });
    expect(ruleSet.classifier.classify(groupOf(TAIL_RESET_TRACE, { host: 'test-1' }))).toBeNull();
    const viaCause = [TAIL_RESET_TRACE[0] as string, 'io.netty.handler.codec.DecoderException: read failed', 'Caused by: java.io.IOException: Connection reset by peer'];
    expect(ruleSet.classifier.classify(groupOf(viaCause))?.causes).toEqual([{ class: 'java.io.IOException', message: 'Connection reset by peer' }]);
  });

  it('returns null for ordinary lines and skips disabled rules', () => {
    expect(ruleSet.classifier.classify(groupOf(['I 1101 14:10:26.714 UTC THREAD42: /svc/foo: name resolution is negative']))).toBeNull();
    expect(ruleSet.classifier.classify(groupOf(['WARN 1101 11:59:32.962 CDT finagle/netty4-103: something else']))).toBeNull();
  });

  it('gives the same record the same id and a different record another', () => {
    const first = ruleSet.classifier.classify(groupOf(TAIL_RESET_TRACE));
    const again = ruleSet.classifier.classify(groupOf([...TAIL_RESET_TRACE]));
    const otherPid = ruleSet.classifier.classify(groupOf(TAIL_RESET_TRACE, { pid: '5700' }));
    const otherTime = ruleSet.classifier.classify(groupOf(TAIL_RESET_TRACE, { time: 1 }));
    expect(first?.id).toMatch(/^[0-9a-f]{32}$/);
    expect(again?.id).toBe(first?.id);
    expect(new Set([first?.id, otherPid?.id, otherTime?.id]).size).toBe(3);
  });

  it('matches only the first 16 KiB of a line but keeps the whole text', () => {
    const long = `${TAIL_RESET_TRACE[0]} ${'x'.repeat(20_000)} Connection reset by peer`;
    expect(ruleSet.classifier.classify(groupOf([long]))).toBeNull();
    const event = ruleSet.classifier.classify(groupOf([long, 'Connection reset by peer']));
    expect(event?.text.length).toBe(long.length + 1 + 'Connection reset by peer'.length);
  });
});
