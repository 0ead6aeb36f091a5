const UNITS_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses "500ms", "10s", "10m", "24h", "30d" or a bare "0" into milliseconds.
 * A bare non-zero number is refused: "10" could mean seconds or milliseconds.
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (trimmed === "0") return 0;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(trimmed);
  if (!match) {
    throw new Error(`"${text}" is not a duration (use a unit: 500ms, 10s, 5m, 24h, 30d)`);
  }
  const ms = Math.round(Number(match[1]) * (UNITS_MS[match[2] as string] as number));
  if (!Number.isSafeInteger(ms)) throw new Error(`"${text}" is too long a duration`);
  return ms;
}

/** The longest delay of a retry schedule: each is stored as a Postgres integer of milliseconds. */
export const MAX_RETRY_DELAY_MS = 2_147_483_647;

/** Parses a retry schedule such as "0,10s,60s": one delay before each attempt. */
export function parseSchedule(text: string): number[] {
  const parts = text.split(",").map((part) => part.trim());
  if (parts.length === 0 || parts.some((part) => part === "")) {
    throw new Error(`"${text}" is not a list of delays such as 0,10s,60s`);
  }
  const delays = parts.map(parseDuration);
  if (delays.length > 50) throw new Error("a retry schedule has at most 50 attempts");
  if (delays.some((delay) => delay > MAX_RETRY_DELAY_MS)) {
    throw new Error(`a retry delay is at most ${MAX_RETRY_DELAY_MS}ms (about 24.8 days)`);
  }
  return delays;
}
