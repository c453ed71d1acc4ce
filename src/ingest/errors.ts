/** The ingest answers of the error catalogue (src/errors.ts), with the details each one carries. */
import { LeakwatchError, type ErrorLocation } from '../errors.js';

export function badBody(message: string, where?: ErrorLocation): LeakwatchError {
  return new LeakwatchError('LW_ERR_BAD_BODY', message, where === undefined ? {} : { where });
}

export function bodyTooLarge(limitBytes: number, stage: string): LeakwatchError {
  return new LeakwatchError('LW_ERR_BODY_TOO_LARGE', `body exceeds the limit of ${limitBytes} bytes (${stage})`, {
    where: { stage },
    limit: { setting: '--max-body-bytes', value: limitBytes },
  });
}

export function tooManyRecords(limit: number): LeakwatchError {
  return new LeakwatchError('LW_ERR_TOO_MANY_RECORDS', `body holds more than ${limit} records; split the batch`, {
    limit: { setting: '--max-records', value: limit },
  });
}

export function unsupportedEncoding(encoding: string): LeakwatchError {
  return new LeakwatchError(
    'LW_ERR_UNSUPPORTED_ENCODING',
    `unsupported Content-Encoding "${encoding}" (supported: gzip, x-gzip, deflate, zstd, snappy, identity)`,
    { where: { stage: 'content-encoding' } },
  );
}
