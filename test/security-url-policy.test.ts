import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";
import { UrlPolicy, UrlRejectedError } from "../src/delivery/url-policy.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { FakeDns, startSecureService, type SecureService } from "./support/fake-dns.js";

/** Names the fake DNS answers; each hostile one resolves into a range that must be refused. */
const dns = new FakeDns({
  "example.com": ["93.184.216.34"],
  "hooks.example.org": ["2606:2800:220:1:248:1893:25c8:1946"],
  "dual.example.net": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
  "loopback.test": ["127.0.0.1"],
  "loopback-high.test": ["127.255.255.254"],
  "this-network.test": ["0.1.2.3"],
  "private10.test": ["10.1.2.3"],
  "private172.test": ["172.20.0.1"],
  "private192.test": ["192.168.0.10"],
  "cgnat.test": ["100.100.100.100"],
  "metadata.test": ["169.254.169.254"],
  "ietf-protocol.test": ["192.0.0.170"],
  "doc1.test": ["192.0.2.55"],
  "benchmark.test": ["198.18.5.5"],
  "doc2.test": ["198.51.100.20"],
  "doc3.test": ["203.0.113.77"],
  "multicast.test": ["224.0.0.251"],
  "reserved.test": ["240.0.0.5"],
  "broadcast.test": ["255.255.255.255"],
  "unspecified.test": ["0.0.0.0"],
  "v6-unspecified.test": ["::"],
  "v6-loopback.test": ["::1"],
  "v6-linklocal.test": ["fe80::abcd"],
  "v6-ula.test": ["fd00::1"],
  "v6-multicast.test": ["ff05::2"],
  "v6-doc.test": ["2001:db8::5"],
  "v6-nat64.test": ["64:ff9b::a00:1"],
  "v6-6to4.test": ["2002:a00:1::1"],
  "v6-mapped.test": ["::ffff:127.0.0.1"],
  "v6-mapped-private.test": ["::ffff:192.168.1.1"],
  "v6-compatible.test": ["::a00:1"],
  "mixed.test": ["93.184.216.34", "10.0.0.1"],
  "mixed-v6.test": ["2606:2800:220:1:248:1893:25c8:1946", "fd00::7"],
  "empty.test": [],
});

