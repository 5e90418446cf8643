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

async function keyOf(c: Common<IncomingMessage>, req: IncomingMessage): Promise<string> {
  const key = c.key;
  if (key === 'ip') return `ip:${clientAddress(req.socket?.remoteAddress, header(req, 'x-forwarded-for'), c.trustProxy) ?? 'unknown'}`;
  if (typeof key === 'function') return key(req);
  return `header:${key.header.toLowerCase()}:${header(req, key.header) ?? ''}`;
}

/** Decides a request: undefined when it is skipped. */
async function decide(c: Common<IncomingMessage>, req: IncomingMessage): Promise<Decision | undefined> {
  if (c.skip !== undefined && (await c.skip(req))) return undefined;
  return c.limiter.limit(await keyOf(c, req), { cost: c.cost(req) });
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
    decide(c, req).then(
      (decision) => {
        if (decision === undefined) return next();
        for (const [name, value] of c.headers(decision)) res.setHeader(name, value);
        if (decision.allowed) return next();
        if (onLimited !== undefined) return onLimited(decision, req, res);
        res.statusCode = 429;
        res.setHeader('content-type', 'text/plain; charset=utf-8');
        res.end('Too Many Requests\n');
      },
      (error: unknown) => next(error),
    );
  };
}

/** The parts of Fastify's request and reply the hook uses. */
interface FastifyLike {
  request: { raw: IncomingMessage };
  reply: { header(name: string, value: string): unknown; code(status: number): unknown; send(body: unknown): unknown; raw: ServerResponse };
}

/**
 * An `onRequest` hook for Fastify: the same as {@link nodeRateLimit}, through
 * Fastify's reply.
 *
 * @example
 * ```ts
 * const app = Fastify();
 * app.addHook('onRequest', fastifyRateLimit({ limiter }));
 * ```
 */
export function fastifyRateLimit(options: NodeRateLimitOptions): (request: FastifyLike['request'], reply: FastifyLike['reply']) => Promise<unknown> {
  const c = commonOptions<IncomingMessage>(options);
  const onLimited = options.onLimited;
  checkOnLimited(onLimited);
  return async (request, reply) => {
    const decision = await decide(c, request.raw);
    if (decision === undefined) return;
    for (const [name, value] of c.headers(decision)) reply.header(name, value);
    if (decision.allowed) return;
    if (onLimited !== undefined) {
      onLimited(decision, request.raw, reply.raw);
      return reply;
    }
    reply.code(429);
    reply.header('content-type', 'text/plain; charset=utf-8');
    reply.send('Too Many Requests\n');
    // Fastify's rule for async hooks that answer early: return the reply.
    return reply;
  };
}
