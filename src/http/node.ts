// The Node adapters: a connect-style (req, res, next) middleware for
// node:http, Express and Connect, and an onRequest hook for Fastify. Both key
// requests from Node's IncomingMessage, typed here by the members they use
// (NodeRequest, NodeResponse), not by node:http's types: the package's .d.ts
// then compile without @types/node (a Fetch-only user on Deno, Bun or Workers
// does not have it), and node's IncomingMessage and ServerResponse, Express's
// and Fastify's raw objects satisfy them as they are.
import type { Decision } from '../limiter/decision.js';
import type { Permit } from '../limiter/permit.js';
import { ArgumentError, ConfigError } from '../errors.js';
import { commonOptions, decideKey, KeyRefusal, refusal, requestKey, type Common, type CommonOptions, type RequestReader } from './options.js';

/**
 * What the Node adapters read of a request: node:http's `IncomingMessage`
 * (and Express's `Request`, which extends it) is one. `url` and `method` are
 * not read, but are there for a `key`, `cost` or `skip` function.
 *
 * @example
 * ```ts
 * const fake: NodeRequest = { headers: { 'x-api-key': 'k' }, socket: { remoteAddress: '10.0.0.1' } };
 * ```
 */
export interface NodeRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly socket?: { readonly remoteAddress?: string | undefined } | null | undefined;
  readonly url?: string | undefined;
  readonly method?: string | undefined;
}

/**
 * What the Node adapters write of a response (a denial, a refused key):
 * node:http's `ServerResponse` (and Express's `Response`) is one. With a
 * limiter that has a concurrency gate, they also listen for its end
 * (`once`, `off`: its `'finish'` and `'close'` events) and read whether it
 * is already over (`closed`, `destroyed`).
 *
 * @example
 * ```ts
 * const fake: NodeResponse = { statusCode: 200, setHeader() {}, end() {} };
 * ```
 */
export interface NodeResponse {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body: string): unknown;
  once?(event: 'finish' | 'close', listener: () => void): unknown;
  off?(event: 'finish' | 'close', listener: () => void): unknown;
  readonly closed?: boolean;
  readonly destroyed?: boolean;
}

/**
 * Options of {@link nodeRateLimit} and {@link fastifyRateLimit}. `Req` and
 * `Res` are what the functions among them receive: inferred from an
 * annotated parameter (`key: (req: express.Request) => ...`), else
 * {@link NodeRequest} and {@link NodeResponse}.
 */
export interface NodeRateLimitOptions<Req extends NodeRequest = NodeRequest, Res extends NodeResponse = NodeResponse> extends CommonOptions<Req> {
  /**
   * Writes the response to a denied request (default: 429, `Too Many
   * Requests`); the rate-limit headers are already set on `res`.
   */
  onLimited?: (decision: Decision, req: Req, res: Res) => void;
}

/** Node's request as the key option reads it. */
const nodeReader: RequestReader<NodeRequest> = {
  peer: (req) => req.socket?.remoteAddress,
  header(req, name) {
    const value = req.headers[name.toLowerCase()];
    return Array.isArray(value) ? value.join(', ') : value;
  },
};

/** Decides a request (undefined: skipped), synchronously when it can (see `decideKey`). */
function decide<Req extends NodeRequest>(c: Common<Req>, req: Req): Decision | undefined | Promise<Decision | undefined> {
  if (c.skip !== undefined) {
    const skip = c.skip;
    return (async () => ((await skip(req)) ? undefined : decideKey(c, requestKey(c, nodeReader, req), c.cost(req))))();
  }
  return decideKey(c, requestKey(c, nodeReader, req), c.cost(req));
}

/**
 * Hands the request's decision to `then`, at once when it is known at once;
 * a refused key goes to `refuse`, any other failure to `fail`.
 */
function whenDecided<Req extends NodeRequest>(
  c: Common<Req>,
  req: Req,
  then: (d: Decision | undefined) => void,
  refuse: (status: number, text: string) => void,
  fail: (error: unknown) => void,
): void {
  const failed = (error: unknown): void => (error instanceof KeyRefusal ? refuse(...refusal(error)) : fail(error));
  let decided: ReturnType<typeof decide<Req>>;
  try {
    decided = decide(c, req);
  } catch (error) {
    return failed(error);
  }
  if (decided instanceof Promise) decided.then(then, failed);
  else then(decided);
}

const TEXT = 'text/plain; charset=utf-8';

/**
 * Holds an admitted request's permit until its response is over: finished
 * (the last byte handed to the OS) or its connection closed first (the
 * client aborted, the socket was destroyed), released exactly once. A
 * response that cannot tell (no `once`) is refused with an
 * {@link ArgumentError} (`res`), returned for the adapter's error path, and
 * the permit released: the slot would otherwise be given back blind.
 */
function holdUntilDone(res: NodeResponse, permit: Permit): ArgumentError | undefined {
  if (typeof res.once !== 'function') {
    void permit.release();
    return new ArgumentError('res', res, "a response that emits 'finish' and 'close' (node:http's ServerResponse), to hold a concurrency permit until it is over");
  }
  // Over before the decision came (an aborted request decided by Redis): its 'close' has been emitted.
  if (res.closed === true || res.destroyed === true) {
    void permit.release();
    return undefined;
  }
  const done = (): void => {
    res.off?.('finish', done);
    res.off?.('close', done);
    void permit.release();
  };
  res.once('finish', done);
  res.once('close', done);
  return undefined;
}

