// The one definition of what the core, its host and the Redis scripts share
// (abi/abi.mjs) against what the build made of it: the compiled core's
// exports (names, kinds, signatures, exported constants), the generated
// TypeScript, and build/abi.lua as Redis's own Lua reads it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import abi from '../abi/abi.mjs';
import * as generated from '../build/lib/build/abi.js';
import { coreWasmBase64 } from '../build/lib/build/core-wasm.js';
import { useRedis } from './helpers/use-redis.js';

const redis = useRedis();
/** The core as the package embeds it. */
const module = new WebAssembly.Module(Uint8Array.from(atob(coreWasmBase64), (c) => c.charCodeAt(0)));
const constants = abi.constants.flatMap((g) => g.entries.map((c) => ({ ...c, lua: c.lua ?? g.lua ?? false })));
const wasmType = (t: string): string => (t === 'f64' ? 'f64' : 'i32');

interface Signature {
  params: string[];
  results: string[];
}

/** Each exported function's signature, read from the binary's type, function and export sections. */
function signatures(bytes: Uint8Array): Map<string, Signature> {
  const VALUE: Record<number, string> = { 0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64' };
  let p = 8; // past the magic number and the version
  const leb = (): number => {
    let value = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = bytes[p++]!;
      value |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    return value >>> 0;
  };
  const vector = <T>(read: () => T): T[] => Array.from({ length: leb() }, read);
  const types: Signature[] = [];
  const functionTypes: number[] = [];
  const exported = new Map<string, number>();
  while (p < bytes.length) {
    const id = bytes[p++]!;
    const end = leb() + p;
    if (id === 1) {
      types.push(...vector(() => {
        p++; // 0x60, a function type
        return { params: vector(() => VALUE[bytes[p++]!]!), results: vector(() => VALUE[bytes[p++]!]!) };
      }));
    } else if (id === 3) {
      functionTypes.push(...vector(leb));
    } else if (id === 7) {
      vector(() => {
        const length = leb();
        const name = new TextDecoder().decode(bytes.subarray(p, (p += length)));
        const kind = bytes[p++];
        const index = leb();
        if (kind === 0) exported.set(name, index);
      });
    }
    p = end;
  }
  // The core imports nothing (checked below), so function indexes start at its own.
  return new Map([...exported].map(([name, index]) => [name, types[functionTypes[index]!]!]));
}

describe('the compiled core', () => {
  it('exports exactly the functions, constants and memory the definition lists, and imports nothing', () => {
    const expected = [
      ...abi.exports.functions.map((f) => `function ${f.name}`),
      ...constants.filter((c) => c.wasmExport).map((c) => `global ${c.name}`),
      'memory memory',
    ];
    expect(WebAssembly.Module.exports(module).map((e) => `${e.kind} ${e.name}`).sort()).toEqual(expected.sort());
    expect(WebAssembly.Module.imports(module)).toEqual([]);
  });

  it("has each function's signature as defined: parameter and result types, and arity", () => {
    const bytes = Uint8Array.from(atob(coreWasmBase64), (c) => c.charCodeAt(0));
    const actual = signatures(bytes);
    const instance = new WebAssembly.Instance(module, {}).exports as Record<string, unknown>;
    for (const f of abi.exports.functions) {
      expect(actual.get(f.name), f.name).toEqual({ params: f.params.map(([, t]) => wasmType(t)), results: f.returns === 'void' ? [] : [wasmType(f.returns)] });
      expect((instance[f.name] as (...args: number[]) => unknown).length, f.name).toBe(f.params.length);
    }
  });

  it("holds the definition's values in the constants it exports", () => {
    const instance = new WebAssembly.Instance(module, {}).exports as Record<string, WebAssembly.Global>;
    for (const c of constants.filter((e) => e.wasmExport)) expect(instance[c.name]!.value, c.name).toBe(c.value);
  });
});

describe('the definition', () => {
  it('has decision bits that do not overlap, and the flags byte of a batch entry holds a decision', () => {
    const decision = generated.ALLOWED | (generated.GATE_MASK << generated.GATE_SHIFT);
    expect(generated.ALLOWED & (generated.GATE_MASK << generated.GATE_SHIFT)).toBe(0);
    expect(generated.GATE_MASK + 1).toBe(generated.MAX_GATES); // every gate's index fits the mask
    expect(decision).toBeLessThan(generated.GREW);
    expect(decision).toBeLessThanOrEqual(0xff);
    // assembly/index.ts moves the table's two flags (bits 0 and 1) into place by multiplying by GREW.
    expect(generated.FULL).toBe(generated.GREW * 2);
  });
});

describe('the generated TypeScript', () => {
  const values = generated as unknown as Record<string, unknown>;

  it("holds every constant, layout size, offset and typed array index at the definition's value", () => {
    for (const c of constants) expect(values[c.name], c.name).toBe(c.value);
    for (const layout of abi.layouts) {
      expect(values[`${layout.name}_BYTES`], layout.name).toBe(layout.bytes);
      for (const f of layout.fields) {
        expect(values[f.name], f.name).toBe(f.offset);
        expect(values[`${f.name}_INDEX`], f.name).toBe(f.offset / { u8: 1, u32: 4, f64: 8 }[f.type]);
      }
    }
  });

  it('maps each key of a group object (CODE) to its constant', () => {
    for (const group of abi.constants.filter((g) => g.object !== undefined)) {
      expect(values[group.object!]).toEqual(Object.fromEntries(group.entries.map((c) => [c.key, c.value])));
    }
    expect(generated.CODE.sliding).toBe(generated.KIND_SLIDING);
  });
});

describe('build/abi.lua', () => {
  const text = readFileSync('build/abi.lua', 'utf8');
  const lua = constants.filter((c) => c.lua);

  it('declares a local for each entry marked lua, and nothing else', () => {
    const declared = [...text.matchAll(/^local (\w+) = /gm)].map((m) => m[1]);
    expect(declared).toEqual(lua.map((c) => c.name));
    expect(text.split('\n').filter((l) => l !== '' && !l.startsWith('-- ') && l !== '--' && !l.startsWith('local '))).toEqual([]);
  });

  it("gives each the definition's value when Redis's Lua runs it", async () => {
    // Redis would truncate a returned Lua number: each comes back as a string exact enough to read back the same double.
    const script = `${text}\nreturn { ${lua.map((c) => `string.format('%.17g', ${c.name})`).join(', ')} }`;
    const reply = (await redis.client.eval(script, 0)) as string[];
    expect(reply.map(Number)).toEqual(lua.map((c) => c.value));
  });
});
