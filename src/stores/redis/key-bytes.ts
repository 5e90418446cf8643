import { wtf8Length, writeWtf8 } from '../../core/wtf8.js';

/**
 * A key's bytes as Redis gets them: WTF-8 (see wtf8.ts), so that distinct
 * strings are distinct Redis keys, lone surrogates included; decide.lua reads
 * the batch's keys by these byte counts.
 * @internal
 *
 * @example
 * ```ts
 * keyBytes('user:1'); // <Buffer 75 73 65 72 3a 31>
 * ```
 */
export function keyBytes(s: string): Buffer {
  const out = Buffer.allocUnsafe(wtf8Length(s));
  writeWtf8(s, out, 0);
  return out;
}
