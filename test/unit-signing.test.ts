import fc from "fast-check";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { signatureHeaders, type SigningInput } from "../src/delivery/signing.js";

// Standard Webhooks' published example: its secret, message id, timestamp, payload and signature.
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TIMESTAMP = 1614265330;
const BODY = '{"test": 2432232314}';
const STANDARD_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
// printf '%s' "$BODY" | openssl dgst -sha256 -mac HMAC -macopt hexkey:$(printf MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | xxd -p -c 64)
const HEX_SIGNATURE = "sha256=e2cb4f5251572539d458bfb8a7adb533b08801e6a794467e06f771debbb0818b";
// A second secret: 32 bytes of 0x07.
const OTHER_SECRET = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
const OTHER_STANDARD_SIGNATURE = "v1,YO/ulmd+VFtlnbodv7yLOOsS6RlBZ48h++gXZrGOpZo=";
const OTHER_HEX_SIGNATURE = "sha256=d4bb5602e186a047238e9e90b47aa870a83ee8a51141873d547689d70828b8f5";

function input(fields: Partial<SigningInput> = {}): SigningInput {
  return { id: ID, timestamp: TIMESTAMP, body: BODY, secrets: [SECRET], attemptNumber: 1, headerPrefix: "X-Webhook-", ...fields };
}

describe("signatureHeaders", () => {
  it("signs the known vector exactly as Standard Webhooks does, and the body alone as hex HMAC-SHA256", () => {
    expect(new Webhook(SECRET).sign(ID, new Date(TIMESTAMP * 1000), BODY)).toBe(STANDARD_SIGNATURE);
    expect(signatureHeaders(input())).toEqual({
      "X-Webhook-Signature": HEX_SIGNATURE,
      "X-Webhook-Attempt": "1",
      "webhook-id": ID,
      "webhook-timestamp": String(TIMESTAMP),
      "webhook-signature": STANDARD_SIGNATURE,
    });
  });

  it("during a rotation, signs with every active secret in order, and the X- pair with the newest", () => {
    const headers = signatureHeaders(input({ secrets: [OTHER_SECRET, SECRET] }));
    expect(headers["webhook-signature"]).toBe(`${OTHER_STANDARD_SIGNATURE} ${STANDARD_SIGNATURE}`);
    expect(headers["X-Webhook-Signature"]).toBe(OTHER_HEX_SIGNATURE);
    expect(signatureHeaders(input({ secrets: [SECRET, OTHER_SECRET] }))["X-Webhook-Signature"]).toBe(HEX_SIGNATURE);
  });

  it("renames the X-Webhook- pair with the header prefix, and leaves the Standard Webhooks headers alone", () => {
    expect(signatureHeaders(input({ headerPrefix: "X-Nouvel-", attemptNumber: 4 }))).toEqual({
      "X-Nouvel-Signature": HEX_SIGNATURE,
      "X-Nouvel-Attempt": "4",
      "webhook-id": ID,
      "webhook-timestamp": String(TIMESTAMP),
      "webhook-signature": STANDARD_SIGNATURE,
    });
  });

  it("signs the timestamp and the id: changing either changes the Standard signature, not the body's", () => {
    const base = signatureHeaders(input());
    for (const changed of [signatureHeaders(input({ timestamp: TIMESTAMP + 1 })), signatureHeaders(input({ id: `${ID}x` }))]) {
      expect(changed["webhook-signature"]).not.toBe(base["webhook-signature"]);
      expect(changed["X-Webhook-Signature"]).toBe(base["X-Webhook-Signature"]);
    }
  });

  it("refuses to sign without a secret", () => {
    expect(() => signatureHeaders(input({ secrets: [] }))).toThrow("no active signing secret");
  });

  it("agrees with the standardwebhooks package for any body, id, timestamp and secret", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme", maxLength: 200 }),
        fc.stringMatching(/^[0-9a-f-]{1,40}$/),
        fc.integer({ min: 0, max: 4_102_444_800 }),
        fc.array(fc.uint8Array({ minLength: 24, maxLength: 64 }), { minLength: 1, maxLength: 3 }),
        (body, id, timestamp, keys) => {
          const secrets = keys.map((key) => `whsec_${Buffer.from(key).toString("base64")}`);
          const headers = signatureHeaders(input({ body, id, timestamp, secrets }));
          const expected = secrets.map((secret) => new Webhook(secret).sign(id, new Date(timestamp * 1000), body));
          expect(headers["webhook-signature"]).toBe(expected.join(" "));
        },
      ),
    );
  });

  it("still signs with the right key after its cache of decoded secrets has been cleared", () => {
    const before = signatureHeaders(input());
    for (let index = 0; index < 10_002; index++) {
      signatureHeaders(input({ secrets: [`whsec_${Buffer.alloc(32, index % 256).toString("base64")}${"A".repeat(Math.floor(index / 256))}`] }));
    }
    expect(signatureHeaders(input())).toEqual(before);
    expect(signatureHeaders(input({ secrets: [OTHER_SECRET] }))["X-Webhook-Signature"]).toBe(OTHER_HEX_SIGNATURE);
  });
});
