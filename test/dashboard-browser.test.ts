import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revokeApiKey } from "../src/tenants/key-lifecycle.js";
import { createTenant, type CreatedTenant } from "../src/tenants/tenant-service.js";
import { CHROMIUM } from "./support/chromium.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { finishedDelivery } from "./support/queries.js";
import { ok, Receiver, status } from "./support/receiver.js";

/**
 * Where the pages' screenshots go: docs/dashboard/ with DASHBOARD_SCREENSHOTS=1 (how the committed
 * ones are made), else a scratch directory, so a test run leaves the working tree as it was.
 */
const SCREENSHOTS =
  process.env.DASHBOARD_SCREENSHOTS === "1"
    ? fileURLToPath(new URL("../docs/dashboard/", import.meta.url))
    : `${mkdtempSync(join(tmpdir(), "dashboard-shots-"))}/`;

let testDb: TestDatabase;
let harness: Harness;
let browser: Browser;
let other: CreatedTenant;
const receivers: Receiver[] = [];

beforeAll(async () => {
  if (!CHROMIUM) throw new Error("no Chromium: apt-get install -y chromium (see .ci/run)");
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, { WEBHOOK_RETRY_DELAYS: [0] });
  other = await createTenant(testDb.database, "other tenant");
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  mkdirSync(SCREENSHOTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  for (const receiver of receivers) await receiver.close();
  await harness?.stop();
  await testDb?.drop();
});

const base = () => harness.service.url ?? "";

/** Waits (bounded) until the locator's first match contains `text`. */
async function shows(locator: Locator, text: string): Promise<void> {
  await eventually(async () => {
    const first = locator.first();
    return (await first.count()) > 0 && (await first.innerText()).includes(text) ? true : undefined;
  }, 10_000, `"${text}" on the page`);
}

/** Waits (bounded) until the locator matches `count` elements. */
async function counts(locator: Locator, count: number): Promise<void> {
  await eventually(async () => ((await locator.count()) === count ? true : undefined), 10_000, `${count} matches`);
}

async function newPage(): Promise<{ page: Page; cspViolations: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base() });
  const page = await context.newPage();
  const cspViolations: string[] = [];
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
  });
  return { page, cspViolations };
}

