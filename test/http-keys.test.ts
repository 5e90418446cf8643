// The pieces of cellgate/http that turn what a request says into a key: the
// strict IP parser and its canonical form (against node:net and the WHATWG
// URL parser), the forwarded-chain walk over X-Forwarded-For and RFC 7239
// Forwarded, and the SHA-256 digest of over-long keys (against node:crypto).
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, UnknownOptionError, Limiter, gcra } from '../build/lib/src/index.js';
import { AdaptivePacer, canonicalIp, clientAddress, fastifyRateLimit, ipKey, keyDigest, limitedFetch, nodeRateLimit, rateLimit } from '../build/lib/src/http/index.js';
import { formatIp, parseIp, parseNode } from '../build/lib/src/http/ip.js';
import { sha256 } from '../build/lib/src/http/sha256.js';
import { wtf8 } from '../build/lib/src/core/wtf8.js';

describe('the IP parser', () => {
  it('accepts and canonicalizes a table of valid addresses', () => {
    const valid: [string, string][] = [
      ['0.0.0.0', '0.0.0.0'],
      ['255.255.255.255', '255.255.255.255'],
      ['192.0.2.1', '192.0.2.1'],
      ['::', '::'],
      ['::1', '::1'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['2001:DB8::1', '2001:db8::1'],
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of two equal runs
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
      ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
      ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
      ['1:0:0:1:0:0:0:1', '1:0:0:1::1'], // the longest run
      ['::ffff:192.0.2.1', '192.0.2.1'], // IPv4-mapped: the IPv4 client
      ['::FFFF:c000:201', '192.0.2.1'],
      ['0:0:0:0:0:ffff:192.0.2.1', '192.0.2.1'],
      ['::192.0.2.1', '::c000:201'], // IPv4-compatible (deprecated): not mapped
      ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
      ['1:2:3:4:5:6:192.0.2.1', '1:2:3:4:5:6:c000:201'],
      ['fe80::1%eth0', 'fe80::1'], // the zone is dropped
      ['fe80::1%25', 'fe80::1'],
    ];
    for (const [input, canonical] of valid) {
      expect(canonicalIp(input), input).toBe(canonical);
      expect(isIP(input), input).not.toBe(0);
    }
  });

  it('rejects a table of invalid ones', () => {
    const invalid = [
      '', ' ', 'not-an-ip', 'unknown', '_hidden', 'localhost', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.04', '01.2.3.4', '1.2.3.-1', '1.2.3.4 5',
      '1..2.3', '0x1.2.3.4', '1.2.3.4%eth0', ':', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', 'g::1', ':1::', '1:::2',
      '1.2.3.4::', '1:2:3:4:5:6:7:1.2.3.4', '::1.2.3', '::256.1.1.1', '[::1]', '::1%', 'fe80::1%é', '::1/64', '1.2.3.4/8',
    ];
    for (const input of invalid) {
      expect(canonicalIp(input), input).toBeUndefined();
      expect(parseIp(input), input).toBeUndefined();
      expect(isIP(input), input).toBe(0);
    }
  });

  it('agrees with node:net isIP on random strings', () => {
    const chars = fc.constantFrom(...'0123456789abcdefABCDEFg:.%[]-x '.split(''));
    const text = fc.oneof(
      fc.string({ unit: chars, maxLength: 45 }),
      fc.string({ maxLength: 20 }),
      // Near misses of valid addresses: a character dropped, doubled or changed.
      fc.tuple(validIpv6(), fc.nat(), chars, fc.constantFrom('drop', 'double', 'change')).map(([a, at, ch, how]) => {
        const i = at % a.length;
        return how === 'drop' ? a.slice(0, i) + a.slice(i + 1) : how === 'double' ? a.slice(0, i) + a[i] + a.slice(i) : a.slice(0, i) + ch + a.slice(i + 1);
      }),
    );
    fc.assert(
      fc.property(text, (s) => {
        expect(parseIp(s) !== undefined, JSON.stringify(s)).toBe(isIP(s) !== 0);
      }),
      { numRuns: 5000 },
    );
  });

  it('accepts every spelling of random addresses, canonicalizes them as the URL parser does, and idempotently', () => {
    fc.assert(
      fc.property(validIpv6(), (s) => {
        expect(isIP(s)).toBe(6);
        const canonical = canonicalIp(s)!;
        expect(canonical).toBeDefined();
        expect(canonicalIp(canonical)).toBe(canonical);
        // WHATWG URL serializes IPv6 per RFC 5952 (hex only): the same text, but for IPv4-mapped.
        const reference = new URL(`http://[${s.replace(/%.*$/, '')}]/`).hostname.slice(1, -1);
        const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(reference);
        const expected = mapped ? [parseInt(mapped[1]!, 16) >> 8, parseInt(mapped[1]!, 16) & 255, parseInt(mapped[2]!, 16) >> 8, parseInt(mapped[2]!, 16) & 255].join('.') : reference;
        expect(canonical).toBe(expected);
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }), (bytes) => {
        const s = bytes.join('.');
        expect(isIP(s)).toBe(4);
        expect(canonicalIp(s)).toBe(s);
        expect(canonicalIp(`::ffff:${s}`)).toBe(s);
      }),
    );
  });

  it('reads chain entries with ports and brackets, and nothing else', () => {
    const entries: [string, string | undefined][] = [
      ['192.0.2.43:47011', '192.0.2.43'],
      ['[2001:db8:cafe::17]:4711', '2001:db8:cafe::17'],
      ['[2001:db8:cafe::17]', '2001:db8:cafe::17'],
      ['[2001:db8::1]:_port', '2001:db8::1'],
      [' 2001:db8::1 ', '2001:db8::1'],
      ['192.0.2.43:65536', undefined],
      ['192.0.2.43:', undefined],
      ['[192.0.2.43]', undefined],
      ['[2001:db8::1', undefined],
      ['[2001:db8::1]4711', undefined],
      ['_hidden', undefined],
      ['unknown', undefined],
    ];
    for (const [entry, address] of entries) {
      const bytes = parseNode(entry);
      expect(bytes === undefined ? undefined : formatIp(bytes), entry).toBe(address);
    }
  });

  it('keys IPv6 by its network, IPv4 by its address', () => {
    expect(ipKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd')).toBe('ip:2001:db8:1:2::/64');
    expect(ipKey('2001:DB8:1:2::1')).toBe('ip:2001:db8:1:2::/64');
    expect(ipKey('2001:db8:1:2:aaaa::1', 48)).toBe('ip:2001:db8:1::/48');
    expect(ipKey('2001:db8:ffff::', 33)).toBe('ip:2001:db8:8000::/33');
    expect(ipKey('2001:db8::1', 128)).toBe('ip:2001:db8::1');
    expect(ipKey('::ffff:192.0.2.1')).toBe('ip:192.0.2.1');
    expect(ipKey('192.0.2.1', 1)).toBe('ip:192.0.2.1');
    expect(ipKey('nope')).toBeUndefined();
  });
});

/** A random IPv6 address in a random valid spelling: case, leading zeros, `::` anywhere valid, dotted tail, zone. */
function validIpv6(): fc.Arbitrary<string> {
  const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }), fc.constant(0xffff));
  return fc
    .record({
      groups: fc.array(group, { minLength: 8, maxLength: 8 }),
      mapped: fc.boolean(),
      pad: fc.boolean(),
      upper: fc.boolean(),
      dotted: fc.boolean(),
      compress: fc.option(fc.tuple(fc.nat(7), fc.nat(8))),
      zone: fc.option(fc.constantFrom('eth0', '1', 'en0.1')),
    })
    .map(({ groups, mapped, pad, upper, dotted, compress, zone }) => {
      if (mapped) groups = [0, 0, 0, 0, 0, 0xffff, groups[6]!, groups[7]!];
      let parts: string[] = groups.map((g) => g.toString(16).padStart(pad ? 4 : 1, '0'));
      if (upper) parts = parts.map((p) => p.toUpperCase());
      let tail = '';
      if (dotted) {
        tail = [groups[6]! >> 8, groups[6]! & 255, groups[7]! >> 8, groups[7]! & 255].join('.');
        parts = parts.slice(0, 6);
      }
      let text = parts.join(':') + (dotted ? `:${tail}` : '');
      if (compress !== null) {
        // Replace a run of zero groups (of any length >= 1) with `::`.
        const [start, length] = compress;
        const end = Math.min(parts.length, start + 1 + (length % 4));
        if (start < parts.length && groups.slice(start, end).every((g) => g === 0)) {
          const head = parts.slice(0, start).join(':');
          const rest = parts.slice(end).join(':');
          const after = rest + (dotted ? (rest === '' ? tail : `:${tail}`) : '');
          text = `${head}::${after}`;
        }
      }
      return zone === null ? text : `${text}%${zone}`;
    });
}

