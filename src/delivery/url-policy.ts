export class UrlRejectedError extends Error {
  constructor(readonly reason: string) {
    super(`webhook URL rejected: ${reason}`);
    this.name = "UrlRejectedError";
  }
}

export interface UrlPolicyOptions {
  allowInsecure: boolean;
}

export const MAX_URL_LENGTH = 2048;

/**
 * Decides whether a webhook URL may be stored and later connected to.
 * Checked at job creation and again before every attempt.
 */
export class UrlPolicy {
  constructor(private readonly options: UrlPolicyOptions) {}

  get allowsInsecure(): boolean {
    return this.options.allowInsecure;
  }

  /** Parses and vets the URL's form; throws UrlRejectedError with the reason. */
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
    return url;
  }

  async check(raw: string): Promise<URL> {
    return this.parse(raw);
  }
}
