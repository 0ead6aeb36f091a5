# The Flask receiver of the provider documents, verifying X-Webhook-Signature first:
# "sha256=" + hex HMAC-SHA256 of the raw body, keyed with the base64-decoded part of the whsec_ secret.
#   pip install flask
#   WEBHOOK_SECRET=whsec_... PORT=4000 python3 examples/receiver_flask.py
import base64
import hashlib
import hmac
import os

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

KEY = base64.b64decode(os.environ["WEBHOOK_SECRET"].removeprefix("whsec_"))
SIGNATURE_HEADER = os.environ.get("WEBHOOK_HEADER_PREFIX", "X-Webhook-") + "Signature"

app = Flask(__name__)


@app.route("/webhook", methods=["POST"])
def webhook():
    body = request.get_data()  # the raw bytes: the signature covers them as sent
    expected = "sha256=" + hmac.new(KEY, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), request.headers.get(SIGNATURE_HEADER, "").encode()):
        print("rejected: invalid signature", flush=True)
        return jsonify({"error": "invalid signature"}), 401
    data = request.get_json()
    event_id = data.get("generation_id") or data.get("jobId")  # a Veo3 body, or a job.completed body
    if data["status"] == "completed":
        print(f"verified {request.headers.get('webhook-id')} {event_id} completed", flush=True)
    else:
        code = (data.get("error") or {}).get("message") or "see projects[].error"
        print(f"verified {request.headers.get('webhook-id')} {event_id} {data['status']} {code}", flush=True)
    return jsonify({"status": "received"}), 200


if __name__ == "__main__":
    server = make_server("127.0.0.1", int(os.environ.get("PORT", "4000")), app)
    print(f"listening on http://127.0.0.1:{server.port}/webhook", flush=True)
    server.serve_forever()
