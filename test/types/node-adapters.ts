// Usages the Node adapters must accept now that they are typed structurally
// (NodeRequest, NodeResponse) instead of by node:http's types: type-checked by
// tsconfig.check.json (npm run typecheck). node's own objects, Express's and
// Fastify's pass as they are; an annotated parameter carries its framework's
// type through to the other functions and to the returned middleware.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import { Limiter } from '../../build/lib/src/limiter/limiter.js';
import { gcra } from '../../build/lib/src/policies/index.js';
import { fastifyRateLimit, nodeRateLimit } from '../../build/lib/src/http/index.js';

const limiter = new Limiter({ policy: gcra({ limit: 2, period: '1s' }) });

// node:http: IncomingMessage and ServerResponse are a NodeRequest and a NodeResponse.
const mw = nodeRateLimit({ limiter, cost: (req) => (req.url === '/big' ? 2 : 1), skip: (req) => req.method === 'HEAD' });
createServer((req, res) => mw(req, res, () => res.end('ok')));

// A parameter annotated with node's types (the options before this change).
nodeRateLimit({ limiter, onLimited: (_d, _req: IncomingMessage, res: ServerResponse) => res.writeHead(429).end() });

// Express: its Request reaches `key` and `onLimited`, and the middleware is a handler.
const app = express();
app.use(nodeRateLimit({ limiter, key: (req: express.Request) => req.ip ?? 'unknown', onLimited: (_d, req, res) => res.end(req.path) }));

// Fastify: the hook fits onRequest.
Fastify().addHook('onRequest', fastifyRateLimit({ limiter, key: (req) => String(req.headers['x-api-key']) }));

// A value lacking what the adapters read is refused.
// @ts-expect-error: no headers
mw({ socket: null }, { statusCode: 200, setHeader: () => {}, end: () => {} }, () => {});