/** [url, a fragment of the reason]: every one must be refused, at creation and by the policy itself. */
const HOSTILE: Array<[string, string]> = [
  // form
  ["http://example.com/hook", "scheme must be https"],
  ["ftp://example.com/hook", "scheme must be https"],
  ["file:///etc/passwd", "scheme must be https"],
  ["javascript:alert(1)", "scheme must be https"],
  ["gopher://127.0.0.1:6379/_FLUSHALL", "scheme must be https"],
  ["not a url", "not an absolute URL"],
  ["//example.com/hook", "not an absolute URL"],
  ["https://user:pass@example.com/hook", "credentials"],
  ["https://user@example.com/hook", "credentials"],
  ["https://:secret@example.com/hook", "credentials"],
  ["https://example.com/hook#fragment", "fragment"],
  [`https://example.com/${"a".repeat(2030)}`, "longer than 2048"],
  // loopback, in every notation the URL parser accepts
  ["https://127.0.0.1/hook", "loopback"],
  ["https://127.0.0.1:8443/hook", "loopback"],
  ["https://127.1/hook", "loopback"],
  ["https://127.0.1/hook", "loopback"],
  ["https://2130706433/hook", "loopback"],
  ["https://0x7f000001/hook", "loopback"],
  ["https://0x7f.0.0.1/hook", "loopback"],
  ["https://0x7F.1/hook", "loopback"],
  ["https://0177.0.0.1/hook", "loopback"],
  ["https://017700000001/hook", "loopback"],
  ["https://127.0.0.1./hook", "loopback"],
  ["https://127.255.255.254/hook", "loopback"],
  ["https://１２７.０.０.１/hook", "loopback"],
  ["https://127。0。0。1/hook", "loopback"],
  ["https://[::1]/hook", "loopback"],
  ["https://[0:0:0:0:0:0:0:1]/hook", "loopback"],
  ["https://[::ffff:127.0.0.1]/hook", "loopback"],
  ["https://[::ffff:7f00:1]/hook", "loopback"],
  ["https://[0:0:0:0:0:ffff:127.0.0.1]/hook", "loopback"],
  ["https://[::127.0.0.1]/hook", "loopback"],
  ["https://localhost/hook", "loopback name"],
  ["https://LOCALHOST./hook", "loopback name"],
  ["https://api.localhost/hook", "loopback name"],
  ["https://a.b.localhost../hook", "loopback name"],
  // unspecified and "this network"
  ["https://0/hook", "unspecified"],
  ["https://0.0.0.0/hook", "unspecified"],
  ["https://0.1.2.3/hook", "unspecified"],
  ["https://[::]/hook", "unspecified"],
  // private
  ["https://10.0.0.1/hook", "private"],
  ["https://167772161/hook", "private"],
  ["https://012.0.0.1/hook", "private"],
  ["https://172.16.0.1/hook", "private"],
  ["https://172.31.255.254/hook", "private"],
  ["https://192.168.1.1/hook", "private"],
  ["https://0xc0a80101/hook", "private"],
  ["https://0xc0.0xa8.1.1/hook", "private"],
  ["https://[::ffff:192.168.1.1]/hook", "private"],
  ["https://[::ffff:a00:1]/hook", "private"],
  // carrier-grade NAT, link-local (cloud metadata)
  ["https://100.64.0.1/hook", "carrier-grade NAT"],
  ["https://100.127.255.254/hook", "carrier-grade NAT"],
  ["https://169.254.169.254/latest/meta-data/", "link-local"],
  ["https://0xa9fea9fe/latest/meta-data/", "link-local"],
  ["https://2852039166/latest/meta-data/", "link-local"],
  ["https://[::ffff:169.254.169.254]/latest/meta-data/", "link-local"],
  ["https://[fe80::1]/hook", "link-local"],
  ["https://[febf:ffff::1]/hook", "link-local"],
  // reserved, documentation, benchmarking, multicast, broadcast
  ["https://192.0.0.8/hook", "reserved"],
  ["https://192.0.2.1/hook", "reserved"],
  ["https://198.18.0.1/hook", "reserved"],
  ["https://198.19.255.1/hook", "reserved"],
  ["https://198.51.100.7/hook", "reserved"],
  ["https://203.0.113.9/hook", "reserved"],
  ["https://224.0.0.1/hook", "multicast"],
  ["https://239.255.255.250/hook", "multicast"],
  ["https://240.0.0.1/hook", "reserved"],
  ["https://255.255.255.255/hook", "broadcast"],
  // IPv6 special ranges
  ["https://[fc00::1]/hook", "unique-local"],
  ["https://[fd12:3456:789a::1]/hook", "unique-local"],
  ["https://[ff02::1]/hook", "multicast"],
  ["https://[2001:db8::1]/hook", "reserved"],
  ["https://[64:ff9b::7f00:1]/hook", "NAT64"],
  ["https://[2002:7f00:1::]/hook", "6to4"],
  ["https://[2001::1]/hook", "Teredo"],
  // names that resolve into a refused range (the injected resolver answers)
  ["https://loopback.test/hook", "resolves to 127.0.0.1, a loopback"],
  ["https://loopback-high.test/hook", "loopback"],
  ["https://this-network.test/hook", "unspecified"],
  ["https://private10.test/hook", "resolves to 10.1.2.3, a private"],
  ["https://private172.test/hook", "private"],
  ["https://private192.test/hook", "private"],
  ["https://cgnat.test/hook", "carrier-grade NAT"],
  ["https://metadata.test/hook", "link-local"],
  ["https://ietf-protocol.test/hook", "reserved"],
  ["https://doc1.test/hook", "reserved"],
  ["https://benchmark.test/hook", "reserved"],
  ["https://doc2.test/hook", "reserved"],
  ["https://doc3.test/hook", "reserved"],
  ["https://multicast.test/hook", "multicast"],
  ["https://reserved.test/hook", "reserved"],
  ["https://broadcast.test/hook", "broadcast"],
  ["https://unspecified.test/hook", "unspecified"],
  ["https://v6-unspecified.test/hook", "unspecified"],
  ["https://v6-loopback.test/hook", "loopback"],
  ["https://v6-linklocal.test/hook", "link-local"],
  ["https://v6-ula.test/hook", "unique-local"],
  ["https://v6-multicast.test/hook", "multicast"],
  ["https://v6-doc.test/hook", "reserved"],
  ["https://v6-nat64.test/hook", "NAT64"],
  ["https://v6-6to4.test/hook", "6to4"],
  ["https://v6-mapped.test/hook", "loopback"],
  ["https://v6-mapped-private.test/hook", "private"],
  ["https://v6-compatible.test/hook", "private"],
  ["https://mixed.test/hook", "resolves to 10.0.0.1, a private"],
  ["https://mixed-v6.test/hook", "unique-local"],
  ["https://MIXED.test./hook", "private"],
  ["https://nxdomain.test/hook", "could not be resolved (ENOTFOUND)"],
  ["https://empty.test/hook", "could not be resolved"],
];

const PUBLIC = [
  "https://example.com/hook",
  "https://example.com./hook",
  "https://EXAMPLE.com:8443/webhooks/job?source=test",
  "https://hooks.example.org/a/b",
  "https://dual.example.net/hook",
  "https://93.184.216.34/hook",
  "https://1572395042/hook",
  "https://[2606:4700:4700::1111]/hook",
  "https://[::ffff:8.8.8.8]/hook",
  "https://100.63.255.255/hook",
  "https://172.32.0.1/hook",
  "https://192.169.0.1/hook",
];