describe('the forwarded chain', () => {
  it('stops at an invalid X-Forwarded-For entry: the hop that wrote it is the client', () => {
    expect(clientAddress('10.0.0.2', 'not-an-ip', 1)).toBe('10.0.0.2');
    expect(clientAddress('10.0.0.2', 'not-an-ip', true)).toBe('10.0.0.2');
    expect(clientAddress('10.0.0.2', '203.0.113.7, not-an-ip, 10.0.0.1', 3)).toBe('10.0.0.1');
    expect(clientAddress('10.0.0.2', '203.0.113.7, not-an-ip, 10.0.0.1', true)).toBe('10.0.0.1');
    expect(clientAddress('10.0.0.2', 'not-an-ip, 10.0.0.1', ['10.0.0.0/8'])).toBe('10.0.0.1');
    expect(clientAddress('10.0.0.2', '203.0.113.7, 10.0.0.1', ['10.0.0.0/8'])).toBe('203.0.113.7');
    expect(clientAddress('10.0.0.2', '203.0.113.7, 10.0.0.1', ['10.0.0.2'])).toBe('10.0.0.1');
    expect(clientAddress('10.0.0.2', '203.0.113.7,, 10.0.0.1', 2)).toBe('203.0.113.7'); // an empty list element is not a hop
    expect(clientAddress('10.0.0.2', '203.0.113.7:4711', 1)).toBe('203.0.113.7');
    expect(clientAddress('10.0.0.2', '2001:DB8::0:1', 1)).toBe('2001:db8::1');
    expect(clientAddress('::ffff:10.0.0.2', '::ffff:203.0.113.7', ['10.0.0.2'])).toBe('203.0.113.7');
    expect(clientAddress('10.0.0.2', '203.0.113.7', 0)).toBe('10.0.0.2');
    expect(() => clientAddress('10.0.0.2', '203.0.113.7', ['proxy.internal'])).toThrow(ConfigError);
  });

  it('reads RFC 7239 Forwarded for= parameters, quoted, with ports and obfuscated identifiers', () => {
    const f = (field: string, trust: Parameters<typeof clientAddress>[2] = 1) => clientAddress('10.0.0.2', field, trust, 'forwarded');
    expect(f('for=192.0.2.60;proto=http;by=203.0.113.43')).toBe('192.0.2.60');
    expect(f('For="[2001:db8:cafe::17]:4711"')).toBe('2001:db8:cafe::17');
    expect(f('for="192.0.2.43:47011", for=198.51.100.17', 2)).toBe('192.0.2.43');
    expect(f('for=192.0.2.43, for=198.51.100.17;by=203.0.113.60;proto=http;host=example.com', 1)).toBe('198.51.100.17');
    expect(f('for=_hidden')).toBe('10.0.0.2');
    expect(f('for=unknown')).toBe('10.0.0.2');
    expect(f('for=192.0.2.43, for=_hidden', 2)).toBe('10.0.0.2');
    expect(f('for=192.0.2.43, for=198.51.100.17;by=_x, for=unknown', true)).toBe('10.0.0.2');
    expect(f('for=192.0.2.43, proto=https', 2)).toBe('10.0.0.2'); // an element without for= stops the walk
    expect(f('for=192.0.2.43;for=192.0.2.44')).toBe('10.0.0.2'); // two for= in one element
    expect(f('for="192.0.2.43, for=198.51.100.17', true)).toBe('10.0.0.2'); // an unclosed quote
    expect(f('for="\\[2001:db8::1\\]"')).toBe('2001:db8::1'); // quoted-pair escapes
    expect(f('for="[2001:db8::1]";proto=https, , for=198.51.100.17', 2)).toBe('2001:db8::1');
    // X-Forwarded-For is not read when Forwarded is configured, and the other way round.
    expect(clientAddress('10.0.0.2', 'for=192.0.2.60', 1)).toBe('10.0.0.2');
    expect(clientAddress('10.0.0.2', '192.0.2.60', 1, 'forwarded')).toBe('10.0.0.2');
  });

  it('never takes an attacker-chosen non-address for the client, whatever the chain (property)', () => {
    const entry = fc.oneof(fc.string({ maxLength: 12 }).filter((s) => !s.includes(',')), fc.ipV4(), fc.ipV6());
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 6 }), fc.oneof(fc.boolean(), fc.nat(8)), (entries, trust) => {
        const client = clientAddress('10.0.0.2', entries.join(','), trust)!;
        expect(canonicalIp(client)).toBe(client);
      }),
      { numRuns: 2000 },
    );
  });
});

