import { AddressPolicy, ipLiteralOf, systemResolver, type Resolver } from "./address-policy.js";

export class UrlRejectedError extends Error {
  constructor(readonly reason: string) {
    super(`webhook URL rejected: ${reason}`);
    this.name = "UrlRejectedError";
  }
}

export interface UrlPolicyOptions {
  /** Dev and tests only: http and every address are allowed. */
  allowInsecure: boolean;
  /** CIDR ranges admitted although not public (WEBHOOK_ALLOWED_CIDRS). */
  allowedCidrs?: readonly string[] | undefined;
  /** Host name resolution; the system resolver unless a test injects one. */
  resolver?: Resolver | undefined;
}

export const MAX_URL_LENGTH = 2048;

/**
 * Decides whether a webhook URL may be stored and later connected to.
 * `check` runs at job creation (form, then every address the host resolves to). At send time the
 * sender calls `parse` (form and IP literals) and resolves host names through `resolveVetted`
 * from inside the connection's lookup hook, so the address vetted is the address connected to.
 */
export class UrlPolicy {
  private readonly addresses: AddressPolicy;
  private readonly resolver: Resolver;

  constructor(private readonly options: UrlPolicyOptions) {
    this.addresses = new AddressPolicy({ allowedCidrs: options.allowedCidrs });
    this.resolver = options.resolver ?? systemResolver;
  }

  get allowsInsecure(): boolean {
    return this.options.allowInsecure;
  }

  /** Parses and vets the URL's form and, for an IP-literal host, its address; throws UrlRejectedError with the reason. */
  parse(raw: string): URL {
    if (raw.length > MAX_URL_LENGTH) throw new UrlRejectedError(`longer than ${MAX_URL_LENGTH} characters`);
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new UrlRejectedError("not an absolute URL");
    }
    const schemes = this.options.allowInsecure ? ["https:", "http:"] : ["https:"];
    if (!schemes.includes(url.protocol)) throw new UrlRejectedError(`scheme must be ${schemes.join(" or ")}`);
    if (url.username || url.password) throw new UrlRejectedError("credentials in the URL are not allowed");
    if (url.hash) throw new UrlRejectedError("a fragment is not allowed");
    if (this.options.allowInsecure) return url;

    const host = url.hostname.replace(/\.+$/, "");
    if (host === "") throw new UrlRejectedError("the URL has no host");
    if (host === "localhost" || host.endsWith(".localhost")) throw new UrlRejectedError(`${host} is a loopback name`);
    const literal = ipLiteralOf(url.hostname);
    if (literal !== undefined) this.vet(literal, literal);
    return url;
  }

  /** The full creation-time check: form, then every address the host resolves to. */
  async check(raw: string): Promise<URL> {
    const url = this.parse(raw);
    if (this.options.allowInsecure || ipLiteralOf(url.hostname) !== undefined) return url;
    try {
      await this.resolveVetted(url.hostname);
    } catch (error) {
      if (error instanceof UrlRejectedError) throw error;
      const code = (error as { code?: unknown }).code;
      throw new UrlRejectedError(`${url.hostname} could not be resolved${typeof code === "string" ? ` (${code})` : ""}`);
    }
    return url;
  }

  /**
   * Resolves a host name and vets every answer: one refused address refuses the host, so a
   * name cannot smuggle a private address in beside a public one. Resolver errors pass through.
   */
  async resolveVetted(hostname: string): Promise<string[]> {
    const answers = await this.resolver(hostname);
    if (answers.length === 0) throw Object.assign(new Error(`${hostname} has no addresses`), { code: "ENOTFOUND" });
    if (!this.options.allowInsecure) for (const address of answers) this.vet(hostname, address);
    return answers;
  }

  private vet(host: string, address: string): void {
    const reason = this.addresses.reasonToRefuse(address);
    if (reason === undefined) return;
    throw new UrlRejectedError(host === address ? `${address} is ${reason}` : `${host} resolves to ${address}, ${reason}`);
  }
}
