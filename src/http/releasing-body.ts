// A Response whose body gives a concurrency permit back once it is over:
// read to its end, cancelled or errored. limitedFetch returns one and the
// Fetch adapter serves one, so that a slot stays held while a body is in
// flight, not only until the headers are in.

/**
 * Releases the permits of bodies dropped unfinished, when they are
 * collected. The body stream is what is registered, not the Response: a
 * server may keep only the stream it is sending and drop the Response.
 * Cloudflare Workers have no FinalizationRegistry: there the permit,
 * collected with the body, stops being renewed and its lease runs out.
 */
const dropped = typeof FinalizationRegistry === 'function' ? new FinalizationRegistry<() => void>((release) => release()) : undefined;

/**
 * `release`, callable any number of times, calling it once. Made in a scope
 * of its own: the registry holds it strongly, so it must not capture the
 * stream it is registered for.
 */
function once(release: () => void, token: object): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    dropped?.unregister(token);
    release();
  };
}

/**
 * `response` with `release` called once when its body is over: read to its
 * end, cancelled (`res.body.cancel()`, a server dropping the connection),
 * or errored (the network, an abort). A response without a body (or one
 * that cannot be wrapped: already read, a status that takes no body) is
 * returned as it is, and released at once. The body is passed through
 * chunk by chunk, read only as the consumer reads (nothing buffered ahead).
 *
 * The result is a new Response with the same status, status text, headers,
 * `url`, `redirected` and `type`. A body dropped unfinished (by the
 * consumer and the Response alike) is released when it is garbage-collected (without FinalizationRegistry, as
 * on Workers, its lease runs out then); until then its permit is held (and
 * renewed): read or cancel every body.
 * @internal
 *
 * @example
 * ```ts
 * const permit = await limiter.acquire(host);
 * return releasingBody(await fetch(url), () => void permit.release());
 * ```
 */
export function releasingBody(response: Response, release: () => void): Response {
  const body = response.body;
  if (body === null || response.bodyUsed || body.locked) {
    release();
    return response;
  }
  const token = {};
  const done = once(release, token);
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader!.read();
        } catch (error) {
          done();
          controller.error(error);
          return;
        }
        if (chunk.done) {
          done();
          controller.close();
        } else {
          controller.enqueue(chunk.value);
        }
      },
      cancel(reason) {
        done();
        return reader!.cancel(reason);
      },
    },
    // Pulled only when the consumer reads: the upstream's flow control holds.
    { highWaterMark: 0 },
  );
  let out: Response;
  try {
    out = new Response(stream, { status: response.status, statusText: response.statusText, headers: response.headers });
  } catch {
    // A status the constructor refuses a body for (or out of its range): nothing to hold it by.
    done();
    return response;
  }
  reader = body.getReader();
  // What the constructor cannot set, as the response had it (limitedFetch's callers read url).
  Object.defineProperties(out, {
    url: { value: response.url },
    redirected: { value: response.redirected },
    type: { value: response.type },
  });
  dropped?.register(stream, done, token);
  return out;
}
