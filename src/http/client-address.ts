/**
 * Which proxies in front of the server to believe about the client's
 * address: `false` (default), none: the peer address is the client, and
 * `X-Forwarded-For` is ignored (anyone can send it); a number `n`, the `n`
 * hops closest to the server (the client is the `n`-th address from the right
 * of `X-Forwarded-For` + peer); a list of proxy addresses, skipped from the
 * right; `true`, every hop (the leftmost address: only behind a proxy that
 * overwrites the header).
 */
export type TrustProxy = boolean | number | readonly string[];

/** `::ffff:1.2.3.4` (an IPv4 client of a dual-stack socket) is `1.2.3.4`. */
function plain(address: string): string {
  const a = address.trim();
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/**
 * The client's address from the peer address of the connection and the
 * `X-Forwarded-For` header, believing only the trusted proxies.
 *
 * @example
 * ```ts
 * clientAddress('10.0.0.2', '203.0.113.7, 10.0.0.1', 2);          // '203.0.113.7'
 * clientAddress('10.0.0.2', '203.0.113.7', false);                // '10.0.0.2'
 * clientAddress('10.0.0.2', '6.6.6.6, 203.0.113.7', ['10.0.0.2']); // '203.0.113.7'
 * ```
 */
export function clientAddress(peer: string | undefined, forwardedFor: string | null | undefined, trust: TrustProxy): string | undefined {
  if (peer === undefined || trust === false || trust === 0 || !forwardedFor) return peer === undefined ? undefined : plain(peer);
  const chain = [...forwardedFor.split(',').map(plain).filter((a) => a.length > 0), plain(peer)];
  if (trust === true) return chain[0];
  if (typeof trust === 'number') return chain[Math.max(0, chain.length - 1 - trust)];
  const trusted = new Set(trust.map(plain));
  let i = chain.length - 1;
  while (i > 0 && trusted.has(chain[i]!)) i--;
  return chain[i];
}
