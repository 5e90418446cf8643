// The Lua composer of scripts/build-lua.mjs: includes resolved in order of
// the search folders, each file once, and a missing file, a cycle or an
// unknown directive refused; comment lines blanked in place for Redis.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs build script, without types.
import { compose, withoutComments } from '../scripts/build-lua.mjs';

const composeLua = compose as (entry: string, search: string[]) => string;
const blankComments = withoutComments as (text: string) => string;

let dir = '';
function files(tree: Record<string, string>): { lua: string; gen: string } {
  dir = mkdtempSync(join(tmpdir(), 'build-lua-'));
  const lua = join(dir, 'lua');
  const gen = join(dir, 'build');
  mkdirSync(lua);
  mkdirSync(gen);
  for (const [name, text] of Object.entries(tree)) writeFileSync(join(dir, name), text);
  return { lua, gen };
}
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The composed text less the composer's marker comments. */
const code = (text: string) => text.split('\n').filter((l) => !l.startsWith('-- ')).join('\n');

describe('build-lua compose', () => {
  it('puts each file once, after what it includes, and finds generated fragments in build/', () => {
    const { lua, gen } = files({
      'lua/main.lua': '--#include a.lua\n--#include b.lua\nmain()',
      'lua/a.lua': '--#include abi.lua\na()',
      'lua/b.lua': '--#include a.lua\n--#include abi.lua\nb()',
      'build/abi.lua': 'local X = 1',
    });
    expect(code(composeLua(join(lua, 'main.lua'), [lua, gen]))).toBe('local X = 1\na()\nb()\nmain()');
  });

  it('takes a file of the lua folder over a generated one of the same name', () => {
    const { lua, gen } = files({ 'lua/main.lua': '--#include abi.lua', 'lua/abi.lua': 'local X = 1', 'build/abi.lua': 'local X = 2' });
    expect(code(composeLua(join(lua, 'main.lua'), [lua, gen]))).toBe('local X = 1');
  });

  it('fails on a missing include, naming the file and line', () => {
    const { lua, gen } = files({ 'lua/main.lua': 'x()\n--#include gone.lua' });
    expect(() => composeLua(join(lua, 'main.lua'), [lua, gen])).toThrow(/main\.lua:2: gone\.lua not found/);
  });

  it('fails on an include cycle, naming it', () => {
    const { lua, gen } = files({ 'lua/main.lua': '--#include a.lua', 'lua/a.lua': '--#include b.lua', 'lua/b.lua': '--#include a.lua' });
    expect(() => composeLua(join(lua, 'main.lua'), [lua, gen])).toThrow(/include cycle: .*a\.lua -> .*b\.lua -> .*a\.lua/);
  });

  it('fails on a Lua long bracket, whose lines blanking could not tell apart', () => {
    const { lua, gen } = files({ 'lua/main.lua': 'local s = 1\n--[[ a\nlong comment ]]' });
    expect(() => composeLua(join(lua, 'main.lua'), [lua, gen])).toThrow(/main\.lua:2: a Lua long bracket/);
  });

  it('sends Redis the text with comment lines blank, every line where it was', () => {
    const text = '-- header\nlocal a = 1 -- kept: after code\n  -- indented\nreturn a';
    expect(blankComments(text)).toBe('\nlocal a = 1 -- kept: after code\n\nreturn a');
  });

  it('fails on a directive it does not know', () => {
    const { lua, gen } = files({ 'lua/main.lua': '--#inclde a.lua' });
    expect(() => composeLua(join(lua, 'main.lua'), [lua, gen])).toThrow(/unknown directive/);
  });
});
