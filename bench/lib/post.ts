import { Agent, request } from "undici";
import { signedHeaders } from "./payload.js";

/** One keep-alive agent per process, configured like the service's HttpSender. */
export const newAgent = (): Agent => new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 120_000 });

export interface PostResult {
  ok: boolean;
  status: number | null;
  error: string | null;
  startedAt: Date;
  finishedAt: Date;
  durationMs: number;
}

/** The baselines' webhook job: POST the signed body, read the answer; never throws. */
export async function postSigned(
  agent: Agent,
  url: string,
  input: { id: string; body: string; secret: string; attemptNumber: number },
): Promise<PostResult> {
  const startedAt = new Date();
  const started = performance.now();
  let status: number | null = null;
  let error: string | null = null;
  try {
    const response = await request(url, {
      method: "POST",
      dispatcher: agent,
      headers: signedHeaders(input.id, input.body, input.secret, input.attemptNumber),
      body: input.body,
      signal: AbortSignal.timeout(10_000),
    });
    await response.body.text();
    status = response.statusCode;
  } catch (caught) {
    error = caught instanceof Error ? caught.message : String(caught);
  }
  const ok = status !== null && status >= 200 && status < 300;
  return { ok, status, error, startedAt, finishedAt: new Date(), durationMs: Math.round(performance.now() - started) };
}

/** The attempt table both baselines record into: the same columns our outbox records per attempt. */
export const ATTEMPTS_TABLE_SQL = `
create table if not exists bench_attempts (
  id bigserial primary key,
  job_id text not null,
  attempt_number int not null,
  response_status smallint,
  error_message text,
  started_at timestamptz not null,
  finished_at timestamptz not null,
  duration_ms int not null,
  unique (job_id, attempt_number)
)`;

/** Ends a child process that outlives its parent or its time budget. */
export function exitWhenOrphaned(maxSeconds: number): void {
  process.on("disconnect", () => process.exit(0));
  setTimeout(() => {
    console.error(`${process.argv[1]}: still running after ${maxSeconds} s; exiting`);
    process.exit(3);
  }, maxSeconds * 1000).unref();
}

/** A child process's required setting; a missing one stops it with the variable's name. */
export function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}
