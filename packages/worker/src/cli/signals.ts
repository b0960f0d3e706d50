/**
 * How the long-running commands (`worker`, `board`) learn to stop: the
 * first SIGTERM or SIGINT. Later signals are left to the command (the
 * worker exits at once on a second one).
 */

/** Resolves with the first SIGTERM or SIGINT, then stops listening. */
export function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