/** The WTF-8 bytes of a string, code point by code point, through node's UTF-8 for all but lone surrogates. */
function referenceWtf8(text: string): Buffer {
  const parts: Buffer[] = [];
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    parts.push(c >= 0xd800 && c <= 0xdfff ? Buffer.from([0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63)]) : Buffer.from(ch, 'utf8'));
  }
  return Buffer.concat(parts);
}

describe('the SHA-256 of over-long keys', () => {
  it('matches node:crypto on known vectors and random bytes', () => {
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    expect(hex(sha256(new Uint8Array()))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(hex(sha256(new TextEncoder().encode('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(hex(sha256(bytes))).toBe(createHash('sha256').update(bytes).digest('hex'));
      }),
      { numRuns: 1000 },
    );
    // Every length around the block and padding boundaries.
    for (let n = 0; n <= 200; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 255);
      expect(hex(sha256(bytes))).toBe(createHash('sha256').update(bytes).digest('hex'));
    }
  });

  it('digests keys as WTF-8: UTF-8 for well-formed text, lone surrogates kept apart', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        expect(Buffer.from(wtf8(s)).equals(Buffer.from(s, 'utf8'))).toBe(true);
        expect(keyDigest(s)).toBe(`sha256:${createHash('sha256').update(s, 'utf8').digest('base64url')}`);
      }),
      { numRuns: 500 },
    );
    const units = fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0xd800, max: 0xdfff })).map((c) => String.fromCharCode(c));
    fc.assert(
      fc.property(fc.string({ unit: units, maxLength: 100 }), (s) => {
        expect(Buffer.from(wtf8(s)).equals(referenceWtf8(s))).toBe(true);
        expect(keyDigest(s)).toBe(`sha256:${createHash('sha256').update(referenceWtf8(s)).digest('base64url')}`);
      }),
      { numRuns: 500 },
    );
    const three = new Set(['a\uD800', 'a\uFFFD', 'a\uDBFF'].map(keyDigest));
    expect(three.size).toBe(3);
    expect(keyDigest('x'.repeat(600))).toMatch(/^sha256:[A-Za-z0-9_-]{43}$/);
  });
});

