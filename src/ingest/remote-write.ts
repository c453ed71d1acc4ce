/**
 * Prometheus Remote-Write 1.0 bodies (https://prometheus.io/docs/specs/prw/remote_write_spec/): a
 * `prometheus.WriteRequest` protobuf, snappy-compressed in the block format. The messages are the
 * Prometheus project's own definitions (`proto/prometheus/`), read by protobufjs: a well-kept
 * decoder beats a hand-written one for a format with varints, packed fields and unknown fields to
 * skip, and the vendored .proto files are the reference a reader can check. The top level is walked
 * series by series so that a 32 MiB request is decoded in slices of a few milliseconds, and series
 * the caller does not want are skipped without being turned into objects.
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { badBody, tooManyRecords } from './errors.js';
import { TimeSlicer } from './time-slice.js';

const REMOTE_PROTO = fileURLToPath(new URL('../../proto/prometheus/remote.proto', import.meta.url));
const root = protobuf.loadSync(REMOTE_PROTO);
const TimeSeries = root.lookupType('prometheus.TimeSeries');
const STAGE = 'protobuf:prometheus.WriteRequest';

export interface RemoteSample {
  value: number;
  /** ms since the epoch */
  timestamp: number;
}

export interface RemoteSeries {
  labels: Record<string, string>;
  samples: RemoteSample[];
}

export interface DecodedWriteRequest {
  /** The series `keep` wanted, in body order. */
  kept: RemoteSeries[];
  /** Series and samples in the body, kept or not. */
  seriesCount: number;
  sampleCount: number;
}

interface TimeSeriesObject {
  labels: { name: string; value: string }[];
  samples: { value: number; timestamp: number }[];
}

/** `Content-Type` of a Remote-Write 2.0 body: not the 1.0 message this receiver reads. */
export function isRemoteWriteV2(contentType: string | undefined): boolean {
  return contentType !== undefined && /proto\s*=\s*"?io\.prometheus\.write\.v2/i.test(contentType);
}

/**
 * Decodes a WriteRequest, keeping the series for which `keep(labels)` is true. Throws 400 for a
 * body that is not a WriteRequest, 413 when it holds more than `maxSamples` samples.
 */
export async function decodeWriteRequest(body: Uint8Array, keep: (labels: Record<string, string>) => boolean, maxSamples: number, slicer = new TimeSlicer()): Promise<DecodedWriteRequest> {
  const reader = protobuf.Reader.create(body);
  const result: DecodedWriteRequest = { kept: [], seriesCount: 0, sampleCount: 0 };
  while (reader.pos < reader.len) {
    const at = reader.pos;
    try {
      const tag = reader.uint32();
      if (tag >>> 3 === 1 && (tag & 7) === 2) {
        const length = reader.uint32();
        const decoded = TimeSeries.toObject(TimeSeries.decode(reader, length), { longs: Number, arrays: true, defaults: true }) as TimeSeriesObject;
        result.seriesCount++;
        result.sampleCount += decoded.samples.length;
        if (result.sampleCount > maxSamples) throw tooManyRecords(maxSamples);
        const labels: Record<string, string> = Object.create(null) as Record<string, string>;
        for (const label of decoded.labels) labels[label.name] = label.value;
        if (keep(labels)) result.kept.push({ labels, samples: decoded.samples.map((s) => ({ value: s.value, timestamp: s.timestamp })) });
      } else {
        // Metadata (3) and any field a later version adds.
        reader.skipType(tag & 7);
      }
    } catch (error) {
      if (error instanceof Error && error.name === 'LeakwatchError') throw error;
      throw badBody(`not a Prometheus remote-write WriteRequest: ${(error as Error).message}`, { stage: STAGE, byteOffset: at });
    }
    await slicer.yieldIfDue();
  }
  return result;
}
