// The keys' resolved plans a limiter remembers: at most `max` keys, in two
// generations (the way quick-lru keeps its entries): a key is looked up in
// the young map, then the old one (and moved up); when the young map is
// full it becomes the old one, and the old one is dropped whole. Every step
// is O(1): evicting one key at a time from a Map's front would walk over
// the holes its earlier deletions left, which at a million keys a second
// costs more than deciding.

/**
 * A bounded map from keys to values, dropping the least recently used half
 * at a time.
 *
 * @example
 * ```ts
 * const cache = new PlanCache<number>(65_536);
 * cache.set('k', 1);
 * cache.get('k'); // 1
 * ```
 */
export class PlanCache<V> {
  readonly #half: number;
  #young = new Map<string, V>();
  #old = new Map<string, V>();

  constructor(max: number) {
    this.#half = Math.max(1, Math.floor(max / 2));
  }

  get(key: string): V | undefined {
    const v = this.#young.get(key);
    if (v !== undefined) return v;
    const old = this.#old.get(key);
    if (old !== undefined) {
      this.#old.delete(key);
      this.set(key, old);
    }
    return old;
  }

  set(key: string, value: V): void {
    if (this.#young.size >= this.#half && !this.#young.has(key)) {
      this.#old = this.#young;
      this.#young = new Map();
    }
    this.#young.set(key, value);
  }

  delete(key: string): void {
    this.#young.delete(key);
    this.#old.delete(key);
  }

  clear(): void {
    this.#young = new Map();
    this.#old = new Map();
  }
}
