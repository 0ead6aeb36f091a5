import type { Database } from "../db/client.js";
import { OUTBOX_CHANNEL } from "./enqueue.js";

const NOTIFY_SQL = `select pg_notify('${OUTBOX_CHANNEL}', '')`;

/**
 * Wakes the workers after a commit that enqueued deliveries.
 *
 * Not inside the enqueueing transaction: Postgres takes one database-wide lock for a transaction
 * that has NOTIFYed and holds it through that transaction's commit and WAL flush, so every
 * enqueueing commit would wait for the one before it to reach disk. Sent afterwards on its own,
 * a NOTIFY writes no WAL and holds that lock for microseconds.
 *
 * Coalesced per process: at most one NOTIFY is in flight; calls made meanwhile share the next one,
 * which starts after the current one ends and so after their commits. If a NOTIFY is lost (the
 * process dies between commit and NOTIFY, or the database is unreachable), the workers' poll
 * finds the row instead.
 */
export class OutboxNotifier {
  private inFlight: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(
    private readonly database: Database,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {}

  /** Resolves once a NOTIFY sent after this call has been accepted (or has failed and been reported). */
  notify(): Promise<void> {
    if (!this.inFlight) {
      this.inFlight = this.send().finally(() => (this.inFlight = undefined));
      return this.inFlight;
    }
    // The one in flight may have been sent before the caller's commit: ride the next one.
    this.next ??= this.inFlight.then(() => {
      this.next = undefined;
      return this.notify();
    });
    return this.next;
  }

  private async send(): Promise<void> {
    try {
      await this.database.query(NOTIFY_SQL, [], "outbox_notify");
    } catch (error) {
      this.onError(error);
    }
  }
}
