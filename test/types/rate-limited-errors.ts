// Usages @rateLimited must reject. Each `@ts-expect-error` must meet an error
// on the next line: tsc fails on an unused one, so a decorator that accepted
// any of these would fail test/rate-limited.test.ts (and tsconfig.check.json).
import { gcra } from '../../build/lib/src/policies/index.js';
import { rateLimited } from '../../build/lib/src/scheduler/rate-limited.js';

export class Rejected {
  // A synchronous method: waiting for admission makes every call async.
  // @ts-expect-error
  @rateLimited({ limit: 1, within: '1s', key: (id: string) => id })
  sync(id: string): string {
    return id;
  }

  // Sometimes a promise is not always a promise.
  // @ts-expect-error
  @rateLimited({ limit: 1, within: '1s', key: (id: string) => id })
  maybe(id: string): string | Promise<string> {
    return id;
  }

  // A key function whose parameter does not match the method's argument.
  // @ts-expect-error
  @rateLimited({ limit: 1, within: '1s', key: (id: number) => String(id) })
  async wrongType(id: string): Promise<string> {
    return id;
  }

  // A key function reading an argument the method does not take.
  // @ts-expect-error
  @rateLimited({ limit: 1, within: '1s', key: (id: string, region: string) => `${region}/${id}` })
  async tooFew(id: string): Promise<string> {
    return id;
  }

  // A key function that does not return a string.
  // @ts-expect-error
  @rateLimited({ limit: 1, within: '1s', key: (id: string) => id.length })
  async notAString(id: string): Promise<string> {
    return id;
  }

  // Both a policy and limit/within.
  // @ts-expect-error
  @rateLimited({ limit: 1, within: '1s', policy: gcra({ limit: 1, period: '1s' }), key: (id: string) => id })
  async both(id: string): Promise<string> {
    return id;
  }

  // Neither.
  // @ts-expect-error
  @rateLimited({ key: (id: string) => id })
  async neither(id: string): Promise<string> {
    return id;
  }

  // Not a method.
  // @ts-expect-error
  @rateLimited({ limit: 1, within: '1s', key: (id: string) => id })
  get getter(): Promise<string> {
    return Promise.resolve('x');
  }
}
