// The Scheduler: per-key executions admitted by a limiter, run under a
// concurrency bound, retried with backoff, cancelled or drained on close.
import { RankedQueue } from './ranked-queue.js';
import { rank } from '../limiter/priority.js';
import { backoffMs, type RetryPolicy } from './backoff.js';
import { MAX_TIMER_MS, type Clock } from '../core/clock.js';
import type { Decision, Reservation } from '../limiter/decision.js';
import type { Permit } from '../limiter/permit.js';
import { ArgumentError } from '../errors.js';
import { checkKey } from '../core/key-hash.js';
import type { Limiter } from '../limiter/limiter.js';
import type { Timers } from '../core/timers.js';
import { SchedulerClosedError } from '../errors.js';
import { Execution, type KeyState, type ScheduleResult, type SchedulerTask, type Waiter } from './execution.js';
import { drains, scheduleSettings, schedulerSettings, type CloseOptions, type ScheduleOptions, type SchedulerLimiter, type SchedulerOptions } from './options.js';

/** How soon to ask again when a store could not book at all (Redis down and failing closed). */
const UNBOOKED_RETRY_MS = 100;

const ignore = () => {};

/**
 * Per-resource scheduling for reconcilers and job workers, admitted by a
 * {@link Limiter}: work is postponed, never dropped.
 *
 * - **One at a time per key.** A key runs at most one execution at once.
 *   Requests for a key whose execution has not started yet **coalesce** with
 *   it: the newest task wins, it runs at the earliest time any of them asked
 *   for, and every coalesced promise settles with its outcome. A request made
 *   while the key runs queues one follow-up execution (coalescing likewise),
 *   started when the running one ends.
 * - **Admitted by the limiter.** When an execution is due (at now +
 *   `delayMs`, or at its retry time) the scheduler books it with
 *   `limiter.reserve(key, { maxWaitMs: Infinity })` and starts it at the
 *   booked moment: at max(requested time, the moment the limit allows). Each
 *   execution costs 1. It books only once due, never ahead: a booking made
 *   at request time for a delayed run would count it in the wrong window.
 *   Keys are limited independently, as the limiter keys them.
 * - **Concurrency gates.** A limiter with a {@link concurrency} gate (at
 *   most N holders of a key at once, across every process sharing its
 *   store) cannot book a moment (`reserve` refuses it): each execution holds
 *   one of its permits while it runs instead. A due execution asks for one
 *   (`limit`) in the slot it takes; refused, it gives the slot up and waits
 *   for the key's permit (`acquire`, woken by a release) without holding
 *   one, then runs in a free slot, or gives the permit back and queues for a
 *   slot. The permit is released when the attempt ends (success, failure,
 *   abort), before its promises settle: between a failure and its retry
 *   nothing is held, and the retry takes a permit again. The task's
 *   `signal` also aborts, with {@link LeaseLostError}, when the permit's
 *   lease is lost (the work is then over the limit). Stacked rate gates are
 *   waited for by `acquire`, so their limit still outranks the backoff.
 * - **Retries.** A failed task is retried after an exponential backoff with
 *   jitter ({@link RetryOptions}), and the retry is admitted by the limiter
 *   like any execution: the rate limit outranks the backoff. After the last
 *   attempt the promises of the requests it covered reject with the task's
 *   error and `onError` is told. If a newer request for the key is waiting
 *   when a task fails, the newer task supersedes the retry and covers the
 *   older requests too (at the earlier of its own time and the retry's).
 * - **Concurrency.** At most `concurrency` executions run at once across
 *   keys; a due execution waits for a slot first and books the limiter once
 *   it has one (holding the slot while the limiter answers), in order of
 *   arrival. An execution whose booked moment comes
 *   while every slot is busy gives the booking back and books again when a
 *   slot frees: starting late on an old booking could put more executions
 *   into one window than the limit allows.
 * - **Promises.** `schedule` returns a promise that settles when the
 *   execution covering the request has finished. It is marked handled, so
 *   not awaiting it never causes an unhandled rejection; use `onError` to
 *   hear of failures nobody awaits. Bad arguments throw at once (typed, and
 *   nothing is scheduled).
 * - **Timers and exit.** Timers exist only for pending work (delays,
 *   backoffs, booked moments) and are deliberately not `unref`'d: pending
 *   work must run, as with `setTimeout`. An idle scheduler holds no timer, so
 *   it never keeps a process alive by itself, and `close` leaves none behind.
 *
 * A limiter error in `reserve` (or `limit`, `acquire`) counts as a failed attempt. A task calling
 * `schedule` while the scheduler drains is refused like any late request.
 *
 * @example
 * ```ts
 * const limiter = new Limiter({ policy: linearWindow({ limit: 2, within: '3s' }) });
 * const scheduler = new Scheduler({ limiter, concurrency: 4, retry: { attempts: 5, baseMs: 500 } });
 * informer.on('change', (obj) => void scheduler.schedule(`deployment/${obj.name}`, reconcile));
 * process.once('SIGTERM', () => void scheduler.close({ drain: false }));
 * ```
 */
