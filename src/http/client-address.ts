import { ConfigError } from '../errors.js';
import { formatIp, inRange, parseNode, parseIp, parseRange, type IpBytes } from './ip.js';

/**
 * Which proxies in front of the server to believe about the client's
 * address: `false` (default), none: the peer address is the client, and the
 * forwarded header is ignored (anyone can send it); a number `n`, the `n`
 * hops closest to the server (the client is the `n`-th address from the right
 * of the forwarded chain + peer); a list of proxy addresses or networks
 * (`'10.0.0.0/8'`), skipped from the right; `true`, every hop (the leftmost
 * address: only behind a proxy that overwrites the header).
 *
 * The chain is walked from the peer leftwards, one trusted hop at a time,
 * and stops at the first entry that is not an IP address (`not-an-ip`,
 * Forwarded's `unknown` or `_hidden`, a missing `for=`): the client is then
 * the last hop reached, the one that wrote the bad entry, never the entry.
 */
export type TrustProxy = boolean | number | readonly string[];

/**
 * Which header carries the forwarded chain: `X-Forwarded-For` (default) or
 * RFC 7239 `Forwarded` (its `for=` parameters). Only that one is read: a
 * proxy maintains one, and the other is whatever the client sent.
 */
export type ForwardedHeader = 'x-forwarded-for' | 'forwarded';

/** `text` split at `separator` outside quoted strings; `undefined` when a quote is not closed. */
function splitUnquoted(text: string, separator: string): string[] | undefined {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === separator) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) return undefined;
  parts.push(text.slice(start));
  return parts;
}

/** A token, or a quoted-string without its quotes and escapes. */
function unquote(value: string): string {
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value;
}

/**
 * An RFC 7239 `Forwarded` element's `for=` value, unquoted, or `undefined`
 * for an element without exactly one `for=`.
 */
function forwardedFor(element: string): string | undefined {
  let value: string | undefined;
  let fors = 0;
  for (const pair of splitUnquoted(element, ';') ?? []) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim().toLowerCase() !== 'for') continue;
    fors++;
    value = unquote(pair.slice(eq + 1).trim());
  }
  return fors === 1 ? value : undefined;
}

/**
 * The chain's raw entries, leftmost first (a `Forwarded` field with an
 * unclosed quote is one entry that is not an address). Only split here: each
 * entry is parsed when the walk from the right reaches it, so a client's
 * thousands of made-up hops cost a split, not a parse each.
 */
function entriesOf(field: string, header: ForwardedHeader): string[] {
  return header === 'forwarded' ? (splitUnquoted(field, ',') ?? ['"']) : field.split(',');
}

/** One raw entry as an address, or `undefined` when it is not one. */
function entryNode(entry: string, header: ForwardedHeader): IpBytes | undefined {
  if (header !== 'forwarded') return parseNode(entry);
  const value = forwardedFor(entry);
  return value === undefined ? undefined : parseNode(value);
}

/** {@link TrustProxy} with its list parsed. @internal */
export type Trust = boolean | number | readonly { bytes: IpBytes; bits: number }[];

/** The trust setting validated, with its list of addresses and networks parsed (ConfigError naming `trustProxy`). @internal */
export function compileTrust(trust: unknown): Trust {
  if (typeof trust === 'boolean' || (typeof trust === 'number' && Number.isInteger(trust) && trust >= 0 && trust <= 32)) return trust;
  const ranges = Array.isArray(trust) ? trust.map((entry: unknown) => (typeof entry === 'string' ? parseRange(entry) : undefined)) : [undefined];
  if (ranges.some((r) => r === undefined)) {
    throw new ConfigError('trustProxy', trust, 'a boolean, a hop count from 0 to 32, or a list of IP addresses and networks');
  }
  return ranges as { bytes: IpBytes; bits: number }[];
}

/** Whether the hop `steps` from the server is one of the trusted proxies. */
function trusts(trust: Trust, hop: IpBytes, steps: number): boolean {
  if (typeof trust === 'boolean') return trust;
  if (typeof trust === 'number') return steps < trust;
  return trust.some((range) => inRange(hop, range));
}

/**
 * The client's address from the peer address of the connection and the
 * forwarded header, believing only the trusted proxies, in canonical form
 * (`::ffff:1.2.3.4` is `1.2.3.4`, IPv6 per RFC 5952). A peer that is not an
 * IP address is returned trimmed, and the header is then not read. Throws
 * `ConfigError` for a `trust` list entry that is not an address or network.
 *
 * @example
 * ```ts
 * clientAddress('10.0.0.2', '203.0.113.7, 10.0.0.1', 2);          // '203.0.113.7'
 * clientAddress('10.0.0.2', '203.0.113.7', false);                // '10.0.0.2'
 * clientAddress('10.0.0.2', '6.6.6.6, 203.0.113.7', ['10.0.0.2'])  // '203.0.113.7'
 * clientAddress('10.0.0.2', 'not-an-ip', 1);                      // '10.0.0.2'
 * clientAddress('10.0.0.2', 'for="[2001:DB8::1]:4711"', 1, 'forwarded'); // '2001:db8::1'
 * ```
 */
export function clientAddress(peer: string | undefined, field: string | null | undefined, trust: TrustProxy, header: ForwardedHeader = 'x-forwarded-for'): string | undefined {
  const client = clientBytes(peer, field, compileTrust(trust), header);
  return typeof client === 'string' || client === undefined ? client : formatIp(client);
}

/** {@link clientAddress}, as bytes when it is an address. @internal */
export function clientBytes(peer: string | undefined, field: string | null | undefined, trust: Trust, header: ForwardedHeader): IpBytes | string | undefined {
  if (peer === undefined) return undefined;
  const peerBytes = parseIp(peer.trim());
  if (peerBytes === undefined) return peer.trim();
  if (trust === false || trust === 0 || !field) return peerBytes;
  const entries = entriesOf(field, header);
  let client = peerBytes;
  for (let i = entries.length - 1, steps = 0; i >= 0 && trusts(trust, client, steps); i--) {
    const entry = entries[i]!;
    // Empty list elements (`a, , b`) are not hops.
    if (entry.trim() === '') continue;
    const next = entryNode(entry, header);
    if (next === undefined) break;
    client = next;
    steps++;
  }
  return client;
}
