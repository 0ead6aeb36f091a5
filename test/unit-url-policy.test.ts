import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AddressPolicy, familyOf, ipLiteralOf, parseCidrList } from "../src/delivery/address-policy.js";
import { MAX_URL_LENGTH, UrlPolicy, UrlRejectedError } from "../src/delivery/url-policy.js";

/*
 * The pure parts of the webhook URL policy, beside the table of hostile URLs in
 * test/security-url-policy.test.ts: range edges, ranges that table does not reach, the helpers, and
 * `parse` (the send-time check) on its own. No resolver answers here: `parse` must never call one.
 */

const addresses = new AddressPolicy({});
const neverResolves = async (hostname: string): Promise<string[]> => {
  throw new Error(`parse resolved ${hostname}`);
};
const policy = new UrlPolicy({ allowInsecure: false, resolver: neverResolves });
const insecure = new UrlPolicy({ allowInsecure: true, resolver: neverResolves });

/** The IPv4 ranges the contract names, as [first address, prefix length, a word of the reason]. */
const NAMED_RANGES: Array<[number, number, string]> = [
  [0x0a00_0000, 8, "private"],
  [0xac10_0000, 12, "private"],
  [0xc0a8_0000, 16, "private"],
  [0x7f00_0000, 8, "loopback"],
  [0xa9fe_0000, 16, "link-local"],
  [0x6440_0000, 10, "carrier-grade NAT"],
  [0xe000_0000, 4, "multicast"],
  [0x0000_0000, 8, "unspecified"],
];
const inNamedRange = fc
  .tuple(fc.constantFrom(...NAMED_RANGES), fc.nat())
  .map(([[base, bits, name], offset]) => ({ value: (base + (offset % 2 ** (32 - bits))) >>> 0, name }));
/** Any IPv4 address as a number, half of them from the named ranges (a uniform pick rarely lands in one). */
const ipv4Value = fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), inNamedRange.map(({ value }) => value));
const dottedOf = (value: number) => [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".");

function refusal(url: string, using: UrlPolicy = policy): string | undefined {
  try {
    using.parse(url);
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(UrlRejectedError);
    return (error as UrlRejectedError).reason;
  }
}

describe("AddressPolicy: the edges of each refused IPv4 range", () => {
  it.each([
    // [first refused, last refused, public neighbours, reason]
    ["0.0.0.0", "0.255.255.255", ["1.0.0.0"], "an unspecified address"],
    ["10.0.0.0", "10.255.255.255", ["9.255.255.255", "11.0.0.0"], "a private address"],
    ["100.64.0.0", "100.127.255.255", ["100.63.255.255", "100.128.0.0"], "a carrier-grade NAT address"],
    ["127.0.0.0", "127.255.255.255", ["126.255.255.255", "128.0.0.0"], "a loopback address"],
    ["169.254.0.0", "169.254.255.255", ["169.253.255.255", "169.255.0.0"], "a link-local address"],
    ["172.16.0.0", "172.31.255.255", ["172.15.255.255", "172.32.0.0"], "a private address"],
    ["192.168.0.0", "192.168.255.255", ["192.167.255.255", "192.169.0.0"], "a private address"],
    ["224.0.0.0", "239.255.255.255", ["223.255.255.255"], "a multicast address"],
    ["240.0.0.0", "255.255.255.254", [], "a reserved address"],
  ])("refuses %s to %s, not its neighbours %j", (first, last, neighbours, reason) => {
    expect(addresses.reasonToRefuse(first)).toBe(reason);
    expect(addresses.reasonToRefuse(last)).toBe(reason);
    for (const neighbour of neighbours) expect(addresses.reasonToRefuse(neighbour), neighbour).toBeUndefined();
  });

  it.each([
    ["192.0.0.1", "a reserved address"],
    ["192.88.99.1", "a reserved address"],
    ["192.52.193.1", "a non-public address (amt)"],
    ["192.175.48.1", "a non-public address (as112)"],
    ["192.31.196.1", "a non-public address (as112)"],
    ["255.255.255.255", "the broadcast address"],
  ])("refuses the special-purpose %s as %s", (address, reason) => {
    expect(addresses.reasonToRefuse(address)).toBe(reason);
  });

  it.each(["1.1.1.1", "8.8.8.8", "93.184.216.34", "223.255.255.255", "192.0.1.1", "198.20.0.1"])("allows the public %s", (address) => {
    expect(addresses.reasonToRefuse(address)).toBeUndefined();
  });

  it("reads a resolver's answer in any IPv4 notation by its value", () => {
    for (const loopback of ["127.1", "0177.0.0.1", "0x7f000001", "2130706433"]) {
      expect(addresses.reasonToRefuse(loopback), loopback).toBe("a loopback address");
    }
  });
});

