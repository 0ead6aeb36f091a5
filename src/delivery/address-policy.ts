import { lookup } from "node:dns/promises";
import ipaddr from "ipaddr.js";

/** Answers a host name with every address it resolves to. Injectable so tests never touch real DNS. */
export type Resolver = (hostname: string) => Promise<string[]>;

export const systemResolver: Resolver = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((answer) => answer.address);

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses `10.0.0.0/8, fd00::/8` into CIDRs; throws with the offending entry. */
export function parseCidrList(text: string): Cidr[] {
  return text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map((entry) => {
      try {
        return ipaddr.parseCIDR(entry);
      } catch {
        throw new Error(`"${entry}" is not a CIDR range such as 10.0.0.0/8 or fd00::/8`);
      }
    });
}

const IPV4_COMPATIBLE_PREFIX = ipaddr.parse("::") as ipaddr.IPv6;

/**
 * Decides whether one IP address may be connected to. Only global unicast is allowed, as
 * ipaddr.js classifies it: every special range (loopback, private, link-local, CGNAT, multicast,
 * reserved, documentation, benchmarking, NAT64, 6to4, Teredo, ULA, …) is refused, and IPv4-mapped
 * and IPv4-compatible IPv6 forms are judged by the IPv4 address they carry.
 * `allowedCidrs` re-admits ranges an on-premises operator names explicitly.
 */
export class AddressPolicy {
  private readonly allowedCidrs: Cidr[];

  constructor(options: { allowedCidrs?: readonly string[] | undefined }) {
    this.allowedCidrs = parseCidrList((options.allowedCidrs ?? []).join(","));
  }

  /** Undefined when the address is allowed; otherwise what it is, e.g. "a loopback address". */
  reasonToRefuse(address: string): string | undefined {
    let parsed: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      parsed = ipaddr.parse(address);
    } catch {
      return "not an IP address";
    }
    if (this.isExplicitlyAllowed(parsed)) return undefined;
    const effective = embeddedIpv4(parsed) ?? parsed;
    if (effective !== parsed && this.isExplicitlyAllowed(effective)) return undefined;
    const range = effective.range();
    if (range !== "unicast") return describeRange(range);
    return undefined;
  }

  private isExplicitlyAllowed(address: ipaddr.IPv4 | ipaddr.IPv6): boolean {
    return this.allowedCidrs.some(([range, bits]) => range.kind() === address.kind() && address.match(range, bits));
  }
}

/** The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or IPv4-compatible (::a.b.c.d) IPv6 address. */
function embeddedIpv4(address: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | undefined {
  if (address.kind() !== "ipv6") return undefined;
  const v6 = address as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address();
  // ::/96 minus :: and ::1 (which ipaddr.js already names) is the deprecated IPv4-compatible form.
  if (v6.match(IPV4_COMPATIBLE_PREFIX, 96) && v6.range() === "unicast") {
    const bytes = v6.toByteArray().slice(12);
    return new ipaddr.IPv4(bytes);
  }
  return undefined;
}

function describeRange(range: string): string {
  const names: Record<string, string> = {
    unspecified: "an unspecified address",
    broadcast: "the broadcast address",
    multicast: "a multicast address",
    linkLocal: "a link-local address",
    loopback: "a loopback address",
    carrierGradeNat: "a carrier-grade NAT address",
    private: "a private address",
    reserved: "a reserved address",
    uniqueLocal: "a unique-local (ULA) address",
    ipv4Mapped: "an IPv4-mapped address",
    rfc6052: "a NAT64 address",
    rfc6145: "an IPv4-translated address",
    "6to4": "a 6to4 address",
    teredo: "a Teredo address",
  };
  return names[range] ?? `a non-public address (${range})`;
}

/** The IP address a URL host names directly, if it is a literal (the WHATWG parser has already normalised it). */
export function ipLiteralOf(hostname: string): string | undefined {
  if (hostname.startsWith("[") && hostname.endsWith("]")) return hostname.slice(1, -1);
  return ipaddr.IPv4.isValidFourPartDecimal(hostname) ? hostname : undefined;
}

export function familyOf(address: string): 4 | 6 {
  return ipaddr.parse(address).kind() === "ipv6" ? 6 : 4;
}

/**
 * Every range AddressPolicy refuses, as CIDR text: ipaddr.js's special ranges of both families,
 * except IPv4-mapped IPv6 (judged by the IPv4 address it carries). What the SQL API checks an
 * IP-literal host against (webhook_outbox.settings.blocked_cidrs).
 */
export function nonPublicRanges(): string[] {
  type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];
  const lists = (special: Record<string, Range | Range[]>, skip: string[]) =>
    Object.entries(special)
      .filter(([name]) => !skip.includes(name))
      .flatMap(([, ranges]) => (Array.isArray(ranges[0]) ? (ranges as Range[]) : [ranges as Range]))
      .map(([address, bits]) => `${address.toString()}/${bits}`);
  // The special ranges are on the prototypes; @types of ipaddr.js do not declare them.
  const special = (kind: typeof ipaddr.IPv4 | typeof ipaddr.IPv6) =>
    (kind.prototype as unknown as { SpecialRanges: Record<string, Range | Range[]> }).SpecialRanges;
  return [...lists(special(ipaddr.IPv4), []), ...lists(special(ipaddr.IPv6), ["ipv4Mapped"])];
}
