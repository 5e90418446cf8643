// The host's side of the core's memory: typed views of the result, key and
// batch areas (abi/abi.mjs draws their layouts), and the writing of a key
// into the key area before a keyed call. Shared by every store that runs a
// core (the embedded store, and through it the Redis store's mirror and
// fallback) and by the key-hash benchmark.
import { ArgumentError } from '../errors.js';
import { MAX_KEY_LENGTH } from './key-hash.js';
import type { CoreExports } from './wasm.js';
import { BATCH_BYTES, BATCH_KEY_AREA_BYTES, KEY_AREA_BYTES, KEY_BYTES_SHIFT, KEY_SAME, KEY_UTF8, RESULT_BYTES } from '../../build/abi.js';

/** Entries of the batch area: how many keys one core call decides at most. */
export const BATCH_ENTRIES = 1024;
/** A batch entry's size in the u32 and f64 views of the batch (abi/abi.mjs has the layout). */
export const ENTRY_U32 = BATCH_BYTES / 4;
export const ENTRY_F64 = BATCH_BYTES / 8;
/**
 * The views of a core's memory that bindings read results through. A table
 * that grows detaches them (a grown wasm memory is a new ArrayBuffer), so
 * every binding of the store reads through this one object, renewed when a
 * call reports that memory grew.
 * @internal
 */
export class CoreViews {
  result!: Float64Array;
  /** The key area, as code units and as bytes: a key is written before each keyed call. */
  key!: Uint16Array;
  keyBytes!: Uint8Array;
  batchU32!: Uint32Array;
  batchF64!: Float64Array;
  batchU8!: Uint8Array;
  /** The batch key area (a batch's keys, before hashBatch), as code units and as bytes. */
  batchKeys!: Uint16Array;
  batchKeyBytes!: Uint8Array;
  /**
   * The key last written into the key area (undefined: none, or unknown).
   * Every write is followed by the keyed call it was written for, which
   * hashes it (each keyed export hashes first), so while it is the key asked
   * for the core already holds its hash: see KEY_SAME.
   */
  lastKey: string | undefined = undefined;

  /**
   * Forgets the key last written: the next keyed call writes (and hashes)
   * its key whatever it is. For a call that never reached the core.
   *
   * @example
   * ```ts
   * views.forgetKey();
   * ```
   */
  forgetKey(): void {
    this.lastKey = undefined;
  }
  readonly #core: CoreExports;

  constructor(core: CoreExports) {
    this.#core = core;
    this.renew();
  }

  renew(): void {
    const core = this.#core;
    const buffer = core.memory.buffer;
    const batch = core.batchPtr();
    this.result = new Float64Array(buffer, core.resultPtr(), RESULT_BYTES / 8);
    this.key = new Uint16Array(buffer, core.keyPtr(), MAX_KEY_LENGTH);
    this.keyBytes = new Uint8Array(buffer, core.keyPtr(), KEY_AREA_BYTES);
    this.batchU32 = new Uint32Array(buffer, batch, BATCH_ENTRIES * ENTRY_U32);
    this.batchF64 = new Float64Array(buffer, batch, BATCH_ENTRIES * ENTRY_F64);
    this.batchU8 = new Uint8Array(buffer, batch, BATCH_ENTRIES * BATCH_BYTES);
    this.batchKeys = new Uint16Array(buffer, core.batchKeysPtr(), BATCH_KEY_AREA_BYTES / 2);
    this.batchKeyBytes = new Uint8Array(buffer, core.batchKeysPtr(), BATCH_KEY_AREA_BYTES);
  }
}

/** Keys longer than this are written by `TextEncoder` (native) when well-formed; shorter ones by a loop, which is faster for them. */
const NATIVE_ENCODE_FROM = 32;
const encoder = new TextEncoder();
/** `isWellFormed` (ES2024): where a runtime lacks it, every key takes the code unit loop. */
const wellFormed = (String.prototype as { isWellFormed?: () => boolean }).isWellFormed;

/**
 * Writes `key` into the key area for the next keyed core call (which hashes
 * it: SipHash-1-3 under the store's seed, in the core) and returns its
 * descriptor, `bytes << KEY_BYTES_SHIFT | KEY_UTF8`: its UTF-16 code units, or, for a long
 * well-formed key, its UTF-8 bytes (the core hashes the two encodings under
 * different keys; see assembly/key-hash.ts). Which one depends only on the
 * key, so a key always gets the same hash. The key last written is not
 * written again: {@link KEY_SAME} tells the core to reuse its hash, so a
 * caller must make the keyed call it writes a key for (as every call site
 * does: `core.decide(writeKey(views, key), ...)`).
 * @internal
 */
export function writeKey(views: CoreViews, key: string): number {
  // A hot key: the area and the core's hash still hold it.
  if (key === views.lastKey) return KEY_SAME;
  const n = key.length;
  views.lastKey = key;
  // Short keys inline (the common case, on every decision's path); the rest out of line.
  if (n > NATIVE_ENCODE_FROM) return writeLongKey(views, key);
  const area = views.key;
  for (let i = 0; i < n; i++) area[i] = key.charCodeAt(i);
  return (2 * n) << KEY_BYTES_SHIFT; // 2 bytes a code unit
}

function writeLongKey(views: CoreViews, key: string): number {
  // Callers check keys (checkKey); this keeps any path that does not inside the area.
  if (key.length > MAX_KEY_LENGTH) {
    views.lastKey = undefined;
    throw new ArgumentError('key', key, `at most ${MAX_KEY_LENGTH} characters`);
  }
  return encodeKey(views.key, views.keyBytes, 0, key);
}

/**
 * Writes `key` at byte `offset` (even) of an area seen as code units and as
 * bytes, in the encoding {@link writeKey} chooses, and returns its
 * descriptor. The caller makes sure the area has room for 3 bytes per code
 * unit.
 * @internal
 */
export function encodeKey(units: Uint16Array, bytes: Uint8Array, offset: number, key: string): number {
  const n = key.length;
  if (n > NATIVE_ENCODE_FROM && wellFormed !== undefined && wellFormed.call(key)) {
    return (encoder.encodeInto(key, offset === 0 ? bytes : bytes.subarray(offset)).written << KEY_BYTES_SHIFT) | KEY_UTF8;
  }
  const at = offset >>> 1;
  for (let i = 0; i < n; i++) units[at + i] = key.charCodeAt(i);
  return (2 * n) << KEY_BYTES_SHIFT; // 2 bytes a code unit
}

