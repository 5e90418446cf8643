// The shape of abi/abi.mjs, for the generator's and the tests' type checks.

/** A number's type on the core's side; every one is a `number` in TypeScript and Lua. */
export type AbiType = 'u8' | 'u32' | 'i32' | 'usize' | 'bool' | 'f64';

/**
 * One named number.
 *
 * @example
 * ```ts
 * const c: AbiConstant = { name: 'MAX_GATES', type: 'u32', value: 16, doc: 'Most gates.' };
 * ```
 */
export interface AbiConstant {
  /** Its name in every language (SCREAMING_CASE). */
  readonly name: string;
  /** Its key in the group's TypeScript `object`, when the group has one. */
  readonly key?: string;
  readonly type: Exclude<AbiType, 'bool'>;
  /** A finite number. */
  readonly value: number;
  readonly doc: string;
  /** Written to build/abi.lua too (default: the group's `lua`). */
  readonly lua?: boolean;
  /** assembly/index.ts exports it as an immutable wasm global of this name. */
  readonly wasmExport?: boolean;
}

/**
 * Constants that belong together, generated in order under one heading.
 *
 * @example
 * ```ts
 * const g: AbiGroup = { title: 'Limits', doc: '...', example: 'MAX_GATES', entries: [] };
 * ```
 */
export interface AbiGroup {
  readonly title: string;
  readonly doc: string;
  /** TypeScript that uses the group: the `@example` of each of its constants. */
  readonly example: string;
  /** The name of a TypeScript object mapping each entry's `key` to its value (e.g. CODE). */
  readonly object?: string;
  /** Whether its entries go to build/abi.lua (an entry's own `lua` wins). */
  readonly lua?: boolean;
  readonly entries: readonly AbiConstant[];
}

/**
 * A field of a layout: generated as the constant `name`, its byte offset.
 *
 * @example
 * ```ts
 * const f: AbiField = { name: 'STEP_A', offset: 0, type: 'f64', doc: 'a' };
 * ```
 */
export interface AbiField {
  /** Starts with the layout's name and `_`. */
  readonly name: string;
  /** In bytes from the start of the area (or entry), a multiple of the type's size. */
  readonly offset: number;
  readonly type: 'u8' | 'u32' | 'f64';
  readonly doc: string;
}

/**
 * A memory area the core and the host both read or write; its size is
 * generated as `${name}_BYTES`.
 *
 * @example
 * ```ts
 * const l: AbiLayout = { name: 'STEP', bytes: 64, doc: '...', example: '...', diagram: '...', fields: [] };
 * ```
 */
export interface AbiLayout {
  readonly name: string;
  readonly bytes: number;
  readonly doc: string;
  readonly example: string;
  /** The box diagram of the fields, written into the generated modules' comments. */
  readonly diagram: string;
  /** Fields may share an offset: an input the core overwrites with an output. */
  readonly fields: readonly AbiField[];
}

/**
 * One function exported by the core.
 *
 * @example
 * ```ts
 * const f: AbiFunction = { name: 'live', params: [['now', 'f64']], returns: 'u32', doc: 'Live records.' };
 * ```
 */
export interface AbiFunction {
  readonly name: string;
  /** Its parameters in order: name and type. */
  readonly params: readonly (readonly [name: string, type: AbiType])[];
  readonly returns: AbiType | 'void';
  readonly doc: string;
}

/**
 * The whole definition.
 *
 * @example
 * ```ts
 * import abi from '../abi/abi.mjs';
 * const codes = abi.constants.find((g) => g.object === 'CODE')!.entries;
 * ```
 */
export interface Abi {
  readonly constants: readonly AbiGroup[];
  readonly layouts: readonly AbiLayout[];
  readonly exports: {
    /** The TSDoc of the generated CoreExports interface. */
    readonly doc: string;
    readonly example: string;
    readonly functions: readonly AbiFunction[];
  };
}

declare const abi: Abi;
export default abi;