const policy = new UrlPolicy({ allowInsecure: false, resolver: dns.resolve });

describe("the webhook URL policy, table-driven", () => {
  it("has a table of well over 60 hostile URLs", () => {
    expect(HOSTILE.length).toBeGreaterThanOrEqual(60);
  });

  it.each(HOSTILE)("refuses %s", async (url, reason) => {
    const error = await policy.check(url).then(
      () => undefined,
      (rejection: unknown) => rejection,
    );
    expect(error).toBeInstanceOf(UrlRejectedError);
    expect((error as UrlRejectedError).message).toContain(reason);
  });

  it.each(PUBLIC)("accepts the public URL %s", async (url) => {
    await expect(policy.check(url)).resolves.toBeInstanceOf(URL);
  });

  it("admits the ranges named in WEBHOOK_ALLOWED_CIDRS, and only those", async () => {
    const onPrem = new UrlPolicy({ allowInsecure: false, resolver: dns.resolve, allowedCidrs: ["10.0.0.0/8", "fd00::/8"] });
    await expect(onPrem.check("https://10.1.2.3/hook")).resolves.toBeInstanceOf(URL);
    await expect(onPrem.check("https://private10.test/hook")).resolves.toBeInstanceOf(URL);
    await expect(onPrem.check("https://[::ffff:10.0.0.1]/hook")).resolves.toBeInstanceOf(URL);
    await expect(onPrem.check("https://v6-ula.test/hook")).resolves.toBeInstanceOf(URL);
    await expect(onPrem.check("https://192.168.1.1/hook")).rejects.toThrow("private");
    await expect(onPrem.check("https://127.0.0.1/hook")).rejects.toThrow("loopback");
    await expect(onPrem.check("http://10.1.2.3/hook")).rejects.toThrow("scheme must be https");
  });

  it("reads WEBHOOK_ALLOWED_CIDRS from the environment and names a bad entry", () => {
    expect(loadConfig({ WEBHOOK_ALLOWED_CIDRS: " 10.0.0.0/8, fd00::/8 " }).WEBHOOK_ALLOWED_CIDRS).toEqual(["10.0.0.0/8", "fd00::/8"]);
    expect(loadConfig({}).WEBHOOK_ALLOWED_CIDRS).toEqual([]);
    for (const bad of ["10.0.0.0/33", "10.0.0.1", "intranet", "fd00::/129"]) {
      expect(() => loadConfig({ WEBHOOK_ALLOWED_CIDRS: bad }), bad).toThrow(ConfigError);
      expect(() => loadConfig({ WEBHOOK_ALLOWED_CIDRS: bad }), bad).toThrow(/WEBHOOK_ALLOWED_CIDRS: .*not a CIDR range/);
    }
  });

  it("is bypassed only by WEBHOOK_ALLOW_INSECURE_URLS, which never resolves names", async () => {
    const insecure = new UrlPolicy({ allowInsecure: true, resolver: dns.resolve });
    const before = dns.queries.length;
    await expect(insecure.check("http://127.0.0.1:9/hook")).resolves.toBeInstanceOf(URL);
    await expect(insecure.check("http://loopback.test/hook")).resolves.toBeInstanceOf(URL);
    expect(dns.queries.length).toBe(before);
    await expect(insecure.check("https://user:pass@127.0.0.1/")).rejects.toThrow("credentials");
  });
});

describe("job creation through the API applies the same policy", () => {
  let testDb: TestDatabase;
  let secure: SecureService;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    secure = await startSecureService(testDb, dns, {}, { worker: false });
  });

  afterAll(async () => {
    await secure?.stop();
    await testDb?.drop();
  });

  it("answers 400 WEBHOOK_URL_REJECTED with the reason for every hostile URL, and writes no row", async () => {
    for (const [url, reason] of HOSTILE) {
      const response = await secure.api.post("/api/v1/generate", { prompt: "hostile", webhookUrl: url });
      expect(response.status, url).toBe(400);
      const code = url.length > 2048 ? "VALIDATION_FAILED" : "WEBHOOK_URL_REJECTED";
      expect(response.body.error.code, url).toBe(code);
      if (code === "WEBHOOK_URL_REJECTED") expect(response.body.error.message, url).toContain(reason);
    }
    const rows = await testDb.database.query("select 1 from webhook_outbox.jobs");
    expect(rows).toHaveLength(0);
  });

  it("accepts every public URL", async () => {
    for (const url of PUBLIC) {
      const response = await secure.api.post("/api/v1/generate", { prompt: "public", webhookUrl: url });
      expect(response.status, url).toBe(202);
      expect(response.body.webhookUrl).toBe(url);
    }
  });
});