function checkOnLimited(onLimited: unknown): void {
  if (onLimited !== undefined && typeof onLimited !== 'function') throw new ConfigError('onLimited', onLimited, 'a function (decision, req, res) => void');
}

/**
 * A connect-style middleware for node:http, Express and Connect: admits each
 * request through `limiter`, sets the rate-limit header fields, and answers a
 * denied request with 429 (or `onLimited`) and `Retry-After` instead of
 * calling `next`. A request whose key cannot be used is answered here too,
 * never passed on: 500 when the key function threw or rejected, 400 when it
 * returned no non-empty string (an over-long key is limited under its
 * digest: see {@link CommonOptions}). Any other error (a throwing `skip` or
 * `cost`, a store error such as a typed `RedisStateError`) goes to
 * `next(error)`: the `next` of plain node:http must answer it, e.g.
 * `mw(req, res, (error) => (error ? fail(res, error) : handle(req, res)))`.
 *
 * With a {@link concurrency} gate in the limiter, an admitted request holds
 * its permit until its response has finished or its connection closed
 * (a client that aborts mid-request gives its slot back then); a denial
 * answers 429 with `Retry-After: 1`.
 *
 * @example
 * ```ts
 * const app = express();
 * app.use(nodeRateLimit({ limiter, trustProxy: 1 }));
 * app.use(nodeRateLimit({ limiter, key: (req: express.Request) => req.ip ?? 'unknown' }));
 * ```
 */
export function nodeRateLimit<Req extends NodeRequest = NodeRequest, Res extends NodeResponse = NodeResponse>(
  options: NodeRateLimitOptions<Req, Res>,
): (req: Req, res: Res, next: (error?: unknown) => void) => void {
  const c = commonOptions<Req>(options, 'nodeRateLimit', ['onLimited']);
  const onLimited = options.onLimited;
  checkOnLimited(onLimited);
  const answer = (res: Res, status: number, text: string): void => {
    res.statusCode = status;
    res.setHeader('content-type', TEXT);
    res.end(text);
  };
  return (req, res, next) => {
    const finish = (decision: Decision | undefined): void => {
      if (decision === undefined) return next();
      for (const [name, value] of c.headers(decision)) res.setHeader(name, value);
      if (decision.allowed) {
        const refused = c.slots ? holdUntilDone(res, decision as Permit) : undefined;
        return refused === undefined ? next() : next(refused);
      }
      if (onLimited !== undefined) return onLimited(decision, req, res);
      answer(res, 429, 'Too Many Requests\n');
    };
    whenDecided(c, req, finish, (status, text) => answer(res, status, text), next);
  };
}

/** The parts of Fastify's request and reply the hook uses. */
interface FastifyLike<Req extends NodeRequest, Res extends NodeResponse> {
  request: { raw: Req };
  reply: { header(name: string, value: string): unknown; code(status: number): unknown; send(body: unknown): unknown; raw: Res };
}

/**
 * An `onRequest` hook for Fastify (callback style, so that an in-process
 * decision costs no promise): the same as {@link nodeRateLimit}, through
 * Fastify's reply; other errors go to `done(error)` (Fastify answers 500).
 * A concurrency gate's permit is held until `reply.raw` (the
 * `ServerResponse`) has finished or closed.
 *
 * @example
 * ```ts
 * const app = Fastify();
 * app.addHook('onRequest', fastifyRateLimit({ limiter }));
 * ```
 */
export function fastifyRateLimit<Req extends NodeRequest = NodeRequest, Res extends NodeResponse = NodeResponse>(
  options: NodeRateLimitOptions<Req, Res>,
): (request: FastifyLike<Req, Res>['request'], reply: FastifyLike<Req, Res>['reply'], done: (error?: Error) => void) => void {
  const c = commonOptions<Req>(options, 'fastifyRateLimit', ['onLimited']);
  const onLimited = options.onLimited;
  checkOnLimited(onLimited);
  const answer = (reply: FastifyLike<Req, Res>['reply'], status: number, text: string): void => {
    reply.code(status);
    reply.header('content-type', TEXT);
    reply.send(text);
  };
  return (request, reply, done) => {
    const finish = (decision: Decision | undefined): void => {
      if (decision === undefined) return done();
      for (const [name, value] of c.headers(decision)) reply.header(name, value);
      if (decision.allowed) {
        const refused = c.slots ? holdUntilDone(reply.raw, decision as Permit) : undefined;
        return refused === undefined ? done() : done(refused);
      }
      // Answering early: Fastify's rule is to send and not call done.
      if (onLimited !== undefined) return onLimited(decision, request.raw, reply.raw);
      answer(reply, 429, 'Too Many Requests\n');
    };
    whenDecided(c, request.raw, finish, (status, text) => answer(reply, status, text), (error) => done(error as Error));
  };
}
