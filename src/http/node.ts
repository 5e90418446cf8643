// The Node adapters: a connect-style (req, res, next) middleware for
// node:http, Express and Connect, and an onRequest hook for Fastify. Both key
// requests from Node's IncomingMessage.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Decision } from '../decision.js';
import { ConfigError } from '../errors.js';
import { commonOptions, decideKey, requestKey, type Common, type CommonOptions, type RequestReader } from './options.js';

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

/** Hands the request's decision to `then`, at once when it is known at once; a failure goes to `fail`. */
function whenDecided(c: Common<IncomingMessage>, req: IncomingMessage, then: (d: Decision | undefined) => void, fail: (error: unknown) => void): void {
  let decided: ReturnType<typeof decide>;
  try {
    decided = decide(c, req);
  } catch (error) {
    return fail(error);
  }
  if (decided instanceof Promise) decided.then(then, fail);
  else then(decided);
}

function checkOnLimited(onLimited: unknown): void {
  if (onLimited !== undefined && typeof onLimited !== 'function') throw new ConfigError('onLimited', onLimited, 'a function (decision, req, res) => void');
}

/**
 * A connect-style middleware for node:http, Express and Connect: admits each
 * request through `limiter`, sets the rate-limit header fields, and answers a
 * denied request with 429 (or `onLimited`) and `Retry-After` instead of
 * calling `next`. A store error (e.g. a typed `RedisStateError`) goes to
 * `next(error)`.
 *
 * @example
 * ```ts
 * const app = express();
 * app.use(nodeRateLimit({ limiter, trustProxy: 1 }));
 * ```
 */
export function nodeRateLimit(options: NodeRateLimitOptions): (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void {
  const c = commonOptions<IncomingMessage>(options);
  const onLimited = options.onLimited;
  checkOnLimited(onLimited);
  return (req, res, next) => {
    const finish = (decision: Decision | undefined): void => {
      if (decision === undefined) return next();
      for (const [name, value] of c.headers(decision)) res.setHeader(name, value);
      if (decision.allowed) return next();
      if (onLimited !== undefined) return onLimited(decision, req, res);
      res.statusCode = 429;
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      res.end('Too Many Requests\n');
    };
    whenDecided(c, req, finish, next);
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
 * Fastify's reply.
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
  const c = commonOptions<IncomingMessage>(options);
  const onLimited = options.onLimited;
  checkOnLimited(onLimited);
  return (request, reply, done) => {
    const finish = (decision: Decision | undefined): void => {
      if (decision === undefined) return done();
      for (const [name, value] of c.headers(decision)) reply.header(name, value);
      if (decision.allowed) return done();
      // Answering early: Fastify's rule is to send and not call done.
      if (onLimited !== undefined) return onLimited(decision, request.raw, reply.raw);
      reply.code(429);
      reply.header('content-type', 'text/plain; charset=utf-8');
      reply.send('Too Many Requests\n');
    };
    whenDecided(c, request.raw, finish, (error) => done(error as Error));
  };
}
