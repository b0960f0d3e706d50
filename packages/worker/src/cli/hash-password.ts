/**
 * `lana-jobs hash-password`: prints the scrypt hash of a password for
 * `BOARD_USERS`. The password is read from standard input (one line), or
 * asked for twice without echo on a terminal; never taken as an argument,
 * where it would land in the shell history and the process list.
 */
import { Command } from 'commander';
import { UsageError } from './usage-error.js';

export function hashPasswordCommand(): Command {
  const command = new Command('hash-password')
    .description(
      "print the hash of a board user's password, for BOARD_USERS (name:role:hash); reads it from standard input, or asks on a terminal",
    )
    .action(async () => {
      const password = process.stdin.isTTY
        ? await askTwice()
        : await readStdinLine();
      if (password === '') {
        throw new UsageError('the password is empty', command);
      }
      // NOTE: loaded here, as in the board command: see there.
      const { hashPassword } = await import('@lana-jobs/board');
      process.stdout.write(`${await hashPassword(password)}\n`);
    });
  return command;
}

/** All of standard input, less one trailing line break. */
async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function askTwice(): Promise<string> {
  const first = await askHidden('Password: ');
  const second = await askHidden('Again: ');
  if (first !== second)
    throw new Error('the two passwords differ; nothing printed');
  return first;
}

/** Reads one line from the terminal in raw mode, echoing nothing. */
function askHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise((resolve, reject) => {
    let typed = '';
    const done = (error?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(typed);
    };
    const onData = (data: Buffer) => {
      for (const char of data.toString('utf8')) {
        if (char === '\r' || char === '\n') return done();
        if (char === '\u0003') return done(new Error('interrupted'));
        if (char === '\u007f' || char === '\b') typed = typed.slice(0, -1);
        else typed += char;
      }
    };
    stdin.on('data', onData);
  });
}
