/**
 * Limits failed logins, per user name and per client IP, in this process's
 * memory. NOTE: each board replica counts on its own, and a restart forgets
 * the counts; with R replicas an attacker gets R times the attempts. Good
 * enough against guessing at scrypt speed; put a shared limiter (Redis) in
 * front if the board is exposed widely.
 */

/** Failures of one user name within the window before it is locked. */
export const LOGIN_FAILURES_PER_USER_DEFAULT = 5;
/** Failures from one IP within the window before it is locked. */
export const LOGIN_FAILURES_PER_IP_DEFAULT = 20;
/** The window, and how long a lock lasts from the first failure. */
export const LOGIN_WINDOW_MS_DEFAULT = 15 * 60_000;
/** Keys tracked at most; the oldest are dropped past this. */
const MAX_KEYS = 10_000;

export interface LoginLimiterOptions {
  failuresPerUser?: number;
  failuresPerIp?: number;
  windowMs?: number;
  now?: () => number;
}

interface Window {
  failures: number;
  startedAt: number;
}

export class LoginLimiter {
  readonly #windows = new Map<string, Window>();
  readonly #perUser: number;
  readonly #perIp: number;
  readonly #windowMs: number;
  readonly #now: () => number;

  constructor(options: LoginLimiterOptions = {}) {
    this.#perUser = options.failuresPerUser ?? LOGIN_FAILURES_PER_USER_DEFAULT;
    this.#perIp = options.failuresPerIp ?? LOGIN_FAILURES_PER_IP_DEFAULT;
    this.#windowMs = options.windowMs ?? LOGIN_WINDOW_MS_DEFAULT;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Milliseconds until this user name or IP may try again, or 0 when it may
   * try now. Counts nothing: see {@link reserve} for an attempt.
   */
  retryAfterMs(user: string, ip: string): number {
    return Math.max(
      this.#lockedFor(userKey(user), this.#perUser),
      this.#lockedFor(ipKey(ip), this.#perIp),
    );
  }

  /**
   * Counts an attempt as failed before its password is checked, and
   * returns 0; or, when the name or IP is locked, counts nothing and
   * returns the wait in milliseconds. NOTE: counted up front, because the
   * check awaits scrypt: a burst of parallel attempts would otherwise all
   * pass the limit before the first failure was counted. Call
   * {@link succeeded} when the password was right.
   */
  reserve(user: string, ip: string): number {
    const waitMs = this.retryAfterMs(user, ip);
    if (waitMs > 0) return waitMs;
    this.#count(userKey(user));
    this.#count(ipKey(ip));
    return 0;
  }

  /**
   * A reserved attempt had the right password: its user name's failures
   * are cleared, and its IP is forgiven this one attempt (not the others).
   */
  succeeded(user: string, ip: string): void {
    this.#windows.delete(userKey(user));
    const window = this.#current(ipKey(ip));
    if (window && window.failures > 0) window.failures--;
  }

  #lockedFor(key: string, limit: number): number {
    const window = this.#current(key);
    if (!window || window.failures < limit) return 0;
    return window.startedAt + this.#windowMs - this.#now();
  }

  #count(key: string): void {
    const window = this.#current(key);
    if (window) {
      window.failures++;
      return;
    }
    if (this.#windows.size >= MAX_KEYS) {
      const oldest = this.#windows.keys().next().value;
      if (oldest !== undefined) this.#windows.delete(oldest);
    }
    this.#windows.set(key, { failures: 1, startedAt: this.#now() });
  }

  #current(key: string): Window | undefined {
    const window = this.#windows.get(key);
    if (window && this.#now() - window.startedAt >= this.#windowMs) {
      this.#windows.delete(key);
      return undefined;
    }
    return window;
  }
}

function userKey(user: string): string {
  return `user:${user.toLowerCase()}`;
}

function ipKey(ip: string): string {
  return `ip:${ip}`;
}