async function signIn(page: Page, credential: string): Promise<void> {
  await page.goto(`${base()}/dashboard/sign-in`);
  await page.getByLabel(/API key/).fill(credential);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base()}/dashboard`);
}

async function failedDeliveryOf(apiKey: string, url: string): Promise<{ jobId: string; deliveryId: string }> {
  const api = harness.api.withKey(apiKey);
  const created = await api.post("/api/v1/generate", { prompt: "a browser test", webhookUrl: url });
  expect(created.status).toBe(202);
  await api.finishJob(created.body.jobId, 1, "completed");
  const delivery = await eventually(() => finishedDelivery(testDb.database, created.body.jobId, "failed"));
  return { jobId: created.body.jobId, deliveryId: delivery.id };
}

/** Every visible input, select and button has an accessible name; one h1. */
async function checkAccessibility(page: Page): Promise<void> {
  // Evaluated in the page (the test's own types have no DOM).
  const unlabelled = await page.evaluate<string[]>(
    `[...document.querySelectorAll("input:not([type=hidden]), select")]
       .filter((control) => control.labels.length === 0 && !control.getAttribute("aria-label"))
       .map((control) => control.outerHTML)`,
  );
  expect(unlabelled).toEqual([]);
  expect(await page.locator("h1").count()).toBe(1);
  expect(await page.locator("a.skip[href='#main']").count()).toBe(1);
}

describe("dashboard in a real browser", () => {
  it("signs in, finds a failed delivery by its job id, redelivers it and shows the new attempt", { timeout: 90_000 }, async () => {
    const receiver = await Receiver.start(status(500, { "content-type": "text/plain" }, "upstream broke"), ok);
    const gone = await Receiver.start(status(410));
    receivers.push(receiver, gone);
    const { jobId, deliveryId } = await failedDeliveryOf(harness.tenant.apiKey, receiver.url);
    await failedDeliveryOf(harness.tenant.apiKey, gone.url); // 410 Gone disables its destination

    const { page, cspViolations } = await newPage();
    await page.goto(`${base()}/dashboard/sign-in`);
    await checkAccessibility(page);
    await page.screenshot({ path: `${SCREENSHOTS}sign-in.png` });
    await signIn(page, harness.tenant.apiKey);
    await shows(page.locator("h1"), "Overview");
    await checkAccessibility(page);
    await page.screenshot({ path: `${SCREENSHOTS}overview.png` });

    await page.getByRole("link", { name: "Deliveries", exact: true }).click();
    await page.getByLabel("Job id").fill(jobId);
    await page.getByRole("button", { name: "Filter" }).click();
    const rows = page.locator("tbody tr");
    await counts(rows, 1);
    await shows(rows.first(), "failed");
    await shows(rows.first(), "HTTP 500");
    await checkAccessibility(page);
    await page.screenshot({ path: `${SCREENSHOTS}deliveries.png` });

    await rows.first().getByRole("link").click();
    await page.waitForURL(`${base()}/dashboard/deliveries/${deliveryId}`);
    await counts(page.locator(".timeline li"), 1);
    await shows(page.locator(".timeline li").first(), "HTTP 500");
    await shows(page.locator(".timeline li").first(), "upstream broke");
    // The served script ran under the CSP: the copy button shows, and copies the command.
    const copy = page.getByRole("button", { name: "Copy as curl" });
    await copy.first().waitFor({ state: "visible", timeout: 10_000 });
    await copy.click();
    await page.getByRole("status").filter({ hasText: "Copied" }).first().waitFor({ state: "visible", timeout: 10_000 });
    const copied = await page.evaluate<string>("navigator.clipboard.readText()");
    expect(copied).toContain(`curl -X POST '${receiver.url}'`);
    expect(copied).toContain(`webhook-id: ${deliveryId}`);
    // Signatures are masked wherever headers are shown.
    expect(await page.content()).not.toMatch(/sha256=[0-9a-f]{64}/);
    await checkAccessibility(page);

    await page.getByRole("button", { name: "Redeliver" }).click();
    await page.getByRole("status").filter({ hasText: "Queued again" }).first().waitFor({ state: "visible", timeout: 10_000 });
    // The worker sends it within moments: reload until the second attempt shows (bounded).
    await eventually(
      async () => {
        await page.reload();
        return (await page.locator(".timeline li").count()) === 2 ? true : undefined;
      },
      20_000,
      "the redelivered attempt on the page",
    );
    await shows(page.locator(".timeline li").nth(1), "succeeded");
    await shows(page.locator(".timeline li").nth(1), "HTTP 200");
    await shows(page.locator("dl.facts"), "succeeded");
    expect(receiver.requests).toHaveLength(2);
    await page.screenshot({ path: `${SCREENSHOTS}delivery.png`, fullPage: false });

    await page.getByRole("link", { name: "Destinations", exact: true }).click();
    const disabled = page.locator("section", { hasText: gone.url });
    await shows(disabled.locator(".badge"), "disabled");
    await shows(page.locator("section", { hasText: receiver.url }).locator(".badge"), "healthy");
    await page.locator("svg[role=img]").first().first().waitFor({ state: "visible", timeout: 10_000 });
    await checkAccessibility(page);
    await page.screenshot({ path: `${SCREENSHOTS}destinations.png` });
    await disabled.getByRole("button", { name: `Enable ${gone.url}` }).click();
    await page.getByRole("status").filter({ hasText: "Enabled" }).first().waitFor({ state: "visible", timeout: 10_000 });
    await shows(page.locator("section", { hasText: gone.url }).locator(".badge"), "healthy");

    expect(cspViolations).toEqual([]);
  });

  it("shows another tenant's delivery as not found", { timeout: 60_000 }, async () => {
    const receiver = await Receiver.start(status(500));
    receivers.push(receiver);
    const theirs = await failedDeliveryOf(other.apiKey, receiver.url);
    const { page } = await newPage();
    await signIn(page, harness.tenant.apiKey);
    const response = await page.goto(`${base()}/dashboard/deliveries/${theirs.deliveryId}`);
    expect(response?.status()).toBe(404);
    await shows(page.locator("h1"), "Delivery not found");
    expect(await page.locator("body").innerText()).not.toContain(receiver.url);
    // Their job id finds nothing in this tenant's list.
    await page.goto(`${base()}/dashboard/deliveries?job=${theirs.jobId}`);
    await page.getByText("No delivery matches.").first().waitFor({ state: "visible", timeout: 10_000 });

    // The operator sees every tenant's, with a tenant column.
    const operator = await newPage();
    await signIn(operator.page, harness.config.INTERNAL_API_TOKEN ?? "");
    await operator.page.goto(`${base()}/dashboard/deliveries/${theirs.deliveryId}`);
    await shows(operator.page.locator("dl.facts"), other.tenantId);
  });

  it("refuses a form posted without its CSRF token with 403", { timeout: 60_000 }, async () => {
    const receiver = await Receiver.start(status(500));
    receivers.push(receiver);
    const { deliveryId } = await failedDeliveryOf(harness.tenant.apiKey, receiver.url);
    const { page } = await newPage();
    await signIn(page, harness.tenant.apiKey);
    await page.goto(`${base()}/dashboard/deliveries/${deliveryId}`);
    await page.evaluate(`document.querySelectorAll("input[name=csrf]").forEach((input) => input.remove())`);
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/redeliver")),
      page.getByRole("button", { name: "Redeliver" }).click(),
    ]);
    expect(response.status()).toBe(403);
    await shows(page.locator("h1"), "Refused");
    expect(receiver.requests).toHaveLength(1);
  });

  it("ends the session at sign-out, and refuses a revoked key's session", { timeout: 60_000 }, async () => {
    const { page } = await newPage();
    await signIn(page, harness.tenant.apiKey);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByText("You are signed out.").first().waitFor({ state: "visible", timeout: 10_000 });
    await page.goto(`${base()}/dashboard/deliveries`);
    await shows(page.locator("h1"), "Sign in");

    const tenant = await createTenant(testDb.database, "to be revoked");
    const revoked = await newPage();
    await signIn(revoked.page, tenant.apiKey);
    await revoked.page.goto(`${base()}/dashboard/deliveries`);
    await shows(revoked.page.locator("h1"), "Deliveries");
    await revokeApiKey(testDb.database, tenant.apiKey);
    await revoked.page.reload();
    await shows(revoked.page.locator("h1"), "Sign in");
    await revoked.page.getByText("was revoked").first().waitFor({ state: "visible", timeout: 10_000 });
  });
});
