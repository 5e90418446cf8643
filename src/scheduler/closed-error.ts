/**
 * The rejection of requests the scheduler will not run: scheduled after
 * `close()`, or cancelled by `close({ drain: false })`. For an execution that
 * was running and failed after being aborted, `cause` is the task's error.
 *
 * @example
 * ```ts
 * await scheduler.schedule(key, task).catch((e) => {
 *   if (e instanceof SchedulerClosedError) return; // shutting down
 *   throw e;
 * });
 * ```
 */
export class SchedulerClosedError extends Error {
  override readonly name = 'SchedulerClosedError';
  /** The key of the request. */
  readonly key: string;

  constructor(key: string, options?: { cause?: unknown }) {
    super(`the scheduler is closed: ${JSON.stringify(key)} will not run`, options);
    this.key = key;
  }
}
