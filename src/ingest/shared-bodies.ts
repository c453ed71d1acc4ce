/**
 * Received request bodies in shared memory, the buffers reused from body to body.
 *
 * A decoding thread is given the body itself: postMessage shares a SharedArrayBuffer where it
 * copies anything else. That copy was ~11% of the main thread's time at full rate, and its receipt
 * ~2 s of the decoding thread's per 1.5M lines. Left to the collector, though, dead shared bodies
 * stayed resident until a full collection came (peak RSS 50-70 MiB higher at full rate): the
 * collector is not pressed by shared memory as it is by a body of its own. So the ingest route
 * hands a body back once its request is over and the body was decoded on a thread (its records
 * were packed there, so nothing refers to its bytes; records decoded on the main thread may, in a
 * msgpack binary, and such a body is left to the collector), and the next body is copied into its
 * buffer. Idle buffers are dropped after a few seconds: a burst leaves nothing behind.
 *
 * A body that announced its length (Content-Length) is copied into its buffer chunk by chunk as it
 * arrives (BodyAssembly), so that no chunk outlives its turn. Kept until the end, the ~64 KiB
 * chunks of a 10 MB upload were 160 buffers alive for the upload's whole length: old enough to be
 * promoted, they stayed resident until a full collection (external memory swung between 16 and
 * 81 MiB at full rate).
 */

/** Smaller bodies are copied cheaply: they get a buffer of their own, as before. */
const SHARED_MIN_BYTES = 256 * 1024;
/** Buffers kept for reuse (two connections' bodies, and room for the ones decoding meanwhile). */
const MAX_KEPT = 4;
/** Larger buffers are not kept: a rare huge body must not stay resident. */
const MAX_KEPT_BYTES = 16 * 1024 * 1024;
/** New buffers are a whole number of these, so that bodies of similar size fit each other's. */
const ROUND_BYTES = 1024 * 1024;
/** Kept buffers are dropped when none has been asked for in this long. */
const IDLE_DROP_MS = 5000;

export class SharedBodies {
  private readonly kept: SharedArrayBuffer[] = [];
  private readonly lent = new WeakSet<ArrayBufferLike>();
  private lastTake = 0;
  private dropTimer: NodeJS.Timeout | undefined;

  /** The chunks as one buffer: over shared memory (to be given back with release()) when large. */
  join(chunks: readonly Buffer[], total: number): Buffer {
    if (total < SHARED_MIN_BYTES) return Buffer.concat(chunks, total);
    const shared = this.take(total);
    const body = Buffer.from(shared, 0, total);
    let at = 0;
    for (const chunk of chunks) {
      body.set(chunk, at);
      at += chunk.length;
    }
    return body;
  }

  /**
   * Where a body that announced `declared` bytes is put together as it comes, or undefined when
   * it is small enough to be joined at the end (join()).
   */
  assemble(declared: number): BodyAssembly | undefined {
    if (!(Number.isSafeInteger(declared) && declared >= SHARED_MIN_BYTES)) return undefined;
    return new BodyAssembly(this, Buffer.from(this.take(declared), 0, declared));
  }

  /** The request of `body` is over: its buffer may hold the next one. */
  release(body: Buffer): void {
    const shared = body.buffer;
    if (!this.lent.has(shared)) return;
    this.lent.delete(shared);
    if (this.kept.length >= MAX_KEPT || shared.byteLength > MAX_KEPT_BYTES) return;
    this.kept.push(shared as SharedArrayBuffer);
    this.dropTimer ??= setTimeout(() => this.dropIfIdle(), IDLE_DROP_MS).unref();
  }

  /** Buffers kept for reuse now (tests). */
  get keptCount(): number {
    return this.kept.length;
  }

  private take(bytes: number): SharedArrayBuffer {
    this.lastTake = Date.now();
    let best = -1;
    for (let index = 0; index < this.kept.length; index++) {
      const size = (this.kept[index] as SharedArrayBuffer).byteLength;
      if (size >= bytes && (best < 0 || size < (this.kept[best] as SharedArrayBuffer).byteLength)) best = index;
    }
    const shared = best >= 0 ? (this.kept.splice(best, 1)[0] as SharedArrayBuffer) : new SharedArrayBuffer(Math.ceil(bytes / ROUND_BYTES) * ROUND_BYTES);
    this.lent.add(shared);
    return shared;
  }

  private dropIfIdle(): void {
    this.dropTimer = undefined;
    const idleFor = Date.now() - this.lastTake;
    if (idleFor >= IDLE_DROP_MS) this.kept.length = 0;
    else if (this.kept.length > 0) this.dropTimer = setTimeout(() => this.dropIfIdle(), IDLE_DROP_MS - idleFor).unref();
  }
}

/**
 * A body copied into its shared buffer as its chunks arrive. Node's HTTP parser hands on no more
 * than Content-Length bytes, so the chunks fit; a body that ends short is the part received.
 */
export class BodyAssembly {
  private length = 0;

  constructor(
    private readonly bodies: SharedBodies,
    private readonly target: Buffer,
  ) {}

  /** False when the chunk does not fit in what was announced (nothing of it is written then). */
  add(chunk: Buffer): boolean {
    if (this.length + chunk.length > this.target.length) return false;
    this.target.set(chunk, this.length);
    this.length += chunk.length;
    return true;
  }

  /** The bytes received so far, as a body to give back with SharedBodies.release(). */
  body(): Buffer {
    return this.target.subarray(0, this.length);
  }

  /** The upload failed: the buffer goes back for the next body. */
  discard(): void {
    this.bodies.release(this.target);
  }
}
