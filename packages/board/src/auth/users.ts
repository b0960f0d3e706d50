/**
 * The board's users (from `BOARD_USERS`) and the check of their passwords.
 */
import { createHash } from 'node:crypto';
import type { BoardRole, BoardUser, Logger } from '@lana-jobs/core';
import { hashPassword, verifyPassword } from './password.js';

/** Who is making a request, and how they proved it. */
export interface Principal {
  name: string;
  role: BoardRole;
  via: 'session' | 'basic';
}

/**
 * How long a successful `Authorization: Basic` check is remembered, so that
 * an API client's every request does not cost a scrypt (~50 ms of CPU).
 * A password changed in `BOARD_USERS` needs a restart anyway.
 */
export const BASIC_CACHE_MS_DEFAULT = 60_000;
const BASIC_CACHE_MAX = 1_000;

export class BoardUsers {
  readonly #byName: Map<string, BoardUser>;
  readonly #logger: Logger;
  readonly #cache = new Map<string, number>();
  readonly #inFlight = new Map<string, Promise<BoardUser | null>>();
  readonly #cacheMs: number;
  #dummyHash: Promise<string> | undefined;

  constructor(
    users: readonly BoardUser[],
    logger: Logger,
    cacheMs = BASIC_CACHE_MS_DEFAULT,
  ) {
    this.#byName = new Map(users.map((u) => [u.name, u]));
    this.#logger = logger;
    this.#cacheMs = cacheMs;
  }

  find(name: string): BoardUser | undefined {
    return this.#byName.get(name);
  }

  /**
   * The user whose name and password these are, or null. An unknown name
   * costs a scrypt too, so timing does not tell which names exist.
   */
  async verify(name: string, password: string): Promise<BoardUser | null> {
    const user = this.#byName.get(name);
    const hash = user?.passwordHash ?? (await this.#dummy());
    try {
      const ok = await verifyPassword(password, hash);
      return ok && user ? user : null;
    } catch (error) {
      this.#logger.error(
        { err: error, user: name },
        'the password hash of this board user is malformed; fix BOARD_USERS',
      );
      return null;
    }
  }

  /**
   * What a Basic check of these credentials knows without a new scrypt: the
   * user while a success is remembered, or the check of the very same
   * credentials in flight (an API client's parallel first requests share
   * one scrypt, and one attempt of the failed-login limit); else undefined.
   */
  known(
    name: string,
    password: string,
  ): BoardUser | Promise<BoardUser | null> | undefined {
    const user = this.#byName.get(name);
    const key = this.#key(name, password);
    const until = this.#cache.get(key);
    if (user && until !== undefined && until > Date.now()) return user;
    this.#cache.delete(key);
    return this.#inFlight.get(key);
  }

  /** {@link verify} with a short memory of successes, for Basic auth. */
  async verifyCached(
    name: string,
    password: string,
  ): Promise<BoardUser | null> {
    const known = this.known(name, password);
    if (known !== undefined) return known;

    const key = this.#key(name, password);
    const check = this.verify(name, password);
    this.#inFlight.set(key, check);
    try {
      const verified = await check;
      if (verified) this.#remember(key);
      return verified;
    } finally {
      this.#inFlight.delete(key);
    }
  }

  #key(name: string, password: string): string {
    return cacheKey(name, password, this.#byName.get(name)?.passwordHash ?? '');
  }

  #remember(key: string): void {
    if (this.#cache.size >= BASIC_CACHE_MAX) this.#cache.clear();
    this.#cache.set(key, Date.now() + this.#cacheMs);
  }

  #dummy(): Promise<string> {
    this.#dummyHash ??= hashPassword('not a password of anyone');
    return this.#dummyHash;
  }
}

/** The cache holds a digest, never the password itself. */
function cacheKey(name: string, password: string, hash: string): string {
  return createHash('sha256')
    .update(`${name}\0${password}\0${hash}`)
    .digest('base64url');
}
