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

/**
 * JSON lines, always, except on a terminal with pino-pretty installed (a dev dependency: absent
 * from production installs), where a person reads them. Pipes, files and containers get JSON.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } };
  if (!destination && process.stdout.isTTY && prettyAvailable()) {
    return pino({ ...options, transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l" } } });
  }
  return pino(options, destination);
}

function prettyAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve("pino-pretty");
    return true;
  } catch {
    return false;
  }
}