export class Scheduler {
  readonly #limiter: SchedulerLimiter;
  /** Whether the limiter has a concurrency gate: executions hold permits, not bookings. */
  readonly #slots: boolean;
  readonly #concurrency: number;
  readonly #retry: RetryPolicy;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #onError: ((error: unknown, key: string) => void) | undefined;

  readonly #keys = new Map<string, KeyState>();
  /** Executions due but waiting for a concurrency slot, by rank (priority raised by waiting: priority.ts). */
  readonly #slotQueue = new RankedQueue<Execution>();
  readonly #agingMs: number;
  /** Slots taken: running executions, and due ones asking the limiter (see #book). */
  #active = 0;
  /** Limiter calls close must wait for: refunds, reserves of executions cancelled meanwhile, and the permits these take (see #letGo). */
  #outstanding = 0;
  #closed = false;
  #cancelled = false;
  #idle: { promise: Promise<void>; resolve: () => void } | undefined = undefined;

  constructor(options: SchedulerOptions) {
    const s = schedulerSettings(options);
    this.#limiter = s.limiter;
    this.#agingMs = s.agingMs;
    this.#slots = s.slots;
    this.#concurrency = s.concurrency;
    this.#retry = s.retry;
    this.#clock = s.clock;
    this.#timers = s.timers;
    this.#onError = s.onError;
  }

  /**
   * Schedules `task` for `key`, to run no sooner than `delayMs` from now, once
   * the limiter admits it. Resolves when the execution covering this request
   * has succeeded; rejects with the task's error when it failed on its last
   * attempt, or with {@link SchedulerClosedError} when the scheduler is closed
   * or cancels it. Throws {@link ArgumentError} at once on bad arguments.
   *
   * @example
   * ```ts
   * void scheduler.schedule('deployment/web', reconcile);                      // as soon as the limit allows
   * await scheduler.schedule('job:42', runJob, { delayMs: 5000, retry: { attempts: 3 } });
   * ```
   */
  schedule(key: string, task: SchedulerTask, options?: ScheduleOptions): Promise<ScheduleResult> {
    checkKey(key);
    if (typeof task !== 'function') throw new ArgumentError('task', task, 'a function (key, signal) => ...');
    const { delayMs, retry, priority } = scheduleSettings(options, this.#retry);
    if (this.#closed) return handled(Promise.reject(new SchedulerClosedError(key)));

    let waiter!: Waiter;
    const promise = handled(new Promise<ScheduleResult>((resolve, reject) => (waiter = { resolve, reject })));
    const dueAt = this.#clock() + delayMs;
    let state = this.#keys.get(key);
    if (state === undefined) {
      state = { pending: undefined, running: undefined };
      this.#keys.set(key, state);
    }
    const pending = state.pending;
    if (pending === undefined) {
      const execution = new Execution(key, task, retry, dueAt, waiter, priority);
      state.pending = execution;
      // Behind a running execution it stays queued until that one ends.
      if (state.running === undefined) this.#advance(execution);
      return promise;
    }
    // Only a wait for the requested time can be cut short; past it, the limiter decides.
    const raised = priority > pending.priority;
    const earlier = pending.coalesce(task, retry, dueAt, waiter, priority);
    // Waiting for a slot, it moves up with its new priority.
    if (raised && pending.phase === 'slot') this.#queue(pending);
    if (earlier && pending.phase === 'delay') {
      this.#clearTimer(pending);
      this.#advance(pending);
    }
    return promise;
  }

  /**
   * Stops taking requests (later `schedule` calls reject with
   * {@link SchedulerClosedError}) and resolves once nothing is pending or
   * running and every refund is done. Drains by default; see
   * {@link CloseOptions}. Calling it again with `drain: false` cancels what a
   * draining close is still waiting for.
   *
   * @example
   * ```ts
   * await scheduler.close();                  // finish everything first
   * await scheduler.close({ drain: false });  // cancel, abort, refund
   * ```
   */
  close(options?: CloseOptions): Promise<void> {
    const drain = drains(options);
    this.#closed = true;
    if (this.#idle === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#idle = { promise, resolve };
    }
    if (!drain && !this.#cancelled) {
      this.#cancelled = true;
      this.#cancelAll();
    }
    this.#checkIdle();
    return this.#idle.promise;
  }

  /** Waits for the execution's requested time, then asks the limiter. */
  #advance(e: Execution): void {
    if (e.dueAt > this.#clock()) {
      e.phase = 'delay';
      this.#sleepUntil(e, e.dueAt, () => this.#admit(e));
    } else {
      this.#admit(e);
    }
  }

  /** A due execution takes a concurrency slot, or waits for one, before it books the limiter. */
  #admit(e: Execution): void {
    if (this.#active >= this.#concurrency) {
      // No slot: wait for one before booking, so the booking is made for a moment it can start at.
      e.phase = 'slot';
      this.#queue(e);
      return;
    }
    this.#active++;
    this.#ask(e);
  }

