// The one definition of what the WebAssembly core (assembly/), the TypeScript
// host (src/) and the Redis scripts (src/stores/redis/*.lua) share: algorithm
// and op codes, limits, the bits of the core's return values, the byte
// layouts of the memory areas both sides of the core read and write, and the
// core's exports. Change a fact here and every side follows at the next build.
//
// scripts/build-abi.mjs (`npm run build:abi`, first step of `npm run build`)
// writes from it, into build/ (never committed):
//   build/abi-as.ts  the constants and layouts for AssemblyScript (assembly/*.ts)
//   build/abi.ts     the same for TypeScript (src/), and the CoreExports interface
//   build/abi.lua    `local NAME = value` lines of the entries marked `lua`
// test/abi.test.ts holds the compiled core and build/abi.lua to this file.
//
// Plain data: the only code is arithmetic between entries, so that a derived
// value cannot drift from what it derives from. Every entry has a `doc`,
// which becomes the TSDoc (or Lua comment) of what is generated from it; the
// shape of the whole is in abi.d.mts.

const MAX_GATES = 16;
const MAX_KEY_LENGTH = 512;
/** Where the GREW and FULL bits of a return value start (the table reports them as bits 0 and 1). */
const FLAG_SHIFT = 8;

/** @type {import('./abi.d.mts').Abi} */
export default {
  constants: [
    {
      title: 'Algorithm codes',
      doc: 'What a policy is inside the core and the Redis scripts: one of these codes and three parameters p0, p1, p2. Its state is three numbers a, b, c (and exp, when it decays to "never seen").',
      example: "if (policy.core.code === CODE.gcra) interval = policy.core.p0; // CODE.gcra is KIND_GCRA",
      object: 'CODE',
      lua: true,
      entries: [
        { name: 'KIND_GCRA', key: 'gcra', type: 'u32', value: 0, doc: 'GCRA, and a continuous token bucket (the same arithmetic: emission interval = period / refill, burst = capacity). p0 emission interval T (ms), p1 burst B, p2 B * T. State: a = TAT, the theoretical arrival time of the next request.' },
        { name: 'KIND_TOKEN_INTERVAL', key: 'tokenInterval', type: 'u32', value: 1, doc: 'Token bucket refilled in steps, `refill` tokens every `period`. p0 capacity C, p1 refill R, p2 period P (ms). State: a = anchor (the latest refill boundary), b = tokens at the anchor.' },
        { name: 'KIND_FIXED', key: 'fixed', type: 'u32', value: 2, doc: 'Fixed window. p0 window W (ms), p1 limit L. State: a = window index, b = count.' },
        { name: 'KIND_LINEAR', key: 'linear', type: 'u32', value: 3, doc: 'Linear window: W long from the first admission after the previous one ended. p0 within W (ms), p1 limit L. State: a = window start, b = count.' },
        { name: 'KIND_SLIDING', key: 'sliding', type: 'u32', value: 4, doc: "Sliding window: the previous window's count, weighted by the part of it still in view, plus the current one's. p0 window W (ms), p1 limit L. State: a = current window index, b = its count, c = the previous window's count." },
        { name: 'KIND_CONCURRENCY', key: 'concurrency', type: 'u32', value: 5, doc: "Concurrency: at most L holders at once, each counted in the lease epoch (floor(t / E)) of its acquisition or last renewal and through the next one, so that a holder never released (its process died) stops counting between E and 2E after it was last renewed. p0 lease epoch E (ms, the policy's leaseMs), p1 limit L. State: a = current epoch index, b = holders counted in it, c = holders of the previous epoch." },
        { name: 'KIND_BLOCK', key: 'block', type: 'u32', value: 6, doc: "A key's block, and its denials counted toward one (`blockAfter`): a limiter's hidden last gate, which denies while the key is blocked and admits otherwise, taking nothing. p0 the denials that block (0: no escalation), p1 within W (ms: the count's linear window, from its first denial), p2 the block's duration (ms). State: blocked: a = until, b = -1; counting: a = the first denial's time, b = denials counted (at least 1)." },
      ],
    },
    {
      title: 'Operations of the Redis decide script',
      doc: "The `op` of a hit in a batch sent to decide.lua (ARGV's hits: \"op cost maxWait\" triples).",
      example: "if (hit.op === OP_RESERVE) settle(hit, waitMs);",
      lua: true,
      entries: [
        { name: 'OP_LIMIT', type: 'u32', value: 0, doc: 'Decides `cost` and charges it when every gate admits.' },
        { name: 'OP_PEEK', type: 'u32', value: 1, doc: 'Decides `cost` without charging anything (a dry run).' },
        { name: 'OP_RESERVE', type: 'u32', value: 2, doc: 'Books the earliest moment within `maxWait` ms ("inf": no bound) at which every gate admits `cost`; answers the wait.' },
        { name: 'OP_REFUND', type: 'u32', value: 3, doc: "Gives `cost` back to every gate's state of the key." },
        { name: 'OP_RESET', type: 'u32', value: 4, doc: 'Forgets the key in every gate.' },
        { name: 'OP_CHARGE', type: 'u32', value: 5, doc: "Consumes `cost` without asking: what a client admitted on its own while Redis was unreachable, as of the epoch ms (Redis's clock) in `maxWait`." },
        { name: 'OP_LEASE', type: 'u32', value: 6, doc: "Takes up to `cost` units at once for a client to spend on its own; `maxWait` is the horizon of GCRA's future slots." },
        { name: 'OP_RELEASE', type: 'u32', value: 7, doc: "Returns the `cost` holders of a permit to every concurrency gate of the key; `maxWait` is the permit's time (Redis's clock, epoch ms), which names the lease epoch it is counted in. Other gates are untouched." },
        { name: 'OP_RENEW', type: 'u32', value: 8, doc: "Renews a permit of `cost` holders taken or last renewed at the time in `maxWait`, in every concurrency gate of the key: its holders move into the current lease epoch, or are taken again if they expired and there is room. Answers ALLOWED when every concurrency gate still holds them." },
        { name: 'OP_BLOCK', type: 'u32', value: 9, doc: "Blocks the key for `maxWait` ms from the script's time (its KIND_BLOCK gate's state: blocked until then, whatever it held), or unblocks it when `maxWait` is 0 (its denials counted are forgotten too). `cost` is unused." },
        { name: 'OP_LOWER', type: 'u32', value: 10, doc: "Lowers the key's remaining to the count in `maxWait` (what an upstream reported: a non-negative integer), never raising it: each rate gate's remaining is what a peek of cost 1 finds admissible now (0 when it denies, else its remaining + 1); when the fewest of them exceeds the count, the gate with the fewest (the first on ties) is charged the difference now, as OP_CHARGE's penalty charges (again while rounding leaves it above the count: LOWER_PASSES), and no other gate changes. Concurrency and block gates are untouched. `cost` is unused (0)." },
      ],
    },
    {
      title: 'Carry strategies',
      doc: "What a key's used capacity becomes when its plan changes (src/policies/carry.ts, src/stores/redis/lua/carry.lua), gate by gate: the use of gate i of the old plan at the change, in units, becomes gate i's of the new, rounded up to a whole unit. The `carry` of a batch of a limiter with plans (wire.lua).",
      example: "const code = { proportional: CARRY_PROPORTIONAL, 'as-is': CARRY_AS_IS, reset: CARRY_RESET }[carry];",
      lua: true,
      entries: [
        { name: 'CARRY_PROPORTIONAL', type: 'u32', value: 0, doc: 'The same share of the capacity stays used: used × new capacity / old capacity.' },
        { name: 'CARRY_AS_IS', type: 'u32', value: 1, doc: 'The same units stay available, up to the new capacity: new capacity − min(old capacity − used, new capacity).' },
        { name: 'CARRY_RESET', type: 'u32', value: 2, doc: 'Nothing carries: the key starts afresh under the new plan.' },
      ],
    },
    {
      title: 'Upstream shapes',
      doc: "How `limitedFetch(..., { shape: 'auto' })` spends a key's rate, as the fleet learned it from the upstream's answers (src/http/shape.ts, src/stores/redis/pace.lua's 'learn').",
      example: "const shape = code === SHAPE_QUOTA ? 'quota' : 'pacing';",
      lua: true,
      entries: [
        { name: 'SHAPE_PACING', type: 'u32', value: 0, doc: 'Paced: GCRA at the rate with a burst of 1, calls evenly spaced (a burst-intolerant upstream, and where every shaping starts).' },
        { name: 'SHAPE_QUOTA', type: 'u32', value: 1, doc: "Spent in bursts: an interval token bucket of the rate, whose window the fleet aligns to the upstream's reset (a quota-bound upstream)." },
        { name: 'QUOTA_EVIDENCE', type: 'u32', value: 5, doc: "Accepted answers carrying quota headers with a reset, with no refusal while quota remained, that make a key's shape SHAPE_QUOTA." },
      ],
    },
    {
      title: 'Limits',
      doc: 'Bounds both sides of the core rely on.',
      example: 'if (gates.length > MAX_GATES) throw new RangeError(`at most ${MAX_GATES} gates`);',
      entries: [
        { name: 'MAX_GATES', type: 'u32', value: MAX_GATES, wasmExport: true, lua: true, doc: "Most policies one limiter may stack as gates: the core's per-gate scratch has room for this many, and a gate's index fits GATE_MASK." },
        { name: 'SLOTS_PER_BUCKET', type: 'usize', value: 8, doc: "Slots in one bucket of the core's table: init's bucket counts (2^initialBits, 2^maxBits) times this are its sizes in keys." },
        { name: 'MAX_KEY_LENGTH', type: 'u32', value: MAX_KEY_LENGTH, doc: 'Longest key accepted, in UTF-16 code units.' },
        { name: 'KEY_AREA_BYTES', type: 'usize', value: MAX_KEY_LENGTH * 3, doc: "Bytes of the core's key area, from keyPtr(): the longest key in UTF-8, at most 3 bytes per UTF-16 code unit (2 in UTF-16)." },
        { name: 'BATCH_KEY_AREA_BYTES', type: 'usize', value: 65536, doc: "Bytes of the batch key area, from batchKeysPtr(): a batch's keys, one after another, each starting at a multiple of 8 and named by its offset and descriptor in its batch entry. 64 KiB: 1024 keys of 32 code units, or 42 of the longest." },
        { name: 'MIN_RETRY_MS', type: 'f64', value: 0.001, lua: true, doc: 'A denial always asks the caller to wait at least this long (1 µs), so that a retry loop can never spin on a zero wait produced by rounding.' },
        { name: 'REMAINING_EPSILON', type: 'f64', value: 1e-9, lua: true, doc: 'Added before flooring a remaining count, so that 0.9999999999 reads as 1.' },
        { name: 'LOWER_PASSES', type: 'u32', value: 4, lua: true, doc: "Most charges one lower makes (OP_LOWER, EmbeddedBinding.lower): the first charges the difference; a remaining floored from a GCRA state whose times are large next to its interval can read one short of the units it admits, so the key is looked at again and charged what is still above the count, until none is. Every pass but the first is a rounding's correction; the same passes in the core's binding and the script keep them agreeing." },
        { name: 'CHARGE_MEMORY_MS', type: 'f64', value: 60000, lua: true, doc: "How long (ms) the Redis script keeps a key's state after an outage's charge (charge.lua), so that several stores' charges of one outage add up in the past." },
      ],
    },
    {
      title: 'Key descriptors',
      doc: 'A keyed call names the key the host has just written into the key area by a descriptor, `bytes << KEY_BYTES_SHIFT | KEY_UTF8`: its UTF-16 code units, little-endian (any string, lone surrogates included), or its UTF-8 bytes (well-formed strings only). The core hashes the two encodings under different keys, so the two spellings of a key never meet.',
      example: 'const desc = (encoder.encodeInto(key, keyBytes).written << KEY_BYTES_SHIFT) | KEY_UTF8;',
      entries: [
        { name: 'KEY_UTF8', type: 'u32', value: 1, doc: 'Bit of a key descriptor: the key area holds the UTF-8 bytes of the key, not its UTF-16 code units.' },
        { name: 'KEY_BYTES_SHIFT', type: 'u32', value: 1, doc: "Where a key descriptor's length in bytes starts." },
        { name: 'KEY_SAME', type: 'u32', value: 0xffffffff, doc: "A key descriptor meaning: the same key as the previous keyed call, whose hash the core still holds; the key area is neither read nor required to hold it. The host sends it only when it wrote nothing into the key area since that call (writeKey tracks the key last written, and every written key is hashed by the keyed call it is written for): a hot key then skips the copy and the hash." },
      ],
    },
    {
      title: 'Return values',
      doc: 'A decision (the result of decide and reserve, and the flags byte of a batch entry) is `ALLOWED | gate << GATE_SHIFT`, where gate is the 0-based index of the gate whose numbers it reports, plus BLOCKED when the key\'s block denied it (decide, decideBatch). The calls that may insert a record (decide, reserve, decideBatch, putState) add GREW and FULL.',
      example: 'if ((r & GREW) !== 0) views.renew();\nconst allowed = (r & ALLOWED) !== 0;\nconst gate = (r >>> GATE_SHIFT) & GATE_MASK;',
      entries: [
        { name: 'ALLOWED', type: 'u32', value: 1, lua: true, doc: 'Bit of a decision: every gate admitted.' },
        { name: 'GATE_SHIFT', type: 'u32', value: 1, lua: true, doc: "Where the binding gate's index starts in a decision." },
        { name: 'BLOCKED', type: 'u32', value: 32, lua: true, doc: "Bit of a decision: the key's block denied it (its KIND_BLOCK gate), whichever gate is reported." },
        { name: 'STALE', type: 'u32', value: 64, lua: true, doc: "Bit of a Redis reply's flags (a limiter with plans): the key's plan record in Redis is newer than the batch's plan, so the hit was decided by the recorded plan, and the node should resolve the key's plan again." },
        { name: 'GATE_MASK', type: 'u32', value: MAX_GATES - 1, doc: "The binding gate's index, once shifted down by GATE_SHIFT (MAX_GATES is a power of two)." },
        { name: 'GREW', type: 'u32', value: 1 << FLAG_SHIFT, wasmExport: true, doc: "Bit of a return value: linear memory grew during the call (the table doubled), so the host's views of memory are stale and must be renewed." },
        { name: 'FULL', type: 'u32', value: 2 << FLAG_SHIFT, wasmExport: true, doc: 'Bit of a return value: a new key met the table full at its cap during the call.' },
      ],
    },
  ],

  layouts: [
    {
      name: 'RESULT',
      bytes: 32,
      doc: "The result area, at resultPtr(): the numbers of a decide or reserve, whose decision is the call's return value.",
      example: 'const out = new Float64Array(memory.buffer, core.resultPtr(), RESULT_BYTES / 8);\nconst remaining = out[RESULT_REMAINING_INDEX];',
      diagram: `
0                  8                  16                 24                 32
┌──────────────────┬──────────────────┬──────────────────┬──────────────────┐
│ remaining: f64   │ retryAfterMs: f64│ resetAfterMs: f64│ heldAt: f64      │
└──────────────────┴──────────────────┴──────────────────┴──────────────────┘`,
      fields: [
        { name: 'RESULT_REMAINING', offset: 0, type: 'f64', doc: 'What the binding gate has left.' },
        { name: 'RESULT_RETRY_AFTER_MS', offset: 8, type: 'f64', doc: 'decide: how long until a retry can pass (0 when allowed). reserve: the wait booked, or the one that would have been needed.' },
        { name: 'RESULT_RESET_AFTER_MS', offset: 16, type: 'f64', doc: 'How long until every gate is back to "never seen".' },
        { name: 'RESULT_HELD_AT', offset: 24, type: 'f64', doc: "decide and renew, with a concurrency gate: the time a permit's holders count from, in the lease epoch they were counted in (`now`, or the start of a later epoch the key's state holds when the clock went back): what release and renew are given back." },
      ],
    },
    {
      name: 'BATCH',
      bytes: 32,
      doc: 'A batch entry: batchPtr() holds `batchEntries` (see init) of them, each written by the host (its key hashed by hashBatch, or by hashToBatch), then decided by decideBatch.',
      example: 'u32[i * (BATCH_BYTES / 4) + BATCH_COST_INDEX] = cost;',
      diagram: `
0        4        8         12      15  16                 24                 32
┌────────┬────────┬─────────┬───────┬───┬──────────────────┬──────────────────┐
│ keyLo  │ keyHi  │ cost in │ spare │out│ retryAfterMs out │ resetAfterMs out │
│ u32    │ u32    │ u32;    │       │u8 │ f64              │ f64              │
│        │        │remaining│       │   │                  │                  │
│        │        │ out     │       │   │                  │                  │
└────────┴────────┴─────────┴───────┴───┴──────────────────┴──────────────────┘
byte 15 out = ALLOWED | gate << GATE_SHIFT.`,
      fields: [
        { name: 'BATCH_KEY_LO', offset: 0, type: 'u32', doc: "In: the low half of the key's 64-bit hash (hashToBatch or hashBatch writes it); before hashBatch, the key's offset in the batch key area." },
        { name: 'BATCH_KEY_HI', offset: 4, type: 'u32', doc: "In: the high half of the key's hash; before hashBatch, the key's descriptor." },
        { name: 'BATCH_COST', offset: 8, type: 'u32', doc: "In: the request's cost." },
        { name: 'BATCH_REMAINING', offset: 8, type: 'u32', doc: 'Out, over the cost: what the binding gate has left.' },
        { name: 'BATCH_FLAGS', offset: 15, type: 'u8', doc: 'Out: the decision, `ALLOWED | gate << GATE_SHIFT | BLOCKED`.' },
        { name: 'BATCH_RETRY_AFTER_MS', offset: 16, type: 'f64', doc: 'Out: how long until a retry can pass (0 when allowed).' },
        { name: 'BATCH_RESET_AFTER_MS', offset: 24, type: 'f64', doc: 'Out: how long until every gate is back to "never seen".' },
      ],
    },
    {
      name: 'STEP',
      bytes: 64,
      doc: 'The output of step(), at stepPtr(): one step of an algorithm over a state passed in (the pure form of a policy), every field an f64.',
      example: 'const out = new Float64Array(memory.buffer, core.stepPtr(), STEP_BYTES / 8);\nconst allowed = out[STEP_ALLOWED_INDEX] === 1;',
      diagram: `
0        8        16       24       32          40           48           56        64
┌────────┬────────┬────────┬────────┬───────────┬────────────┬────────────┬─────────┐
│ a      │ b      │ c      │ exp    │ remaining │ retryAfter │ resetAfter │ allowed │
│        │        │        │        │           │ Ms         │ Ms         │ 1 or 0  │
└────────┴────────┴────────┴────────┴───────────┴────────────┴────────────┴─────────┘
all f64.`,
      fields: [
        { name: 'STEP_A', offset: 0, type: 'f64', doc: 'The new state: a.' },
        { name: 'STEP_B', offset: 8, type: 'f64', doc: 'The new state: b.' },
        { name: 'STEP_C', offset: 16, type: 'f64', doc: 'The new state: c.' },
        { name: 'STEP_EXP', offset: 24, type: 'f64', doc: 'When the new state decays to "never seen" (-Infinity: already).' },
        { name: 'STEP_REMAINING', offset: 32, type: 'f64', doc: 'What the policy has left after the step.' },
        { name: 'STEP_RETRY_AFTER_MS', offset: 40, type: 'f64', doc: 'How long until a retry can pass (0 when allowed).' },
        { name: 'STEP_RESET_AFTER_MS', offset: 48, type: 'f64', doc: 'How long until the state is back to "never seen".' },
        { name: 'STEP_ALLOWED', offset: 56, type: 'f64', doc: '1 when the step admitted the cost, else 0.' },
      ],
    },
  ],

  exports: {
    doc: 'The exports of the cellgate core (assembly/index.ts): its memory, the constants marked wasmExport (as immutable globals) and these functions. Pointers are byte offsets into `memory`; a `bool` is passed as 1 or 0; a u32 result arrives as a signed 32-bit number.',
    example: 'const core = instantiateCore();\ncore.init(10, 20, 0, 8, 64);\nconst r = core.decide(desc, 0, 1, 1, Date.now(), 0);',
    functions: [
      { name: 'init', params: [['initialBits', 'u32'], ['maxBits', 'u32'], ['evict', 'bool'], ['maxPolicies', 'u32'], ['batchEntries', 'u32']], returns: 'usize', doc: 'Allocates everything, once: room for `maxPolicies` policies, a batch area of `batchEntries` entries, and a table of 2^initialBits buckets of 8 slots that may double up to 2^maxBits buckets; at that size a new key with no room evicts (`evict`) or is denied. Returns the table\'s size in bytes.' },
      { name: 'stepPtr', params: [], returns: 'usize', doc: 'Where step() writes its output (the STEP layout).' },
      { name: 'step', params: [['kind', 'u32'], ['p0', 'f64'], ['p1', 'f64'], ['p2', 'f64'], ['live', 'bool'], ['a', 'f64'], ['b', 'f64'], ['c', 'f64'], ['cost', 'f64'], ['t', 'f64']], returns: 'void', doc: 'One step of algorithm `kind` over the state (a, b, c), which exists when `live`, for `cost` at `t`, touching no table. Writes the outcome at stepPtr().' },
      { name: 'seed', params: [['a', 'u32'], ['b', 'u32'], ['c', 'u32'], ['d', 'u32']], returns: 'void', doc: 'Sets the 128-bit key of the key hash (SipHash-1-3) as four little-endian 32-bit words.' },
      { name: 'keyPtr', params: [], returns: 'usize', doc: 'Where the host writes a key (KEY_AREA_BYTES) before a keyed call, which names it by a key descriptor.' },
      { name: 'hashToBatch', params: [['key', 'u32'], ['entry', 'u32']], returns: 'void', doc: "Hashes the key in the key area into batch entry `entry` (its BATCH_KEY_LO and BATCH_KEY_HI)." },
      { name: 'batchKeysPtr', params: [], returns: 'usize', doc: 'Where the host writes the keys of a batch (BATCH_KEY_AREA_BYTES), before hashBatch.' },
      { name: 'hashBatch', params: [['n', 'u32']], returns: 'void', doc: "Hashes the keys of the first `n` batch entries, each named by its offset (BATCH_KEY_LO) and descriptor (BATCH_KEY_HI) in the batch key area, into the entries' BATCH_KEY_LO and BATCH_KEY_HI: one call for a batch's keys instead of a hashToBatch per key." },
      { name: 'resultPtr', params: [], returns: 'usize', doc: 'Where decide and reserve write their numbers (the RESULT layout).' },
      { name: 'batchPtr', params: [], returns: 'usize', doc: 'The first batch entry (the BATCH layout).' },
      { name: 'setPolicy', params: [['id', 'u32'], ['kind', 'u32'], ['p0', 'f64'], ['p1', 'f64'], ['p2', 'f64']], returns: 'void', doc: 'Sets policy `id` (below maxPolicies) to algorithm `kind` with parameters p0, p1, p2.' },
      { name: 'evictions', params: [], returns: 'f64', doc: 'Live records evicted to make room, since init.' },
      { name: 'refusals', params: [], returns: 'f64', doc: 'New keys denied because the table was full at its cap (deny mode), since init.' },
      { name: 'growths', params: [], returns: 'u32', doc: 'Times the table doubled, since init.' },
      { name: 'slots', params: [], returns: 'f64', doc: 'Slots in the table now.' },
      { name: 'tableBytes', params: [], returns: 'f64', doc: 'Bytes of linear memory the table occupies now.' },
      { name: 'bucketOf', params: [['key', 'u32'], ['gate', 'u32']], returns: 'u32', doc: "First-choice bucket of the key's record in gate `gate`: for tests of the keyed layout." },
      { name: 'live', params: [['now', 'f64']], returns: 'u32', doc: 'Records whose state is live at `now` (a full scan).' },
      { name: 'clear', params: [], returns: 'void', doc: 'Forgets every record.' },
      { name: 'check', params: [['now', 'f64']], returns: 'i32', doc: "-1 when the table's invariants hold at `now`, else the first bad slot (for tests)." },
      { name: 'decide', params: [['key', 'u32'], ['gate0', 'u32'], ['gates', 'u32'], ['cost', 'f64'], ['now', 'f64'], ['dryRun', 'bool']], returns: 'u32', doc: 'Decides a request of `cost` at `now` for the key in the key area under policies gate0 .. gate0 + gates - 1, charging every gate when all admit, unless `dryRun`. Returns the decision with GREW and FULL; the numbers go to the result area.' },
      { name: 'reserve', params: [['key', 'u32'], ['gate0', 'u32'], ['gates', 'u32'], ['cost', 'f64'], ['now', 'f64'], ['maxWait', 'f64']], returns: 'u32', doc: 'Books the earliest moment at or after `now`, at most `maxWait` ms away, at which every gate admits `cost`, and charges the gates as of then. Returns the decision with GREW and FULL; the wait goes to RESULT_RETRY_AFTER_MS.' },
      { name: 'refund', params: [['key', 'u32'], ['gate0', 'u32'], ['gates', 'u32'], ['cost', 'f64'], ['now', 'f64']], returns: 'void', doc: "Gives `cost` back to every gate's record of the key." },
      { name: 'reset', params: [['key', 'u32'], ['gate0', 'u32'], ['gates', 'u32'], ['now', 'f64']], returns: 'void', doc: 'Forgets the key in every gate.' },
      { name: 'release', params: [['key', 'u32'], ['gate0', 'u32'], ['gates', 'u32'], ['cost', 'f64'], ['at', 'f64'], ['now', 'f64']], returns: 'void', doc: "Returns the `cost` holders of a permit taken (or last renewed) at `at` to every concurrency gate of the key; a permit whose lease has run out is no longer counted and returns nothing. Other gates are untouched." },
      { name: 'renew', params: [['key', 'u32'], ['gate0', 'u32'], ['gates', 'u32'], ['cost', 'f64'], ['at', 'f64'], ['now', 'f64']], returns: 'u32', doc: 'Renews, in every concurrency gate of the key, a permit of `cost` holders taken (or last renewed) at `at`: counted in the current lease epoch from now on; one whose lease ran out is taken again when there is room. Returns ALLOWED when every concurrency gate holds it, with GREW and FULL.' },
      { name: 'decideBatch', params: [['n', 'u32'], ['gate0', 'u32'], ['gates', 'u32'], ['now', 'f64'], ['dryRun', 'bool']], returns: 'u32', doc: 'Decides the first `n` batch entries at `now`, in order, each as decide would. Returns GREW and FULL.' },
      { name: 'putState', params: [['key', 'u32'], ['gate', 'u32'], ['a', 'f64'], ['b', 'f64'], ['c', 'f64'], ['exp', 'f64'], ['now', 'f64']], returns: 'u32', doc: "Writes policy `gate`'s state of the key as another store (Redis) reported it; an `exp` at or before `now` removes the record. Returns GREW and FULL, and ALLOWED when the state was kept (not when a new record met the table full at its cap in deny mode)." },
      { name: 'getState', params: [['key', 'u32'], ['gate', 'u32'], ['now', 'f64']], returns: 'u32', doc: "Reads policy `gate`'s state of the key into the result area as a, b, c, exp (its four f64s, in that order; the fields abi documents per algorithm), for a plan change to carry it. Returns ALLOWED when the key has a state at `now` (otherwise the area is left as it was)." },
      { name: 'charge', params: [['key', 'u32'], ['gate0', 'u32'], ['gates', 'u32'], ['cost', 'f64'], ['now', 'f64']], returns: 'u32', doc: 'Spends `cost` at `now` in every rate gate of the key without asking, past the limit if need be (a penalty: the key owes it and waits it off); concurrency and block gates are untouched. Returns GREW and FULL.' },
    ],
  },
};
