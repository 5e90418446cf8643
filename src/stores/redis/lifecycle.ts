/**
 * Whether a store is closed, shared by its bindings (calls then reject with StoreClosedError).
 * @internal
 *
 * @example
 * ```ts
 * if (this.#o.lifecycle.closed) throw new StoreClosedError();
 * ```
 */
export interface Lifecycle {
  closed: boolean;
}
