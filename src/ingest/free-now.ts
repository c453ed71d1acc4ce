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