describe("AddressPolicy: IPv6", () => {
  it.each([
    ["::", "an unspecified address"],
    ["::1", "a loopback address"],
    ["fe80::", "a link-local address"],
    ["febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "a link-local address"],
    ["fe80::1%eth0", "a link-local address"],
    ["fc00::", "a unique-local (ULA) address"],
    ["fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "a unique-local (ULA) address"],
    ["ff00::", "a multicast address"],
    ["ff02::1:ff00:1", "a multicast address"],
    ["2001:db8::1", "a reserved address"],
    ["3fff::1", "a reserved address"],
    ["64:ff9b::808:808", "a NAT64 address"],
    ["64:ff9b:1::1", "a NAT64 address"],
    ["2002:808:808::1", "a 6to4 address"],
    ["2001:0:4136:e378::1", "a Teredo address"],
    ["::ffff:0:a00:1", "an IPv4-translated address"],
    ["fec0::1", "a non-public address (deprecatedSiteLocal)"],
    ["100::1", "a non-public address (discard)"],
    ["2001:2::1", "a non-public address (benchmarking)"],
    ["2001:10::1", "a non-public address (deprecatedOrchid)"],
    ["2001:20::1", "a non-public address (orchid2)"],
    ["2620:4f:8000::1", "a non-public address (as112v6)"],
  ])("refuses %s as %s", (address, reason) => {
    expect(addresses.reasonToRefuse(address)).toBe(reason);
  });

  it.each(["2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "2001:4860:4860::8888"])(
    "allows the global unicast %s",
    (address) => {
      expect(addresses.reasonToRefuse(address)).toBeUndefined();
    },
  );

  it("judges IPv4-mapped and IPv4-compatible forms, dotted or hex, by the IPv4 address they carry", () => {
    expect(addresses.reasonToRefuse("::ffff:127.0.0.1")).toBe("a loopback address");
    expect(addresses.reasonToRefuse("::ffff:7f00:1")).toBe("a loopback address");
    expect(addresses.reasonToRefuse("0:0:0:0:0:ffff:a9fe:a9fe")).toBe("a link-local address");
    expect(addresses.reasonToRefuse("::ffff:100.64.0.1")).toBe("a carrier-grade NAT address");
    expect(addresses.reasonToRefuse("::ffff:224.0.0.1")).toBe("a multicast address");
    expect(addresses.reasonToRefuse("::10.0.0.1")).toBe("a private address");
    expect(addresses.reasonToRefuse("::ffff:8.8.8.8")).toBeUndefined();
    expect(addresses.reasonToRefuse("::808:808")).toBeUndefined();
  });

  it("gives every IPv4 address and its IPv4-mapped form the same verdict", () => {
    fc.assert(
      fc.property(ipv4Value.map(dottedOf), (v4) => {
        const [a, b, c, d] = v4.split(".").map(Number) as [number, number, number, number];
        const hex = `::ffff:${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
        expect(addresses.reasonToRefuse(`::ffff:${v4}`)).toBe(addresses.reasonToRefuse(v4));
        expect(addresses.reasonToRefuse(hex)).toBe(addresses.reasonToRefuse(v4));
      }),
      { numRuns: 500 },
    );
  });

  it("refuses what is not an IP address", () => {
    for (const text of ["", "example.com", "1.2.3.4.5", "256.0.0.1", "::g", "1::2::3", " 8.8.8.8"]) {
      expect(addresses.reasonToRefuse(text), text).toBe("not an IP address");
    }
  });
});

describe("AddressPolicy: WEBHOOK_ALLOWED_CIDRS", () => {
  const onPrem = new AddressPolicy({ allowedCidrs: ["10.1.0.0/16", "fd00:1::/32", "169.254.169.254/32"] });

  it("re-admits exactly the ranges named, in either family and through a mapped form", () => {
    expect(onPrem.reasonToRefuse("10.1.255.255")).toBeUndefined();
    expect(onPrem.reasonToRefuse("::ffff:10.1.0.1")).toBeUndefined();
    expect(onPrem.reasonToRefuse("fd00:1::5")).toBeUndefined();
    expect(onPrem.reasonToRefuse("169.254.169.254")).toBeUndefined();
    expect(onPrem.reasonToRefuse("10.2.0.1")).toBe("a private address");
    expect(onPrem.reasonToRefuse("fd00:2::5")).toBe("a unique-local (ULA) address");
    expect(onPrem.reasonToRefuse("169.254.169.253")).toBe("a link-local address");
    expect(onPrem.reasonToRefuse("127.0.0.1")).toBe("a loopback address");
  });

  it("never matches an IPv4 range against an IPv6 address or the other way round", () => {
    const v4Only = new AddressPolicy({ allowedCidrs: ["0.0.0.0/0"] });
    expect(v4Only.reasonToRefuse("127.0.0.1")).toBeUndefined();
    expect(v4Only.reasonToRefuse("::1")).toBe("a loopback address");
    const v6Only = new AddressPolicy({ allowedCidrs: ["::/0"] });
    expect(v6Only.reasonToRefuse("::1")).toBeUndefined();
    expect(v6Only.reasonToRefuse("10.0.0.1")).toBe("a private address");
  });
});

describe("parseCidrList, ipLiteralOf, familyOf", () => {
  it("reads a comma-separated list, skipping blanks, and names the first bad entry", () => {
    expect(parseCidrList("").map(String)).toEqual([]);
    expect(parseCidrList(" 10.0.0.0/8 , ,fd00::/8, ").map(([range, bits]) => `${range.toString()}/${bits}`)).toEqual(["10.0.0.0/8", "fd00::/8"]);
    for (const bad of ["10.0.0.0/33", "10.0.0.1", "intranet", "fd00::/129", "10.0.0.0/8;192.168.0.0/16"]) {
      expect(() => parseCidrList(`192.168.0.0/16, ${bad}`), bad).toThrow(`"${bad}" is not a CIDR range such as 10.0.0.0/8 or fd00::/8`);
    }
  });

  it("finds the IP literal of a URL host the WHATWG parser has normalised, and nothing in a name", () => {
    expect(ipLiteralOf("[::1]")).toBe("::1");
    expect(ipLiteralOf("[fe80::1]")).toBe("fe80::1");
    expect(ipLiteralOf("127.0.0.1")).toBe("127.0.0.1");
    for (const name of ["example.com", "localhost", "1.2.3", "999.1.1.1", "01.2.3.4", "::1"]) expect(ipLiteralOf(name), name).toBeUndefined();
  });

  it("names the family of an address", () => {
    expect(familyOf("8.8.8.8")).toBe(4);
    expect(familyOf("2606:4700::1111")).toBe(6);
    expect(familyOf("::ffff:8.8.8.8")).toBe(6);
  });
});

describe("UrlPolicy.parse, the send-time check", () => {
  it("judges an IP-literal host without resolving anything", () => {
    expect(refusal("https://127.0.0.1/hook")).toBe("127.0.0.1 is a loopback address");
    expect(refusal("https://[::ffff:127.0.0.1]:443/hook")).toBe("::ffff:7f00:1 is a loopback address");
    expect(refusal("https://93.184.216.34/hook")).toBeUndefined();
  });

  it("leaves host names to the resolution step: a name is not resolved here, whatever it will resolve to", () => {
    expect(refusal("https://hooks.example.com/hook")).toBeUndefined();
    expect(refusal("https://rebinding.example/hook")).toBeUndefined();
  });

  it.each([
    ["https://%31%32%37.0.0.1/", "127.0.0.1 is a loopback address"],
    ["https://0300.0250.1.1/", "192.168.1.1 is a private address"],
    ["https://192.168.257/", "192.168.1.1 is a private address"],
    ["https://4294967295/", "255.255.255.255 is the broadcast address"],
    ["https://[::]:1/", ":: is an unspecified address"],
    ["https://[::ffff:a9fe:a9fe]/", "::ffff:a9fe:a9fe is a link-local address"],
    ["https://[fec0::1]/", "fec0::1 is a non-public address (deprecatedSiteLocal)"],
    ["https://192.88.99.1/", "192.88.99.1 is a reserved address"],
    ["https://./", "the URL has no host"],
    ["https://4294967296/", "not an absolute URL"],
    ["https://1.2.3.4.5/", "not an absolute URL"],
    ["https://[fe80::1%25eth0]/", "not an absolute URL"],
    ["https://exa mple.com/", "not an absolute URL"],
    ["https://127.0.0.1%2f@example.com/", "credentials in the URL are not allowed"],
    ["wss://example.com/", "scheme must be https:"],
    ["data:text/plain,hello", "scheme must be https:"],
  ])("refuses %s: %s", (url, reason) => {
    expect(refusal(url)).toBe(reason);
  });

  it("accepts exactly MAX_URL_LENGTH characters", () => {
    const prefix = "https://example.com/";
    const longest = prefix + "a".repeat(MAX_URL_LENGTH - prefix.length);
    expect(longest).toHaveLength(2048);
    expect(refusal(longest)).toBeUndefined();
    expect(refusal(`${longest}a`)).toBe("longer than 2048 characters");
  });

  it("with allowInsecure, admits http and any address but keeps the rules of form", () => {
    expect(refusal("http://127.0.0.1:8080/hook", insecure)).toBeUndefined();
    expect(refusal("https://[::1]/hook", insecure)).toBeUndefined();
    expect(refusal("http://localhost/hook", insecure)).toBeUndefined();
    expect(refusal("ftp://127.0.0.1/", insecure)).toBe("scheme must be https: or http:");
    expect(refusal("http://user:pass@127.0.0.1/", insecure)).toBe("credentials in the URL are not allowed");
    expect(refusal("http://127.0.0.1/#top", insecure)).toBe("a fragment is not allowed");
    expect(refusal(`http://127.0.0.1/${"a".repeat(2048)}`, insecure)).toBe("longer than 2048 characters");
  });

  it("gives an IPv4 host the same verdict in every notation the URL parser accepts", () => {
    fc.assert(
      fc.property(ipv4Value, (value) => {
        const octets = [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255] as const;
        const dotted = octets.join(".");
        const reason = addresses.reasonToRefuse(dotted);
        const expected = reason === undefined ? undefined : `${dotted} is ${reason}`;
        const hexPair = (high: number, low: number) => ((high << 8) | low).toString(16);
        const notations = [
          dotted,
          String(value),
          `0x${value.toString(16)}`,
          octets.map((octet) => `0${octet.toString(8)}`).join("."),
          octets.map((octet) => `0x${octet.toString(16)}`).join("."),
          `${octets[0]}.${(value & 0xff_ffff).toString()}`,
          `${octets[0]}.${octets[1]}.${value & 0xffff}`,
          `${dotted}.`,
        ];
        for (const host of notations) expect(refusal(`https://${host}/hook`), host).toBe(expected);
        const mapped = refusal(`https://[::ffff:${dotted}]/hook`);
        const mappedHex = `::ffff:${hexPair(octets[0], octets[1])}:${hexPair(octets[2], octets[3])}`;
        expect(mapped).toBe(reason === undefined ? undefined : `${mappedHex} is ${reason}`);
      }),
      { numRuns: 300 },
    );
  });

  it("refuses every address of each range the contract names, in decimal and in hex", () => {
    fc.assert(
      fc.property(inNamedRange, ({ value, name }) => {
        expect(refusal(`https://${value}/`)).toContain(name);
        expect(refusal(`https://0x${value.toString(16)}/`)).toContain(name);
      }),
      { numRuns: 500 },
    );
  });
});
