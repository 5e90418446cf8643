// Types of the helpers of redis.mjs that the test harness shares.
/** A free TCP port on loopback, chosen by the OS. */
export function freePort(): Promise<number>;
/** PING over a raw socket; resolves true on +PONG. */
export function ping(port: number): Promise<boolean>;
