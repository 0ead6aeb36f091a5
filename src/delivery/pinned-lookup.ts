import type { LookupFunction } from "node:net";
import { familyOf } from "./address-policy.js";
import type { UrlPolicy } from "./url-policy.js";

/**
 * A `lookup` for net/tls connect (undici's `connect.lookup`): the host is resolved once, every
 * answer is vetted by the policy, and the socket connects only to those vetted answers. There is
 * no second resolution between check and connect, so DNS rebinding has no window.
 * A refused address fails the connection with the policy's UrlRejectedError before any socket opens.
 */
export function pinnedLookup(policy: UrlPolicy): LookupFunction {
  return (hostname, options, callback) => {
    policy.resolveVetted(hostname).then(
      (addresses) => {
        const wanted = options.family === 4 || options.family === 6 ? options.family : undefined;
        const answers = addresses
          .map((address) => ({ address, family: familyOf(address) }))
          .filter((answer) => wanted === undefined || answer.family === wanted);
        const first = answers[0];
        if (!first) {
          const error = Object.assign(new Error(`${hostname} has no IPv${wanted ?? ""} address`), { code: "ENOTFOUND" });
          callback(error, "", 0);
          return;
        }
        // Node's LookupFunction type only models the single-answer callback; with `all` it expects the list.
        if (options.all) (callback as unknown as (error: null, all: typeof answers) => void)(null, answers);
        else callback(null, first.address, first.family);
      },
      (error: unknown) => callback(error as NodeJS.ErrnoException, "", 0),
    );
  };
}
