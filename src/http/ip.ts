// A strict parser of IP addresses as they appear in peer addresses and in
// X-Forwarded-For / Forwarded entries, and their canonical text (RFC 5952),
// so that every spelling of one address is one key.

/**
 * A parsed address: 4 bytes (IPv4, including IPv4-mapped IPv6
 * `::ffff:a.b.c.d`, which is the same client) or 16 bytes (IPv6).
 * @internal
 */
export type IpBytes = Uint8Array;

const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const GROUP = /^[0-9A-Fa-f]{1,4}$/;
/** A zone id after `%`: the characters Node's `net.isIPv6` accepts. */
const ZONE = /^[0-9A-Za-z.:-]+$/;

function ipv4(text: string): IpBytes | undefined {
  if (!IPV4.test(text)) return undefined;
  return Uint8Array.from(text.split('.'), Number);
}

function ipv6(text: string): IpBytes | undefined {
  const percent = text.indexOf('%');
  if (percent >= 0) {
    // The zone (which interface of the host that wrote it) is dropped: one address, one key.
    if (!ZONE.test(text.slice(percent + 1))) return undefined;
    text = text.slice(0, percent);
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const tail = halves.length === 1 || halves[1] === '' ? [] : halves[1]!.split(':');
  const parts = [head, tail];
  const groups: [number[], number[]] = [[], []];
  for (let half = 0; half < 2; half++) {
    const list = parts[half]!;
    for (let i = 0; i < list.length; i++) {
      const part = list[i]!;
      const last = i === list.length - 1 && (half === 1 || halves.length === 1);
      if (last && part.includes('.')) {
        const v4 = ipv4(part);
        if (v4 === undefined) return undefined;
        groups[half]!.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (GROUP.test(part)) {
        groups[half]!.push(parseInt(part, 16));
      } else {
        return undefined;
      }
    }
  }
  const count = groups[0]!.length + groups[1]!.length;
  // `::` stands for at least one group of zeros.
  if (halves.length === 1 ? count !== 8 : count > 7) return undefined;
  const all = [...groups[0]!, ...new Array<number>(8 - count).fill(0), ...groups[1]!];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 255;
  });
  // IPv4-mapped (an IPv4 client of a dual-stack socket) is that IPv4 address.
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12);
  return bytes;
}

/**
 * An IPv4 dotted quad (four decimal numbers 0-255, no leading zeros) or an
 * IPv6 address (hex groups, one `::`, an optional dotted IPv4 tail, an
 * optional `%zone` which is dropped), without brackets or port; `undefined`
 * for anything else. @internal
 */
export function parseIp(text: string): IpBytes | undefined {
  return text.includes(':') ? ipv6(text) : ipv4(text);
}

/**
 * The canonical text of an address: dotted IPv4, or IPv6 per RFC 5952
 * (lower-case hex without leading zeros, the first longest run of two or more
 * zero groups as `::`). @internal
 */
