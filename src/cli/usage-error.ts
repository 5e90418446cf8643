/** A usage error of the `cellgate` command: its message is printed and the command exits with 2. */
export class UsageError extends Error {}