  /** Asks the limiter for an execution holding a slot: a permit, or a booking. */
  #ask(e: Execution): void {
    void (this.#slots ? this.#take(e) : this.#book(e));
  }

  /**
   * A limiter with a concurrency gate: asks for a permit in the slot the
   * execution holds, and runs in it when admitted. Refused, it gives the slot
   * up (another key may run meanwhile) and waits for the key's permit; once
   * it has one it runs in a free slot, or gives the permit back and queues
   * for a slot: a permit held by an execution that is not running keeps the
   * key's other holders out for nothing.
   */
  async #take(e: Execution): Promise<void> {
    e.phase = 'acquiring';
    let d: Decision | undefined;
    let failure: unknown;
    try {
      d = await this.#limiter.limit!(e.key);
    } catch (error) {
      failure = error;
    }
    let permit = d?.allowed === true ? (d as Permit) : undefined;
    if (e.cancelled) {
      this.#releaseSlot();
      this.#letGo(permit);
      return;
    }
    if (d === undefined) {
      this.#releaseSlot();
      this.#fail(e, failure);
      return;
    }
    if (permit !== undefined) {
      this.#start(e, true, permit);
      return;
    }
    this.#releaseSlot();
    e.phase = 'waiting';
    const waiting = new AbortController();
    e.waiting = waiting;
    try {
      permit = await this.#limiter.acquire!(e.key, { signal: waiting.signal, priority: e.priority });
    } catch (error) {
      failure = error;
    }
    e.waiting = undefined;
    if (e.cancelled) {
      this.#letGo(permit);
      return;
    }
    if (permit === undefined) {
      this.#fail(e, failure);
      return;
    }
    if (this.#active >= this.#concurrency) {
      void permit.release();
      e.phase = 'slot';
      this.#queue(e);
      return;
    }
    this.#active++;
    this.#start(e, true, permit);
  }

  /** The permit (if any) of an execution cancelled while asking for it, released; close waits for it (counted by #cancel). */
  #letGo(permit: Permit | undefined): void {
    void (permit === undefined ? Promise.resolve() : permit.release()).then(() => {
      this.#outstanding--;
      this.#checkIdle();
    });
  }

  /**
   * Books the execution with the limiter, holding a slot: one booked for now
   * starts in it at once; one booked for later gives the slot up meanwhile.
   * Holding it while asking keeps a burst of due keys from all booking now
   * for the same few slots.
   */
  async #book(e: Execution): Promise<void> {
    e.phase = 'reserving';
    let r: Reservation | undefined;
    let failure: unknown;
    try {
      r = await this.#limiter.reserve(e.key, { maxWaitMs: Infinity });
    } catch (error) {
      failure = error;
    }
    if (e.cancelled) {
      // Closed without drain while the limiter was booking: give the booking back.
      this.#releaseSlot();
      if (r?.allowed) this.#giveBack(e.key);
      this.#outstanding--;
      this.#checkIdle();
      return;
    }
    if (r === undefined) {
      this.#releaseSlot();
      this.#fail(e, failure);
      return;
    }
    if (!r.allowed) {
      // Only a store that cannot book at all (e.g. Redis down, failing closed) says no to an unbounded wait.
      this.#releaseSlot();
      e.phase = 'delay';
      this.#sleepUntil(e, this.#clock() + Math.max(r.waitMs, UNBOOKED_RETRY_MS), () => this.#admit(e));
      return;
    }
    e.booked = true;
    if (r.waitMs > 0) {
      // Waiting for the limiter must not hold a slot that other keys could run in.
      this.#releaseSlot();
      e.phase = 'booked';
      this.#sleepUntil(e, this.#clock() + r.waitMs, () => this.#start(e, false));
      return;
    }
    this.#start(e, true);
  }

  /** Starts a booked execution now, in the slot it holds (`claimed`) or a free one; `permit`: the one it holds while running. */
  #start(e: Execution, claimed: boolean, permit?: Permit): void {
    if (!claimed) {
      if (this.#active >= this.#concurrency) {
        // Every slot is busy at the booked moment. Running later on this
        // booking could crowd the next window (whose bookings start on
        // time), so give it back and book again once a slot frees.
        e.booked = false;
        this.#giveBack(e.key);
        e.phase = 'slot';
        this.#queue(e);
        return;
      }
      this.#active++;
    }
    const state = this.#keys.get(e.key)!;
    state.pending = undefined;
    state.running = e;
    e.booked = false;
    e.phase = 'running';
    const controller = new AbortController();
    e.controller = controller;
    if (permit !== undefined) {
      e.permit = permit;
      // A lost lease means the work runs over the limit: the task is told as it is of a close.
      const lost = permit.signal;
      if (lost.aborted) controller.abort(lost.reason);
      else lost.addEventListener('abort', () => controller.abort(lost.reason), { once: true });
    }
    void this.#run(e, controller.signal);
  }

  async #run(e: Execution, signal: AbortSignal): Promise<void> {
    const startedAt = this.#clock();
    let value: unknown;
    let failure: unknown;
    let ok = true;
    try {
      value = await e.task(e.key, signal);
    } catch (error) {
      ok = false;
      failure = error;
    }
    e.controller = undefined;
    const permit = e.permit;
    if (permit !== undefined) {
      // Given back before anything settles: a caller awaiting the result, or close, finds it free.
      e.permit = undefined;
      await permit.release();
    }
    this.#keys.get(e.key)!.running = undefined;
    this.#releaseSlot();
    if (ok) {
      const result: ScheduleResult = Object.freeze({ key: e.key, attempts: e.attempt, startedAt, value });
      for (const w of e.waiters) w.resolve(result);
    } else if (this.#cancelled) {
      // Aborted by close({ drain: false }): no retry; the task's own error is the cause.
      for (const w of e.waiters) w.reject(new SchedulerClosedError(e.key, { cause: failure }));
    } else {
      this.#fail(e, failure);
      return;
    }
    this.#next(e.key);
  }

  /** A failed attempt (of the task, or of booking it): retry, hand over to a newer request, or give up. */
  #fail(e: Execution, error: unknown): void {
    const state = this.#keys.get(e.key)!;
    const follow = state.pending === e ? undefined : state.pending;
    const retries = e.attempt < e.retry.attempts;
    const retryAt = retries ? this.#clock() + backoffMs(e.retry, e.attempt) : Infinity;
    if (follow !== undefined) {
      // A newer request is waiting: its task supersedes this one and covers these requests too.
      follow.waiters.unshift(...e.waiters);
      if (retryAt < follow.dueAt) follow.dueAt = retryAt;
    } else if (retries) {
      e.attempt++;
      e.dueAt = retryAt;
      e.phase = 'queued';
      state.pending = e;
    } else {
      if (state.pending === e) state.pending = undefined;
      for (const w of e.waiters) w.reject(error);
      this.#report(error, e.key);
    }
    this.#next(e.key);
  }

  /** After an execution of `key` ended: start its pending one, or forget the key. */
  #next(key: string): void {
    const state = this.#keys.get(key);
    if (state === undefined || state.running !== undefined) return;
    const pending = state.pending;
    if (pending === undefined) {
      this.#keys.delete(key);
      this.#checkIdle();
    } else if (pending.phase === 'queued') {
      this.#advance(pending);
    }
  }

  /** Queues a due execution for a slot, ranked by its priority and how long it has waited for one. */
  #queue(e: Execution): void {
    if (Number.isNaN(e.since)) e.since = this.#clock();
    this.#slotQueue.add(e, rank(e.priority, this.#agingMs, e.since));
  }

  /** Frees a slot and hands free slots to waiting executions, highest rank first (the earliest to wait, among equal priorities). */
  #releaseSlot(): void {
    this.#active--;
    while (this.#active < this.#concurrency && this.#slotQueue.size > 0) {
      const next = this.#slotQueue.shift()!;
      this.#active++;
      this.#ask(next);
    }
  }

  #cancelAll(): void {
    for (const [key, state] of this.#keys) {
      const pending = state.pending;
      if (pending !== undefined) {
        state.pending = undefined;
        this.#cancel(pending);
      }
      const running = state.running;
      if (running === undefined) this.#keys.delete(key);
      else running.controller?.abort(new SchedulerClosedError(key));
    }
  }

  /** Cancels an execution that has not started: no timer left, its booking given back. */
  #cancel(e: Execution): void {
    e.cancelled = true;
    this.#clearTimer(e);
    this.#slotQueue.delete(e);
    // A booking still being made is given back by #book when the limiter
    // answers, a permit being asked for by #take.
    if (e.phase === 'reserving' || e.phase === 'acquiring' || e.phase === 'waiting') this.#outstanding++;
    e.waiting?.abort(new SchedulerClosedError(e.key));
    if (e.booked) {
      e.booked = false;
      this.#giveBack(e.key);
    }
    for (const w of e.waiters) w.reject(new SchedulerClosedError(e.key));
  }

  /** Refunds one booked unit of `key`; close waits for it. */
  #giveBack(key: string): void {
    this.#outstanding++;
    // Best effort: a refund that fails (store unreachable) only leaves the unit booked until the window passes.
    Promise.resolve()
      .then(() => this.#limiter.refund(key, 1))
      .catch(ignore)
      .then(() => {
        this.#outstanding--;
        this.#checkIdle();
      });
  }

  /** Arms the execution's timer for `deadline` (scheduler clock), in pieces when it is far away. */
  #sleepUntil(e: Execution, deadline: number, then: () => void): void {
    const wait = deadline - this.#clock();
    // Whole milliseconds, rounded up: timers round fractions their own way
    // (fake timers may drop them), and a re-armed sleep must make progress.
    const step = Math.min(Math.max(Math.ceil(wait), 0), MAX_TIMER_MS);
    e.hasTimer = true;
    e.timer = this.#timers.setTimeout(() => {
      e.hasTimer = false;
      e.timer = undefined;
      if (e.cancelled) return;
      // Far deadlines are slept in pieces, and a timer may fire a little
      // before the clock reads its deadline (Node's timers run on a cached
      // loop time): starting early would run ahead of the limiter's booking.
      if (this.#clock() < deadline) this.#sleepUntil(e, deadline, then);
      else then();
    }, step);
  }

  #clearTimer(e: Execution): void {
    if (!e.hasTimer) return;
    this.#timers.clearTimeout(e.timer);
    e.hasTimer = false;
    e.timer = undefined;
  }

  #report(error: unknown, key: string): void {
    const onError = this.#onError;
    if (onError === undefined) return;
    try {
      onError(error, key);
    } catch (thrown) {
      // A throwing handler is a bug to surface, as an uncaught exception, not to swallow.
      queueMicrotask(() => {
        throw thrown;
      });
    }
  }

  #checkIdle(): void {
    if (this.#idle !== undefined && this.#keys.size === 0 && this.#outstanding === 0) this.#idle.resolve();
  }
}

/** Marks a promise handled: a caller who does not await it gets no unhandled rejection; one who does still sees it. */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(ignore);
  return promise;
}
