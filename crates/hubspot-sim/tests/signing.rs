//! The signature test vectors of hubspot-api.md §9.5 verify against the simulator's signing.

use hubspot_sim::signing::{decode_uri_v3, sign_v1, sign_v2, sign_v3};

const OFFICIAL_SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";

#[test]
fn official_v1_vector_matches() {
    let body = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
    assert_eq!(
        sign_v1(OFFICIAL_SECRET, body.as_bytes()),
        "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
    );
}

#[test]
fn official_v2_vectors_match_for_get_and_post() {
    let uri = "https://www.example.com/webhook_uri";
    assert_eq!(
        sign_v2(OFFICIAL_SECRET, "GET", uri, b""),
        "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
    );
    assert_eq!(
        sign_v2(
            OFFICIAL_SECRET,
            "POST",
            uri,
            br#"{"example_field":"example_value"}"#
        ),
        "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"
    );
}

const SIM_SECRET: &str = "00000000-1111-2222-3333-444444444444";
const SIM_URL: &str = "https://sim.example.test/hooks/hubspot?src=hs%3Asim&x=1";
const SIM_BODY: &str = r#"[{"eventId":4242,"subscriptionId":77,"portalId":9990001,"appId":31337,"occurredAt":1767225600000,"subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":5551234,"propertyName":"dealstage","propertyValue":"closedwon","changeSource":"CRM_UI","sourceId":"userId:42"}]"#;

#[test]
fn self_made_v3_vector_matches_with_the_decoded_url() {
    assert_eq!(
        decode_uri_v3(SIM_URL),
        "https://sim.example.test/hooks/hubspot?src=hs:sim&x=1"
    );
    assert_eq!(
        sign_v3(
            SIM_SECRET,
            "POST",
            SIM_URL,
            SIM_BODY.as_bytes(),
            "1767225601234"
        ),
        "jkR3AN1iLVgZRGMHPrUH26nykfCm2gAjtsPYZo3J9Tc="
    );
}

#[test]
fn self_made_v1_and_v2_vectors_match() {
    assert_eq!(
        sign_v1(SIM_SECRET, SIM_BODY.as_bytes()),
        "2cb555d564e244c4d97ccabbeb79692403703a4a9c54fbf68471fda2025f139a"
    );
    assert_eq!(
        sign_v2(SIM_SECRET, "POST", SIM_URL, SIM_BODY.as_bytes()),
        "51a8cb58740888f968dc2353e683d6d654959993bb851f397675155547dd164d"
    );
}
