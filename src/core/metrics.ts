import { ConfigError } from '../errors.js';

/**
 * The metrics cellgate reports, by name:
 * - `cellgate.decisions` (counter; attributes `outcome`: `allowed` | `denied`,
 *   `source`: `local` | `redis` | `fallback` | `lease`), from a `Limiter`;
 * - `cellgate.redis.batch.size` (histogram; calls decided by one script call)
 *   and `cellgate.redis.batch.duration` (histogram, ms, send to answer), from
 *   a `RedisStore`;
 * - `cellgate.breaker.transitions` (counter; attribute `to`: `open` | `closed`;
 *   value: the shards that moved), from a `RedisStore`;
 * - `cellgate.evictions` (counter; live records evicted to make room, with
 *   `whenFull: 'evict'` at the cap) and `cellgate.refusals` (counter; new keys
 *   denied because the table was full at its cap, `whenFull: 'deny'`), from
 *   an `EmbeddedStore`, reported every 1024 decisions and at `stats()`.
 */
export type MetricName =
  | 'cellgate.decisions'
  | 'cellgate.redis.batch.size'
  | 'cellgate.redis.batch.duration'
  | 'cellgate.breaker.transitions'
  | 'cellgate.evictions'
  | 'cellgate.refusals'
  | 'cellgate.upstream.answers'
  | 'cellgate.upstream.shape';

/** Attributes of one measurement (shared, frozen objects: do not mutate). */
export type MetricAttributes = Readonly<Record<string, string>>;

/**
 * Where cellgate's counters go: a small hook with no dependency, fed to
 * OpenTelemetry ({@link otelMetrics}), prom-client ({@link promMetrics}) or
 * anything else. Both methods are called on hot paths: keep them cheap.
 *
 * @example
 * ```ts
 * const seen = new Map<string, number>();
 * const sink: MetricsSink = { count: (name, v) => seen.set(name, (seen.get(name) ?? 0) + v), record() {} };
 * const limiter = new Limiter({ policy, metrics: sink });
 * ```
 */
export interface MetricsSink {
  /** A counter went up by `value`. */
  count(name: MetricName, value: number, attributes?: MetricAttributes): void;
  /** One observation of a distribution (a histogram). */
  record(name: MetricName, value: number, attributes?: MetricAttributes): void;
}

const DESCRIPTIONS: Record<MetricName, [description: string, unit: string]> = {
  'cellgate.decisions': ['Rate-limit decisions, by outcome and by where they were made', '{decision}'],
  'cellgate.redis.batch.size': ['Calls decided by one Redis script call', '{call}'],
  'cellgate.redis.batch.duration': ['Time from sending a batch to Redis to its answer', 'ms'],
  'cellgate.breaker.transitions': ['Shards whose circuit breaker opened or closed', '{shard}'],
  'cellgate.evictions': ['Live records evicted from the embedded table to make room', '{record}'],
  'cellgate.refusals': ['New keys denied because the embedded table was full at its cap', '{key}'],
  'cellgate.upstream.answers': ["limitedFetch's answers from the upstream, by kind: accepted, refused (429, or 503 with Retry-After), other", '{answer}'],
  'cellgate.upstream.shape': ["Shapes limitedFetch's shape 'auto' applied to a key, by shape: pacing or quota", '{change}'],
};

/** The part of an OpenTelemetry `Meter` used (from `@opentelemetry/api`). */
export interface OtelMeterLike {
  createCounter(name: string, options?: { description?: string; unit?: string }): { add(value: number, attributes?: MetricAttributes): void };
  createHistogram(name: string, options?: { description?: string; unit?: string }): { record(value: number, attributes?: MetricAttributes): void };
}

/**
 * A {@link MetricsSink} that feeds an OpenTelemetry meter; instruments are
 * created once, on first use. No OpenTelemetry package is needed by cellgate:
 * pass your meter.
 *
 * @example
 * ```ts
 * import { metrics } from '@opentelemetry/api';
 * const limiter = new Limiter({ policy, metrics: otelMetrics(metrics.getMeter('cellgate')) });
 * ```
 */
export function otelMetrics(meter: OtelMeterLike): MetricsSink {
  const counters = new Map<MetricName, { add(value: number, attributes?: MetricAttributes): void }>();
  const histograms = new Map<MetricName, { record(value: number, attributes?: MetricAttributes): void }>();
  return {
    count(name, value, attributes) {
      let c = counters.get(name);
      if (c === undefined) {
        const [description, unit] = DESCRIPTIONS[name];
        c = meter.createCounter(name, { description, unit });
        counters.set(name, c);
      }
      c.add(value, attributes);
    },
    record(name, value, attributes) {
      let h = histograms.get(name);
      if (h === undefined) {
        const [description, unit] = DESCRIPTIONS[name];
        h = meter.createHistogram(name, { description, unit });
        histograms.set(name, h);
      }
      h.record(value, attributes);
    },
  };
}

