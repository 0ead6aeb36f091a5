// The Express receiver of the provider documents, verifying X-Webhook-Signature first:
// `sha256=` + hex HMAC-SHA256 of the raw body, keyed with the base64-decoded part of the whsec_ secret.
//   WEBHOOK_SECRET=whsec_... PORT=4000 node examples/receiver-express.mjs
import { createHmac, timingSafeEqual } from "node:crypto";
import express from "express";

const key = Buffer.from(process.env.WEBHOOK_SECRET.replace(/^whsec_/, ""), "base64");
const signatureHeader = `${process.env.WEBHOOK_HEADER_PREFIX ?? "X-Webhook-"}Signature`;

function signatureIsValid(req) {
  if (!Buffer.isBuffer(req.body)) return false;
  const expected = Buffer.from(`sha256=${createHmac("sha256", key).update(req.body).digest("hex")}`);
  const given = Buffer.from(req.get(signatureHeader) ?? "");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

const app = express();

// express.raw, not express.json: the signature covers the bytes as sent.
app.post("/webhook", express.raw({ type: "application/json" }), (req, res) => {
  if (!signatureIsValid(req)) {
    console.log("rejected: invalid signature");
    return res.status(401).json({ error: "invalid signature" });
  }
  try {
    const data = JSON.parse(req.body);
    const id = data.generation_id ?? data.jobId; // a Veo3 body, or a job.completed body
    if (data.status === "completed") {
      console.log(`verified ${req.get("webhook-id")} ${id} completed ${data.video_url ?? data.projects.map((p) => p.videoUrl).join(" ")}`);
    } else {
      const code = data.error?.message ?? data.projects?.find((p) => p.error)?.error.code ?? "unknown error";
      console.log(`verified ${req.get("webhook-id")} ${id} ${data.status} ${code}`);
    }
    res.status(200).json({ status: "received" });
  } catch (error) {
    console.error("webhook error:", error);
    res.status(500).json({ error: "internal error" }); // a 5xx is retried
  }
});

const server = app.listen(Number(process.env.PORT ?? 4000), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}/webhook`);
});
