// One execution of a key, and the requests it covers: the unit the
// Scheduler queues, coalesces, books, runs and retries.
import type { RetryPolicy } from './backoff.js';
import type { Permit } from '../limiter/permit.js';

/**
 * The work scheduled for a key. `signal` aborts when the scheduler is closed
 * without draining; a task that ignores it is still waited for.
 *
 * @example
 * ```ts
 * const reconcile: SchedulerTask = async (key, signal) => {
 *   const res = await fetch(`https://api.example/resources/${key}`, { signal });
 *   if (!res.ok) throw new Error(`status ${res.status}`); // retried with backoff
 * };
 * ```
 */
export type SchedulerTask = (key: string, signal: AbortSignal) => Promise<unknown> | unknown;

/**
 * How the execution that covered a request went. Coalesced requests share
 * one result: the task that ran is the newest one scheduled.
 *
 * @example
 * ```ts
 * const { attempts, startedAt } = await scheduler.schedule('deployment/web', reconcile);
 * ```
 */
export interface ScheduleResult {
  readonly key: string;
  /** Executions it took, the successful one included, counted from the newest request it covers. */
  readonly attempts: number;
  /** When the successful execution started, by the scheduler's clock. */
  readonly startedAt: number;
  /** What the task returned (awaited). */
  readonly value: unknown;
}

/** How one request's promise is settled. */
export interface Waiter {
  resolve(result: ScheduleResult): void;
  reject(error: unknown): void;
}

/**
 * Where an execution stands: `queued` behind the key's running execution,
 * `delay` until its requested time, `reserving` (asking the limiter),
 * `booked` (waiting for the moment the limiter booked), `slot` (waiting for a
 * concurrency slot, with no booking), `running`. With a limiter that has a
 * concurrency gate, `acquiring` (asking it for a permit, in a slot) and
 * `waiting` (waiting for the key's permit, in no slot) replace `reserving`
 * and `booked`.
 */
export type Phase = 'queued' | 'delay' | 'reserving' | 'booked' | 'acquiring' | 'waiting' | 'slot' | 'running';

/** One execution of a key and the requests it covers. */
export class Execution {
  phase: Phase = 'queued';
  attempt = 1;
  readonly waiters: Waiter[];
  timer: unknown = undefined;
  hasTimer = false;
  /** Holds one unit of the limiter, booked for the moment it is to start. */
  booked = false;
  cancelled = false;
  controller: AbortController | undefined = undefined;
  /** The limiter's permit it holds while running (a limiter with a concurrency gate). */
  permit: Permit | undefined = undefined;
  /** Aborts its wait for a permit (phase `waiting`), when cancelled. */
  waiting: AbortController | undefined = undefined;
  /** The highest priority of the requests it covers. */
  priority: number;
  /** When (scheduler clock) it first waited for a slot (NaN: not yet): its age counts from then, across requeues. */
  since = Number.NaN;

  constructor(
    readonly key: string,
    public task: SchedulerTask,
    public retry: RetryPolicy,
    /** Requested time (scheduler clock): the earliest asked for by the requests it covers. */
    public dueAt: number,
    waiter: Waiter,
    priority: number,
  ) {
    this.waiters = [waiter];
    this.priority = priority;
  }

  /**
   * Takes in a newer request for the key while this execution has not
   * started. The newest task is the work to do now and covers the older
   * requests; it is new work, so it gets a fresh count of attempts. Returns
   * whether the request moved the requested time earlier.
   */
  coalesce(task: SchedulerTask, retry: RetryPolicy, dueAt: number, waiter: Waiter, priority: number): boolean {
    if (priority > this.priority) this.priority = priority;
    this.task = task;
    this.retry = retry;
    this.attempt = 1;
    this.waiters.push(waiter);
    if (dueAt >= this.dueAt) return false;
    this.dueAt = dueAt;
    return true;
  }
}

/** A key's executions: at most one running and one pending (not started). */
export interface KeyState {
  pending: Execution | undefined;
  running: Execution | undefined;
}
