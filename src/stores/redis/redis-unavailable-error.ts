/**
 * The rejection of `RedisStore.ready()` when Redis did not answer within
 * `connectTimeoutMs`: a wrong URL, a closed port, a server still starting.
 * Names what the client was pointed at, so that a misconfiguration is said,
 * not silently decided by the fallback.
 *
 * @example
 * ```ts
 * await store.ready().catch((e) => { if (e instanceof RedisUnavailableError) console.error(e.target); });
 * ```
 */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
  /** `host:port` of the server (a Cluster's startup nodes, comma-separated), as the client was given it. */
  readonly target: string;

  constructor(target: string, timeoutMs: number, cause: unknown) {
    super(`Redis at ${target} did not answer within ${timeoutMs} ms`, { cause });
    this.target = target;
  }
}

/** `host:port` of an ioredis-like client (or a Cluster's startup nodes), or `'Redis'` when it does not say. @internal */
export function describeTarget(client: unknown): string {
  const c = client as { options?: { host?: string; port?: number; path?: string }; startupNodes?: { host?: string; port?: number }[] };
  if (Array.isArray(c.startupNodes)) return c.startupNodes.map((n) => `${n.host ?? 'localhost'}:${n.port ?? 6379}`).join(',');
  if (c.options?.path) return c.options.path;
  if (c.options !== undefined) return `${c.options.host ?? 'localhost'}:${c.options.port ?? 6379}`;
  return 'Redis';
}
