// The few Deno APIs the Deno smoke suites use, for the type-check: Deno's own
// lib is not installed. Shapes as Deno documents them, narrowed to what the
// suites call; a suite that calls anything else fails the type-check until it
// is declared here.

declare namespace Deno {
  interface NetAddr {
    readonly hostname: string;
    readonly port: number;
  }
  interface ServeHandlerInfo {
    readonly remoteAddr: NetAddr;
  }
  interface HttpServer {
    readonly addr: NetAddr;
    shutdown(): Promise<void>;
  }
  function test(name: string, fn: () => void | Promise<void>): void;
  function serve(
    options: { hostname?: string; port?: number; onListen?: (addr: NetAddr) => void },
    handler: (request: Request, info: ServeHandlerInfo) => Response | Promise<Response>,
  ): HttpServer;
}
