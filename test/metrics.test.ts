// The metrics hook with the real libraries it is meant to feed: prom-client
// and the OpenTelemetry SDK; decisions, evictions, Redis batches and breaker
// transitions.
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import * as client from 'prom-client';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ConfigError, EmbeddedStore, Limiter, fixedWindow, gcra, otelMetrics, promMetrics } from '../build/lib/src/index.js';
import { RedisStore } from '../build/lib/src/stores/redis/index.js';
import { startRedis } from '../build/lib/src/cli/redis-server.js';

/** A value of a Prometheus text exposition line, or undefined. */
function sample(text: string, line: string): number | undefined {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

describe('metrics', () => {
  it('counts decisions by outcome and source into prom-client', async () => {
    const registry = new client.Registry();
    const limiter = new Limiter({ policy: fixedWindow({ limit: 2, window: '1h' }), clock: () => 0, metrics: promMetrics(client, [registry]) });
    limiter.limitSync('k');
    await limiter.limit('k');
    limiter.limitManySync(['k', 'k']);
    const text = await registry.metrics();
    expect(sample(text, 'cellgate_decisions_total{outcome="allowed",source="local"}')).toBe(2);
    expect(sample(text, 'cellgate_decisions_total{outcome="denied",source="local"}')).toBe(2);
  });

  it('feeds the OpenTelemetry SDK: decisions, refusals and evictions of a full table', async () => {
    for (const whenFull of ['deny', 'evict'] as const) {
      const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
      const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
      const provider = new MeterProvider({ readers: [reader] });
      const sink = otelMetrics(provider.getMeter('cellgate'));
      const store = new EmbeddedStore({ maxKeys: 100, whenFull, metrics: sink });
      const limiter = new Limiter({ policy: gcra({ limit: 1, period: '1h' }), store, clock: () => 0, metrics: sink });
      for (let i = 0; i < 5000; i++) limiter.limitSync(`k${i}`);
      limiter.limitSync('k0'); // with deny, k0 still owes its hour: denied
      const { evictions, refusals } = store.stats(0);
      const { resourceMetrics } = await reader.collect();
      const metrics = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
      const byName = (name: string) => metrics.find((m) => m.descriptor.name === name);
      const decisions = Object.fromEntries(byName('cellgate.decisions')!.dataPoints.map((p) => [p.attributes.outcome, p.value]));
      if (whenFull === 'deny') {
        expect(refusals).toBeGreaterThan(4000);
        expect(evictions).toBe(0);
        expect(byName('cellgate.refusals')!.dataPoints[0]!.value).toBe(refusals);
        expect(decisions).toEqual({ allowed: 5000 - refusals, denied: refusals + 1 });
      } else {
        expect(evictions).toBeGreaterThan(4000);
        expect(refusals).toBe(0);
        expect(byName('cellgate.evictions')!.dataPoints[0]!.value).toBe(evictions);
        expect(decisions.allowed).toBeGreaterThanOrEqual(5000);
      }
      await provider.shutdown();
    }
  });

  it('reports Redis batch sizes and durations, and breaker transitions', async () => {
    const server = await startRedis();
    const redis = new Redis({ host: server.host, port: server.port, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    redis.on('error', () => {});
    const registry = new client.Registry();
    const sink = promMetrics(client, [registry]);
    const store = new RedisStore({ client: redis, prefix: 'metrics:', timeoutMs: 100, probeIntervalMs: 50, metrics: sink });
    try {
      const limiter = new Limiter({ policy: gcra({ limit: 100, period: '1s', burst: 100 }), store, metrics: sink });
      await Promise.all(Array.from({ length: 10 }, (_, i) => limiter.limit(`k${i % 5}`)));
      let text = await registry.metrics();
      expect(sample(text, 'cellgate_redis_batch_size_sum')).toBe(10);
      expect(sample(text, 'cellgate_redis_batch_duration_ms_count')).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'cellgate_decisions_total{outcome="allowed",source="redis"}')).toBe(10);
      // The default fallback admits once the store knows its fleet (its second heartbeat).
      for (let i = 0; i < 100 && store.stats().fleetSize === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      server.kill('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await limiter.limit('k0')).source).toBe('fallback');
      await server.restart();
      const deadline = performance.now() + 3000;
      while (store.stats().state !== 'closed' && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      text = await registry.metrics();
      expect(sample(text, 'cellgate_breaker_transitions_total{to="open"}')).toBe(1);
      expect(sample(text, 'cellgate_breaker_transitions_total{to="closed"}')).toBe(1);
      expect(sample(text, 'cellgate_decisions_total{outcome="allowed",source="fallback"}')).toBe(1);
    } finally {
      store.close();
      redis.disconnect();
      await server.stop();
    }
  });

  it('rejects a sink that is not one, naming the option', () => {
    expect(() => new Limiter({ policy: gcra({ limit: 1, period: 1 }), metrics: {} as never })).toThrow(ConfigError);
    expect(() => new EmbeddedStore({ metrics: { count() {} } as never })).toThrow(expect.objectContaining({ parameter: 'metrics' }));
  });
});
