//! Signed webhooks end to end: per scheme, a valid signature is forwarded (signature
//! headers stripped, body byte-identical); wrong secret, tampered body, stale or future
//! timestamp, missing or malformed header are 401 with nothing forwarded; rotation works.

use crate::support::sign::{self, now};
use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

const BODY: &[u8] = b"{\"type\": \"invoice.paid\", \"data\": {\"id\": 1}}";
const KEY_OLD: &[u8] = b"0123456789abcdef0123456789abcdef";
const KEY_NEW: &[u8] = b"fedcba9876543210fedcba9876543210";
const SEED: [u8; 32] = [7u8; 32];

/// Signs `(secret index, timestamp, body)` into request headers.
type Signer = Box<dyn Fn(usize, u64, &[u8]) -> Vec<(String, String)>>;

/// A scheme under test: its `auth` table and a signer `(secret index, ts, body) -> headers`.
struct Case {
    name: &'static str,
    auth: String,
    sign: Signer,
    timestamped: bool,
    signature_header: &'static str,
}

fn cases() -> Vec<Case> {
    let secrets = ["old-secret", "new-secret"];
    vec![
        Case {
            name: "hmac",
            auth: r#"{ type = "hmac", header = "X-Signature", algorithm = "sha256", encoding = "hex", prefix = "sha256=", secrets = ["old-secret", "new-secret"] }"#.into(),
            sign: Box::new(move |i, _, body| sign::generic_hmac(secrets[i], body)),
            timestamped: false,
            signature_header: "x-signature",
        },
        Case {
            name: "standard-webhooks",
            auth: format!(
                r#"{{ type = "standard-webhooks", secrets = ["{}", "{}"] }}"#,
                sign::whsec(KEY_OLD),
                sign::whsec(KEY_NEW)
            ),
            sign: Box::new(|i, ts, body| sign::standard_webhooks([KEY_OLD, KEY_NEW][i], "msg_1", ts, body)),
            timestamped: true,
            signature_header: "webhook-signature",
        },
        Case {
            name: "standard-webhooks-ed25519",
            auth: format!(
                r#"{{ type = "standard-webhooks", public_keys = ["{}", "{}"] }}"#,
                sign::whpk([1u8; 32]),
                sign::whpk(SEED)
            ),
            sign: Box::new(|i, ts, body| sign::standard_webhooks_ed25519([[1u8; 32], SEED][i], "msg_2", ts, body)),
            timestamped: true,
            signature_header: "webhook-signature",
        },
        Case {
            name: "github",
            auth: r#"{ type = "github", secrets = ["old-secret", "new-secret"] }"#.into(),
            sign: Box::new(move |i, _, body| sign::github(secrets[i], body)),
            timestamped: false,
            signature_header: "x-hub-signature-256",
        },
        Case {
            name: "stripe",
            auth: r#"{ type = "stripe", secrets = ["whsec_old", "whsec_new"], tolerance = "300s" }"#.into(),
            sign: Box::new(|i, ts, body| sign::stripe(["whsec_old", "whsec_new"][i], ts, body)),
            timestamped: true,
            signature_header: "stripe-signature",
        },
        Case {
            name: "slack",
            auth: r#"{ type = "slack", secrets = ["old-secret", "new-secret"] }"#.into(),
            sign: Box::new(move |i, ts, body| sign::slack(secrets[i], ts, body)),
            timestamped: true,
            signature_header: "x-slack-signature",
        },
    ]
}

async fn gateway(case: &Case, up: &Upstream) -> Gateway {
    Gateway::start(&format!(
        "[store]\nbackend = \"memory\"\n[[route]]\nname = \"{}\"\npath = \"/hooks/s\"\nupstream = \"{}\"\nauth = {}\n",
        case.name,
        up.url("/in"),
        case.auth
    ))
    .await
}

async fn post(gw: &Gateway, headers: &[(String, String)], body: &[u8]) -> reqwest::Response {
    let mut req = client().post(gw.url("/hooks/s")).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    req.send().await.expect("send")
}

async fn refused(
    case: &Case,
    gw: &Gateway,
    up: &Upstream,
    what: &str,
    headers: &[(String, String)],
    body: &[u8],
) {
    let r = post(gw, headers, body).await;
    assert_eq!(r.status(), 401, "{}: {what}", case.name);
    assert_eq!(verdict(&r), "unauthorized", "{}: {what}", case.name);
    up.assert_nothing().await;
}

