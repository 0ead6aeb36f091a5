import { configWith } from "../../src/config.js";
import type { Database } from "../../src/db/client.js";
import { UrlPolicy } from "../../src/delivery/url-policy.js";
import { JobService, type JobServiceOptions } from "../../src/jobs/job-service.js";
import { deliveryPolicies } from "../../src/jobs/delivery-policies.js";

/** A JobService on `database` as the service builds it by default (any webhook URL allowed), with `overrides`. */
export function testJobService(database: Database, overrides: Partial<JobServiceOptions> = {}): JobService {
  return new JobService({
    database,
    urlPolicy: new UrlPolicy({ allowInsecure: true }),
    deliveryPolicies: deliveryPolicies(configWith({})),
    jobTimeoutMs: 3_600_000,
    ...overrides,
  });
}
