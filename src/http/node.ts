// The Node adapters: a connect-style (req, res, next) middleware for
// node:http, Express and Connect, and an onRequest hook for Fastify. Both key
// requests from Node's IncomingMessage.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Decision } from '../decision.js';
import { ConfigError } from '../errors.js';
import { clientAddress } from './client-address.js';
import { commonOptions, type Common, type CommonOptions } from './options.js';

/** Options of {@link nodeRateLimit} and {@link fastifyRateLimit}. */
export interface NodeRateLimitOptions extends CommonOptions<IncomingMessage> {
  /**
   * Writes the response to a denied request (default: 429, `Too Many
   * Requests`); the rate-limit headers are already set on `res`.
   */
  onLimited?: (decision: Decision, req: IncomingMessage, res: ServerResponse) => void;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : value;
}

function keyOf(c: Common<IncomingMessage>, req: IncomingMessage): string | Promise<string> {
  const key = c.key;
  if (key === 'ip') return `ip:${clientAddress(req.socket?.remoteAddress, header(req, 'x-forwarded-for'), c.trustProxy) ?? 'unknown'}`;
  if (typeof key === 'function') return key(req);
  return `header:${key.header.toLowerCase()}:${header(req, key.header) ?? ''}`;
}

/**
 * Decides a request (undefined: skipped). With an in-process limiter and a
 * key known at once it answers synchronously: no promise on the hot path of
 * a gateway, where a few microtasks per request cost measurable throughput.
 */
function decide(c: Common<IncomingMessage>, req: IncomingMessage): Decision | undefined | Promise<Decision | undefined> {
  if (c.skip !== undefined) {
    return Promise.resolve(c.skip(req)).then((skip) => (skip ? undefined : Promise.resolve(keyOf(c, req)).then((key) => c.limiter.limit(key, { cost: c.cost(req) }))));
  }
  const key = keyOf(c, req);
  if (typeof key === 'string' && c.limiter.inProcess) return c.limiter.limitSync(key, { cost: c.cost(req) });
  return Promise.resolve(key).then((k) => c.limiter.limit(k, { cost: c.cost(req) }));
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
    let decided: ReturnType<typeof decide>;
    try {
      decided = decide(c, req);
    } catch (error) {
      return next(error);
    }
    if (decided instanceof Promise) decided.then(finish, (error: unknown) => next(error));
    else finish(decided);
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
    let decided: ReturnType<typeof decide>;
    try {
      decided = decide(c, request.raw);
    } catch (error) {
      return done(error as Error);
    }
    if (decided instanceof Promise) decided.then(finish, (error: unknown) => done(error as Error));
    else finish(decided);
  };
}
