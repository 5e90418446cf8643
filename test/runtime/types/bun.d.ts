// The few Bun APIs the Bun smoke suites use, for the type-check: bun-types is
// not installed. Shapes as Bun documents them, narrowed to what the suites
// call; a suite that calls anything else fails the type-check until it is
// declared here.

declare module 'bun:test' {
  interface Matchers {
    toBe(expected: unknown): void;
    toEqual(expected: unknown): void;
    toBeGreaterThanOrEqual(expected: number): void;
    toBeInstanceOf(expected: abstract new (...args: never[]) => unknown): void;
  }
  export function describe(name: string, body: () => void): void;
  export function test(name: string, body: () => void | Promise<unknown>): void;
  export function expect(actual: unknown): Matchers;
}

declare namespace Bun {
  interface Server {
    /** The port it listens on (the one chosen, for port 0). */
    readonly port: number;
    stop(closeActiveConnections?: boolean): void;
  }
  function serve(options: { hostname?: string; port?: number; fetch(request: Request, server: Server): Response | Promise<Response> }): Server;
}
