import { Agent } from "undici";
import { RESPONSE_READ_CAP_BYTES } from "../../src/delivery/http-sender.js";
import { postOnce, postTargetOf, type PostTarget } from "../../src/delivery/post-once.js";
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

const targets = new Map<string, PostTarget>();

/** The URL as undici's dispatcher takes it. */
export function postTarget(url: string): PostTarget {
  let target = targets.get(url);
  if (!target) {
    target = postTargetOf(new URL(url));
    targets.set(url, target);
  }
  return target;
}

/**
 * The baselines' webhook job: POST the signed body and read the answer, through the same
 * `postOnce` as our sender (src/delivery/post-once.ts), so every system runs the same HTTP code.
 * Never throws.
 */
export async function postSigned(
  agent: Agent,
  url: string,
  input: { id: string; body: string; secret: string; attemptNumber: number },
): Promise<PostResult> {
  const startedAt = new Date();
  const started = performance.now();
  const outcome = await postOnce(agent, {
    target: postTarget(url),
    headers: signedHeaders(input.id, input.body, input.secret, input.attemptNumber),
    body: input.body,
    timeoutMs: 10_000,
    readCapBytes: RESPONSE_READ_CAP_BYTES,
  });
  const status = outcome.kind === "answered" ? outcome.status : null;
  const error = outcome.kind === "answered" ? null : outcome.kind === "failed" ? outcome.error.message : outcome.kind;
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
