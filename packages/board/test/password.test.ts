import { describe, expect, it } from 'vitest';
import {
  hashPassword,
  parseHash,
  PasswordHashError,
  verifyPassword,
} from '../src/auth/password.js';

describe('board passwords', () => {
  it('a hash verifies its own password only, and two hashes of one password differ (salted)', async () => {
    const hash = await hashPassword('s3cret pass', { N: 2 ** 10 });
    expect(hash).toMatch(
      /^scrypt\$1024\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/,
    );
    expect(await verifyPassword('s3cret pass', hash)).toBe(true);
    expect(await verifyPassword('s3cret pasS', hash)).toBe(false);
    expect(await verifyPassword('', hash)).toBe(false);
    expect(await hashPassword('s3cret pass', { N: 2 ** 10 })).not.toBe(hash);
  });

  it('the default cost is 2^15, which Node would refuse without a raised memory cap', async () => {
    const hash = await hashPassword('x');
    expect(parseHash(hash).N).toBe(2 ** 15);
    expect(await verifyPassword('x', hash)).toBe(true);
  });

  it('a malformed hash is an error naming the part, not a wrong password', async () => {
    await expect(verifyPassword('x', 'bcrypt$2$x')).rejects.toThrow(
      PasswordHashError,
    );
    await expect(
      verifyPassword('x', 'scrypt$1000$8$1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5'),
    ).rejects.toThrow(/N must be a power of two/);
    await expect(
      verifyPassword(
        'x',
        `scrypt$${2 ** 24}$8$1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5`,
      ),
    ).rejects.toThrow(/N must be a power of two ≤ 1048576/);
    await expect(hashPassword('')).rejects.toThrow(/empty/);
  });
});
