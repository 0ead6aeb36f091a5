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
];

export function scrubSecrets(text: string): string {
  let scrubbed = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) scrubbed = scrubbed.replace(pattern, replacement);
  return scrubbed;
}

function scrubbing(destination: DestinationStream): DestinationStream {
  return { write: (line: string) => destination.write(scrubSecrets(line)) };
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    { level, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } },
    scrubbing(destination ?? defaultDestination()),
  );
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
