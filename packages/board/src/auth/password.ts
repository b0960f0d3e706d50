/**
 * Board passwords, kept only as scrypt hashes:
 * `scrypt$<N>$<r>$<p>$<salt>$<key>`, salt and key in base64url. Made by
 * `lana-jobs hash-password`, checked in constant time.
 */
import {
  randomBytes,
  scrypt as scryptCallback,
  timingSafeEqual,
  type ScryptOptions,
} from 'node:crypto';

/** CPU/memory cost of new hashes: 2^15, about 50 ms and 32 MiB. */
export const SCRYPT_N_DEFAULT = 2 ** 15;
export const SCRYPT_R_DEFAULT = 8;
export const SCRYPT_P_DEFAULT = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/**
 * Bounds on the parameters of a hash read from the configuration, so that a
 * mistyped `BOARD_USERS` cannot make every login take seconds or gigabytes.
 */
const N_MAX = 2 ** 20;
const R_MAX = 32;
const P_MAX = 16;

/** A password hash that cannot be read; names the part that is wrong. */
export class PasswordHashError extends Error {
  constructor(problem: string) {
    super(`not a lana-jobs password hash (scrypt$N$r$p$salt$key): ${problem}`);
    this.name = 'PasswordHashError';
  }
}

interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

export interface HashOptions {
  /** Defaults to {@link SCRYPT_N_DEFAULT}; a power of two. */
  N?: number;
  r?: number;
  p?: number;
}

/** Hashes a password with a fresh random salt. */
export async function hashPassword(
  password: string,
  options: HashOptions = {},
): Promise<string> {
  if (password.length === 0) throw new Error('the password is empty');
  const params = {
    N: options.N ?? SCRYPT_N_DEFAULT,
    r: options.r ?? SCRYPT_R_DEFAULT,
    p: options.p ?? SCRYPT_P_DEFAULT,
  };
  checkParams(params.N, params.r, params.p);
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(password, salt, KEY_BYTES, params);
  return [
    'scrypt',
    params.N,
    params.r,
    params.p,
    salt.toString('base64url'),
    key.toString('base64url'),
  ].join('$');
}

/**
 * Whether `password` matches `hash`. Throws {@link PasswordHashError} when
 * the hash itself is malformed (a configuration error, not a wrong password).
 */
export async function verifyPassword(
  password: string,
  hash: string,
): Promise<boolean> {
  const parsed = parseHash(hash);
  const key = await scrypt(password, parsed.salt, parsed.key.length, parsed);
  return timingSafeEqual(key, parsed.key);
}

export function parseHash(hash: string): ParsedHash {
  const parts = hash.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') {
    throw new PasswordHashError('expected 6 parts starting with scrypt');
  }
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  checkParams(N, r, p);
  const salt = Buffer.from(parts[4]!, 'base64url');
  const key = Buffer.from(parts[5]!, 'base64url');
  if (salt.length < 8) throw new PasswordHashError('salt shorter than 8 bytes');
  if (key.length < 16) throw new PasswordHashError('key shorter than 16 bytes');
  return { N, r, p, salt, key };
}

function checkParams(N: number, r: number, p: number): void {
  if (!Number.isInteger(N) || N < 2 || N > N_MAX || (N & (N - 1)) !== 0) {
    throw new PasswordHashError(`N must be a power of two ≤ ${N_MAX}`);
  }
  if (!Number.isInteger(r) || r < 1 || r > R_MAX) {
    throw new PasswordHashError(`r must be 1-${R_MAX}`);
  }
  if (!Number.isInteger(p) || p < 1 || p > P_MAX) {
    throw new PasswordHashError(`p must be 1-${P_MAX}`);
  }
}

function scrypt(
  password: string,
  salt: Buffer,
  length: number,
  params: { N: number; r: number; p: number },
): Promise<Buffer> {
  // Node's default memory cap (32 MiB) is exactly what N = 2^15, r = 8
  // needs, which it refuses; allow what the parameters ask for.
  const options: ScryptOptions = {
    ...params,
    maxmem: 256 * params.N * params.r + 1024 * 1024,
  };
  return new Promise((resolve, reject) => {
    scryptCallback(password, salt, length, options, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}
