import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { spawnCli, type ServiceProcess } from "./support/processes.js";
import { ok, Receiver, status } from "./support/receiver.js";

/*
 * Two worker processes against one database share every destination's circuit: each failure is
 * counted once, the circuit opens once, and one probe at a time goes, a cool-down apart.
 */

let testDb: TestDatabase;
let harness: Harness;
let receiver: Receiver;
const workers: ServiceProcess[] = [];
const COOL_DOWN_MS = 300;

beforeAll(async () => {
  testDb = await createTestDatabase();
  // The API alone; the deliveries freeze 20 attempts with no delay between them.
  harness = await startHarness(testDb, { WEBHOOK_RETRY_DELAYS: Array<number>(20).fill(0) }, { worker: false });
  receiver = await Receiver.start(status(500));
  const env = {
    DATABASE_URL: testDb.url,
    WEBHOOK_ALLOW_INSECURE_URLS: "true",
    WORKER_POLL_INTERVAL_MS: "50",
    DESTINATION_FAILURE_THRESHOLD: "10",
    DESTINATION_COOLDOWN: `${COOL_DOWN_MS}ms`,
    LOG_LEVEL: "info",
  };
  for (let i = 0; i < 2; i++) workers.push(spawnCli(["worker"], env));
  await Promise.all(workers.map((worker) => worker.waitForLog(/worker started/)));
});

afterAll(async () => {
  for (const worker of workers) worker.child.kill("SIGTERM");
  await Promise.all(workers.map((worker) => worker.exited));
  await harness?.stop();
  await receiver?.close();
  await testDb?.drop();
});

interface Attempt {
  started_at: Date;
  finished_at: Date;
  outcome: string;
}

async function attemptsTo(destinationId: string): Promise<Attempt[]> {
  return testDb.database.query<Attempt>(
    `select a.started_at, a.finished_at, a.outcome
     from webhook_outbox.webhook_delivery_attempts a join webhook_outbox.webhook_deliveries d on d.id = a.delivery_id
     where d.destination_id = $1 order by a.started_at`,
    [destinationId],
  );
}

describe("two worker processes", () => {
  it("agree on the circuit: one opening, every failure counted once, one probe at a time", async () => {
    const url = `${receiver.url}?shared=1`;
    const jobIds: string[] = [];
    for (let i = 0; i < 4; i++) {
      const created = await harness.api.post("/api/v1/generate", { prompt: "shared", webhookUrl: url });
      jobIds.push(created.body.jobId);
      await harness.api.finishJob(created.body.jobId, 1, "completed");
    }

    // A well-defined point: the circuit is open and every delivery waits parked, none in flight.
    const destination = await eventually(async () => {
      const [row] = await testDb.database.query<{ id: string; state: string; consecutive_failures: number }>(
        `select g.id, g.state, g.consecutive_failures from webhook_outbox.destinations g
         where g.url = $1 and g.state = 'open'
           and not exists (select from webhook_outbox.webhook_deliveries w
                           where w.destination_id = g.id and not (w.status = 'pending' and w.next_attempt_at = 'infinity'))`,
        [url],
      );
      return row;
    }, 30_000, "the circuit open with every delivery parked");
    const [{ now: parkedAt } = { now: new Date() }] = await testDb.database.query<{ now: Date }>("select now()");
    const before = await attemptsTo(destination.id);
    // Every failed attempt, whichever worker made it, was counted once.
    expect(destination.consecutive_failures).toBe(before.length);
    expect(destination.consecutive_failures).toBeGreaterThanOrEqual(10);
    expect(receiver.requests).toHaveLength(before.length);

    // Probes from here on: at least three, failing, then one that succeeds.
    await eventually(async () => ((await attemptsTo(destination.id)).length >= before.length + 3 ? true : undefined), 30_000);
    receiver.respondWith(ok);
    await eventually(async () => {
      const [row] = await testDb.database.query<{ done: number }>(
        "select count(*)::int as done from webhook_outbox.webhook_deliveries where job_id = any($1::uuid[]) and status = 'succeeded'",
        [jobIds],
      );
      return row?.done === jobIds.length ? true : undefined;
    }, 30_000, "every delivery succeeded");

    const [closedAt] = await testDb.database.query<{ at: Date }>(
      "select at from webhook_outbox.destination_events where destination_id = $1 and to_state = 'healthy'",
      [destination.id],
    );
    const probes = (await attemptsTo(destination.id)).filter(
      (a) => a.started_at > parkedAt && a.started_at.getTime() < (closedAt?.at.getTime() ?? 0),
    );
    expect(probes.length).toBeGreaterThanOrEqual(4);
    expect(probes.at(-1)?.outcome).toBe("succeeded");
    // Never two at once, and each a cool-down after the one before ended.
    for (let n = 1; n < probes.length; n++) {
      const gap = (probes[n]?.started_at.getTime() ?? 0) - (probes[n - 1]?.finished_at.getTime() ?? 0);
      expect(gap).toBeGreaterThanOrEqual(COOL_DOWN_MS - 5);
    }
    // One opening and one closing, whatever the interleaving of the two workers' records.
    const events = await testDb.database.query<{ from_state: string; to_state: string }>(
      "select from_state, to_state from webhook_outbox.destination_events where destination_id = $1 order by id",
      [destination.id],
    );
    expect(events.map((e) => `${e.from_state}->${e.to_state}`)).toEqual(["healthy->open", "open->healthy"]);
    const [closed] = await testDb.database.query<{ state: string; consecutive_failures: number }>(
      "select state, consecutive_failures from webhook_outbox.destinations where id = $1",
      [destination.id],
    );
    expect(closed).toEqual({ state: "healthy", consecutive_failures: 0 });
    expect(receiver.requests).toHaveLength((await attemptsTo(destination.id)).length);
  });
});
