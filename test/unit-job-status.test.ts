import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { JOB_STATUSES, PROJECT_STATUSES, type JobStatus, type ProjectStatus } from "../src/db/schema.js";
import { isTerminalJob, isTerminalProject, jobStatusFromProjects } from "../src/jobs/status.js";

describe("isTerminalJob and isTerminalProject", () => {
  it("a job ends completed, partial or failed", () => {
    const terminal = JOB_STATUSES.filter(isTerminalJob);
    expect(terminal).toEqual(["completed", "partial", "failed"]);
    expect(JOB_STATUSES.filter((status) => !isTerminalJob(status))).toEqual(["queued", "processing"]);
  });

  it("a project ends completed or failed", () => {
    expect(PROJECT_STATUSES.filter(isTerminalProject)).toEqual(["completed", "failed"]);
    expect(PROJECT_STATUSES.filter((status) => !isTerminalProject(status))).toEqual(["queued", "processing"]);
  });
});

describe("jobStatusFromProjects", () => {
  it.each<[ProjectStatus[], JobStatus]>([
    [["queued"], "queued"],
    [["processing"], "processing"],
    [["completed"], "completed"],
    [["failed"], "failed"],
    [["queued", "queued", "queued"], "queued"],
    [["completed", "completed"], "completed"],
    [["failed", "failed", "failed"], "failed"],
    [["completed", "failed"], "partial"],
    [["failed", "completed", "completed"], "partial"],
    [["queued", "processing"], "processing"],
    [["queued", "completed"], "processing"],
    [["queued", "failed"], "processing"],
    [["processing", "completed", "failed"], "processing"],
    [["completed", "completed", "queued"], "processing"],
    [["failed", "failed", "processing"], "processing"],
    [[...Array<ProjectStatus>(19).fill("completed"), "failed"], "partial"],
    [[...Array<ProjectStatus>(19).fill("completed"), "queued"], "processing"],
  ])("%j makes the job %s", (projects, job) => {
    expect(jobStatusFromProjects(projects)).toBe(job);
  });

  const projects = fc.array(fc.constantFrom(...PROJECT_STATUSES), { minLength: 1, maxLength: 20 });

  it("is terminal exactly when every project is, and then says which way each went", () => {
    fc.assert(
      fc.property(projects, (statuses) => {
        const job = jobStatusFromProjects(statuses);
        expect(isTerminalJob(job)).toBe(statuses.every(isTerminalProject));
        const completed = statuses.includes("completed");
        const failed = statuses.includes("failed");
        if (job === "completed") expect(statuses.every((status) => status === "completed")).toBe(true);
        if (job === "failed") expect(statuses.every((status) => status === "failed")).toBe(true);
        if (job === "partial") expect(completed && failed).toBe(true);
        if (job === "queued") expect(statuses.every((status) => status === "queued")).toBe(true);
        if (job === "processing") {
          expect(statuses.some((status) => !isTerminalProject(status))).toBe(true);
          expect(statuses.some((status) => status !== "queued")).toBe(true);
        }
      }),
    );
  });

  it("does not depend on the order of the projects", () => {
    fc.assert(
      fc.property(projects, fc.infiniteStream(fc.nat()), (statuses, randoms) => {
        const shuffled = [...statuses];
        for (let index = shuffled.length - 1; index > 0; index--) {
          const other = (randoms.next().value as number) % (index + 1);
          [shuffled[index], shuffled[other]] = [shuffled[other] as ProjectStatus, shuffled[index] as ProjectStatus];
        }
        expect(jobStatusFromProjects(shuffled)).toBe(jobStatusFromProjects(statuses));
      }),
    );
  });

  it("depends only on which statuses occur, not on how many projects have each", () => {
    fc.assert(
      fc.property(projects, fc.nat(), (statuses, pick) => {
        const copy = statuses[pick % statuses.length] as ProjectStatus;
        expect(jobStatusFromProjects([...statuses, copy])).toBe(jobStatusFromProjects(statuses));
      }),
    );
  });
});
