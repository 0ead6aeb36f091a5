import type { Database } from "../../src/db/client.js";

export interface DeliveryRow {
  id: string;
  job_id: string;
  status: string;
  attempt_count: number;
  max_attempts: number;
  payload: Record<string, unknown>;
  last_response_status: number | null;
  last_error: string | null;
  next_attempt_at: Date | null;
  finished_at: Date | null;
}

export interface AttemptRow {
  attempt_number: number;
  worker_id: string;
  started_at: Date;
  finished_at: Date;
  duration_ms: number;
  response_status: number | null;
  response_body_excerpt: string | null;
  error_kind: string | null;
  error_message: string | null;
  outcome: string;
}

export async function deliveriesOf(database: Database, jobId: string): Promise<DeliveryRow[]> {
  return database.query<DeliveryRow>("select * from webhook_outbox.webhook_deliveries where job_id = $1", [jobId]);
}

export async function attemptsOf(database: Database, deliveryId: string): Promise<AttemptRow[]> {
  return database.query<AttemptRow>(
    "select * from webhook_outbox.webhook_delivery_attempts where delivery_id = $1 order by attempt_number",
    [deliveryId],
  );
}

/** The job's single delivery once it has reached `status`. */
export async function finishedDelivery(database: Database, jobId: string, status: string): Promise<DeliveryRow | undefined> {
  const [delivery] = await deliveriesOf(database, jobId);
  return delivery?.status === status ? delivery : undefined;
}
