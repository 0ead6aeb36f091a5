import { z } from "zod";
import { parseCidrList } from "./delivery/address-policy.js";
import { STATEMENT_CONCURRENCY } from "./jobs/natural-batcher.js";
import { MAX_RETRY_DELAY_MS, parseDuration, parseSchedule } from "./duration.js";
import { DELIVERY_POLICY_DEFAULTS } from "./outbox/policy.js";
import { REPLAY_PACING } from "./outbox/replay.js";
import { WORKER_DEFAULTS } from "./outbox/worker/options.js";

/** A text variable turned into a value by `parse`; a parse error becomes the variable's message. */
const parsedText =
  <T>(parse: (value: string) => T) =>
  (fallback: string) =>
    z
      .string()
      .default(fallback)
      .transform((value, ctx) => {
        try {
          return parse(value);
        } catch (error) {
          ctx.addIssue({ code: "custom", message: (error as Error).message });
          return z.NEVER;
        }
      });

const duration = parsedText(parseDuration);
/** A delay the outbox stores as a retry delay (an int column of milliseconds). */
const retryDelay = parsedText((text) => {
  const ms = parseDuration(text);
  if (ms > MAX_RETRY_DELAY_MS) throw new Error(`must be at most ${MAX_RETRY_DELAY_MS}ms (about 24.8 days)`);
  return ms;
});
const schedule = parsedText(parseSchedule);

const integer = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const boolean = z
  .enum(["true", "false", "1", "0", ""])
  .default("false")
  .transform((value) => value === "true" || value === "1");

const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value === "" ? undefined : value));

/** The fewest characters of a secret set by hand: a short one is guessed or brute-forced. */
const MIN_SECRET_LENGTH = 32;
/** A secret that may be unset, and is long enough when set. */
const optionalSecret = optionalText.refine(
  (value) => value === undefined || value.length >= MIN_SECRET_LENGTH,
  `must be at least ${MIN_SECRET_LENGTH} characters (e.g. openssl rand -hex 32)`,
);

const cidrList = parsedText((value) => {
  parseCidrList(value);
  return value
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
})("");

const optionalPositiveInteger = z
  .string()
  .optional()
  .transform((value, ctx) => {
    if (value === undefined || value.trim() === "") return undefined;
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < 1 || parsed > 1_000_000) {
      ctx.addIssue({ code: "custom", message: "must be a whole number from 1 to 1000000, or unset" });
      return z.NEVER;
    }
    return parsed;
  });

/** A postgres:// (or postgresql://) connection string, or unset. */
const databaseUrl = optionalText.refine(
  (value) => value === undefined || isPostgresUrl(value),
  "is not a postgres:// URL: expected postgres://user:password@host:5432/dbname",
);

function isPostgresUrl(value: string): boolean {
  try {
    return ["postgres:", "postgresql:"].includes(new URL(value).protocol);
  } catch {
    return false;
  }
}

/**
 * Every environment variable the service reads, with its default.
 * docs/configuration.md lists every one with its default; test/config.test.ts checks it against this object.
 */
