// The Scheduler's executions waiting for a concurrency slot, highest rank
// first (priority.ts: priority raised by waiting time), in O(log n) a push
// or a pop: a burst of thousands of due keys must not cost a scan per slot.

/**
 * A max-heap of items by rank, with removal by item (lazy: a removed or
 * re-ranked item's old entry is skipped when it comes up).
 * @internal
 *
 * @example
 * ```ts
 * const q = new RankedQueue<string>();
 * q.add('a', 1); q.add('b', 5);
 * q.shift(); // 'b'
 * ```
 */
export class RankedQueue<T> {
  /** [rank, sequence, item]: the sequence keeps equal ranks in the order they were added. */
  #heap: [number, number, T][] = [];
  /** Each member's current rank. */
  readonly #members = new Map<T, number>();
  #sequence = 0;

  get size(): number {
    return this.#members.size;
  }

  /** Adds `item`, or moves it to `rank` if it is a member already. */
  add(item: T, rank: number): void {
    this.#members.set(item, rank);
    this.#heap.push([rank, this.#sequence++, item]);
    this.#up(this.#heap.length - 1);
  }

  delete(item: T): void {
    this.#members.delete(item);
    // Entries of removed items are dropped as they come up; keep the heap from growing without bound.
    if (this.#heap.length > 64 && this.#heap.length > 4 * this.#members.size) this.#rebuild();
  }

  /** Removes and returns the member of the highest rank (the earliest added among equals). */
  shift(): T | undefined {
    while (this.#heap.length > 0) {
      const [rank, , item] = this.#heap[0]!;
      const last = this.#heap.pop()!;
      if (this.#heap.length > 0) {
        this.#heap[0] = last;
        this.#down(0);
      }
      if (this.#members.get(item) === rank) {
        this.#members.delete(item);
        return item;
      }
    }
    return undefined;
  }

  #rebuild(): void {
    this.#heap = this.#heap.filter(([rank, , item]) => this.#members.get(item) === rank);
    for (let i = (this.#heap.length >> 1) - 1; i >= 0; i--) this.#down(i);
  }

  #before(i: number, j: number): boolean {
    const a = this.#heap[i]!;
    const b = this.#heap[j]!;
    return a[0] > b[0] || (a[0] === b[0] && a[1] < b[1]);
  }

  #up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(i, parent)) return;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #down(i: number): void {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let top = i;
      if (l < this.#heap.length && this.#before(l, top)) top = l;
      if (r < this.#heap.length && this.#before(r, top)) top = r;
      if (top === i) return;
      this.#swap(i, top);
      i = top;
    }
  }

  #swap(i: number, j: number): void {
    const t = this.#heap[i]!;
    this.#heap[i] = this.#heap[j]!;
    this.#heap[j] = t;
  }
}
