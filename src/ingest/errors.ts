/**
 * Ingest failures a shipper must see as a clear 4xx/503 answer (fastify-style codes), never as a
 * crash or a 500. Every shipper treats 4xx other than the retryable ones as "drop the batch", so
 * each code is chosen for what the shipper should do next.
 */
export type IngestErrorCode =
  | 'LW_ERR_BAD_BODY'
  | 'LW_ERR_UNAUTHORIZED'
  | 'LW_ERR_BODY_TOO_LARGE'
  | 'LW_ERR_UNSUPPORTED_ENCODING'
  | 'LW_ERR_OVERLOADED';

const STATUS_OF: Record<IngestErrorCode, number> = {
  LW_ERR_BAD_BODY: 400,
  LW_ERR_UNAUTHORIZED: 401,
  LW_ERR_BODY_TOO_LARGE: 413,
  LW_ERR_UNSUPPORTED_ENCODING: 415,
  LW_ERR_OVERLOADED: 503,
};

const REASON_OF: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  503: 'Service Unavailable',
};

/** Where in the (decompressed) body the problem is; omitted parts are unknown. */
export interface ErrorLocation {
  byteOffset?: number;
  line?: number;
  /** Which stage failed: `content-encoding:gzip`, `json`, `ndjson`, `msgpack`, ... */
  stage?: string;
}

export class IngestError extends Error {
  readonly statusCode: number;

  constructor(
    readonly code: IngestErrorCode,
    message: string,
    readonly where?: ErrorLocation,
  ) {
    super(message);
    this.name = 'IngestError';
    this.statusCode = STATUS_OF[code];
  }

  /** The JSON answer body: `{ statusCode, code, error, message, where? }`. */
  toJSON(): IngestErrorBody {
    const body: IngestErrorBody = {
      statusCode: this.statusCode,
      code: this.code,
      error: REASON_OF[this.statusCode] ?? 'Error',
      message: this.message,
    };
    if (this.where !== undefined) body.where = this.where;
    return body;
  }
}

export interface IngestErrorBody {
  statusCode: number;
  code: IngestErrorCode;
  error: string;
  message: string;
  where?: ErrorLocation;
}

export function badBody(message: string, where?: ErrorLocation): IngestError {
  return new IngestError('LW_ERR_BAD_BODY', message, where);
}

export function bodyTooLarge(limitBytes: number, stage: string): IngestError {
  return new IngestError('LW_ERR_BODY_TOO_LARGE', `body exceeds the limit of ${limitBytes} bytes (${stage})`, { stage });
}

export function unsupportedEncoding(encoding: string): IngestError {
  return new IngestError(
    'LW_ERR_UNSUPPORTED_ENCODING',
    `unsupported Content-Encoding "${encoding}" (supported: gzip, x-gzip, deflate, zstd, snappy, identity)`,
    { stage: 'content-encoding' },
  );
}

export function isIngestError(error: unknown): error is IngestError {
  return error instanceof IngestError;
}
