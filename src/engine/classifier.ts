import type { LeakEvent } from './event.js';
import type { Group } from './group.js';

/**
 * Turns a closed group into at most one event. Implemented by the compiled rule set
 * (src/rules); the engine asks for the current classifier on every group so that a hot reload
 * takes effect at the next group without restarting anything.
 */
export interface Classifier {
  classify(group: Group): LeakEvent | null;
}
