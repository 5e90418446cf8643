// The store's Lua scripts, as they are sent: text and SHA-1 come from
// the build (scripts/build-lua.mjs composes src/stores/redis/lua/ and the
// others into build/redis-scripts.ts).
import { casLua, casSha, decideLua, decideSha, fleetLua, fleetSha, paceLua, paceSha } from '../../../build/redis-scripts.js';
import type { RedisScript } from './connection.js';

/** decide.lua: every hit of a batch, decided in order (wire.ts encodes its arguments). */
export const DECIDE_SCRIPT: RedisScript = Object.freeze({ name: 'cellgateDecide', lua: decideLua, sha: decideSha });

/** cas.lua: the compare-and-set of custom limiters' JSON state. */
export const CAS_SCRIPT: RedisScript = Object.freeze({ name: 'cellgateCas', lua: casLua, sha: casSha });

/** fleet.lua: a store's heartbeat into the fleet's membership set, answering its size. */
export const FLEET_SCRIPT: RedisScript = Object.freeze({ name: 'cellgateFleet', lua: fleetLua, sha: fleetSha });

/** pace.lua: what an upstream said about a key (a hold, the fleet's spacing), shared by the fleet (shared-pace.ts). */
export const PACE_SCRIPT: RedisScript = Object.freeze({ name: 'cellgatePace', lua: paceLua, sha: paceSha });
