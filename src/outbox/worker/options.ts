import type { Logger } from "pino";
import type { Database } from "../../db/client.js";
import type { HttpSender } from "../../delivery/http-sender.js";
import type { AttemptRecord, DestinationTransition } from "../sql/record.js";

/** How a worker claims, sends and records. Every default is stated here, once; the CLI's environment maps onto these. */
export interface WorkerSettings {
  /**
   * Attempts in flight at once in this process. Each holds its payload and a connection; a worker
   * that dies interrupts at most this many attempts (retried, spending nothing of their budget).
   * Sized so that five destinations hanging at their cap (5 × 64) still leave 448 slots to the rest,
   * and one fast destination may use half of it: with 512, the 192 slots left were about what the
   * others need in flight at full speed on two cores, and one busy destination drained about 8%
   * slower than with 768.
   * @defaultValue 768
   */
  concurrency: number;
  /**
   * Attempts in flight at once to one slow destination (the URL's host:port: one with an attempt in
   * flight for longer than `destinationSlowAfterMs`), counted over every worker of the database: a
   * destination that hangs holds about this many slots, the rest of its deliveries stay pending
   * with their attempts unspent. Two workers claiming in the same instant may each fill the same
   * free room once.
   * @defaultValue 64
   */
  destinationConcurrency: number;
  /**
   * A destination that this worker has seen answer within this long (in the last this long), and
   * with no attempt in flight for longer, is fast: it may hold up to half of `concurrency` in
   * flight, so one busy healthy destination drains as fast as the engine allows. The slots past
   * `destinationConcurrency` are one share for all destinations together: two busy destinations that
   * hang at the same moment hold `destinationConcurrency` each and that share between them, not
   * half of `concurrency` each, until their attempts time out. Every other
   * destination is held to `destinationConcurrency`: one that hangs or answers slowly, and one that
   * has not answered yet, so a destination that never answers never holds more, even at first.
   * `0` holds every destination to `destinationConcurrency`.
   * @defaultValue 1000
   */
  destinationSlowAfterMs: number;
  /**
   * Consecutive failed attempts to one destination (a tenant's URL), counted over every worker, that
   * open its circuit: its deliveries then wait, spending no attempt, and one probe goes per
   * cool-down. A failed attempt is an answer other than 2xx or a network error; interrupted and
   * unsent attempts do not count.
   * @defaultValue 10
   */
  destinationFailureThreshold: number;
  /**
   * How long an open circuit holds its destination's deliveries back before one probe attempt goes
   * (across every worker). The probe's success closes the circuit; its failure opens it for another
   * cool-down.
   * @defaultValue 30000 (30 s)
   */
  destinationCooldownMs: number;
  /**
   * A destination whose attempts have all failed for this long (since the first failure after its
   * last success) is disabled: its due deliveries fail without being sent until it is enabled.
   * A 410 Gone answer disables it at once.
   * @defaultValue 259200000 (3 d)
   */
  destinationDisableAfterMs: number;
  /**
   * Most deliveries claimed in one round trip.
   * @defaultValue 96
   */
  batchSize: number;
  /**
   * Claims (and writes of results) start at least this long after the previous one, so work that
   * arrives close together shares a round trip. 0 turns this off.
   * @defaultValue 5
   */
  batchWindowMs: number;
  /**
   * How often an idle worker looks for due work when no NOTIFY arrives (retries that come due,
   * a lost NOTIFY, another worker's expired lease).
   * @defaultValue 1000
   */
  pollIntervalMs: number;
  /**
   * Added to each delivery's request timeout to form its lease.
   * @defaultValue 5000
   */
  leaseMarginMs: number;
  /**
   * A delivery whose attempt was interrupted this many times (its worker died or shut down before
   * recording an outcome) fails with a last_error that says so.
   * @defaultValue 5
   */
  maxInterruptions: number;
  /**
   * The longest `Retry-After` honoured on a 429 or 5xx answer.
   * @defaultValue 3600000 (1 h)
   */
  retryAfterCapMs: number;
  /**
   * Prefix of the `Signature` and `Attempt` headers.
   * @defaultValue "X-Webhook-"
   */
  headerPrefix: string;
  /**
   * How long stop() lets attempts in flight finish before cutting them short.
   * @defaultValue 10000
   */
  shutdownGraceMs: number;
}

export const WORKER_DEFAULTS: WorkerSettings = {
  concurrency: 768,
  destinationConcurrency: 64,
  destinationSlowAfterMs: 1_000,
  destinationFailureThreshold: 10,
  destinationCooldownMs: 30_000,
  destinationDisableAfterMs: 3 * 86_400_000,
  batchSize: 96,
  batchWindowMs: 5,
  pollIntervalMs: 1_000,
  leaseMarginMs: 5_000,
  maxInterruptions: 5,
  retryAfterCapMs: 3_600_000,
  headerPrefix: "X-Webhook-",
  shutdownGraceMs: 10_000,
};

export interface WorkerOptions extends Partial<WorkerSettings> {
  database: Pick<Database, "query" | "listen">;
  sender: Pick<HttpSender, "send">;
  logger: Logger;
  /** @defaultValue host:pid:random */
  workerId?: string;
  /** Called once per recorded attempt; metrics hang here. */
  onAttempt?: (record: AttemptRecord) => void;
  /** Called once per change of a destination's state this worker recorded. */
  onTransition?: (transition: DestinationTransition) => void;
  /** Called after each claim with the number of deliveries claimed. */
  onClaim?: (count: number) => void;
}