/** The part of `prom-client` used: its `Counter` and `Histogram` classes (`R`: its registry type). */
export interface PromClientLike<R = unknown> {
  Counter: new (config: { name: string; help: string; labelNames: string[]; registers?: R[] }) => { inc(labels: MetricAttributes, value: number): void };
  Histogram: new (config: { name: string; help: string; labelNames: string[]; buckets?: number[]; registers?: R[] }) => {
    observe(labels: MetricAttributes, value: number): void;
  };
}

/** Label names of each metric, which prom-client wants up front. */
const LABELS: Record<MetricName, string[]> = {
  'cellgate.decisions': ['outcome', 'source'],
  'cellgate.redis.batch.size': [],
  'cellgate.redis.batch.duration': [],
  'cellgate.breaker.transitions': ['to'],
  'cellgate.evictions': [],
  'cellgate.refusals': [],
  'cellgate.upstream.answers': ['kind'],
  'cellgate.upstream.shape': ['shape'],
};

/**
 * A {@link MetricsSink} that feeds prom-client: names become Prometheus
 * names (`cellgate_decisions_total`, `cellgate_redis_batch_duration_ms`, ...).
 * Pass the `prom-client` module (and registries, default its global one).
 *
 * @example
 * ```ts
 * import * as client from 'prom-client';
 * const limiter = new Limiter({ policy, metrics: promMetrics(client) });
 * ```
 */
export function promMetrics<R>(client: PromClientLike<R>, registers?: R[]): MetricsSink {
  const counters = new Map<MetricName, { inc(labels: MetricAttributes, value: number): void }>();
  const histograms = new Map<MetricName, { observe(labels: MetricAttributes, value: number): void }>();
  const promName = (name: MetricName) => name.replace(/\./g, '_');
  const none: MetricAttributes = Object.freeze({});
  return {
    count(name, value, attributes) {
      let c = counters.get(name);
      if (c === undefined) {
        c = new client.Counter({ name: `${promName(name)}_total`, help: DESCRIPTIONS[name][0], labelNames: LABELS[name], ...(registers && { registers }) });
        counters.set(name, c);
      }
      c.inc(attributes ?? none, value);
    },
    record(name, value, attributes) {
      let h = histograms.get(name);
      if (h === undefined) {
        const unit = DESCRIPTIONS[name][1] === 'ms' ? '_ms' : '';
        const buckets = unit === '_ms' ? [0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250] : [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000];
        h = new client.Histogram({ name: `${promName(name)}${unit}`, help: DESCRIPTIONS[name][0], labelNames: LABELS[name], buckets, ...(registers && { registers }) });
        histograms.set(name, h);
      }
      h.observe(attributes ?? none, value);
    },
  };
}

/** Frozen attribute objects of `cellgate.decisions`, one per outcome and source: no allocation per decision. */
export const DECISION_ATTRIBUTES = {
  allowed: {
    local: Object.freeze({ outcome: 'allowed', source: 'local' }),
    redis: Object.freeze({ outcome: 'allowed', source: 'redis' }),
    fallback: Object.freeze({ outcome: 'allowed', source: 'fallback' }),
    lease: Object.freeze({ outcome: 'allowed', source: 'lease' }),
  },
  denied: {
    local: Object.freeze({ outcome: 'denied', source: 'local' }),
    redis: Object.freeze({ outcome: 'denied', source: 'redis' }),
    fallback: Object.freeze({ outcome: 'denied', source: 'fallback' }),
    lease: Object.freeze({ outcome: 'denied', source: 'lease' }),
  },
} as const;

/**
 * Validates a `metrics` option.
 * @internal
 */
export function checkMetrics(value: unknown, parameter = 'metrics'): MetricsSink | undefined {
  if (value === undefined) return undefined;
  const v = value as Partial<MetricsSink>;
  if (typeof v !== 'object' || v === null || typeof v.count !== 'function' || typeof v.record !== 'function') {
    return failMetrics(value, parameter);
  }
  return v as MetricsSink;
}

function failMetrics(value: unknown, parameter: string): never {
  throw new ConfigError(parameter, value, 'a MetricsSink { count, record } (see otelMetrics, promMetrics)');
}
