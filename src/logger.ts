import { createRequire } from "node:module";
import pino, { type DestinationStream, type Logger } from "pino";

/** Fields that may hold credentials, wherever they sit; pino replaces their values before a line is written. */
export const REDACTED_PATHS = [
  "apiKey",
  "signingSecret",
  "secret",
  "secrets",
  "token",
  "password",
  "authorization",
  "internalApiToken",
  "INTERNAL_API_TOKEN",
  "DATABASE_URL",
  "headers.authorization",
  'headers["webhook-signature"]',
  'headers["x-webhook-signature"]',
  "*.apiKey",
  "*.signingSecret",
  "*.secret",
  "*.secrets",
  "*.token",
  "*.password",
  "*.authorization",
  "*.internalApiToken",
  "*.INTERNAL_API_TOKEN",
  "*.DATABASE_URL",
  "*.headers.authorization",
  '*.headers["webhook-signature"]',
  '*.headers["x-webhook-signature"]',
  "*.*.authorization",
];

/**
 * Credential shapes scrubbed from every written line, whatever field or message carries them
 * (an error message quoting a query's parameters, a renamed signature header, a stack trace).
 * Each keeps enough to recognise what was removed.
 */
const SECRET_PATTERNS: Array<[RegExp, string]> = [
  [/whsec_[A-Za-z0-9+/]{16,}={0,2}/g, "whsec_[redacted]"],
  [/\b(wo_[A-Za-z0-9_-]{8})[A-Za-z0-9_-]{8,}/g, "$1[redacted]"],
  [/\bv1,[A-Za-z0-9+/]{40,}={0,2}/g, "v1,[redacted]"],
  [/\bsha256=[0-9a-fA-F]{64}\b/g, "sha256=[redacted]"],
  [/\b(Bearer\s+)[^\s"\\]+/gi, "$1[redacted]"],
  [/(postgres(?:ql)?:\/\/[^:/@\s"]+:)[^@\s"]+@/g, "$1[redacted]@"],
  // drizzle's "Failed query: …\nparams: …" quoted anywhere (a message, a stack, a string field): the
  // parameters are customers' data. Matched inside the JSON string, up to its closing quote.
  [/(\\nparams: )(?:[^"\\]|\\.)*/g, "$1[redacted]"],
];

export function scrubSecrets(text: string): string {
  let scrubbed = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) scrubbed = scrubbed.replace(pattern, replacement);
  return scrubbed;
}

/**
 * One pattern for credentials that have no shape (INTERNAL_API_TOKEN): the value as it is, as a JSON
 * string escapes it, and percent-encoded (a token pasted into a request path), longest first.
 */
function valuePattern(secrets: ReadonlyArray<string | undefined>): RegExp | undefined {
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (!secret) continue;
    forms.add(secret);
    forms.add(JSON.stringify(secret).slice(1, -1));
    try {
      forms.add(encodeURIComponent(secret));
    } catch {
      // an unpaired surrogate cannot be percent-encoded, nor arrive so
    }
  }
  if (forms.size === 0) return undefined;
  const escaped = [...forms].sort((a, b) => b.length - a.length).map((form) => form.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  // Case-insensitive for the hex of percent-encodings; scrubbing a look-alike too costs nothing.
  return new RegExp(escaped.join("|"), "gi");
}

function scrubbing(destination: DestinationStream, secrets: ReadonlyArray<string | undefined>): DestinationStream {
  const values = valuePattern(secrets);
  return {
    write: (line: string) => {
      const scrubbed = scrubSecrets(line);
      destination.write(values ? scrubbed.replace(values, "[redacted]") : scrubbed);
    },
  };
}

export interface LoggerOptions {
  /** Where JSON lines go: stdout (pretty on a terminal with pino-pretty installed) when unset. */
  destination?: DestinationStream;
  /** Credentials without a recognisable shape, scrubbed by value from every line (unset entries are skipped). */
  secrets?: ReadonlyArray<string | undefined>;
}

/** Not every `write` is a stream: a destination is told from options by having one. */
function isDestination(value: DestinationStream | LoggerOptions): value is DestinationStream {
  return typeof (value as { write?: unknown }).write === "function";
}

export function createLogger(level: string, destinationOrOptions: DestinationStream | LoggerOptions = {}): Logger {
  const options = isDestination(destinationOrOptions) ? { destination: destinationOrOptions } : destinationOrOptions;
  return pino(
    {
      level,
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      serializers: { err: serializeError, error: serializeError },
      hooks: {
        // Given an error and no message, pino writes the error's own message as the line's; use the
        // serialized one, which has no query values.
        logMethod(args, method) {
          const [first] = args;
          if (args.length === 1 && isErrorLike(first)) {
            return method.call(this, first, (serializeError(first) as { message: string }).message);
          }
          return method.apply(this, args);
        },
      },
    },
    scrubbing(options.destination ?? defaultDestination(), options.secrets ?? []),
  );
}

/** Fields of a Postgres error that name things (SQLSTATE, table, constraint), never values. */
const SQL_ERROR_FIELDS = ["code", "severity", "schema", "table", "column", "dataType", "constraint", "routine"] as const;

/** Properties that carry a query's values (pg's `detail`, `where`, `internalQuery`; drizzle's `params`). */
const VALUE_FIELDS = new Set(["params", "parameters", "values", "detail", "where", "internalQuery", "hint", "raw"]);

type ErrorLike = Error & Record<string, unknown>;

function isErrorLike(value: unknown): value is ErrorLike {
  return value instanceof Error || (typeof value === "object" && value !== null && "message" in value && "stack" in value);
}

/** drizzle's DrizzleQueryError: `query` text and its `params`, whose message quotes both. */
function isQueryError(error: ErrorLike): error is ErrorLike & { query: string } {
  return typeof error.query === "string" && "params" in error;
}

/** An error the Postgres server raised (pg's DatabaseError): a SQLSTATE and a severity. */
function isSqlError(error: ErrorLike): boolean {
  return typeof error.code === "string" && /^[0-9A-Z]{5}$/.test(error.code) && "severity" in error;
}

/**
 * The `err` (and `error`) of a log line, without the values of a failed query: a drizzle query
 * error keeps its query text and drops its parameters; a Postgres error keeps its SQLSTATE and the
 * names of what it concerns (table, constraint, column), and the quoted values in its message
 * (`invalid input syntax for type uuid: "…"`) are cut. Causes nest, each serialized alike.
 */
export function serializeError(value: unknown, depth = 0): unknown {
  if (!isErrorLike(value)) return value;
  const type = typeof value.constructor === "function" ? value.constructor.name : value.name;
  const serialized: Record<string, unknown> = { type };
  let message: string;
  if (isQueryError(value)) {
    message = `Failed query: ${value.query}`;
  } else if (isSqlError(value)) {
    for (const field of SQL_ERROR_FIELDS) if (value[field] !== undefined) serialized[field] = value[field];
    const names = new Set(SQL_ERROR_FIELDS.map((field) => value[field]).filter((name) => typeof name === "string"));
    message = String(value.message).replace(/"((?:[^"]|"")*)"/g, (quoted, name: string) => (names.has(name) ? quoted : '"…"'));
  } else {
    message = String(value.message);
    for (const key of Object.keys(value)) {
      const field = value[key];
      if (VALUE_FIELDS.has(key) || key === "cause" || isErrorLike(field)) continue;
      if (field === null || ["string", "number", "boolean"].includes(typeof field)) serialized[key] = field;
    }
  }
  serialized.message = message;
  const frames = typeof value.stack === "string" ? value.stack.split("\n").filter((line) => /^\s+at /.test(line)) : [];
  serialized.stack = [`${type}: ${message}`, ...frames].join("\n");
  if (depth < 5 && value.cause !== undefined) serialized.cause = serializeError(value.cause, depth + 1);
  const errors = (value as { errors?: unknown }).errors;
  if (depth < 5 && Array.isArray(errors)) serialized.aggregateErrors = errors.map((error) => serializeError(error, depth + 1));
  return serialized;
}

/**
 * stdout as JSON lines, except on a terminal with pino-pretty installed (a dev dependency, absent
 * from production installs), where a person reads them. Pipes, files and containers get JSON.
 */
function defaultDestination(): DestinationStream {
  if (process.stdout.isTTY) {
    try {
      // In-process and synchronous (no transport thread); loaded lazily because production lacks it.
      const pretty = createRequire(import.meta.url)("pino-pretty") as (options: object) => DestinationStream;
      return pretty({ colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" });
    } catch {
      // not installed: JSON
    }
  }
  return pino.destination(1);
}
