//! Readiness as an orchestrator sees it: `/readyz` follows the broker going away and
//! coming back, without a restart.

use std::time::Duration;

use platform::amqp::testing::{TcpProxy, eventually};
use platform::shutdown::Shutdown;
use platform::testing::TestDatabase;
use sync_worker::{Application, Settings};

async fn readyz(client: &reqwest::Client, port: u16) -> anyhow::Result<(u16, serde_json::Value)> {
    let url = format!("http://127.0.0.1:{port}/readyz");
    let response = client.get(url).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

#[tokio::test]
async fn readyz_is_503_while_the_broker_is_down_and_200_once_it_is_back() {
    let database = TestDatabase::create().await.unwrap();
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap())
        .await
        .unwrap();
    proxy.refuse();
    let env = [
        ("HUBSCORE__HTTP__PORT", "0".to_owned()),
        ("HUBSCORE__DATABASE__URL", database.url.clone()),
        (
            "HUBSCORE__AMQP__URL",
            format!("amqp://guest:guest@{}/%2f", proxy.address()),
        ),
        ("HUBSCORE__AMQP__RECONNECT_MAX_BACKOFF_MS", "200".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let settings: Settings =
        platform::config::load_with_env(sync_worker::config::DEFAULTS, None, env).unwrap();
    sync_worker::startup::migrate(&settings).await.unwrap();
    let app = Application::build(settings).await.unwrap();
    let port = app.port();
    let shutdown = Shutdown::new();
    let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::new();

    let (status, body) = readyz(&client, port).await.unwrap();
    assert_eq!(status, 503, "{body}");
    let checks = body["checks"].as_array().unwrap();
    let check = |name: &str| checks.iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(check("database")["ok"], true, "{body}");
    assert_eq!(check("broker")["ok"], false, "{body}");
    assert!(
        !body.to_string().contains("guest:guest"),
        "credentials leaked: {body}"
    );

    proxy.accept();
    let ready = eventually(Duration::from_secs(15), || async {
        readyz(&client, port)
            .await
            .is_ok_and(|(status, _)| status == 200)
    })
    .await;
    assert!(ready, "never ready after the broker came back");

    proxy.refuse();
    let unready = eventually(Duration::from_secs(15), || async {
        readyz(&client, port)
            .await
            .is_ok_and(|(status, _)| status == 503)
    })
    .await;
    assert!(unready, "still ready after the broker went away");

    shutdown.cancel();
    running.await.unwrap().unwrap();
}
