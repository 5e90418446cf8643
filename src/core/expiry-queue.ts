/**
 * A min-heap of (time, key) pairs: which keys' states may have run out, and
 * when the next one does. Entries are never updated in place: a key whose
 * state is renewed gets a new pair, and the old one is recognised as stale
 * when it comes up (its key's state then runs out later). So each state
 * written costs one push, each pair is popped at most once, and no operation
 * scans everything: what keeps a map of states that a client can flood with
 * fresh keys at O(log n) per key.
 * @internal
 *
 * @example
 * ```ts
 * const q = new ExpiryQueue();
 * q.push(2000, 'b'); q.push(1000, 'a');
 * q.nextAt(); // 1000
 * q.pop();    // 'a'
 * ```
 */
export class ExpiryQueue {
  #times: number[] = [];
  #keys: string[] = [];

  get size(): number {
    return this.#times.length;
  }

  /** The earliest time in the queue (Infinity when empty). */
  nextAt(): number {
    return this.#times.length === 0 ? Infinity : this.#times[0]!;
  }

  push(time: number, key: string): void {
    const times = this.#times;
    const keys = this.#keys;
    let i = times.length;
    times.push(time);
    keys.push(key);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (times[parent]! <= time) break;
      times[i] = times[parent]!;
      keys[i] = keys[parent]!;
      i = parent;
    }
    times[i] = time;
    keys[i] = key;
  }

  /** Removes the earliest pair and returns its key (undefined when empty). */
  pop(): string | undefined {
    const times = this.#times;
    const keys = this.#keys;
    if (times.length === 0) return undefined;
    const top = keys[0]!;
    const lastTime = times.pop()!;
    const lastKey = keys.pop()!;
    const n = times.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= n) break;
        const child = left + 1 < n && times[left + 1]! < times[left]! ? left + 1 : left;
        if (times[child]! >= lastTime) break;
        times[i] = times[child]!;
        keys[i] = keys[child]!;
        i = child;
      }
      times[i] = lastTime;
      keys[i] = lastKey;
    }
    return top;
  }

  /** Replaces the contents with these pairs (for compaction: drops every stale pair at once). */
  rebuild(pairs: Iterable<readonly [time: number, key: string]>): void {
    this.#times = [];
    this.#keys = [];
    for (const [time, key] of pairs) this.push(time, key);
  }
}
