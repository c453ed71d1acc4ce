// @ts-check
/**
 * The JSON API the page reads, on the same origin: a browser that was asked for the token
 * (WWW-Authenticate: Basic) sends it again with every request by itself.
 */

/** An error answer, in the server's one shape ({statusCode, code, message, ...}). */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/**
 * @param {Response} response
 * @returns {Promise<never>}
 */
async function failure(response) {
  /** @type {{ code?: string, message?: string }} */
  let body = {};
  try {
    body = await response.json();
  } catch {
    // Not the server's JSON (a proxy's page): the status says enough.
  }
  throw new ApiError(response.status, body.code ?? `HTTP_${response.status}`, body.message ?? response.statusText);
}

/**
 * GET a JSON resource.
 * @template T
 * @param {string} path
 * @returns {Promise<T>}
 */
export async function getJson(path) {
  const response = await fetch(path, { headers: { accept: 'application/json' }, cache: 'no-store' });
  if (!response.ok) return failure(response);
  return /** @type {Promise<T>} */ (response.json());
}

/**
 * POST without a body (ack, resolve); the answer's JSON.
 * @template T
 * @param {string} path
 * @returns {Promise<T>}
 */
export async function post(path) {
  const response = await fetch(path, { method: 'POST', headers: { accept: 'application/json' } });
  if (!response.ok) return failure(response);
  return /** @type {Promise<T>} */ (response.json());
}

/**
 * What to tell a person about a failed request.
 * @param {unknown} error
 */
export function explain(error) {
  if (error instanceof ApiError) {
    if (error.status === 401) return 'The token was refused: reload the page to enter it again (any user name, the token as password).';
    if (error.status === 403) return 'This needs the admin token; the read-only token can only look.';
    return `${error.message} (${error.code})`;
  }
  return `leakwatch cannot be reached (${error instanceof Error ? error.message : String(error)}); retrying.`;
}
