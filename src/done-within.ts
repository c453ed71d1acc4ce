/**
 * Whether `promise` settles within `ms` milliseconds (a rejection is passed on); the timer is
 * cleared either way, so nothing is left pending.
 */
export async function doneWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