export function formatIp(bytes: IpBytes): string {
  if (bytes.length === 4) return bytes.join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestAt = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestAt = i;
      bestLength = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLength))}`;
}

/** The address with every bit after the first `bits` cleared. @internal */
export function maskIp(bytes: IpBytes, bits: number): IpBytes {
  const out = bytes.slice();
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    out[i]! &= (0xff << (8 - keep)) & 0xff;
  }
  return out;
}

/**
 * One entry of a forwarded chain, an address with an optional port:
 * `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1`, `[2001:db8::1]`,
 * `[2001:db8::1]:4711` (a port may be RFC 7239's obfuscated `_name`).
 * `undefined` for anything else, including obfuscated identifiers
 * (`unknown`, `_hidden`). @internal
 */
export function parseNode(text: string): IpBytes | undefined {
  let host = text.trim();
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    if (close < 0) return undefined;
    const rest = host.slice(close + 1);
    if (rest !== '' && !(rest.startsWith(':') && isPort(rest.slice(1)))) return undefined;
    const inner = host.slice(1, close);
    return inner.includes(':') ? ipv6(inner) : undefined;
  }
  const colon = host.indexOf(':');
  if (colon >= 0 && colon === host.lastIndexOf(':')) {
    // One colon: IPv4 with a port (IPv6 has at least two).
    if (!isPort(host.slice(colon + 1))) return undefined;
    host = host.slice(0, colon);
    return ipv4(host);
  }
  return parseIp(host);
}

function isPort(text: string): boolean {
  return (/^\d{1,5}$/.test(text) && Number(text) <= 65535) || /^_[0-9A-Za-z._-]+$/.test(text);
}

/**
 * The address's canonical text, or `undefined` when `address` is not an IP
 * address: IPv4-mapped IPv6 is plain IPv4, IPv6 is lower-case and
 * compressed per RFC 5952, a zone id is dropped.
 *
 * @example
 * ```ts
 * canonicalIp('::FFFF:192.0.2.1');      // '192.0.2.1'
 * canonicalIp('2001:DB8:0:0:0:0:0:01'); // '2001:db8::1'
 * canonicalIp('not-an-ip');             // undefined
 * ```
 */
export function canonicalIp(address: string): string | undefined {
  const bytes = parseIp(address.trim());
  return bytes === undefined ? undefined : formatIp(bytes);
}

/**
 * The key the `'ip'` key option gives a client address: `ip:` and the
 * canonical IPv4 address, or the IPv6 network of its first `ipv6Subnet` bits
 * (default 64: one host commonly owns a whole /64) as
 * `ip:2001:db8:1:2::/64` (`ip:<address>` at 128). `undefined` when
 * `address` is not an IP address. For a key function that falls back to
 * the address.
 *
 * @example
 * ```ts
 * ipKey('2001:db8:1:2:aaaa::1'); // 'ip:2001:db8:1:2::/64'
 * ipKey('::ffff:192.0.2.1');     // 'ip:192.0.2.1'
 * ```
 */
export function ipKey(address: string, ipv6Subnet = 64): string | undefined {
  const bytes = parseIp(address.trim());
  return bytes === undefined ? undefined : addressKey(bytes, ipv6Subnet);
}

/** `ip:` and the address, an IPv6 one as its network of `ipv6Subnet` bits. @internal */
export function addressKey(bytes: IpBytes, ipv6Subnet: number): string {
  if (bytes.length === 4 || ipv6Subnet >= 128) return `ip:${formatIp(bytes)}`;
  return `ip:${formatIp(maskIp(bytes, ipv6Subnet))}/${ipv6Subnet}`;
}

/** An address or network (`10.0.0.0/8`, `fd00::/8`) of the trusted list, or `undefined`. @internal */
export function parseRange(text: string): { bytes: IpBytes; bits: number } | undefined {
  const slash = text.indexOf('/');
  const bytes = parseIp(slash < 0 ? text.trim() : text.slice(0, slash).trim());
  if (bytes === undefined) return undefined;
  if (slash < 0) return { bytes, bits: bytes.length * 8 };
  const bitsText = text.slice(slash + 1).trim();
  const bits = Number(bitsText);
  // A mapped network (::ffff:10.0.0.0/104) parses as IPv4: its bits count from the IPv4 part.
  const max = bytes.length * 8;
  const mapped = bytes.length === 4 && text.includes(':');
  const own = mapped ? bits - 96 : bits;
  if (!/^\d{1,3}$/.test(bitsText) || own < 0 || own > max) return undefined;
  return { bytes: maskIp(bytes, own), bits: own };
}

/** Whether `bytes` lies in the network. @internal */
export function inRange(bytes: IpBytes, range: { bytes: IpBytes; bits: number }): boolean {
  if (bytes.length !== range.bytes.length) return false;
  const masked = maskIp(bytes, range.bits);
  return masked.every((b, i) => b === range.bytes[i]);
}
