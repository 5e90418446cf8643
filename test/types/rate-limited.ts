// Usages @rateLimited must accept, type-checked by test/rate-limited.test.ts
// (tsc -p test/types/tsconfig.json) and by tsconfig.check.json. The factories
// are also what the behaviour tests run: transpiled with real TC39 decorator
// syntax, since vitest does not lower decorators itself.
import type { Clock } from '../../build/lib/src/core/clock.js';
import { gcra, linearWindow } from '../../build/lib/src/policies/index.js';
import { rateLimited, type RateLimitedOptions } from '../../build/lib/src/scheduler/rate-limited.js';
import type { Store } from '../../build/lib/src/limiter/store.js';

export interface Resource {
  id: string;
}

/** The issue's example: 2 reconciles per resource within 3 s, with a log of runs. */
export function reconcilerClass(clock: Clock, maxWaitMs?: number) {
  return class Reconciler {
    readonly runs: { name: string; id: string; note: string; at: number }[] = [];
    constructor(readonly name: string) {}

    // The key reads the first argument only; the method takes more.
    @rateLimited({ limit: 2, within: '3s', key: (resource: Resource) => resource.id, clock, maxWaitMs })
    async reconcile(resource: Resource, note = ''): Promise<string> {
      this.runs.push({ name: this.name, id: resource.id, note, at: clock() });
      await Promise.resolve();
      if (note === 'fail') throw new Error(`reconcile of ${resource.id} failed`);
      return `${this.name} reconciled ${resource.id}${note === '' ? '' : ` (${note})`}`;
    }
  };
}

/** A custom policy: GCRA paces one call per 500 ms per host. */
export function pacedClientClass(clock: Clock) {
  return class PacedClient {
    readonly sent: { host: string; path: string; at: number }[] = [];

    @rateLimited({ policy: gcra({ limit: 2, period: '1s' }), key: (host: string) => `host:${host}`, clock })
    async get(host: string, path: string): Promise<number> {
      this.sent.push({ host, path, at: clock() });
      return this.sent.length;
    }
  };
}

/** One decorator value on two methods: each method still gets its own limiter. */
export function twoMethodsClass(clock: Clock) {
  const onePerSecond = rateLimited({ limit: 1, within: '1s', key: (id: string) => id, clock });
  return class TwoMethods {
    @onePerSecond
    async first(id: string): Promise<string> {
      return `first ${id}`;
    }

    @onePerSecond
    async second(id: string): Promise<string> {
      return `second ${id}`;
    }
  };
}

/** Defines a class decorated with `options`: bad options throw here, at definition. */
export function defineWith(options: RateLimitedOptions<[id: string]>) {
  return class Defined {
    @rateLimited(options)
    async run(id: string): Promise<string> {
      return id;
    }
  };
}

/** More shapes that must type-check; returned, so that importing this file decorates nothing. */
export function shapesClass(store: Store) {
  return class Shapes {
    // Stacked gates, a store, and a key over several arguments.
    @rateLimited({
      policy: [gcra({ limit: 10, period: '1s' }), linearWindow({ limit: 100, within: '1m' })],
      store,
      key: (tenant: string, user: number) => `${tenant}/${user}`,
    })
    async both(tenant: string, user: number, _payload?: Uint8Array): Promise<string> {
      return `${tenant}/${user}`;
    }

    // A key that ignores every argument: one budget for all calls.
    @rateLimited({ limit: 1, within: 250, key: () => 'global', store })
    async anything(_x: number, _y: string): Promise<number> {
      return 1;
    }

    @rateLimited({ limit: 5, within: '1s', key: (id: string) => id, store })
    static async onClass(id: string): Promise<string> {
      return `static ${id}`;
    }

    @rateLimited({ limit: 5, within: '1s', key: (id: string) => id, store })
    async #secret(id: string): Promise<string> {
      return `private ${id}`;
    }

    callSecret(id: string): Promise<string> {
      return this.#secret(id);
    }
  };
}

// Decorated methods keep their signatures, return types included.
type ShapesClass = ReturnType<typeof shapesClass>;
export const anything: (s: InstanceType<ShapesClass>) => Promise<number> = (s) => s.anything(1, 'x');
export const onClass: (C: ShapesClass) => Promise<string> = (C) => C.onClass('a');
