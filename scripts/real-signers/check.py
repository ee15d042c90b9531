"""Both-ways check of hookgate's presets against the senders' own signing libraries.

Run by run.sh, which installs the libraries. Starts the real gateway (`hookgate serve`)
with one route per scheme, then for each library:
  * library signs  -> gateway accepts it (200 forwarded), refuses it with a changed body;
  * `hookgate sign` -> library verifies it, and rejects it under another secret.
Prints one line per check and a closing "N passed, N failed" line; exits 1 on failure.
"""

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

BODY = b'{"id":"evt_1","event_id":"e-1","type":"test","n":1}'
PUBLIC = "https://hooks.example.com"
SECRETS = {
    "standard-webhooks": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "svix": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "stripe": "whsec_test_secret",
    "slack": "8f742231b10e8888abcd99yyyzzz85a5",
    "twilio": "12345",
    "square": "Ibxx_5AKakO-3qeNVR61Dw",
    "github": "It's a Secret to Everybody",
    "shopify": "hush",
    "twitch": "s3cRe7s3cRe7",
}
OTHER_WHSEC = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{(': ' + detail) if detail and not ok else ''}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, target, headers, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{target}", data=body, method="POST")
    for k, v in headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("x-hookgate-verdict")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("x-hookgate-verdict")


def hookgate_sign(bin_, preset, secret, body_file, url=None):
    args = [bin_, "sign", "--preset", preset, "--secret", secret]
    if url:
        args += ["--url", url]
    out = subprocess.run(args + [body_file], check=True, capture_output=True, text=True).stdout
    headers, posted = {}, None
    for line in out.splitlines():
        if line.startswith("# POST "):
            posted = line[len("# POST "):]
        elif ": " in line:
            k, v = line.split(": ", 1)
            headers[k.lower()] = v
    return headers, posted


