import { createRequire } from "node:module";
import pino, { type DestinationStream, type Logger } from "pino";

/** Paths that may hold credentials; pino replaces their values before a line is written. */
export const REDACTED_PATHS = [
  "apiKey",
  "signingSecret",
  "secret",
  "secrets",
  "token",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "req.headers.authorization",
  "headers['webhook-signature']",
  "*.apiKey",
  "*.signingSecret",
  "*.secret",
  "*.secrets",
  "*.token",
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } }, destination ?? defaultDestination());
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
