/**
 * WTF-8: a string's UTF-16 code units as UTF-8, where each lone surrogate
 * (which UTF-8 cannot encode) gets its own 3-byte sequence, as generalized
 * UTF-8 writes any code point up to U+FFFF. It is UTF-8 for every
 * well-formed string and one-to-one on all strings. `TextEncoder` and every
 * Redis client write a lone surrogate as U+FFFD instead, so `'a\uD800'`,
 * `'a\uDBFF'` and `'a\uFFFD'` would become the same bytes: one digest, one
 * Redis key, one state for three keys, a lockout a client can aim. Wherever a
 * key becomes bytes, it goes through here.
 * @internal
 */

/** Bytes of `s` in WTF-8. */
export function wtf8Length(s: string): number {
  let bytes = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && isLow(s.charCodeAt(i + 1))) {
      bytes += 2; // a surrogate pair: 4 bytes for 2 units
      i++;
    } else bytes += 2; // the rest of the BMP, lone surrogates included: 3 bytes
  }
  return bytes;
}

function isLow(c: number): boolean {
  return c >= 0xdc00 && c < 0xe000;
}

/** Writes `s` as WTF-8 into `out` at `offset`; returns the offset after it. */
export function writeWtf8(s: string, out: Uint8Array, offset: number): number {
  let o = offset;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[o++] = c;
      continue;
    }
    if (c < 0x800) {
      out[o++] = 0xc0 | (c >> 6);
      out[o++] = 0x80 | (c & 0x3f);
      continue;
    }
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && isLow(s.charCodeAt(i + 1))) {
      c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
      out[o++] = 0xf0 | (c >> 18);
      out[o++] = 0x80 | ((c >> 12) & 0x3f);
      out[o++] = 0x80 | ((c >> 6) & 0x3f);
      out[o++] = 0x80 | (c & 0x3f);
      continue;
    }
    out[o++] = 0xe0 | (c >> 12);
    out[o++] = 0x80 | ((c >> 6) & 0x3f);
    out[o++] = 0x80 | (c & 0x3f);
  }
  return o;
}

/**
 * `s` as WTF-8 bytes.
 *
 * @example
 * ```ts
 * wtf8('é\uD800'); // Uint8Array [0xc3, 0xa9, 0xed, 0xa0, 0x80]
 * ```
 */
export function wtf8(s: string): Uint8Array {
  const out = new Uint8Array(wtf8Length(s));
  writeWtf8(s, out, 0);
  return out;
}
