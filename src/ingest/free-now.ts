/**
 * Gives buffers' memory back now instead of at the collector's convenience. An ArrayBuffer this
 * thread drops is freed by the next collection of the generation it lives in; a decoding thread's
 * large buffers live long enough to be promoted, and once the thread is idle no collection comes
 * at all (tens of MiB stayed in a quiet server's RSS). Transferred into a message on a port whose
 * other end is closed, a buffer is detached here and its memory is freed at once, in the call.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';

let closedPort: MessagePort | undefined;

function portToNowhere(): MessagePort {
  if (closedPort === undefined) {
    const channel = new MessageChannel();
    channel.port2.close();
    channel.port1.unref();
    closedPort = channel.port1;
  }
  return closedPort;
}

/** Frees each buffer now; nothing may read it after (it is detached). */
export function freeNow(buffers: readonly ArrayBuffer[]): void {
  const port = portToNowhere();
  for (const buffer of buffers) {
    try {
      port.postMessage(null, [buffer]);
    } catch {
      // A buffer Node marked untransferable (its pool's): the collector frees it.
    }
  }
}

/**
 * Frees a chunk of an upload once it is copied where it belongs. Node's HTTP parser gives each body
 * chunk a buffer of its own (a copy of the socket's bytes, malloc'd), which died with the chunk
 * but waited for a collection to be freed: at full ingest rate the main thread's malloc heap held
 * up to 58 MiB of them (28 MiB when each is freed here). A chunk that is only part of its buffer
 * (another view may share it) is left to the collector. Nothing may read the chunk after.
 */
export function freeChunkNow(chunk: Uint8Array): void {
  const buffer = chunk.buffer;
  if (buffer instanceof ArrayBuffer && chunk.byteOffset === 0 && chunk.byteLength === buffer.byteLength) freeNow([buffer]);
}