#[tokio::test]
async fn every_scheme_verifies_and_refuses() {
    let up = Upstream::start().await;
    for case in cases() {
        let gw = gateway(&case, &up).await;
        let t = now();
        // Valid, with either rotated secret.
        for i in [0, 1] {
            let headers = (case.sign)(i, t, BODY);
            let r = post(&gw, &headers, BODY).await;
            assert_eq!(r.status(), 200, "{} secret {i}", case.name);
            assert_eq!(verdict(&r), "forwarded");
            let got = up.next().await;
            assert_eq!(&got.body[..], BODY, "{}", case.name);
            assert!(
                got.headers.get(case.signature_header).is_none(),
                "{}: signature forwarded",
                case.name
            );
        }
        // Tampered body.
        let headers = (case.sign)(1, t, BODY);
        let mut tampered = BODY.to_vec();
        tampered[3] ^= 1;
        refused(&case, &gw, &up, "tampered body", &headers, &tampered).await;
        // Missing signature header.
        let without: Vec<_> = headers
            .iter()
            .filter(|(k, _)| k != case.signature_header)
            .cloned()
            .collect();
        refused(&case, &gw, &up, "missing header", &without, BODY).await;
        // Malformed headers.
        for bad in [
            "garbage",
            "v1,!!!notbase64",
            "sha256=zz",
            "t=abc,v1=00",
            "",
            &"A".repeat(10_000),
        ] {
            let mut h = headers.clone();
            for (k, v) in h.iter_mut() {
                if k == case.signature_header {
                    *v = bad.to_owned();
                }
            }
            refused(&case, &gw, &up, &format!("malformed {:.20}", bad), &h, BODY).await;
        }
        if case.timestamped {
            // Just inside the tolerance passes, beyond it fails, in both directions.
            for (offset, ok) in [
                (-290i64, true),
                (290, true),
                (-310, false),
                (310, false),
                (-86_400, false),
            ] {
                let ts = (t as i64 + offset) as u64;
                let headers = (case.sign)(0, ts, BODY);
                let r = post(&gw, &headers, BODY).await;
                if ok {
                    assert_eq!(r.status(), 200, "{} offset {offset}", case.name);
                    up.next().await;
                } else {
                    assert_eq!(r.status(), 401, "{} offset {offset}", case.name);
                    up.assert_nothing().await;
                }
            }
        }
    }
}

#[tokio::test]
async fn wrong_secret_is_refused_for_every_scheme() {
    let up = Upstream::start().await;
    for case in cases() {
        // Same route config, but signed with keys the route does not know.
        let gw = gateway(&case, &up).await;
        let t = now();
        let headers = match case.name {
            "hmac" => sign::generic_hmac("intruder", BODY),
            "standard-webhooks" => {
                sign::standard_webhooks(b"intruder-key-of-32-bytes-long!!!", "msg_1", t, BODY)
            }
            "standard-webhooks-ed25519" => {
                sign::standard_webhooks_ed25519([9u8; 32], "msg_1", t, BODY)
            }
            "github" => sign::github("intruder", BODY),
            "stripe" => sign::stripe("whsec_intruder", t, BODY),
            "slack" => sign::slack("intruder", t, BODY),
            other => panic!("unknown case {other}"),
        };
        refused(&case, &gw, &up, "wrong secret", &headers, BODY).await;
    }
}

/// A request with every header of its scheme except the signature itself (a timestamp,
/// an id, GitHub's legacy SHA-1 header) is unsigned: refused with 401 before its body is
/// read, so a sender that never finishes the body gets 401 at once, not 408 after
/// `read_timeout`.
#[tokio::test]
async fn unsigned_requests_are_refused_before_the_body_is_read() {
    let up = Upstream::start().await;
    for case in cases() {
        let gw = gateway(&case, &up).await;
        let mut head = String::from("POST /hooks/s HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n");
        for (k, v) in (case.sign)(0, now(), BODY) {
            if k != case.signature_header {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        if case.name == "github" {
            head.push_str("x-hub-signature: sha1=0000000000000000000000000000000000000000\r\n");
        }
        head.push_str("\r\n{\"partial\": ");
        let started = std::time::Instant::now();
        let answer = crate::support::raw_exchange(
            gw.addr,
            head.as_bytes(),
            std::time::Duration::from_secs(5),
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 401"),
            "{}: {answer}",
            case.name
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("x-hookgate-verdict: unauthorized"),
            "{}: {answer}",
            case.name
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{}",
            case.name
        );
        up.assert_nothing().await;
    }
}

#[tokio::test]
async fn svix_header_names_are_accepted() {
    let up = Upstream::start().await;
    let case = &cases()[1];
    let gw = gateway(case, &up).await;
    let headers: Vec<_> = sign::standard_webhooks(KEY_NEW, "msg_svix", now(), BODY)
        .into_iter()
        .map(|(k, v)| (k.replace("webhook-", "svix-"), v))
        .collect();
    let r = post(&gw, &headers, BODY).await;
    assert_eq!(r.status(), 200);
    let got = up.next().await;
    assert!(got.headers.get("svix-signature").is_none());
    assert_eq!(got.headers["svix-id"], "msg_svix");
}

#[test]
fn check_rejects_undecodable_keys() {
    for (auth, key) in [
        (
            r#"{ type = "standard-webhooks", secrets = ["whsec_%%%not-base64"] }"#,
            "route[0].auth.secrets[0]",
        ),
        (
            r#"{ type = "standard-webhooks", public_keys = ["whpk_AAAA"] }"#,
            "route[0].auth.public_keys[0]",
        ),
        (r#"{ type = "standard-webhooks" }"#, "route[0].auth.secrets"),
        (
            r#"{ type = "github", secrets = [] }"#,
            "route[0].auth.secrets",
        ),
        (
            r#"{ type = "github", secrets = ["s"], tolerance = "5m" }"#,
            "tolerance",
        ),
        (
            r#"{ type = "hmac", header = "X-Sig", algorithm = "md5", secrets = ["s"] }"#,
            "md5",
        ),
    ] {
        let text = format!(
            "[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:1/\"\nauth = {auth}\n"
        );
        let err = hookgate::config::from_str(&text, "t")
            .expect_err(auth)
            .to_string();
        assert!(err.contains(key), "{auth}: {err}");
    }
}
