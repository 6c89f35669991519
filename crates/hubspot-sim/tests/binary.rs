//! The `hubspot-sim` binary: every flag is documented in `--help` and the README, and
//! a config file starts portals with known credentials, seed data and faults.

#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hubspot-sim");

fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "HUBSPOT_SIM_CONFIG",
        "HUBSPOT_SIM_HOST",
        "HUBSPOT_SIM_PORT",
        "HUBSPOT_SIM_DEMO_TOKEN",
        "HUBSPOT_SIM_DEMO_CLIENT_SECRET",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1").env("RUST_LOG", "info");
    cmd
}

/// Kills the simulator it started when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and reads its base URL from the "listening" log line.
fn start(args: &[&str]) -> (Running, String) {
    let mut child = command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn hubspot-sim");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the simulator logs before it exits")
            .expect("a log line");
        if let Some(at) = line.find("http://127.0.0.1:") {
            let url: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.'))
                .collect();
            break url;
        }
    };
    // Keep draining the log so the simulator never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (running, base)
}

#[test]
fn help_lists_every_flag_and_the_docs_document_each_one() {
    let out = command().arg("--help").output().expect("--help runs");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).expect("utf-8");
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/hubspot-sim.md"
    ))
    .expect("docs/hubspot-sim.md");
    let flags: Vec<&str> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '<')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect();
    assert!(flags.len() >= 20, "{flags:?}");
    for flag in flags {
        if flag == "--help" || flag == "--version" {
            continue;
        }
        assert!(
            readme.contains(&format!("`{flag}`")),
            "docs/hubspot-sim.md does not document {flag}"
        );
    }
    for key in ["[[portals]]", "[[faults]]"] {
        assert!(help.contains(key), "--help does not explain {key}");
        assert!(
            readme.contains(key),
            "docs/hubspot-sim.md does not explain {key}"
        );
    }
}

#[test]
fn an_unknown_config_key_stops_the_binary_with_an_error() {
    let path = std::env::temp_dir().join(format!("hubspot-sim-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "port = 0\ndemo_contact = 5\n").expect("write config");
    let out = command().arg("--config").arg(&path).output().expect("runs");
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("demo_contact"), "{stderr}");
}

#[tokio::test]
async fn a_config_file_starts_portals_with_known_credentials_seed_data_and_faults() {
    let path = std::env::temp_dir().join(format!("hubspot-sim-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        r#"
host = "127.0.0.1"
port = 0
access_token_ttl_secs = 600
demo = true
demo_token = "pat-na1-demo0000-0000-0000-0000-000000000000"
demo_developer_api_key = "demo-dev-key"
demo_contacts = 7
demo_companies = 2
demo_deals = 3

[[portals]]
portal_id = 4242
tier = "enterprise"
private_app_token = "pat-na1-cfg00000-0000-0000-0000-000000000000"
client_id = "cfg-client"
client_secret = "cfg-secret"
app_id = 777
developer_api_key = "cfg-dev-key"
webhook_subscriptions = ["deal.propertyChange:dealstage"]
webhook_shuffle = true
webhook_signature_version = "v2"

[portals.seed]
seed = 5
contacts = 12
companies = 3
deals = 4

[[faults]]
path_prefix = "/crm/v3/owners"
error_rate = 1.0
error_status = 503
"#,
    )
    .expect("write config");
    let (_running, base) = start(&["--config", path.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&path);
    let http = reqwest::Client::new();
    let get = |token: &'static str, path: &str| {
        let request = http.get(format!("{base}{path}")).bearer_auth(token);
        async move {
            let resp = request.send().await.expect("request");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let cfg = "pat-na1-cfg00000-0000-0000-0000-000000000000";
    let (status, contacts) = get(cfg, "/crm/v3/objects/contacts?limit=100").await;
    assert_eq!(status, 200);
    assert_eq!(contacts["results"].as_array().map(Vec::len), Some(12));
    let (_, details) = get(cfg, "/account-info/v3/details").await;
    assert_eq!(details["portalId"], 4242);
    let (status, _) = get(cfg, "/crm/v3/owners").await;
    assert_eq!(status, 503, "the configured fault is active");
    let (_, demo) = get(
        "pat-na1-demo0000-0000-0000-0000-000000000000",
        "/crm/v3/objects/contacts?limit=100",
    )
    .await;
    assert_eq!(demo["results"].as_array().map(Vec::len), Some(7));
    let portal: Value = http
        .get(format!("{base}/_sim/portals/4242"))
        .send()
        .await
        .expect("portal")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (&portal["tier"], &portal["client_secret"]),
        (&Value::from("enterprise"), &Value::from("cfg-secret"))
    );
    assert_eq!(portal["developer_api_key"], "cfg-dev-key");
    let templates = http
        .get(format!(
            "{base}/integrators/timeline/v3/777/event-templates?hapikey=cfg-dev-key"
        ))
        .send()
        .await
        .expect("templates");
    assert_eq!(
        templates.status(),
        200,
        "the configured key manages app 777"
    );
    let demo: Value = http
        .get(format!("{base}/_sim/portals/9990001"))
        .send()
        .await
        .expect("demo portal")
        .json()
        .await
        .expect("json");
    assert_eq!(demo["developer_api_key"], "demo-dev-key");
    let hooks: Value = http
        .get(format!("{base}/_sim/portals/4242/webhooks"))
        .send()
        .await
        .expect("webhooks")
        .json()
        .await
        .expect("json");
    assert_eq!(
        hooks["subscriptions"],
        serde_json::json!(["deal.propertyChange:dealstage"])
    );
    assert_eq!(hooks["shuffle"], true);
    assert_eq!(hooks["signature_version"], "v2");
}