describe('unknown option names', () => {
  const limiter = new Limiter({ policy: gcra({ limit: 2, period: '1s' }) });
  const cases: [string, () => unknown, string, string | undefined][] = [
    ['rateLimit', () => rateLimit(() => new Response(), { limiter, trustProxi: 1 } as never), 'trustProxi', 'trustProxy'],
    ['rateLimit key', () => rateLimit(() => new Response(), { limiter, key: { header: 'x-api-key', hedaer: 1 } } as never), 'hedaer', 'header'],
    ['nodeRateLimit', () => nodeRateLimit({ limiter, ipv6Subnets: 56 } as never), 'ipv6Subnets', 'ipv6Subnet'],
    ['fastifyRateLimit', () => fastifyRateLimit({ limiter, onLimitted: () => {} } as never), 'onLimitted', 'onLimited'],
    ['limitedFetch', () => limitedFetch(fetch, { limiter, retry492: 3 } as never), 'retry492', 'retry429'],
    ['AdaptivePacer', () => new AdaptivePacer({ initialSpacing: 5 } as never), 'initialSpacing', 'initialSpacingMs'],
    ['rateLimit, far from any name', () => rateLimit(() => new Response(), { limiter, zzzzzzzzzzzz: 1 } as never), 'zzzzzzzzzzzz', undefined],
  ];
  it.each(cases)('%s: UnknownOptionError with the nearest name', (_where, make, option, suggestion) => {
    let error: unknown;
    try {
      make();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UnknownOptionError);
    expect((error as UnknownOptionError).parameter).toBe(option);
    expect((error as UnknownOptionError).suggestion).toBe(suggestion);
  });

  it('rejects bad new options with a typed error naming them', () => {
    const cases: [unknown, string][] = [
      [{ limiter, ipv6Subnet: 0 }, 'ipv6Subnet'],
      [{ limiter, ipv6Subnet: 129 }, 'ipv6Subnet'],
      [{ limiter, ipv6Subnet: 56.5 }, 'ipv6Subnet'],
      [{ limiter, forwardedHeader: 'x-real-ip' }, 'forwardedHeader'],
      [{ limiter, trustProxy: ['10.0.0.1', 'proxy.internal'] }, 'trustProxy'],
      [{ limiter, trustProxy: ['10.0.0.0/33'] }, 'trustProxy'],
      [{ limiter, key: { header: 'x api key' } }, 'key'],
    ];
    for (const [options, parameter] of cases) {
      expect(() => nodeRateLimit(options as never)).toThrow(expect.objectContaining({ parameter }));
    }
  });
});

describe('the Web-standard core', () => {
  it('imports nothing from node: in the built cellgate/http (Bun, Deno and edge runtimes load it as is)', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const dir = new URL('../build/lib/src/http/', import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith('.js'));
    expect(files).toContain('sha256.js');
    for (const file of files) expect(readFileSync(new URL(file, dir), 'utf8'), file).not.toMatch(/from ['"]node:|import\(['"]node:|require\(/);
  });
});
