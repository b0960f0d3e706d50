/**
 * Starts the OpenTelemetry Node SDK. Load it before the application, with
 * `node --import @lana-jobs/core/instrumentation app.js` (or, from source,
 * `--import tsx --import ./packages/core/src/instrumentation.ts`): under
 * ESM the pg, ioredis and express instrumentations patch only modules that
 * load after the import-in-the-middle hook is registered, so starting the
 * SDK from inside the application gives no such spans. (The undici one,
 * for global fetch, listens on diagnostics channels and needs no hook.)
 *
 * Configured by the standard variables: `OTEL_SDK_DISABLED`,
 * `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
 * `OTEL_EXPORTER_OTLP_ENDPOINT` (and `_TRACES_` / `_METRICS_ENDPOINT`,
 * `_HEADERS`, `_TIMEOUT`), `OTEL_TRACES_EXPORTER` and `OTEL_METRICS_EXPORTER`
 * (`otlp`, `console`, `none`), `OTEL_TRACES_SAMPLER` (and `_ARG`),
 * `OTEL_PROPAGATORS`, `OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL` and
 * `_TIMEOUT`, `OTEL_LOG_LEVEL`. OTLP goes over HTTP, as JSON.
 *
 * NOTE: unlike the SDK's own default, nothing starts unless an exporter is
 * asked for (an OTLP endpoint, or `OTEL_TRACES_EXPORTER` /
 * `OTEL_METRICS_EXPORTER`): a dev run without a collector would otherwise
 * retry exports to localhost:4318 for ever. With telemetry off not even the
 * module hook is registered, so it costs nothing. Metrics go out only when
 * asked for (`OTEL_METRICS_EXPORTER` or a metrics endpoint): a worker serves
 * its own Prometheus `/metrics`, and an OTLP endpoint may take traces only.
 */
import { register } from 'node:module';
import { lanaJobsInstrumentations } from './instrumentations.js';
import type { NodeSDK } from '@opentelemetry/sdk-node';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { MetricReader } from '@opentelemetry/sdk-metrics';

// NOTE: first, before anything else loads: see the header.
if (telemetryWanted(process.env)) {
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);
  shutdownOnExit(await startSdk(process.env));
}

type Env = NodeJS.ProcessEnv;

/** Off with `OTEL_SDK_DISABLED=true`, and unless an exporter is asked for. */
function telemetryWanted(env: Env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  return tracesExporters(env).length > 0 || metricsExporters(env).length > 0;
}

/** `OTEL_TRACES_EXPORTER`, else `otlp` when an OTLP endpoint is set. */
function tracesExporters(env: Env): string[] {
  const endpoint =
    env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  return exporterList(env.OTEL_TRACES_EXPORTER, endpoint ? ['otlp'] : []);
}

/** `OTEL_METRICS_EXPORTER`, else `otlp` when a metrics endpoint is set. */
function metricsExporters(env: Env): string[] {
  const endpoint = env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT;
  return exporterList(env.OTEL_METRICS_EXPORTER, endpoint ? ['otlp'] : []);
}

function exporterList(value: string | undefined, fallback: string[]) {
  const names = (value ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  if (names.length === 0) return fallback;
  return names.includes('none') ? [] : names;
}

async function startSdk(env: Env): Promise<NodeSDK> {
  const [{ NodeSDK }, { diag }, resources] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/api'),
    import('@opentelemetry/resources'),
  ]);
  if (!env.OTEL_LOG_LEVEL) diag.setLogger(stderrDiagLogger());
  const sdk = new NodeSDK({
    // NOTE: not the process detector: its `process.command_args` would put
    // a command line (`lana-jobs enqueue … --payload <json>`) in every span.
    resourceDetectors: [resources.envDetector, resources.hostDetector],
    resource: resources.resourceFromAttributes({
      'process.pid': process.pid,
      'process.runtime.name': 'nodejs',
      'process.runtime.version': process.versions.node,
    }),
    spanProcessors: await spanProcessors(tracesExporters(env)),
    metricReaders: await metricReaders(metricsExporters(env), env),
    // Logs stay pino's, on standard error.
    logRecordProcessors: [],
    instrumentations: await lanaJobsInstrumentations(),
  });
  sdk.start();
  return sdk;
}

async function spanProcessors(names: string[]): Promise<SpanProcessor[]> {
  if (names.length === 0) return [];
  const [base, { OTLPTraceExporter }] = await Promise.all([
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
  ]);
  return names.flatMap((name): SpanProcessor[] => {
    // The batch processor reads OTEL_BSP_* itself.
    if (name === 'otlp')
      return [new base.BatchSpanProcessor(new OTLPTraceExporter())];
    if (name === 'console')
      return [new base.SimpleSpanProcessor(new base.ConsoleSpanExporter())];
    warn(`OTEL_TRACES_EXPORTER '${name}' is not supported; use otlp`);
    return [];
  });
}

async function metricReaders(names: string[], env: Env) {
  if (names.length === 0) return [];
  const [sdk, { OTLPMetricExporter }] = await Promise.all([
    import('@opentelemetry/sdk-metrics'),
    import('@opentelemetry/exporter-metrics-otlp-http'),
  ]);
  const timing = {
    exportIntervalMillis: positive(env.OTEL_METRIC_EXPORT_INTERVAL, 60_000),
    exportTimeoutMillis: positive(env.OTEL_METRIC_EXPORT_TIMEOUT, 30_000),
  };
  timing.exportTimeoutMillis = Math.min(
    timing.exportTimeoutMillis,
    timing.exportIntervalMillis,
  );
  return names.flatMap((name): MetricReader[] => {
    const exporter =
      name === 'otlp'
        ? new OTLPMetricExporter()
        : name === 'console'
          ? new sdk.ConsoleMetricExporter()
          : undefined;
    if (exporter)
      return [new sdk.PeriodicExportingMetricReader({ exporter, ...timing })];
    warn(`OTEL_METRICS_EXPORTER '${name}' is not supported; use otlp`);
    return [];
  });
}

/**
 * Flushes and stops the SDK when the process ends. A signal is the app's to
 * handle when it listens for it (its exit then comes through `beforeExit`);
 * when nobody else listens, the SDK shuts down and the signal is raised
 * again, so the default (exiting) still happens.
 */
function shutdownOnExit(sdk: NodeSDK): void {
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= sdk.shutdown().catch((error: unknown) => {
      warn(`telemetry shutdown failed: ${String(error)}`);
    }));
  process.once('beforeExit', () => void stop());
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const onSignal = () => {
      if (process.listenerCount(signal) > 1) return;
      process.off(signal, onSignal);
      void stop().finally(() => process.kill(process.pid, signal));
    };
    process.on(signal, onSignal);
  }
}

/** The SDK's own warnings, as JSON lines on standard error like pino's. */
function stderrDiagLogger() {
  const line =
    (level: number) =>
    (message: string, ...args: unknown[]) => {
      const detail = args.map((arg) => String(arg)).join(' ');
      const msg = detail ? `${message} ${detail}` : message;
      process.stderr.write(
        `${JSON.stringify({ level, time: Date.now(), component: 'otel', msg })}\n`,
      );
    };
  const none = () => {};
  return {
    error: line(50),
    warn: line(40),
    info: none,
    debug: none,
    verbose: none,
  };
}

function warn(message: string): void {
  stderrDiagLogger().warn(message);
}

function positive(value: string | undefined, fallback: number): number {
  const number = Number(value);
  return value && Number.isFinite(number) && number > 0 ? number : fallback;
}
