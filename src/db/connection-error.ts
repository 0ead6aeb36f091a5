import type { Database } from "./client.js";

/** The database named by a connection string cannot be reached; the message says why, in one line. */
export class DatabaseConnectError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DatabaseConnectError";
  }
}

/** Where a connection string points, for messages: never its password. */
function target(url: string): { hostPort: string; host: string; database: string; user: string } {
  try {
    const parsed = new URL(url);
    const socketHost = parsed.searchParams.get("host");
    const host = socketHost ?? (decodeURIComponent(parsed.hostname.replace(/^\[|\]$/g, "")) || "localhost");
    const port = parsed.port || "5432";
    return {
      host,
      hostPort: host.startsWith("/") ? `${host} (socket, port ${port})` : `${host}:${port}`,
      database: decodeURIComponent(parsed.pathname.slice(1)) || decodeURIComponent(parsed.username) || "postgres",
      user: decodeURIComponent(parsed.username) || "(the OS user)",
    };
  } catch {
    return { host: "?", hostPort: "?", database: "?", user: "?" };
  }
}

function codeOf(error: unknown): string {
  const candidate = error as { code?: unknown; errors?: unknown[]; cause?: unknown } | undefined;
  if (typeof candidate?.code === "string") return candidate.code;
  // Node's happy-eyeballs connect (a host with several addresses) fails with an AggregateError.
  const first = candidate?.errors?.[0] as { code?: unknown } | undefined;
  if (typeof first?.code === "string") return first.code;
  return candidate?.cause !== undefined && candidate.cause !== error ? codeOf(candidate.cause) : "";
}

/**
 * Why `url` could not be reached, from the pg and Node error codes, as one line naming `source`
 * (the variable or server it came from). The one place these codes become words.
 */
export function describeConnectionFailure(error: unknown, url: string, source = "DATABASE_URL"): string {
  const { hostPort, host, database, user } = target(url);
  const message = error instanceof Error ? error.message : String(error);
  const code = codeOf(error);
  let reason: string;
  switch (code) {
    case "3D000":
      reason = `database "${database}" does not exist on ${hostPort}`;
      break;
    case "28P01":
      reason = `password authentication failed for user "${user}" at ${hostPort}`;
      break;
    case "28000":
      // No pg_hba.conf entry, or no such role: the server's own words name which.
      reason = `${hostPort} does not let user "${user}" in: ${message}`;
      break;
    case "ECONNREFUSED":
      reason = `connection refused at ${hostPort} (is PostgreSQL running there?)`;
      break;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      reason = `host "${host}" not found`;
      break;
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      reason = `${hostPort} cannot be reached (${code})`;
      break;
    case "57P03":
      reason = `the server at ${hostPort} is starting up or shutting down`;
      break;
    default:
      reason = /timeout|terminated unexpectedly/i.test(message)
        ? `no PostgreSQL answered at ${hostPort} within 5 s`
        : `${hostPort}: ${message.split("\n")[0]}`;
  }
  return `cannot connect to PostgreSQL (${source}): ${reason}`;
}

/** Runs `select 1`; a failure becomes a DatabaseConnectError saying why. */
export async function checkConnection(database: Database, url: string, source?: string): Promise<void> {
  try {
    await database.query("select 1");
  } catch (error) {
    throw new DatabaseConnectError(describeConnectionFailure(error, url, source), { cause: error });
  }
}
