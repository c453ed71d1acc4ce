/**
 * The Prometheus exposition, with prom-client (https://github.com/siimon/prom-client): its
 * default process metrics (heap, RSS, event-loop lag, GC, handles — a tool about memory leaks
 * exports its own), counters the code increments where things happen, and gauges and counters
 * read at scrape time from the parts that already keep the figure (the pipeline, the engine,
 * the rules, the outbox). One registry per service, so that several services in one process
 * (the tests) do not share figures.
 */
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

type Read = () => number;
type ReadByLabel = () => Iterable<readonly [Record<string, string>, number]>;

export class LeakwatchMetrics {
  readonly registry = new Registry();
  /** Bodies answered 200, by shape and content coding. */
  readonly ingestBodies: Counter<'format' | 'encoding'>;
  readonly ingestPacedAnswers: Counter;
  readonly ingestPacedSeconds: Counter;
  readonly ingestBodyRecords: Counter<'format' | 'encoding'>;
  readonly ingestBodyBytes: Counter<'format' | 'encoding'>;
  readonly ingestMalformed: Counter;
  /** New events stored (a duplicate by id is not counted again), by category. */
  readonly events: Counter<'category'>;
  /** Requests to forwarding targets, by the answer's status (`network` when there was none). */
  readonly forwardRequests: Counter<'target' | 'status'>;
  readonly forwardDelivered: Counter<'target'>;
  readonly forwardRetries: Counter<'target' | 'status'>;
  readonly forwardDeadLettered: Counter<'target' | 'status'>;
  readonly forwardDeadLettersDropped: Counter<'target' | 'reason'>;
  private readonly loopDelay: IntervalHistogram;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const byBody = ['format', 'encoding'] as const;
    this.ingestBodies = new Counter({ name: 'leakwatch_ingest_bodies_total', help: 'Request bodies answered 200, by body shape (json, ndjson, msgpack, text) and content coding.', labelNames: byBody, registers });
    this.ingestBodyRecords = new Counter({ name: 'leakwatch_ingest_body_records_total', help: 'Records of the bodies answered 200, by body shape and content coding.', labelNames: byBody, registers });
    this.ingestBodyBytes = new Counter({ name: 'leakwatch_ingest_body_bytes_total', help: 'Bytes (as received) of the bodies answered 200, by body shape and content coding.', labelNames: byBody, registers });
    this.ingestPacedAnswers = new Counter({ name: 'leakwatch_ingest_paced_answers_total', help: 'Answers to accepted bodies held back while the engine queue was past a quarter of a capacity (the sender slowed to the engine\'s pace instead of meeting a 503).', registers });
    this.ingestPacedSeconds = new Counter({ name: 'leakwatch_ingest_paced_seconds_total', help: 'Time the answers counted by leakwatch_ingest_paced_answers_total were held back, in all.', registers });
    this.ingestMalformed = new Counter({ name: 'leakwatch_ingest_malformed_records_total', help: 'Lines or values kept as raw text because they could not be decoded or were over a cap.', registers });
    this.events = new Counter({ name: 'leakwatch_events_total', help: 'New events stored, by category (an event seen again by id is not counted).', labelNames: ['category'], registers });
    this.forwardRequests = new Counter({ name: 'leakwatch_forward_requests_total', help: 'Requests to forwarding targets, by the HTTP status of the answer (network: none came).', labelNames: ['target', 'status'], registers });
    this.forwardDelivered = new Counter({ name: 'leakwatch_forward_delivered_total', help: 'Events a target has taken.', labelNames: ['target'], registers });
    this.forwardRetries = new Counter({ name: 'leakwatch_forward_retries_total', help: 'Events put back to be sent again after a failed attempt, by the status that failed.', labelNames: ['target', 'status'], registers });
    this.forwardDeadLettered = new Counter({ name: 'leakwatch_forward_dead_lettered_total', help: 'Events moved to the dead letters, by the status that failed (give-up: pending past the give-up age).', labelNames: ['target', 'status'], registers });
    this.forwardDeadLettersDropped = new Counter({ name: 'leakwatch_forward_dead_letters_dropped_total', help: 'Dead letters dropped (logged) because they reached --forward-outbox-age (age) or the outbox needed their room (space).', labelNames: ['target', 'reason'], registers });
    // The longest the event loop was held since start: what every request may have had to wait.
    this.loopDelay = monitorEventLoopDelay({ resolution: 10 });
    this.loopDelay.enable();
    this.gauge('leakwatch_event_loop_delay_max_seconds', 'Longest event-loop delay since start.', () => this.loopDelay.max / 1e9);
    this.gauge('leakwatch_event_loop_delay_p99_seconds', '99th percentile of the event-loop delay since start.', () => this.loopDelay.percentile(99) / 1e9);
    // Whether leakwatch keeps up is a question of one thread: the main one groups, classifies and
    // stores, and at full ingest rate it is busy all the time while the cores are not.
    this.counter(
      'leakwatch_event_loop_busy_seconds_total',
      "Time the main thread's event loop has spent running since start, not waiting: its rate is the share of a core the main thread uses, and near 1 the main thread (grouping, classifying, storing) is what sets the ingest rate.",
      () => performance.eventLoopUtilization().active / 1000,
    );
  }

  /** A gauge read at scrape time. */
  gauge(name: string, help: string, read: Read): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  /** A gauge with labels read at scrape time; label sets not given this time are dropped. */
  labelledGauge(name: string, help: string, labelNames: readonly string[], read: ReadByLabel): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [labels, value] of read()) this.set(labels, value);
      },
    });
  }

  /** A counter whose total another part keeps (the pipeline's, the engine's), read at scrape time. */
  counter(name: string, help: string, read: Read): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  close(): void {
    this.loopDelay.disable();
    this.registry.clear();
  }
}