export const configSchema = z.object({
  DATABASE_URL: databaseUrl,
  REQUIRE_DATABASE_URL: boolean,
  EMBEDDED_DATA_DIR: z.string().min(1).default("./.data/postgres"),
  EMBEDDED_PG_PORT: integer(54329, 1, 65535),
  PORT: integer(3000, 0, 65535),
  HOST: z.string().default("0.0.0.0"),
  HTTP_HEADERS_TIMEOUT_MS: integer(10_000, 100, 600_000),
  HTTP_REQUEST_TIMEOUT_MS: integer(30_000, 100, 3_600_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: integer(5_000, 100, 600_000),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  INTERNAL_API_TOKEN: optionalSecret,
  // The default delivery policy is stated on the outbox's (src/outbox/policy.ts).
  WEBHOOK_RETRY_DELAYS: schedule(DELIVERY_POLICY_DEFAULTS.retryDelaysMs.map((ms) => `${ms}ms`).join(",")),
  WEBHOOK_TIMEOUT_MS: integer(DELIVERY_POLICY_DEFAULTS.timeoutMs, 100, 300_000),
  WEBHOOK_CONNECT_TIMEOUT_MS: integer(DELIVERY_POLICY_DEFAULTS.connectTimeoutMs, 100, 300_000),
  VEO_WEBHOOK_RETRY_DELAYS: schedule("0,30s,30s,30s,30s"),
  VEO_WEBHOOK_TIMEOUT_MS: integer(30_000, 100, 300_000),
  VEO_WEBHOOK_CONNECT_TIMEOUT_MS: integer(10_000, 100, 300_000),
  WEBHOOK_RETRY_AFTER_CAP: retryDelay(`${WORKER_DEFAULTS.retryAfterCapMs}ms`),
  WEBHOOK_HEADER_PREFIX: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9-]*-$/, "must look like X-Webhook- (letters, digits, dashes, ending in a dash)")
    .default(WORKER_DEFAULTS.headerPrefix),
  WEBHOOK_ALLOW_INSECURE_URLS: boolean,
  WEBHOOK_ALLOWED_CIDRS: cidrList,
  SECRET_ROTATION_OVERLAP: duration("24h"),
  API_RATE_LIMIT: optionalPositiveInteger,
  // The worker's defaults are stated on its options (src/outbox/worker/options.ts).
  WORKER_CONCURRENCY: integer(WORKER_DEFAULTS.concurrency, 1, 10_000),
  DESTINATION_CONCURRENCY: integer(WORKER_DEFAULTS.destinationConcurrency, 1, 10_000),
  DESTINATION_SLOW_AFTER_MS: integer(WORKER_DEFAULTS.destinationSlowAfterMs, 0, 600_000),
  DESTINATION_FAILURE_THRESHOLD: integer(WORKER_DEFAULTS.destinationFailureThreshold, 1, 1_000_000),
  DESTINATION_COOLDOWN: duration(`${WORKER_DEFAULTS.destinationCooldownMs}ms`),
  DESTINATION_DISABLE_AFTER: duration(`${WORKER_DEFAULTS.destinationDisableAfterMs}ms`),
  WORKER_BATCH_SIZE: integer(WORKER_DEFAULTS.batchSize, 1, 1_000),
  WORKER_POLL_INTERVAL_MS: integer(WORKER_DEFAULTS.pollIntervalMs, 10, 60_000),
  WORKER_BATCH_WINDOW_MS: integer(WORKER_DEFAULTS.batchWindowMs, 0, 1_000),
  WORKER_MAX_INTERRUPTIONS: integer(WORKER_DEFAULTS.maxInterruptions, 1, 100),
  LEASE_MARGIN_MS: integer(WORKER_DEFAULTS.leaseMarginMs, 0, 600_000),
  SHUTDOWN_GRACE_MS: integer(WORKER_DEFAULTS.shutdownGraceMs, 0, 600_000),
  REPORT_CONCURRENCY: integer(STATEMENT_CONCURRENCY, 1, 100),
  REPLAY_RATE: integer(REPLAY_PACING.batchSize, 0, 100_000),
  JOB_TIMEOUT: duration("10m"),
  DELIVERY_RETENTION: duration("30d"),
  JOB_SWEEP_INTERVAL_MS: integer(5_000, 10, 3_600_000),
  // Unset: a random secret per process, so dashboard sessions end when it restarts (logged at start).
  DASHBOARD_SESSION_SECRET: optionalSecret,
  DASHBOARD_SESSION_TTL: duration("8h"),
});

const SECRET_VARIABLES = new Set(["DATABASE_URL", "INTERNAL_API_TOKEN", "DASHBOARD_SESSION_SECRET"]);

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((problem) => `  ${problem}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Validates the environment, naming every bad variable in one error. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const result = configSchema.safeParse(env);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => {
        const name = String(issue.path[0]);
        const shown = SECRET_VARIABLES.has(name) ? "hidden" : JSON.stringify(env[name]);
        return `${name}: ${issue.message} (got ${shown})`;
      }),
    );
  }
  if (result.data.REQUIRE_DATABASE_URL && !result.data.DATABASE_URL) {
    throw new ConfigError([
      "DATABASE_URL: not set, and REQUIRE_DATABASE_URL=true (as in the container image, which has no embedded PostgreSQL): " +
        "set DATABASE_URL=postgres://user:password@host:5432/dbname",
    ]);
  }
  return result.data;
}

/** A complete config for tests and embedders: defaults plus overrides. */
export function configWith(overrides: Partial<Config>): Config {
  return { ...configSchema.parse({}), ...overrides };
}
