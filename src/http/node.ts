// The Node adapters: a connect-style (req, res, next) middleware for
// node:http, Express and Connect, and an onRequest hook for Fastify. Both key
// requests from Node's IncomingMessage.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Decision } from '../limiter/decision.js';
import { ConfigError } from '../errors.js';
import { commonOptions, decideKey, KeyRefusal, refusal, requestKey, type Common, type CommonOptions, type RequestReader } from './options.js';

/** Options of {@link nodeRateLimit} and {@link fastifyRateLimit}. */
export interface NodeRateLimitOptions extends CommonOptions<IncomingMessage> {
  /**
   * Writes the response to a denied request (default: 429, `Too Many
   * Requests`); the rate-limit headers are already set on `res`.
   */
  onLimited?: (decision: Decision, req: IncomingMessage, res: ServerResponse) => void;
}

/** Node's request as the key option reads it. */
const nodeReader: RequestReader<IncomingMessage> = {
  peer: (req) => req.socket?.remoteAddress,
  header(req, name) {
    const value = req.headers[name.toLowerCase()];
    return Array.isArray(value) ? value.join(', ') : value;
  },
};

/** Decides a request (undefined: skipped), synchronously when it can (see `decideKey`). */
function decide(c: Common<IncomingMessage>, req: IncomingMessage): Decision | undefined | Promise<Decision | undefined> {
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
function whenDecided(
  c: Common<IncomingMessage>,
  req: IncomingMessage,
  then: (d: Decision | undefined) => void,
  refuse: (status: number, text: string) => void,
  fail: (error: unknown) => void,
): void {
  const failed = (error: unknown): void => (error instanceof KeyRefusal ? refuse(...refusal(error)) : fail(error));
  let decided: ReturnType<typeof decide>;
  try {
    decided = decide(c, req);
  } catch (error) {
    return failed(error);
  }
  if (decided instanceof Promise) decided.then(then, failed);
  else then(decided);
}

const TEXT = 'text/plain; charset=utf-8';

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
 * @example
 * ```ts
 * const app = express();
 * app.use(nodeRateLimit({ limiter, trustProxy: 1 }));
 * ```
 */
export function nodeRateLimit(options: NodeRateLimitOptions): (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void {
  const c = commonOptions<IncomingMessage>(options, 'nodeRateLimit', ['onLimited']);
  const onLimited = options.onLimited;
  checkOnLimited(onLimited);
  const answer = (res: ServerResponse, status: number, text: string): void => {
    res.statusCode = status;
    res.setHeader('content-type', TEXT);
    res.end(text);
  };
  return (req, res, next) => {
    const finish = (decision: Decision | undefined): void => {
      if (decision === undefined) return next();
      for (const [name, value] of c.headers(decision)) res.setHeader(name, value);
      if (decision.allowed) return next();
      if (onLimited !== undefined) return onLimited(decision, req, res);
      answer(res, 429, 'Too Many Requests\n');
    };
    whenDecided(c, req, finish, (status, text) => answer(res, status, text), next);
  };
}

/** The parts of Fastify's request and reply the hook uses. */
interface FastifyLike {
  request: { raw: IncomingMessage };
  reply: { header(name: string, value: string): unknown; code(status: number): unknown; send(body: unknown): unknown; raw: ServerResponse };
}

/**
 * An `onRequest` hook for Fastify (callback style, so that an in-process
 * decision costs no promise): the same as {@link nodeRateLimit}, through
 * Fastify's reply; other errors go to `done(error)` (Fastify answers 500).
 *
 * @example
 * ```ts
 * const app = Fastify();
 * app.addHook('onRequest', fastifyRateLimit({ limiter }));
 * ```
 */
export function fastifyRateLimit(
  options: NodeRateLimitOptions,
): (request: FastifyLike['request'], reply: FastifyLike['reply'], done: (error?: Error) => void) => void {
  const c = commonOptions<IncomingMessage>(options, 'fastifyRateLimit', ['onLimited']);
  const onLimited = options.onLimited;
  checkOnLimited(onLimited);
  const answer = (reply: FastifyLike['reply'], status: number, text: string): void => {
    reply.code(status);
    reply.header('content-type', TEXT);
    reply.send(text);
  };
  return (request, reply, done) => {
    const finish = (decision: Decision | undefined): void => {
      if (decision === undefined) return done();
      for (const [name, value] of c.headers(decision)) reply.header(name, value);
      if (decision.allowed) return done();
      // Answering early: Fastify's rule is to send and not call done.
      if (onLimited !== undefined) return onLimited(decision, request.raw, reply.raw);
      answer(reply, 429, 'Too Many Requests\n');
    };
    whenDecided(c, request.raw, finish, (status, text) => answer(reply, status, text), (error) => done(error as Error));
  };
}
