import type { ForwardFormat } from '../target.js';
import { elasticsearchFormat } from './elasticsearch.js';
import type { TargetFormat } from './format.js';
import { lokiFormat } from './loki.js';
import { ndjsonFormat } from './ndjson.js';
import { otlpFormat } from './otlp.js';

export type { EncodedBatch, TargetAnswer, TargetFormat, Verdict } from './format.js';

export const TARGET_FORMATS: Readonly<Record<ForwardFormat, TargetFormat>> = {
  ndjson: ndjsonFormat,
  loki: lokiFormat,
  elasticsearch: elasticsearchFormat,
  otlp: otlpFormat,
};
