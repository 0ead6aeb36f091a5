import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../src/db/client.js";
import { OUTBOX_CHANNEL } from "../src/outbox/enqueue.js";
import { OutboxNotifier } from "../src/outbox/notifier.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually } from "./support/harness.js";

let testDb: TestDatabase;

beforeAll(async () => {
  testDb = await createTestDatabase();
});

afterAll(async () => {
  await testDb?.drop();
});

/** The test database, noting when each NOTIFY statement starts and ends. */
function countingDatabase(events: string[]): Database {
  const database = testDb.database;
  let sent = 0;
  return {
    ...database,
    async query<Row>(text: string, params?: unknown[], name?: string): Promise<Row[]> {
      if (name !== "outbox_notify") return database.query<Row>(text, params, name);
      const n = ++sent;
      events.push(`start ${n}`);
      const rows = await database.query<Row>(text, params, name);
      events.push(`end ${n}`);
      return rows;
    },
  };
}

describe("the outbox notifier", () => {
  it("wakes a listener on the outbox channel", async () => {
    let heard = 0;
    const unlisten = await testDb.database.listen(OUTBOX_CHANNEL, () => heard++);
    try {
      await new OutboxNotifier(testDb.database).notify();
      await eventually(async () => (heard > 0 ? true : undefined));
    } finally {
      await unlisten();
    }
  });

  it("folds calls made while one NOTIFY is in flight into one more, sent after it", async () => {
    const events: string[] = [];
    const notifier = new OutboxNotifier(countingDatabase(events));
    const first = notifier.notify().then(() => events.push("first resolved"));
    // These callers may have committed after the first NOTIFY was sent: they must wait for a later one.
    const later = Promise.all(Array.from({ length: 50 }, () => notifier.notify())).then(() => events.push("later resolved"));
    await Promise.all([first, later]);
    expect(events).toEqual(["start 1", "end 1", "first resolved", "start 2", "end 2", "later resolved"]);
  });

  it("reports a failed NOTIFY and still resolves: the workers' poll is the fallback", async () => {
    const errors: unknown[] = [];
    const failing: Database = {
      ...testDb.database,
      query: () => Promise.reject(new Error("connection terminated")),
    };
    await new OutboxNotifier(failing, (error) => errors.push(error)).notify();
    expect(errors).toHaveLength(1);
  });
});
