// A webhook receiver that verifies the Standard Webhooks headers (webhook-id, webhook-timestamp,
// webhook-signature) with the `standardwebhooks` package, over the raw body, before parsing it.
//   WEBHOOK_SECRET=whsec_... PORT=4000 node examples/receiver-node.mjs
import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";

const webhook = new Webhook(process.env.WEBHOOK_SECRET); // the tenant's whsec_… signing secret

const server = createServer(async (request, response) => {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  const body = Buffer.concat(chunks).toString("utf8");
  try {
    // Checks the signature (any v1 entry: two during a secret rotation) and a timestamp within 5 minutes.
    const event = webhook.verify(body, request.headers);
    // webhook-id is the same on every retry of a delivery: deduplicate on it.
    const id = event.jobId ?? event.generation_id;
    console.log(`verified ${request.headers["webhook-id"]} ${id} ${event.status}`);
    response.writeHead(200, { "content-type": "application/json" }).end('{"status":"received"}');
  } catch (error) {
    console.log(`rejected: ${error.message}`);
    response.writeHead(401, { "content-type": "application/json" }).end('{"error":"invalid signature"}');
  }
});

server.listen(Number(process.env.PORT ?? 4000), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}/webhook`);
});
