/** True when an error means "the database cannot be reached right now", not "the query is wrong". */
export function isDatabaseUnavailable(error: unknown): boolean {
  const candidate = error as { code?: unknown; message?: unknown; cause?: unknown };
  const code = typeof candidate?.code === "string" ? candidate.code : "";
  if (/^(08|57P0[123])/.test(code) || /^E(CONNREFUSED|CONNRESET|PIPE|HOSTUNREACH|TIMEDOUT)$/.test(code)) return true;
  const message = typeof candidate?.message === "string" ? candidate.message : "";
  if (/Connection terminated|timeout exceeded when trying to connect|connection error|Query read timeout/i.test(message)) {
    return true;
  }
  return candidate?.cause !== undefined && candidate.cause !== error && isDatabaseUnavailable(candidate.cause);
}
