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
  return pino({ level, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } }, destination);
}