def node(work, script):
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script], cwd=work, check=True,
        capture_output=True, text=True,
    )
    return out.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()

    import standardwebhooks
    import svix.webhooks
    import stripe
    from slack_sdk.signature import SignatureVerifier
    from twilio.request_validator import RequestValidator
    from square.utils.webhooks_helper import verify_signature as square_verify

    port = free_port()
    routes = "".join(
        f'[[route]]\nname = "{n}"\npath = "/hooks/{n}"\nupstream = "file://{a.work}/delivered.jsonl"\n'
        f'public_url = "{PUBLIC}/hooks/{n}"\nauth = {{ type = "{n}", secrets = ["{s}"] }}\n'
        for n, s in SECRETS.items()
    )
    cfg = os.path.join(a.work, "hookgate.toml")
    with open(cfg, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:{port}"\n[store]\nbackend = "memory"\n{routes}')
    body_file = os.path.join(a.work, "body.json")
    with open(body_file, "wb") as f:
        f.write(BODY)
    gw = subprocess.Popen([a.bin, "serve", "--config", cfg], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)

        def through_gateway(name, target, headers):
            status, verdict = post(port, target, headers, BODY)
            check(f"{name}: library-signed request forwarded", status == 200 and verdict == "forwarded",
                  f"{status} {verdict}")
            status, verdict = post(port, target, headers, BODY + b" ")
            check(f"{name}: library-signed request with another body refused", status == 401,
                  f"{status} {verdict}")

        now = int(time.time())
        when = datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc)

        # Standard Webhooks (PyPI standardwebhooks).
        wh = standardwebhooks.Webhook(SECRETS["standard-webhooks"])
        sig = wh.sign("msg_1", when, BODY)
        through_gateway("standard-webhooks", "/hooks/standard-webhooks",
                        {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": sig})
        h, _ = hookgate_sign(a.bin, "standard-webhooks", SECRETS["standard-webhooks"], body_file)
        try:
            wh.verify(BODY, h)
            check("standard-webhooks: library verifies hookgate sign", True)
        except Exception as e:
            check("standard-webhooks: library verifies hookgate sign", False, repr(e))
        try:
            standardwebhooks.Webhook(OTHER_WHSEC).verify(BODY, h)
            check("standard-webhooks: library refuses it under another secret", False)
        except Exception:
            check("standard-webhooks: library refuses it under another secret", True)

        # Svix (PyPI svix).
        sw = svix.webhooks.Webhook(SECRETS["svix"])
        sig = sw.sign("msg_2", when, BODY.decode())
        through_gateway("svix", "/hooks/svix",
                        {"svix-id": "msg_2", "svix-timestamp": str(now), "svix-signature": sig})
        h, _ = hookgate_sign(a.bin, "svix", SECRETS["svix"], body_file)
        try:
            sw.verify(BODY, h)
            check("svix: library verifies hookgate sign", True)
        except Exception as e:
            check("svix: library verifies hookgate sign", False, repr(e))

        # Stripe (PyPI stripe).
        header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRETS["stripe"])
        through_gateway("stripe", "/hooks/stripe", {"Stripe-Signature": header})
        h, _ = hookgate_sign(a.bin, "stripe", SECRETS["stripe"], body_file)
        try:
            stripe.WebhookSignature.verify_header(BODY, h["stripe-signature"], SECRETS["stripe"], 300)
            check("stripe: library verifies hookgate sign", True)
        except Exception as e:
            check("stripe: library verifies hookgate sign", False, repr(e))
        try:
            stripe.WebhookSignature.verify_header(BODY, h["stripe-signature"], "whsec_other", 300)
            check("stripe: library refuses it under another secret", False)
        except Exception:
            check("stripe: library refuses it under another secret", True)

        # Slack (PyPI slack-sdk).
        sv = SignatureVerifier(SECRETS["slack"])
        sig = sv.generate_signature(timestamp=str(now), body=BODY)
        through_gateway("slack", "/hooks/slack",
                        {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": sig})
        h, _ = hookgate_sign(a.bin, "slack", SECRETS["slack"], body_file)
        check("slack: library verifies hookgate sign",
              sv.is_valid(BODY, h["x-slack-request-timestamp"], h["x-slack-signature"]))
        check("slack: library refuses it under another secret",
              not SignatureVerifier("other").is_valid(BODY, h["x-slack-request-timestamp"],
                                                      h["x-slack-signature"]))

        # Twilio (PyPI twilio): the JSON variant, bodySHA256 in the signed URL.
        rv = RequestValidator(SECRETS["twilio"])
        url = f"{PUBLIC}/hooks/twilio?bodySHA256={rv.compute_hash(BODY.decode())}"
        sig = rv.compute_signature(url, {})
        through_gateway("twilio", "/hooks/twilio?" + url.split("?", 1)[1], {"X-Twilio-Signature": sig})
        h, posted = hookgate_sign(a.bin, "twilio", SECRETS["twilio"], body_file, f"{PUBLIC}/hooks/twilio")
        check("twilio: library verifies hookgate sign",
              posted is not None and rv.validate(posted, BODY.decode(), h["x-twilio-signature"]))
        check("twilio: library refuses it under another token",
              not RequestValidator("54321").validate(posted, BODY.decode(), h["x-twilio-signature"]))
        # Form posts: the library's signature over URL + sorted params passes hookgate's
        # signature check (the gateway then refuses the non-JSON body, 400 invalid_json).
        params = {"CallSid": "CA1", "From": "+14158675309", "Body": "hi there"}
        sig = rv.compute_signature(f"{PUBLIC}/hooks/twilio", params)
        form = urllib.parse.urlencode(params).encode()
        status, verdict = post(port, "/hooks/twilio", {"X-Twilio-Signature": sig}, form)
        check("twilio: library-signed form post passes the signature check", verdict == "invalid_json",
              f"{status} {verdict}")

        # Square (PyPI squareup): the SDK verifies only; it has no signer.
        h, _ = hookgate_sign(a.bin, "square", SECRETS["square"], body_file, f"{PUBLIC}/hooks/square")
        check("square: SDK verifies hookgate sign", square_verify(
            request_body=BODY.decode(), signature_header=h["x-square-hmacsha256-signature"],
            signature_key=SECRETS["square"], notification_url=f"{PUBLIC}/hooks/square"))
        check("square: SDK refuses it for another URL", not square_verify(
            request_body=BODY.decode(), signature_header=h["x-square-hmacsha256-signature"],
            signature_key=SECRETS["square"], notification_url=f"{PUBLIC}/hooks/other"))

        # GitHub (npm @octokit/webhooks-methods).
        secret = json.dumps(SECRETS["github"])
        payload = json.dumps(BODY.decode())
        sig = node(a.work, f"import {{sign}} from '@octokit/webhooks-methods'; "
                           f"console.log(await sign({secret}, {payload}))")
        through_gateway("github", "/hooks/github", {"X-Hub-Signature-256": sig})
        h, _ = hookgate_sign(a.bin, "github", SECRETS["github"], body_file)
        hsig = json.dumps(h["x-hub-signature-256"])
        ok = node(a.work, f"import {{verify}} from '@octokit/webhooks-methods'; "
                          f"console.log(await verify({secret}, {payload}, {hsig}))")
        check("github: @octokit/webhooks-methods verifies hookgate sign", ok == "true", ok)
        ok = node(a.work, f"import {{verify}} from '@octokit/webhooks-methods'; "
                          f"console.log(await verify('other', {payload}, {hsig}))")
        check("github: @octokit/webhooks-methods refuses it under another secret", ok == "false", ok)

        # Shopify (npm @shopify/shopify-api): signs with its exported test helper getHmac
        # (the one its own tests use), verifies through a minimal app object's
        # webhooks.validate, which also wants the unsigned topic/domain/version/id headers.
        secret = json.dumps(SECRETS["shopify"])
        sig = node(a.work, f"import {{getHmac}} from '@shopify/shopify-api/test-helpers'; "
                           f"console.log(getHmac({payload}, {secret}))")
        through_gateway("shopify", "/hooks/shopify",
                        {"X-Shopify-Hmac-SHA256": sig, "X-Shopify-Event-Id": "shp-1",
                         "X-Shopify-Topic": "orders/create"})
        h, _ = hookgate_sign(a.bin, "shopify", SECRETS["shopify"], body_file)

        def shopify_validate(key):
            headers = json.dumps({**h, "x-shopify-topic": "orders/create",
                                  "x-shopify-shop-domain": "shop.myshopify.com",
                                  "x-shopify-api-version": "2025-10", "x-shopify-webhook-id": "w-1"})
            return node(a.work, (
                "import '@shopify/shopify-api/adapters/node'; import http from 'http'; "
                "import {shopifyApi, ApiVersion} from '@shopify/shopify-api'; "
                f"const api = shopifyApi({{apiKey: 'k', apiSecretKey: {json.dumps(key)}, "
                "hostName: 'hooks.example.com', isEmbeddedApp: false, logger: {level: 0}, "
                "apiVersion: ApiVersion.October25 ?? Object.values(ApiVersion).at(-2)}); "
                f"const req = {{method: 'POST', url: '/hooks/shopify', headers: {headers}}}; "
                f"const r = await api.webhooks.validate({{rawBody: {payload}, rawRequest: req, "
                "rawResponse: new http.ServerResponse(req)}); console.log(r.valid ? 'valid' : r.reason)"))
        ok = shopify_validate(SECRETS["shopify"])
        check("shopify: @shopify/shopify-api verifies hookgate sign", ok == "valid", ok)
        ok = shopify_validate("other")
        check("shopify: @shopify/shopify-api refuses it under another secret", ok == "invalid_hmac", ok)

        # Twitch EventSub (npm @twurple/eventsub-http): twurple verifies only (Twitch signs);
        # its check is EventSubHttpBase._verifyData (internal), reached on a minimal
        # EventSubMiddleware. The gateway side is signed with hookgate sign's headers, so
        # this provider is verify-only, like Square.
        h, _ = hookgate_sign(a.bin, "twitch", SECRETS["twitch"], body_file)

        def twurple_verify(key, body):
            return node(a.work, (
                "import {EventSubMiddleware} from '@twurple/eventsub-http'; "
                "const m = new EventSubMiddleware({apiClient: {}, hostName: 'hooks.example.com', "
                f"pathPrefix: '/hooks/twitch', secret: {json.dumps(key)}}}); "
                f"console.log(m._verifyData({json.dumps(h['twitch-eventsub-message-id'])}, "
                f"{json.dumps(h['twitch-eventsub-message-timestamp'])}, "
                f"Buffer.from({json.dumps(body)}), {json.dumps(h['twitch-eventsub-message-signature'])}))"))
        ok = twurple_verify(SECRETS["twitch"], BODY.decode())
        check("twitch: @twurple/eventsub-http verifies hookgate sign", ok == "true", ok)
        ok = twurple_verify("0therS3cret", BODY.decode())
        check("twitch: @twurple/eventsub-http refuses it under another secret", ok == "false", ok)
        ok = twurple_verify(SECRETS["twitch"], BODY.decode() + " ")
        check("twitch: @twurple/eventsub-http refuses it with another body", ok == "false", ok)
    finally:
        gw.terminate()
        gw.wait(timeout=10)

    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
